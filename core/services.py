"""Every write to the core domain. Keyword-only functions that check the caller's rights,
own the transaction and leave an audit record.

Each function documents the domain errors it raises (see `core.errors`); the API turns them
into 4xx answers.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, connection, models, transaction
from django.db.models import ProtectedError
from django.forms.models import model_to_dict
from django.utils import timezone

from core import access
from core.embodiment_spec import EmbodimentSpecError, parse_embodiment_spec
from core.errors import (
    Conflict,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    InvalidInput,
    NotPermitted,
    StillReferenced,
    TaskVersionLocked,
)
from core.models import (
    AuditEvent,
    Condition,
    Embodiment,
    IdempotencyRecord,
    Membership,
    Operator,
    OperatorIdentity,
    Robot,
    RobotAPIKey,
    Task,
    TaskVersion,
    Team,
    Visibility,
)
from proving_ground.criteria.parsing import parse_criteria
from proving_ground.criteria.spec import CriteriaError, canonical_json

# Fields never copied into audit snapshots.
_SECRET_FIELDS = {"key_hash", "password"}


# --- Audit ----------------------------------------------------------------------------------


def snapshot(obj: models.Model) -> dict[str, Any]:
    """A JSON-safe copy of a row's fields for the audit trail (secrets left out)."""
    data = model_to_dict(obj, exclude=list(_SECRET_FIELDS))
    for field in obj._meta.concrete_fields:
        if field.name not in data and field.name not in _SECRET_FIELDS:
            data[field.name] = field.value_from_object(obj)
    return json.loads(json.dumps(data, cls=DjangoJSONEncoder, default=str))


def record_audit(
    *,
    actor,
    action: str,
    obj: models.Model,
    before: dict | None = None,
    after: dict | None = None,
    team: Team | None = None,
) -> AuditEvent:
    """Append one audit record. Call inside the write's transaction so both land or neither."""
    is_robot = access.is_robot(actor)
    user = actor if (actor is not None and actor.is_authenticated and not is_robot) else None
    if team is None:
        team_id = getattr(obj, "team_id", None)
    else:
        team_id = team.pk
    return AuditEvent.objects.create(
        actor_user=user,
        actor_robot=actor.robot if is_robot else None,
        actor_label=access.actor_label(actor),
        team_id=team_id,
        action=action,
        object_type=obj._meta.label_lower,
        object_id=str(obj.pk),
        object_repr=str(obj)[:200],
        before=before,
        after=after,
    )


def _require_manager(actor, team: Team | Any) -> None:
    team_id = team.pk if isinstance(team, Team) else team
    if not access.can_manage(actor, team_id):
        raise NotPermitted("Only an admin of the owning team may do this.")


def _apply_changes(obj: models.Model, changes: dict[str, Any], allowed: Iterable[str]) -> list:
    allowed = set(allowed)
    unknown = set(changes) - allowed
    if unknown:
        raise InvalidInput(
            f"These fields cannot be changed: {', '.join(sorted(unknown))}.",
            fields={name: ["This field cannot be changed."] for name in sorted(unknown)},
        )
    changed = []
    for name, value in changes.items():
        if getattr(obj, name) != value:
            setattr(obj, name, value)
            changed.append(name)
    return changed


def _set_sharing(obj, visibility: str | None, shared_with: Iterable[Team] | None) -> None:
    if visibility is not None:
        obj.visibility = visibility
    if shared_with is not None:
        obj.shared_with.set(list(shared_with))


def _update_team_owned(
    *, actor, obj, changes: dict[str, Any], allowed: Iterable[str], clean: bool = False
):
    _require_manager(actor, obj.team_id)
    shared_with = changes.pop("shared_with", None)
    with transaction.atomic():
        obj = type(obj).objects.select_for_update().get(pk=obj.pk)
        before = snapshot(obj)
        _apply_changes(obj, changes, allowed)
        if clean:
            obj.full_clean()
        obj.save()
        if shared_with is not None:
            obj.shared_with.set(list(shared_with))
        record_audit(
            actor=actor,
            action=AuditEvent.Action.UPDATE,
            obj=obj,
            before=before,
            after=snapshot(obj),
        )
    return obj


