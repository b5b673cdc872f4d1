"""Collection protocols: what a team means to record (targets per task and condition)."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from core import rights
from core.errors import InvalidInput
from core.models import Condition, TaskVersion, Team
from core.services import audit, task_versions
from core.services.team_owned import set_sharing
from teleop.models import CollectionProtocol, ProtocolTarget

# --- Validation (the API, the pages and the admin all call these) ---------------------------


def protocol_cameras(task_version: TaskVersion) -> list[str]:
    """The cameras a protocol on `task_version` may require: those of every embodiment the
    version allows, in the first embodiment's order. A camera some allowed robot lacks would
    flag each of its episodes `missing_required_camera`."""
    common: list[str] | None = None
    # .all() and a sort in Python: a prefetched version costs no query.
    for embodiment in sorted(task_version.allowed_embodiments.all(), key=lambda e: e.name):
        names = [camera["name"] for camera in embodiment.spec.get("cameras", [])]
        common = names if common is None else [n for n in common if n in names]
    return common or []


def check_protocol_settings(
    *,
    task_version: TaskVersion,
    min_duration_s: float | None = None,
    max_duration_s: float | None = None,
    required_cameras: Iterable[str] = (),
) -> None:
    """Refuse durations out of order and cameras the task version's embodiments lack.
    Raises InvalidInput with the field of each problem."""
    problems: dict[str, list[str]] = {}
    if min_duration_s is not None and max_duration_s is not None:
        if min_duration_s > max_duration_s:
            problems["max_duration_s"] = [
                f"The maximum duration ({max_duration_s:g} s) is below the minimum "
                f"({min_duration_s:g} s)."
            ]
    available = protocol_cameras(task_version)
    unknown = [name for name in required_cameras if name not in available]
    if unknown:
        embodiments = ", ".join(sorted(e.name for e in task_version.allowed_embodiments.all()))
        problems["required_cameras"] = [
            f"Not a camera of every embodiment the task version allows ({embodiments}): "
            f"{', '.join(unknown)}. Choose from: {', '.join(available) or 'none'}."
        ]
    if problems:
        raise InvalidInput(" ".join(m for ms in problems.values() for m in ms), fields=problems)


def check_protocol_targets(targets: list[tuple[Condition, int]]) -> None:
    """At least one target, each condition once, each count at least 1. Raises InvalidInput
    (field `targets`)."""
    if not targets:
        raise InvalidInput(
            "A protocol needs at least one condition target.",
            fields={"targets": ["Add at least one condition with a target count."]},
        )
    if len({condition.pk for condition, _ in targets}) != len(targets):
        raise InvalidInput(
            "Each condition may appear once.",
            fields={"targets": ["Each condition may appear once."]},
        )
    if any(count < 1 for _, count in targets):
        raise InvalidInput(
            "A target count must be at least 1.",
            fields={"targets": ["A target count must be at least 1."]},
        )


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
    shared_with: Iterable[Team] = (),
) -> CollectionProtocol:
    """A protocol with its per-condition targets. Admins and researchers (`author`); locks the
    task version. Raises NotPermitted, InvalidInput (targets, durations, cameras)."""
    rights.require(actor, rights.Right.AUTHOR, team)
    check_protocol_targets(targets)
    check_protocol_settings(
        task_version=task_version,
        min_duration_s=min_duration_s,
        max_duration_s=max_duration_s,
        required_cameras=required_cameras or [],
    )
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
        set_sharing(protocol, None, shared_with)
        ProtocolTarget.objects.bulk_create(
            ProtocolTarget(protocol=protocol, condition=c, target_count=n) for c, n in targets
        )
        task_versions.lock_task_version(actor=actor, version=task_version)
        audit.record_audit(
            actor=actor, action="create", obj=protocol, after=audit.snapshot(protocol)
        )
    return protocol
