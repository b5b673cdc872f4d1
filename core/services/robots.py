"""Robots, their heartbeats and their API keys (issued, revoked, authenticated)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from core import access
from core.errors import Conflict, InvalidInput, NotPermitted
from core.models import AuditEvent, Embodiment, Robot, RobotAPIKey, Team, Visibility
from core.services.audit import record_audit, snapshot
from core.services.team_owned import (
    create_team_owned,
    delete_team_owned,
    require_manager,
    update_team_owned,
)

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
    return create_team_owned(
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
        return update_team_owned(
            actor=actor,
            obj=robot,
            changes=changes,
            allowed={"name", "site", "serial", "status", "embodiment", "visibility"},
        )
    except IntegrityError as exc:
        raise Conflict(f"Team has a robot named '{changes.get('name')}' already.") from exc


def delete_robot(*, actor, robot: Robot) -> None:
    delete_team_owned(actor=actor, obj=robot)


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
        require_manager(actor, robot.team_id)
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
    require_manager(actor, key.robot.team_id)
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
# Any call of a robot shows it is alive, as a heartbeat does: the session console says
# "last seen 12 s ago". At most one write per robot per this many seconds.
LAST_SEEN_RESOLUTION = timedelta(seconds=10)


def authenticate_api_key(clear: str) -> RobotAPIKey | None:
    """The usable key matching `clear` (with its robot loaded), or None. Compares digests in
    constant time and records when the key was last used and when its robot was last seen."""
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
    robot = key.robot
    if robot.last_seen_at is None or now - robot.last_seen_at > LAST_SEEN_RESOLUTION:
        Robot.objects.filter(pk=robot.pk).update(last_seen_at=now)
        robot.last_seen_at = now
    return key
