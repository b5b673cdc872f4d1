"""Consent and licence per episode: what each episode may be used for, checked before export
(docs/privacy.md, "Consent and licence").

Every episode records, when it is created, the consent version its operator had given (empty
when none is on record) and a licence scope from its team's default (`Team.default_licence`;
admins change it per episode with `set_licence`). An export's use follows from the dataset
view's visibility, and every episode in it must allow that use:

=================  ========  ==================================================================
view visibility    use       an episode may be in a new export when
=================  ========  ==================================================================
private            internal  its consent is not withdrawn
shared             teams     also: consent on record, and licence `teams` or `public`
public             public    also: consent on record, and licence `public`
=================  ========  ==================================================================

Withdrawn consent (`Episode.consent_withdrawn_at`, set on every episode of the operator by
`core.services.consent.withdraw_consent`, or on the operator's identity) refuses the episode
for any new export. Exports built before stay as they are (docs/privacy.md says why).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction
from django.dispatch import receiver
from django.utils import timezone

from core import rights
from core.errors import InvalidInput
from core.models import AuditEvent, Licence, Operator, OperatorIdentity, Team, Visibility
from core.services import audit
from core.services.consent import consent_withdrawn
from teleop.errors import ConsentRefused
from teleop.models import DatasetExport, DatasetView, DatasetViewVersion, Episode, Session

#: Licence scopes, narrowest first: a scope allows every use of the scopes before it.
SCOPES = (Licence.INTERNAL, Licence.TEAMS, Licence.PUBLIC)

_USE_OF_VISIBILITY = {
    Visibility.PRIVATE: Licence.INTERNAL,
    Visibility.SHARED: Licence.TEAMS,
    Visibility.PUBLIC: Licence.PUBLIC,
}


def use_of(view: DatasetView) -> Licence:
    """The use an export of `view` is put to: its readers download it (private: the team;
    shared: named teams too; public: anyone)."""
    return _USE_OF_VISIBILITY[view.visibility]


def allows(licence: str, use: str) -> bool:
    return SCOPES.index(licence) >= SCOPES.index(use)


# --- At recording --------------------------------------------------------------------------


def consent_at_creation(session: Session) -> dict:
    """The consent fields of a new episode of `session`: the operator's consent version now
    (empty when none is on record or it is withdrawn), the withdrawal if there is one, and
    the team's default licence. Two small reads, once per created episode."""
    identity = (
        OperatorIdentity.objects.filter(operator_id=session.operator_id)
        .values("consent_version", "consent_withdrawn_at")
        .first()
    ) or {"consent_version": "", "consent_withdrawn_at": None}
    withdrawn_at = identity["consent_withdrawn_at"]
    return {
        "consent_version": "" if withdrawn_at else identity["consent_version"],
        "consent_withdrawn_at": withdrawn_at,
        "licence": Team.objects.values_list("default_licence", flat=True).get(pk=session.team_id),
    }


@receiver(consent_withdrawn, dispatch_uid="teleop.consent.mark_withdrawn_episodes")
def mark_withdrawn_episodes(sender, *, operator: Operator, withdrawn_at, **kwargs) -> int:
    """Mark every episode of `operator` not marked yet (runs inside the withdrawing
    transaction); returns how many."""
    return Episode.objects.filter(operator=operator, consent_withdrawn_at=None).update(
        consent_withdrawn_at=withdrawn_at, updated_at=timezone.now()
    )


# --- Licences ------------------------------------------------------------------------------


