"""Recording sessions: who may record on a robot, opening and closing a session, the next
condition a protocol asks for."""

from __future__ import annotations

import random

from django.db import transaction
from django.utils import timezone

from core import access, rights
from core.errors import InvalidInput, NotPermitted
from core.models import Condition, Operator, Robot, TaskVersion
from core.services import audit, task_versions
from teleop.errors import EmbodimentNotAllowed, SessionClosed, SessionNotFound
from teleop.models import SESSION_CODE_ALPHABET, CollectionProtocol, Session, new_session_code


def may_record_on(actor, robot: Robot) -> bool:
    if access.is_robot(actor):
        return actor.robot.pk == robot.pk
    return rights.may(actor, rights.Right.OPERATE, robot.team_id)


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
            code=_unused_code(),
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


def _unused_code() -> str:
    """A session code no session has. Codes are drawn from 244 million, so a second draw is
    rare and a third practically never needed."""
    while True:
        code = new_session_code()
        if not Session.objects.filter(code=code).exists():
            return code


def normalize_code(code: str) -> str:
    """A code as typed (any case, with spaces or dashes) as stored."""
    return "".join(c for c in code.upper() if c not in " -")


def session_for_code(*, actor, code: str) -> Session:
    """The open session a robot (or a person of its team) records into by its short code,
    as shown on the session's console. A robot gets only a session on itself.

    Raises SessionNotFound (no such code among the actor's teams' sessions: another team's
    code reads as unknown), SessionClosed, NotPermitted (a session on another robot)."""
    wanted = normalize_code(code)
    sessions = access.in_my_teams(
        Session.objects.select_related("robot", "operator", "task_version__task"), actor
    )
    session = sessions.filter(code=wanted).first() if wanted else None
    if session is None:
        hint = "" if set(wanted) <= set(SESSION_CODE_ALPHABET) else " (codes use A-Y and 3-9)"
        raise SessionNotFound(
            f"No session with code '{code}' in your team{hint}: read it again from the "
            "session's console."
        )
    if session.status != Session.Status.OPEN:
        raise SessionClosed(
            f"Session {session.code} was closed at {session.closed_at:%Y-%m-%d %H:%M} UTC; "
            "open a new session in the console and use its code."
        )
    if access.is_robot(actor) and session.robot_id != actor.robot.pk:
        raise NotPermitted(
            f"Session {session.code} records on robot '{session.robot.name}', not on "
            f"'{actor.robot.name}': use that robot, or open a session for this one."
        )
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
    target is met. The condition carries `remaining`, the accepted episodes its target still
    wants.

    Without `rng` the draw is seeded by the session and its number of episodes, so the
    console and the robot asking in between two recordings are told the same condition."""
    from teleop.selectors import protocol_progress

    if session.protocol_id is None:
        return None
    short = [row for row in protocol_progress(session.protocol) if row.accepted < row.target]
    if not short:
        return None
    if rng is None:
        rng = random.Random(f"{session.pk}/{session.episodes.count()}")
    # Weighted by what is missing: the emptiest condition is the likeliest next.
    chosen = rng.choices(short, weights=[row.target - row.accepted for row in short])[0]
    condition = Condition.objects.get(pk=chosen.condition_id)
    condition.remaining = chosen.target - chosen.accepted
    return condition
