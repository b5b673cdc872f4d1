"""Recording sessions: who may record on a robot, opening and closing a session, the next
condition a protocol asks for."""

from __future__ import annotations

import random

from django.db import transaction
from django.utils import timezone

from core import access
from core.errors import InvalidInput, NotPermitted
from core.models import Condition, Membership, Operator, Robot, TaskVersion
from core.services import audit, task_versions
from teleop.errors import EmbodimentNotAllowed
from teleop.models import CollectionProtocol, Session

Role = Membership.Role


def may_record_on(actor, robot: Robot) -> bool:
    if access.is_robot(actor):
        return actor.robot.pk == robot.pk
    return access.has_role(actor, robot.team_id, Role.OPERATOR, Role.ADMIN)


def require_recorder(actor, robot: Robot) -> None:
    if not may_record_on(actor, robot):
        raise NotPermitted(
            "Only the robot itself, or an operator or admin of its team, may record on this robot."
        )


# --- Sessions -------------------------------------------------------------------------------


def open_session(
    *,
    actor,
    robot: Robot,
    task_version: TaskVersion,
    operator_code: str,
    kind: str = Session.Kind.TELEOP,
    protocol: CollectionProtocol | None = None,
) -> Session:
    """Open a session. Raises NotPermitted, InvalidInput (unknown operator, retired robot,
    protocol for another task), EmbodimentNotAllowed. Locks the task version."""
    require_recorder(actor, robot)
    if robot.status != Robot.Status.ACTIVE:
        raise InvalidInput(f"Robot '{robot}' is {robot.status}, not active.")
    operator = Operator.objects.filter(
        code=operator_code, team_id=robot.team_id, active=True
    ).first()
    if operator is None:
        raise InvalidInput(
            f"No active operator '{operator_code}' in the robot's team.",
            fields={"operator": ["Unknown operator code."]},
        )
    if not task_version.allowed_embodiments.filter(pk=robot.embodiment_id).exists():
        raise EmbodimentNotAllowed(
            f"Task version {task_version} does not allow embodiment '{robot.embodiment}'."
        )
    if protocol is not None and protocol.task_version_id != task_version.pk:
        raise InvalidInput(
            "The protocol is for another task version.",
            fields={"protocol": ["Protocol and task version differ."]},
        )
    with transaction.atomic():
        session = Session.objects.create(
            team_id=robot.team_id,
            operator=operator,
            robot=robot,
            task_version=task_version,
            protocol=protocol,
            kind=kind,
            opened_by=access.actor_label(actor),
        )
        task_versions.lock_task_version(actor=actor, version=task_version)
        audit.record_audit(actor=actor, action="create", obj=session, after=audit.snapshot(session))
    return session


def close_session(*, actor, session: Session) -> Session:
    """Close a session (idempotent): no new episodes; uploads under way may finish."""
    require_recorder(actor, session.robot)
    with transaction.atomic():
        session = Session.objects.select_for_update().get(pk=session.pk)
        if session.status == Session.Status.OPEN:
            session.status = Session.Status.CLOSED
            session.closed_at = timezone.now()
            session.save(update_fields=["status", "closed_at"])
            audit.record_audit(
                actor=actor,
                action="update",
                obj=session,
                before={"status": "open"},
                after={"status": "closed"},
            )
    return session


def next_condition(*, session: Session, rng: random.Random | None = None) -> Condition | None:
    """The condition to set up next: drawn at random among the protocol's conditions still
    short of their target, so coverage stays balanced. None without a protocol or when every
    target is met."""
    from teleop.selectors import protocol_progress

    if session.protocol_id is None:
        return None
    short = [row for row in protocol_progress(session.protocol) if row.accepted < row.target]
    if not short:
        return None
    # Weighted by what is missing: the emptiest condition is the likeliest next.
    chosen = (rng or random.SystemRandom()).choices(
        short, weights=[row.target - row.accepted for row in short]
    )[0]
    return Condition.objects.get(pk=chosen.condition_id)
