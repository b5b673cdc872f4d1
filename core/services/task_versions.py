"""Tasks and their versions: success criteria, judgements against them, content hashes,
locking a version once trials or benchmarks use it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from core import access, rights
from core.errors import Conflict, InvalidInput, TaskVersionLocked
from core.models import AuditEvent, Embodiment, Task, TaskVersion, Team, Visibility
from core.services.audit import record_audit, snapshot
from core.services.team_owned import set_sharing, update_team_owned
from proving_ground.criteria.parsing import parse_criteria
from proving_ground.criteria.spec import CriteriaError, canonical_json

# --- Tasks and versions ---------------------------------------------------------------------


def validate_criteria(criteria: Any) -> dict:
    """The normalized spec of valid success criteria (docs/criteria.md). Raises InvalidInput
    with one message per problem under `fields["criteria"]`, each starting with the JSON
    pointer of the offending value ("/stages: stage weights sum to 0.9; ...")."""
    try:
        return parse_criteria(criteria).to_dict()
    except CriteriaError as exc:
        raise InvalidInput(
            "The success criteria are not valid.",
            fields={"criteria": [f"{p.path or '/'}: {p.message}" for p in exc.problems]},
        ) from exc


def validate_judgement(
    *, criteria_spec: dict, stages_reached: list[str] | None, failure_codes: list[str] | None
) -> tuple[list[str], list[str], float]:
    """Check a person's (or robot's) judgement of an attempt against a task version's
    criteria: stages and failure codes must be the criteria's own. Returns the stages and codes
    without repeats, and the stage score in [0, 1]. Raises InvalidInput naming the unknown."""
    from proving_ground.criteria.spec import stage_score

    criteria = parse_criteria(criteria_spec)
    stages_reached = list(dict.fromkeys(stages_reached or []))
    failure_codes = list(dict.fromkeys(failure_codes or []))
    try:
        score = stage_score(criteria, stages_reached)
    except CriteriaError as exc:
        raise InvalidInput(
            "Unknown stage.", fields={"stages_reached": [p.message for p in exc.problems]}
        ) from exc
    known_codes = {code.code for code in criteria.failure_codes}
    unknown = [code for code in failure_codes if code not in known_codes]
    if unknown:
        raise InvalidInput(
            f"Unknown failure codes: {', '.join(unknown)}.",
            fields={"failure_codes": [f"Unknown: {c}" for c in unknown]},
        )
    return stages_reached, failure_codes, score


def task_version_hash(
    *,
    instruction: str,
    scene_setup: str,
    time_limit_s: float,
    criteria: dict,
    embodiment_names: Iterable[str],
) -> str:
    """SHA-256 of a version's canonical content: equal content, equal hash."""
    content = {
        "instruction": instruction,
        "scene_setup": scene_setup,
        "time_limit_s": float(time_limit_s),
        "criteria": criteria,
        "allowed_embodiments": sorted(embodiment_names),
    }
    return hashlib.sha256(canonical_json(content).encode()).hexdigest()


def _check_time_limit(time_limit_s: float) -> None:
    if not (0 < time_limit_s <= 24 * 3600):
        raise InvalidInput(
            "The time limit must be between 0 and 86400 seconds.",
            fields={"time_limit_s": ["Must be > 0 and <= 86400."]},
        )


def create_task(
    *,
    actor,
    team: Team,
    slug: str,
    name: str,
    instruction: str,
    time_limit_s: float,
    criteria: dict,
    allowed_embodiments: Iterable[Embodiment],
    scene_setup: str = "",
    visibility: str = Visibility.PUBLIC,
    shared_with: Iterable[Team] = (),
) -> Task:
    """A task with its first version. Raises NotPermitted, InvalidInput, Conflict."""
    rights.require(actor, rights.Right.AUTHOR, team)
    try:
        with transaction.atomic():
            task = Task.objects.create(team=team, slug=slug, name=name, visibility=visibility)
            set_sharing(task, None, shared_with)
            record_audit(
                actor=actor, action=AuditEvent.Action.CREATE, obj=task, after=snapshot(task)
            )
            create_task_version(
                actor=actor,
                task=task,
                instruction=instruction,
                scene_setup=scene_setup,
                time_limit_s=time_limit_s,
                criteria=criteria,
                allowed_embodiments=allowed_embodiments,
            )
    except IntegrityError as exc:
        raise Conflict(f"Team '{team}' has a task '{slug}' already.") from exc
    return task