def _create_team_owned(model, *, actor, conflict: str, shared_with=(), **fields):
    """Create a team-owned row the caller manages: check the right, create, share, audit, all
    in one transaction. A unique-constraint clash is a Conflict saying `conflict`."""
    _require_manager(actor, fields["team"])
    try:
        with transaction.atomic():
            obj = model.objects.create(**fields)
            _set_sharing(obj, None, shared_with)
            record_audit(actor=actor, action=AuditEvent.Action.CREATE, obj=obj, after=snapshot(obj))
    except IntegrityError as exc:
        raise Conflict(conflict) from exc
    return obj


def _delete_team_owned(*, actor, obj) -> None:
    """Delete a row the caller manages. Raises StillReferenced when other rows point at it."""
    _require_manager(actor, obj.team_id)
    try:
        with transaction.atomic():
            before = snapshot(obj)
            record_audit(actor=actor, action=AuditEvent.Action.DELETE, obj=obj, before=before)
            obj.delete()
    except ProtectedError as exc:
        raise StillReferenced(
            f"{obj._meta.verbose_name.capitalize()} '{obj}' is still referenced and cannot "
            "be deleted."
        ) from exc


# --- Teams and roles ------------------------------------------------------------------------

# Django groups mirror the team roles so the admin site and permission checks agree.
ROLE_GROUP_PERMISSIONS: dict[str, list[str]] = {
    Membership.Role.ADMIN: ["add", "change", "delete", "view"],
    Membership.Role.OPERATOR: ["view"],
    Membership.Role.RESEARCHER: ["view"],
}
_ROLE_MODELS = [
    "embodiment",
    "robot",
    "robotapikey",
    "operator",
    "condition",
    "task",
    "taskversion",
    "team",
    "membership",
]


def ensure_role_groups() -> dict[str, Group]:
    """Create (or bring up to date) one Django group per team role with its permissions."""
    groups = {}
    for role, verbs in ROLE_GROUP_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=f"role:{role}")
        codenames = [f"{verb}_{model}" for verb in verbs for model in _ROLE_MODELS]
        group.permissions.set(
            Permission.objects.filter(content_type__app_label="core", codename__in=codenames)
        )
        groups[role] = group
    return groups


def create_team(*, actor, name: str, slug: str) -> Team:
    """Platform superusers create teams. Raises NotPermitted, Conflict."""
    if actor is not None and not getattr(actor, "is_superuser", False):
        raise NotPermitted("Only a platform admin may create teams.")
    try:
        with transaction.atomic():
            team = Team.objects.create(name=name, slug=slug)
            record_audit(
                actor=actor,
                action=AuditEvent.Action.CREATE,
                obj=team,
                team=team,
                after=snapshot(team),
            )
    except IntegrityError as exc:
        raise Conflict(f"A team named '{name}' or with slug '{slug}' exists already.") from exc
    return team


def add_member(*, actor, team: Team, user, role: str) -> Membership:
    """Give `user` a role in `team` (idempotent). Team admins and superusers may do this."""
    if actor is not None:
        _require_manager(actor, team)
    if role not in Membership.Role.values:
        raise InvalidInput(f"Unknown role '{role}'.", fields={"role": ["Unknown role."]})
    with transaction.atomic():
        membership, created = Membership.objects.get_or_create(team=team, user=user, role=role)
        user.groups.add(ensure_role_groups()[role])
        if created:
            record_audit(
                actor=actor,
                action=AuditEvent.Action.CREATE,
                obj=membership,
                team=team,
                after=snapshot(membership),
            )
    return membership


# --- Embodiments ----------------------------------------------------------------------------


def _valid_spec(spec: Any) -> dict:
    try:
        return parse_embodiment_spec(spec).to_dict()
    except EmbodimentSpecError as exc:
        raise InvalidInput(
            "The embodiment spec is not valid.", fields={"spec": exc.messages}
        ) from exc


