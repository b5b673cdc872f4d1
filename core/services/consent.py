"""Operators' consent: withdrawing it (docs/privacy.md, "Consent and licence").

The consent record lives on `OperatorIdentity` (version, given, withdrawn). Episodes carry
their own copy (teleop): the version in force when each was recorded, and the moment consent
was withdrawn. Core cannot import the recording app, so withdrawing sends
`consent_withdrawn` inside the transaction, and teleop's receiver marks the episodes there:
the record and the marks commit together or not at all.
"""

from __future__ import annotations

from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from core import rights
from core.errors import Conflict, NotPermitted
from core.models import AuditEvent, Operator, OperatorIdentity
from core.services.audit import record_audit

#: Sent inside the withdrawing transaction with `operator` and `withdrawn_at`.
consent_withdrawn = Signal()


def may_act_for(actor, operator: Operator) -> bool:
    """Whether `actor` may act on `operator`'s data rights: the person signed in as that
    operator, or an admin of its team (`Right.MANAGE`)."""
    if actor is None or not actor.is_authenticated or getattr(actor, "is_robot", False):
        return False
    if operator.user_id is not None and operator.user_id == actor.pk:
        return True
    return rights.may(actor, rights.Right.MANAGE, operator.team_id)


def withdraw_consent(*, actor, operator: Operator) -> OperatorIdentity:
    """Record that the person behind `operator` withdrew consent, now: on their identity
    (created, without name or e-mail, if the team held none) and on every episode recorded
    under the pseudonym, so no new export may hold them. Audited without personal data.
    Raises NotPermitted (neither the operator nor an admin of its team), Conflict (already
    withdrawn)."""
    if not may_act_for(actor, operator):
        raise NotPermitted("Only the operator or an admin of its team may withdraw its consent.")
    now = timezone.now()
    with transaction.atomic():
        identity, _ = OperatorIdentity.objects.select_for_update().get_or_create(
            operator=operator, defaults={"full_name": ""}
        )
        if identity.consent_withdrawn_at is not None:
            raise Conflict("Consent was withdrawn already.")
        identity.consent_withdrawn_at = now
        identity.save(update_fields=["consent_withdrawn_at", "updated_at"])
        replies = consent_withdrawn.send(sender=Operator, operator=operator, withdrawn_at=now)
        marked = sum(count for _, count in replies if isinstance(count, int))
        record_audit(
            actor=actor,
            action=AuditEvent.Action.UPDATE,
            obj=operator,
            team=operator.team,
            after={"consent_withdrawn": True, "episodes_marked": marked},
        )
    return identity
