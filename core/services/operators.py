"""Operators: pseudonymous codes of the people who run robots (erasing one:
core.services.erasure)."""

from __future__ import annotations

import secrets

from django.db import IntegrityError, transaction
from django.utils import timezone

from core.errors import Conflict
from core.models import AuditEvent, Operator, OperatorIdentity, Team
from core.services.audit import record_audit, snapshot
from core.services.team_owned import require_manager

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
        require_manager(actor, team)
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
