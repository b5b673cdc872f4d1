"""Collection protocols: what a team means to record (targets per task and condition)."""

from __future__ import annotations

from django.db import transaction

from core import rights
from core.errors import InvalidInput
from core.models import Condition, TaskVersion
from core.services import audit, task_versions
from teleop.models import CollectionProtocol, ProtocolTarget

# --- Collection protocols -------------------------------------------------------------------


def create_protocol(
    *,
    actor,
    team,
    name: str,
    task_version: TaskVersion,
    targets: list[tuple[Condition, int]],
    instructions: str = "",
    min_control_hz: float | None = None,
    min_duration_s: float | None = None,
    max_duration_s: float | None = None,
    required_cameras: list[str] | None = None,
    visibility: str = "private",
) -> CollectionProtocol:
    """A protocol with its per-condition targets. Team admins only; locks the task version.
    Raises NotPermitted, InvalidInput."""
    rights.require(actor, rights.Right.AUTHOR, team)
    if not targets:
        raise InvalidInput(
            "A protocol needs at least one condition target.", fields={"targets": ["At least one."]}
        )
    if len({condition.pk for condition, _ in targets}) != len(targets):
        raise InvalidInput("Each condition may appear once.", fields={"targets": ["Repeated."]})
    if min_duration_s and max_duration_s and min_duration_s > max_duration_s:
        raise InvalidInput("min_duration_s is above max_duration_s.")
    with transaction.atomic():
        protocol = CollectionProtocol.objects.create(
            team=team,
            name=name,
            task_version=task_version,
            instructions=instructions,
            min_control_hz=min_control_hz,
            min_duration_s=min_duration_s,
            max_duration_s=max_duration_s,
            required_cameras=list(required_cameras or []),
            visibility=visibility,
        )
        ProtocolTarget.objects.bulk_create(
            ProtocolTarget(protocol=protocol, condition=c, target_count=n) for c, n in targets
        )
        task_versions.lock_task_version(actor=actor, version=task_version)
        audit.record_audit(
            actor=actor, action="create", obj=protocol, after=audit.snapshot(protocol)
        )
    return protocol