def create_embodiment(
    *,
    actor,
    team: Team,
    name: str,
    spec: dict,
    description: str = "",
    visibility: str = Visibility.PUBLIC,
    shared_with: Iterable[Team] = (),
) -> Embodiment:
    """Raises NotPermitted, InvalidInput (bad spec), Conflict (name taken)."""
    _require_manager(actor, team)  # before validating: strangers learn nothing
    return _create_team_owned(
        Embodiment,
        actor=actor,
        conflict=f"An embodiment named '{name}' exists already.",
        shared_with=shared_with,
        team=team,
        name=name,
        spec=_valid_spec(spec),
        description=description,
        visibility=visibility,
    )


def update_embodiment(*, actor, embodiment: Embodiment, **changes) -> Embodiment:
    if "spec" in changes:
        changes["spec"] = _valid_spec(changes["spec"])
    try:
        return _update_team_owned(
            actor=actor,
            obj=embodiment,
            changes=changes,
            allowed={"name", "spec", "description", "visibility"},
        )
    except IntegrityError as exc:
        raise Conflict(f"An embodiment named '{changes.get('name')}' exists already.") from exc


def delete_embodiment(*, actor, embodiment: Embodiment) -> None:
    _delete_team_owned(actor=actor, obj=embodiment)


# --- Robots and their keys ------------------------------------------------------------------


def create_robot(
    *,
    actor,
    team: Team,
    embodiment: Embodiment,
    name: str,
    site: str = "",
    serial: str = "",
    status: str = Robot.Status.ACTIVE,
    visibility: str = Visibility.PRIVATE,
    shared_with: Iterable[Team] = (),
) -> Robot:
    """Raises NotPermitted, Conflict (name taken in the team)."""
    return _create_team_owned(
        Robot,
        actor=actor,
        conflict=f"Team '{team}' has a robot named '{name}' already.",
        shared_with=shared_with,
        team=team,
        embodiment=embodiment,
        name=name,
        site=site,
        serial=serial,
        status=status,
        visibility=visibility,
    )


def update_robot(*, actor, robot: Robot, **changes) -> Robot:
    try:
        return _update_team_owned(
            actor=actor,
            obj=robot,
            changes=changes,
            allowed={"name", "site", "serial", "status", "embodiment", "visibility"},
        )
    except IntegrityError as exc:
        raise Conflict(f"Team has a robot named '{changes.get('name')}' already.") from exc


def delete_robot(*, actor, robot: Robot) -> None:
    _delete_team_owned(actor=actor, obj=robot)


def record_heartbeat(*, actor, robot: Robot, software_version: str | None = None) -> Robot:
    """A robot reports that it is alive. Only the robot itself may. Raises NotPermitted."""
    if not (access.is_robot(actor) and actor.robot.pk == robot.pk):
        raise NotPermitted("A robot may only report its own heartbeat.")
    fields = {"last_seen_at": timezone.now()}
    if software_version is not None:
        fields["software_version"] = software_version
    with transaction.atomic():
        before = Robot.objects.select_for_update().get(pk=robot.pk)
        Robot.objects.filter(pk=robot.pk).update(**fields)
        robot.refresh_from_db()
        # A heartbeat is telemetry; only a change of software is worth an audit record.
        if software_version is not None and software_version != before.software_version:
            record_audit(
                actor=actor,
                action=AuditEvent.Action.UPDATE,
                obj=robot,
                before={"software_version": before.software_version},
                after={"software_version": software_version},
            )
    return robot


API_KEY_PREFIX_BYTES = 6
API_KEY_SECRET_BYTES = 32


