"""Policies and their immutable versions, with the observation/action contract checks."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from typing import Any

from django.db import IntegrityError, transaction

from core import access
from core.embodiment_spec import EmbodimentSpecError, parse_embodiment_spec
from core.errors import Conflict, InvalidInput
from core.models import Team, Visibility
from core.services import audit
from evaluation.models import Policy, PolicyVersion
from evaluation.services._common import require_designer, set_shared_with

MAX_REQUIRED_KEYS = 64


# --- Policies -------------------------------------------------------------------------------


def create_policy(
    *,
    actor,
    team: Team,
    name: str,
    description: str = "",
    visibility: str = Visibility.PRIVATE,
    shared_with: Iterable[Team] = (),
) -> Policy:
    """Raises NotPermitted, Conflict (name taken in the team)."""
    require_designer(actor, team.pk)
    try:
        with transaction.atomic():
            policy = Policy.objects.create(
                team=team,
                name=name,
                description=description,
                visibility=visibility,
                created_by=access.actor_label(actor),
            )
            set_shared_with(policy, shared_with)
            audit.record_audit(
                actor=actor, action="create", obj=policy, after=audit.snapshot(policy)
            )
    except IntegrityError as exc:
        raise Conflict(f"Team '{team}' has a policy named '{name}' already.") from exc
    return policy


def update_policy(*, actor, policy: Policy, **changes) -> Policy:
    """Change a policy's name, description or sharing. Raises NotPermitted, InvalidInput,
    Conflict (name taken)."""
    require_designer(actor, policy.team_id)
    shared_with = changes.pop("shared_with", None)
    unknown = set(changes) - {"name", "description", "visibility"}
    if unknown:
        raise InvalidInput(
            f"These fields cannot be changed: {', '.join(sorted(unknown))}.",
            fields={name: ["This field cannot be changed."] for name in sorted(unknown)},
        )
    try:
        with transaction.atomic():
            policy = Policy.objects.select_for_update().get(pk=policy.pk)
            before = audit.snapshot(policy)
            for name, value in changes.items():
                setattr(policy, name, value)
            policy.save()
            set_shared_with(policy, shared_with)
            audit.record_audit(
                actor=actor,
                action="update",
                obj=policy,
                before=before,
                after=audit.snapshot(policy),
            )
    except IntegrityError as exc:
        raise Conflict(f"This team has a policy named '{changes.get('name')}' already.") from exc
    return policy


def _shape(value: Any, where: str, problems: list[str]) -> list[int] | None:
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) > 4
        or not all(isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= 4096 for d in value)
    ):
        problems.append(f"{where}: a shape is a list of at most 4 integers in 1..4096, or null.")
        return None
    return list(value)


def normalize_requires(requires: Any) -> dict[str, Any]:
    """Validate a policy version's contract and return it in canonical form:
    ``{"observations": {key: shape|None}, "cameras": [names], "action": shape|None}``.
    Raises InvalidInput naming every problem."""
    if requires is None:
        requires = {}
    problems: list[str] = []
    if not isinstance(requires, dict):
        raise InvalidInput(
            "requires must be an object.", fields={"requires": ["Must be a JSON object."]}
        )
    unknown = sorted(set(requires) - {"observations", "cameras", "action"})
    if unknown:
        problems.append(
            f"unknown keys: {', '.join(unknown)} (allowed: observations, cameras, action)"
        )
    observations = requires.get("observations") or {}
    cameras = requires.get("cameras") or []
    out: dict[str, Any] = {"observations": {}, "cameras": [], "action": None}
    if not isinstance(observations, dict) or len(observations) > MAX_REQUIRED_KEYS:
        problems.append("observations: an object of at most 64 keys mapping to shapes.")
    else:
        for key, shape in sorted(observations.items()):
            if not isinstance(key, str) or not 1 <= len(key) <= 64:
                problems.append(f"observations: bad key {key!r}.")
                continue
            out["observations"][key] = _shape(shape, f"observations/{key}", problems)
    if (
        not isinstance(cameras, list)
        or len(cameras) > 16
        or not all(isinstance(c, str) and 1 <= len(c) <= 64 for c in cameras)
    ):
        problems.append("cameras: a list of at most 16 camera names.")
    else:
        out["cameras"] = sorted(set(cameras))
    out["action"] = _shape(requires.get("action"), "action", problems)
    if problems:
        raise InvalidInput(
            f"The policy's requirements are not valid: {problems[0]}",
            fields={"requires": problems},
        )
    return out


def requirement_gaps(requires: dict[str, Any], embodiment_spec: dict[str, Any]) -> list[str]:
    """What an embodiment lacks for a policy version: one sentence per gap, [] when it fits.

    The answer depends on the two values alone, so it is reused per process for equal
    values: every trial handed to a robot asks, and validating the spec costs about 1 ms."""
    key = (_canonical_json(requires), _canonical_json(embodiment_spec))
    if None in key:
        return _requirement_gaps(requires, embodiment_spec)
    return list(_requirement_gaps_of_json(*key))


def _canonical_json(value: object) -> str | None:
    """Sorted JSON text of a plain JSON value (one that reads back equal), else None."""
    try:
        text = json.dumps(value, sort_keys=True, allow_nan=False)
        return text if json.loads(text) == value else None
    except (TypeError, ValueError, RecursionError):
        return None


@functools.lru_cache(maxsize=256)
def _requirement_gaps_of_json(requires: str, embodiment_spec: str) -> tuple[str, ...]:
    return tuple(_requirement_gaps(json.loads(requires), json.loads(embodiment_spec)))


def _requirement_gaps(requires: dict[str, Any], embodiment_spec: dict[str, Any]) -> list[str]:
    try:
        spec = parse_embodiment_spec(embodiment_spec)
    except EmbodimentSpecError:
        return ["the robot's embodiment spec is not valid"]
    gaps = []
    for key, shape in sorted((requires.get("observations") or {}).items()):
        have = spec.observations.get(key)
        if have is None:
            gaps.append(f"observation '{key}' is missing")
        elif shape is not None and list(have.shape) != list(shape):
            gaps.append(
                f"observation '{key}' has shape {list(have.shape)}, the policy needs {shape}"
            )
    camera_names = {camera.name for camera in spec.cameras}
    for camera in requires.get("cameras") or []:
        if camera not in camera_names:
            gaps.append(f"camera '{camera}' is missing")
    action = requires.get("action")
    if action is not None and list(spec.action.shape) != list(action):
        gaps.append(f"the action has shape {list(spec.action.shape)}, the policy needs {action}")
    return gaps


def create_policy_version(
    *,
    actor,
    policy: Policy,
    label: str,
    checkpoint_sha256: str = "",
    checkpoint_uri: str = "",
    server_url: str = "",
    requires: dict | None = None,
    notes: str = "",
) -> PolicyVersion:
    """A new, immutable version. Needs a checkpoint SHA-256 or a server URL. Raises
    NotPermitted, InvalidInput, Conflict (label taken)."""
    require_designer(actor, policy.team_id)
    checkpoint_sha256 = checkpoint_sha256.lower()
    if not checkpoint_sha256 and not server_url:
        raise InvalidInput(
            "A policy version needs a checkpoint SHA-256 or a server URL.",
            fields={"checkpoint_sha256": ["Give this or server_url."]},
        )
    requires = normalize_requires(requires)
    try:
        with transaction.atomic():
            version = PolicyVersion.objects.create(
                policy=policy,
                label=label,
                checkpoint_sha256=checkpoint_sha256,
                checkpoint_uri=checkpoint_uri,
                server_url=server_url,
                requires=requires,
                notes=notes,
                created_by=access.actor_label(actor),
            )
            audit.record_audit(
                actor=actor,
                action="create",
                obj=version,
                team=policy.team,
                after=audit.snapshot(version),
            )
    except IntegrityError as exc:
        raise Conflict(f"Policy '{policy}' has a version '{label}' already.") from exc
    return version