def set_licence(*, actor, episodes: Iterable[Episode], licence: str) -> int:
    """Set the licence scope of `episodes` (an admin's decision, e.g. after the operators
    agreed to a public release); one audit event per episode changed. Returns how many
    changed. Raises InvalidInput (unknown scope), NotPermitted (not an admin of every
    episode's team)."""
    if licence not in Licence.values:
        raise InvalidInput(
            f"Unknown licence '{licence}'.",
            fields={"licence": [f"One of: {', '.join(Licence.values)}."]},
        )
    episodes = list(episodes)
    for team_id in {e.team_id for e in episodes}:
        rights.require(actor, rights.Right.MANAGE, team_id)
    changed = 0
    with transaction.atomic():
        for episode in episodes:
            if episode.licence == licence:
                continue
            before = episode.licence
            Episode.objects.filter(pk=episode.pk).update(licence=licence, updated_at=timezone.now())
            episode.licence = licence
            audit.record_audit(
                actor=actor,
                action=AuditEvent.Action.UPDATE,
                obj=episode,
                before={"licence": before},
                after={"licence": licence},
            )
            changed += 1
    return changed


# --- At export -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportRefusal:
    """The episodes of a view version that an export for `use` may not hold, by reason."""

    use: str
    total: int
    withdrawn: tuple[str, ...]
    no_consent: tuple[str, ...]
    narrower_licence: tuple[str, ...]

    @property
    def refused(self) -> tuple[str, ...]:
        return self.withdrawn + self.no_consent + self.narrower_licence

    def message(self) -> str:
        reasons = []
        if self.withdrawn:
            reasons.append(f"{len(self.withdrawn)} with consent withdrawn by their operator")
        if self.no_consent:
            reasons.append(f"{len(self.no_consent)} with no consent on record")
        if self.narrower_licence:
            allowed = " or ".join(s.value for s in SCOPES if allows(s, self.use))
            reasons.append(
                f"{len(self.narrower_licence)} licensed for less than '{self.use}' use "
                f"(needs {allowed})"
            )
        where = {
            Licence.INTERNAL: "",
            Licence.TEAMS: " (the view is shared with other teams)",
            Licence.PUBLIC: " (the view is public)",
        }[self.use]
        return (
            f"{len(self.refused)} of {self.total} episodes may not be exported for "
            f"'{self.use}' use{where}: {'; '.join(reasons)}. Make a view version without "
            "them (their ids are listed under `episodes`)."
        )


def export_refusal(version: DatasetViewVersion) -> ExportRefusal | None:
    """Which episodes of `version` consent and licence keep out of a new export (by the
    view's use), or None when every one may go. One query."""
    use = use_of(version.view)
    rows = Episode.objects.filter(pk__in=version.episode_ids).values_list(
        "pk",
        "consent_version",
        "licence",
        "consent_withdrawn_at",
        "operator__identity__consent_withdrawn_at",
    )
    withdrawn, no_consent, narrower = [], [], []
    for pk, consent_version, licence, withdrawn_at, identity_withdrawn_at in rows:
        if withdrawn_at is not None or identity_withdrawn_at is not None:
            withdrawn.append(str(pk))
        elif use != Licence.INTERNAL and not consent_version:
            no_consent.append(str(pk))
        elif not allows(licence, use):
            narrower.append(str(pk))
    if not (withdrawn or no_consent or narrower):
        return None
    return ExportRefusal(
        use=use,
        total=len(version.episode_ids),
        withdrawn=tuple(sorted(withdrawn)),
        no_consent=tuple(sorted(no_consent)),
        narrower_licence=tuple(sorted(narrower)),
    )


def require_export_consent(version: DatasetViewVersion) -> None:
    """Raise ConsentRefused (naming how many episodes and why, with their ids under
    `fields["episodes"]`) unless every episode of `version` may be in a new export."""
    refusal = export_refusal(version)
    if refusal is not None:
        raise ConsentRefused(refusal.message(), fields={"episodes": list(refusal.refused)})


def stop_export_without_consent(export: DatasetExport) -> bool:
    """For the export job: mark `export` failed with the refusal's message when consent no
    longer covers its episodes (withdrawn since it was queued). Returns whether it did."""
    refusal = export_refusal(export.view_version)
    if refusal is None:
        return False
    DatasetExport.objects.filter(pk=export.pk).update(
        state=DatasetExport.State.FAILED, error=refusal.message(), finished_at=timezone.now()
    )
    export.refresh_from_db()
    return True