def _hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_api_key(
    *, actor, robot: Robot, name: str = "", expires_at: datetime | None = None
) -> tuple[RobotAPIKey, str]:
    """Create a key for `robot` and return it with the clear key, which is shown once and
    never stored. Key format: `pg_<prefix>_<secret>`. `actor=None` for the command line.
    Raises NotPermitted, InvalidInput (expiry in the past)."""
    if actor is not None:
        _require_manager(actor, robot.team_id)
    if expires_at is not None and expires_at <= timezone.now():
        raise InvalidInput(
            "The expiry must be in the future.", fields={"expires_at": ["Must be in the future."]}
        )
    prefix = secrets.token_hex(API_KEY_PREFIX_BYTES)
    secret = secrets.token_urlsafe(API_KEY_SECRET_BYTES)
    clear = f"pg_{prefix}_{secret}"
    with transaction.atomic():
        key = RobotAPIKey.objects.create(
            robot=robot,
            name=name,
            prefix=prefix,
            key_hash=_hash_secret(clear),
            expires_at=expires_at,
            created_by=actor if actor is not None and not access.is_robot(actor) else None,
        )
        record_audit(
            actor=actor,
            action=AuditEvent.Action.CREATE,
            obj=key,
            team=robot.team,
            after=snapshot(key),
        )
    return key, clear


def revoke_api_key(*, actor, key: RobotAPIKey) -> RobotAPIKey:
    """Revoke a key (idempotent). Raises NotPermitted."""
    _require_manager(actor, key.robot.team_id)
    with transaction.atomic():
        key = RobotAPIKey.objects.select_for_update().get(pk=key.pk)
        if key.revoked_at is None:
            before = snapshot(key)
            key.revoked_at = timezone.now()
            key.save(update_fields=["revoked_at"])
            record_audit(
                actor=actor,
                action=AuditEvent.Action.REVOKE,
                obj=key,
                team=key.robot.team,
                before=before,
                after=snapshot(key),
            )
    return key


def parse_api_key(clear: str) -> str | None:
    """The lookup prefix of a well-formed key, else None."""
    parts = clear.split("_", 2)  # the secret itself may contain "_"
    if len(parts) != 3 or parts[0] != "pg" or len(parts[1]) != 2 * API_KEY_PREFIX_BYTES:
        return None
    return parts[1]


# Writing last_used_at on every request would make each API call a write; once a minute is
# enough to tell an admin which keys are in use.
_LAST_USED_RESOLUTION = timedelta(minutes=1)


def authenticate_api_key(clear: str) -> RobotAPIKey | None:
    """The usable key matching `clear` (with its robot loaded), or None. Compares digests in
    constant time and records when the key was last used."""
    prefix = parse_api_key(clear)
    if prefix is None:
        return None
    key = (
        RobotAPIKey.objects.select_related("robot", "robot__team", "robot__embodiment")
        .filter(prefix=prefix)
        .first()
    )
    if key is None or not secrets.compare_digest(key.key_hash, _hash_secret(clear)):
        return None
    now = timezone.now()
    if not key.is_usable(now) or key.robot.status == Robot.Status.RETIRED:
        return None
    if key.last_used_at is None or now - key.last_used_at > _LAST_USED_RESOLUTION:
        RobotAPIKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key


# --- Operators ------------------------------------------------------------------------------


def create_operator(
    *,
    actor,
    team: Team,
    code: str | None = None,
    user=None,
    full_name: str = "",
    email: str = "",
    consent_version: str = "",
) -> Operator:
    """A pseudonymous operator, with the person's identity stored apart. A code is generated
    when none is given. Raises NotPermitted, Conflict (code taken)."""
    if actor is not None:
        _require_manager(actor, team)
    code = code or f"OP-{secrets.token_hex(3).upper()}"
    try:
        with transaction.atomic():
            operator = Operator.objects.create(team=team, code=code, user=user)
            if full_name or email:
                OperatorIdentity.objects.create(
                    operator=operator,
                    full_name=full_name,
                    email=email,
                    consent_version=consent_version,
                    consent_given_at=timezone.now() if consent_version else None,
                )
            record_audit(
                actor=actor, action=AuditEvent.Action.CREATE, obj=operator, after=snapshot(operator)
            )
    except IntegrityError as exc:
        raise Conflict(f"Operator code '{code}' is taken.") from exc
    return operator


