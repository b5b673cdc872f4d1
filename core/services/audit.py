"""The audit trail: a record's snapshot (secrets left out) and the event every write leaves."""

from __future__ import annotations

import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.forms.models import model_to_dict

from core import access
from core.models import AuditEvent, Team

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