def update_task(*, actor, task: Task, **changes) -> Task:
    try:
        return update_team_owned(
            actor=actor, obj=task, changes=changes, allowed={"slug", "name", "visibility"}
        )
    except IntegrityError as exc:
        raise Conflict(f"This team has a task '{changes.get('slug')}' already.") from exc


def create_task_version(
    *,
    actor,
    task: Task,
    instruction: str,
    time_limit_s: float,
    criteria: dict,
    allowed_embodiments: Iterable[Embodiment],
    scene_setup: str = "",
) -> TaskVersion:
    """A new version of `task`, numbered after the latest. When the content equals the latest
    version's, that version is returned unchanged (creating is idempotent by content).
    Raises NotPermitted, InvalidInput (criteria, time limit, no embodiment)."""
    rights.require(actor, rights.Right.AUTHOR, task.team_id)
    criteria = validate_criteria(criteria)
    _check_time_limit(time_limit_s)
    embodiments = list(allowed_embodiments)
    if not embodiments:
        raise InvalidInput(
            "A task version must allow at least one embodiment.",
            fields={"allowed_embodiments": ["At least one is required."]},
        )
    content_hash = task_version_hash(
        instruction=instruction,
        scene_setup=scene_setup,
        time_limit_s=time_limit_s,
        criteria=criteria,
        embodiment_names=[e.name for e in embodiments],
    )
    with transaction.atomic():
        # Lock the task row so concurrent creators number versions one after the other.
        Task.objects.select_for_update().get(pk=task.pk)
        latest = task.versions.order_by("-number").first()
        if latest is not None and latest.content_hash == content_hash:
            return latest
        version = TaskVersion.objects.create(
            task=task,
            number=(latest.number + 1) if latest else 1,
            instruction=instruction,
            scene_setup=scene_setup,
            time_limit_s=time_limit_s,
            criteria=criteria,
            content_hash=content_hash,
            created_by=actor if actor is not None and not access.is_robot(actor) else None,
        )
        version.allowed_embodiments.set(embodiments)
        record_audit(
            actor=actor,
            action=AuditEvent.Action.CREATE,
            obj=version,
            team=task.team,
            after=snapshot(version),
        )
    return version


def update_task_version(*, actor, version: TaskVersion, **changes) -> TaskVersion:
    """Edit a version nothing references yet (hash recomputed). Raises TaskVersionLocked once
    it is in use: then create a new version instead."""
    rights.require(actor, rights.Right.AUTHOR, version.task.team_id)
    allowed = {"instruction", "scene_setup", "time_limit_s", "criteria", "allowed_embodiments"}
    unknown = set(changes) - allowed
    if unknown:
        raise InvalidInput(f"These fields cannot be changed: {', '.join(sorted(unknown))}.")
    if "criteria" in changes:
        changes["criteria"] = validate_criteria(changes["criteria"])
    if "time_limit_s" in changes:
        _check_time_limit(changes["time_limit_s"])
    embodiments = changes.pop("allowed_embodiments", None)
    if embodiments is not None and not list(embodiments):
        raise InvalidInput(
            "A task version must allow at least one embodiment.",
            fields={"allowed_embodiments": ["At least one is required."]},
        )
    with transaction.atomic():
        version = TaskVersion.objects.select_for_update().get(pk=version.pk)
        if version.is_locked:
            raise TaskVersionLocked(
                f"Version {version.number} of '{version.task.slug}' is in use and immutable; "
                "create a new version instead."
            )
        before = snapshot(version)
        for name, value in changes.items():
            setattr(version, name, value)
        if embodiments is not None:
            version.allowed_embodiments.set(list(embodiments))
        version.content_hash = task_version_hash(
            instruction=version.instruction,
            scene_setup=version.scene_setup,
            time_limit_s=version.time_limit_s,
            criteria=version.criteria,
            embodiment_names=version.allowed_embodiments.values_list("name", flat=True),
        )
        version.save()
        record_audit(
            actor=actor,
            action=AuditEvent.Action.UPDATE,
            obj=version,
            team=version.task.team,
            before=before,
            after=snapshot(version),
        )
    return version


def lock_task_version(*, actor, version: TaskVersion) -> TaskVersion:
    """Make a version immutable. Called by every service that creates a reference to it
    (a session, a protocol, a benchmark). Idempotent."""
    with transaction.atomic():
        updated = TaskVersion.objects.filter(pk=version.pk, locked_at__isnull=True).update(
            locked_at=timezone.now()
        )
        version.refresh_from_db()
        if updated:
            record_audit(
                actor=actor,
                action=AuditEvent.Action.LOCK,
                obj=version,
                team=version.task.team,
                after={"locked_at": version.locked_at},
            )
    return version
