"""Labels and discards: people of the episode's team judge an episode, or discard it."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from core import access
from core.errors import InvalidInput, NotPermitted
from core.models import Membership
from core.services import audit, task_versions
from teleop.models import Episode, Label
from teleop.services.recordings import enqueue_recording
from teleop.services.sessions import may_record_on

Role = Membership.Role


# --- Labels and discards --------------------------------------------------------------------


def label_episode(
    *,
    actor,
    episode: Episode,
    outcome: str,
    stages_reached: list[str] | None = None,
    failure_codes: list[str] | None = None,
    notes: str = "",
) -> Label:
    """Label an episode; the current label, if any, is superseded (history kept). Stages and
    failure codes must be those of the task version's criteria. Raises NotPermitted,
    InvalidInput."""

    if access.is_robot(actor) or not access.has_role(
        actor, episode.team_id, Role.OPERATOR, Role.ADMIN, Role.RESEARCHER
    ):
        raise NotPermitted("Only people of the episode's team label episodes.")
    if outcome not in Label.Outcome.values:
        raise InvalidInput(f"Unknown outcome '{outcome}'.", fields={"outcome": ["Unknown."]})
    stages_reached, failure_codes, score = task_versions.validate_judgement(
        criteria_spec=episode.task_version.criteria,
        stages_reached=stages_reached,
        failure_codes=failure_codes,
    )
    with transaction.atomic():
        Episode.objects.select_for_update().get(pk=episode.pk)
        now = timezone.now()
        Label.objects.filter(episode=episode, superseded_at=None).update(superseded_at=now)
        label = Label.objects.create(
            episode=episode,
            outcome=outcome,
            stages_reached=stages_reached,
            stage_score=score,
            failure_codes=failure_codes,
            notes=notes,
            labeler=actor,
            labeler_label=access.actor_label(actor),
        )
        audit.record_audit(
            actor=actor,
            action="create",
            obj=label,
            team=episode.team,
            after=audit.snapshot(label),
        )
        enqueue_recording(episode.pk)  # the timeline shows the current label
    return label


def discard_episode(*, actor, episode: Episode, reason: str) -> Episode:
    """Tombstone an episode with a reason; the row and the file stay. Raises NotPermitted,
    InvalidInput (no reason)."""
    if not reason.strip():
        raise InvalidInput("Say why the episode is discarded.", fields={"reason": ["Required."]})
    if not may_record_on(actor, episode.robot) or access.is_robot(actor):
        raise NotPermitted("Only an operator or admin of the team discards episodes.")
    with transaction.atomic():
        episode = Episode.objects.select_for_update().get(pk=episode.pk)
        if episode.discarded_at is None:
            episode.discarded_at = timezone.now()
            episode.discard_reason = reason.strip()
            episode.discarded_by = access.actor_label(actor)
            episode.save(
                update_fields=["discarded_at", "discard_reason", "discarded_by", "updated_at"]
            )
            audit.record_audit(
                actor=actor,
                action="update",
                obj=episode,
                after={"discarded": True, "reason": reason.strip()},
            )
    return episode