def erase_operator_identity(*, actor, operator: Operator) -> None:
    """Honour an erasure request: delete the person's identity; the pseudonymous code and the
    data recorded under it stay. The audit record keeps no personal data."""
    if actor is not None:
        _require_manager(actor, operator.team_id)
    with transaction.atomic():
        deleted, _ = OperatorIdentity.objects.filter(operator=operator).delete()
        if operator.user_id:
            operator.user = None
            operator.save(update_fields=["user"])
        record_audit(
            actor=actor,
            action=AuditEvent.Action.ERASE,
            obj=operator,
            team=operator.team,
            after={"identity_deleted": bool(deleted)},
        )


# --- Conditions -----------------------------------------------------------------------------


def create_condition(
    *,
    actor,
    team: Team,
    factor: str,
    level: str,
    description: str = "",
    reset_instructions: str = "",
    visibility: str = Visibility.PUBLIC,
    shared_with: Iterable[Team] = (),
) -> Condition:
    """Raises NotPermitted, Conflict (the level exists in the team)."""
    return _create_team_owned(
        Condition,
        actor=actor,
        conflict=f"Condition '{factor}: {level}' exists in this team already.",
        shared_with=shared_with,
        team=team,
        factor=factor,
        level=level,
        description=description,
        reset_instructions=reset_instructions,
        visibility=visibility,
    )


def update_condition(*, actor, condition: Condition, **changes) -> Condition:
    try:
        return _update_team_owned(
            actor=actor,
            obj=condition,
            changes=changes,
            allowed={"factor", "level", "description", "reset_instructions", "visibility"},
        )
    except IntegrityError as exc:
        raise Conflict("That condition level exists in this team already.") from exc


def delete_condition(*, actor, condition: Condition) -> None:
    _delete_team_owned(actor=actor, obj=condition)


# --- Tasks and versions ---------------------------------------------------------------------


def _valid_criteria(criteria: Any) -> dict:
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
    _require_manager(actor, team)
    try:
        with transaction.atomic():
            task = Task.objects.create(team=team, slug=slug, name=name, visibility=visibility)
            _set_sharing(task, None, shared_with)
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
        return _update_team_owned(
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
    _require_manager(actor, task.team_id)
    criteria = _valid_criteria(criteria)
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
    _require_manager(actor, version.task.team_id)
    allowed = {"instruction", "scene_setup", "time_limit_s", "criteria", "allowed_embodiments"}
    unknown = set(changes) - allowed
    if unknown:
        raise InvalidInput(f"These fields cannot be changed: {', '.join(sorted(unknown))}.")
    if "criteria" in changes:
        changes["criteria"] = _valid_criteria(changes["criteria"])
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


# --- Idempotency ----------------------------------------------------------------------------


def begin_idempotent_request(
    *, principal: str, key: str, fingerprint: str, method: str, path: str
) -> IdempotencyRecord:
    """Claim `key` for this request, or find the answer stored for it.

    Returns the record: `state == IN_FLIGHT` means this caller now runs the request and must
    call `complete_idempotent_request` or `release_idempotent_request`; `COMPLETED` means
    replay the stored answer. Raises IdempotencyKeyReused (same key, different request) and
    IdempotencyKeyInFlight (the first request with this key is still running; it carries
    how many seconds to wait).

    A claim is a lease: `expires_at` is `IDEMPOTENCY_IN_FLIGHT_LEASE_S` seconds after it is
    taken, and a claim past it is taken to have died with its request (a worker killed, the
    database gone before the release could be written), so a retry claims the key afresh.
    Completing the request turns the lease into the stored answer's lifetime
    (`IDEMPOTENCY_KEY_TTL_HOURS`)."""
    now = timezone.now()
    lease = timedelta(seconds=settings.IDEMPOTENCY_IN_FLIGHT_LEASE_S)
    # The common case, a key never seen, is one statement; the rest (a retry, a replay, an
    # expired row) takes the row lock below.
    claimed = _claim_new_idempotency_key(
        principal=principal,
        key=key,
        fingerprint=fingerprint,
        method=method,
        path=path[:500],
        now=now,
        expires_at=now + lease,
    )
    if claimed is not None:
        return claimed
    with transaction.atomic():
        record, created = IdempotencyRecord.objects.select_for_update().get_or_create(
            principal=principal,
            key=key,
            defaults={
                "fingerprint": fingerprint,
                "method": method,
                "path": path[:500],
                "expires_at": now + lease,
            },
        )
        if created:
            return record
        if record.expires_at <= now:  # an answer past its lifetime, or a dead claim
            record.delete()
            return IdempotencyRecord.objects.create(
                principal=principal,
                key=key,
                fingerprint=fingerprint,
                method=method,
                path=path[:500],
                expires_at=now + lease,
            )
    if record.fingerprint != fingerprint:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was used for a different request; use a new key."
        )
    if record.state == IdempotencyRecord.State.IN_FLIGHT:
        # Usually the first request answers within a second; if it died, its lease ends
        # within `lease`. Ask again soon, and never later than the lease's end.
        lease_left_s = math.ceil((record.expires_at - now).total_seconds())
        raise IdempotencyKeyInFlight(
            "A request with this Idempotency-Key is still being processed; retry shortly.",
            retry_after_s=max(1, min(IN_FLIGHT_RETRY_AFTER_S, lease_left_s)),
        )
    return record


