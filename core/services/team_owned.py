"""What the writes of team-owned records share: the managers' rights check, applying
changes, sharing, and create/update/delete with their audit events."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import IntegrityError, models, transaction
from django.db.models import ProtectedError

from core import rights
from core.errors import Conflict, InvalidInput, StillReferenced
from core.models import AuditEvent, Team
from core.services.audit import record_audit, snapshot


def require_manager(actor, team: Team | Any) -> None:
    """Raise NotPermitted unless `actor` manages `team` (`rights.Right.MANAGE`)."""
    rights.require(actor, rights.Right.MANAGE, team)


def apply_changes(obj: models.Model, changes: dict[str, Any], allowed: Iterable[str]) -> list:
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


def set_sharing(obj, visibility: str | None, shared_with: Iterable[Team] | None) -> None:
    if visibility is not None:
        obj.visibility = visibility
    if shared_with is not None:
        obj.shared_with.set(list(shared_with))


def update_team_owned(
    *, actor, obj, changes: dict[str, Any], allowed: Iterable[str], clean: bool = False
):
    rights.require_change(actor, obj)
    shared_with = changes.pop("shared_with", None)
    with transaction.atomic():
        obj = type(obj).objects.select_for_update().get(pk=obj.pk)
        before = snapshot(obj)
        apply_changes(obj, changes, allowed)
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


def create_team_owned(model, *, actor, conflict: str, shared_with=(), **fields):
    """Create a team-owned row the caller manages: check the right, create, share, audit, all
    in one transaction. A unique-constraint clash is a Conflict saying `conflict`."""
    rights.require_change(actor, model, fields["team"])
    try:
        with transaction.atomic():
            obj = model.objects.create(**fields)
            set_sharing(obj, None, shared_with)
            record_audit(actor=actor, action=AuditEvent.Action.CREATE, obj=obj, after=snapshot(obj))
    except IntegrityError as exc:
        raise Conflict(conflict) from exc
    return obj


def delete_team_owned(*, actor, obj) -> None:
    """Delete a row the caller may write. Raises StillReferenced when other rows point at it."""
    rights.require_change(actor, obj)
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