def _claim_new_idempotency_key(
    *, principal: str, key: str, fingerprint: str, method: str, path: str, now, expires_at
) -> IdempotencyRecord | None:
    """Insert the in-flight claim unless the key exists: the new record, or None. One
    round trip (`INSERT ... ON CONFLICT DO NOTHING RETURNING`, PostgreSQL and SQLite)."""
    meta = IdempotencyRecord._meta
    quote = connection.ops.quote_name
    columns = ["principal", "key", "fingerprint", "method", "path", "state"]
    columns += ["created_at", "expires_at"]
    values = [principal, key, fingerprint, method, path, IdempotencyRecord.State.IN_FLIGHT]
    field = meta.get_field("created_at")
    values += [
        field.get_db_prep_value(now, connection),
        field.get_db_prep_value(expires_at, connection),
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(c) for c in columns)}) "
            f"VALUES ({', '.join(['%s'] * len(columns))}) "
            f"ON CONFLICT ({quote('principal')}, {quote('key')}) DO NOTHING "
            f"RETURNING {quote('id')}",
            values,
        )
        row = cursor.fetchone()
    if row is None:
        return None
    record = IdempotencyRecord(
        pk=row[0],
        principal=principal,
        key=key,
        fingerprint=fingerprint,
        method=method,
        path=path,
        state=IdempotencyRecord.State.IN_FLIGHT,
        created_at=now,
        expires_at=expires_at,
    )
    record._state.adding = False
    return record


# What a 409 in flight tells the caller to wait, in seconds, at most.
IN_FLIGHT_RETRY_AFTER_S = 2


def complete_idempotent_request(*, record: IdempotencyRecord, status: int, body: Any) -> None:
    """Store the answer, kept for `IDEMPOTENCY_KEY_TTL_HOURS`. A claim whose lease ran out
    and was taken over (another row now) is left alone: the new claim owns the key."""
    IdempotencyRecord.objects.filter(pk=record.pk, state=IdempotencyRecord.State.IN_FLIGHT).update(
        state=IdempotencyRecord.State.COMPLETED,
        response_status=status,
        response_body=json.loads(json.dumps(body, cls=DjangoJSONEncoder)),
        expires_at=timezone.now() + timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS),
    )


def release_idempotent_request(*, record: IdempotencyRecord) -> None:
    """Forget a claim whose request failed before it could answer, so a retry runs it."""
    IdempotencyRecord.objects.filter(pk=record.pk, state=IdempotencyRecord.State.IN_FLIGHT).delete()


def purge_expired_idempotency_records() -> int:
    deleted, _ = IdempotencyRecord.objects.filter(expires_at__lte=timezone.now()).delete()
    return deleted
