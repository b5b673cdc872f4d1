"""Labels and discards: people of the episode's team judge an episode, or discard it."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from core import access, rights
from core.errors import InvalidInput, NotPermitted
from core.services import audit, task_versions
from teleop.errors import CheckDisagrees
from teleop.models import Episode, Label
from teleop.services.recordings import enqueue_recording
from teleop.services.sessions import may_record_on

# --- Labels and discards --------------------------------------------------------------------


def label_episode(
    *,
    actor,
    episode: Episode,
    outcome: str,
    stages_reached: list[str] | None = None,
    failure_codes: list[str] | None = None,
    notes: str = "",
    confirm_disagreement: bool = False,
) -> Label:
    """Label an episode; the current label, if any, is superseded (history kept). Stages and
    failure codes must be those of the task version's criteria, and agree with the outcome
    (`judgement_contradiction`). An outcome the task's success check disagrees with is saved
    only with `confirm_disagreement`, and the label records it (`check_disagrees`), as a
    trial does. Raises NotPermitted, InvalidInput, CheckDisagrees."""

    rights.require(
        actor,
        rights.Right.LABEL,
        episode.team_id,
        "Only people of the episode's team label episodes.",
    )
    if outcome not in Label.Outcome.values:
        raise InvalidInput(f"Unknown outcome '{outcome}'.", fields={"outcome": ["Unknown."]})
    stages_reached, failure_codes, score = task_versions.validate_judgement(
        criteria_spec=episode.task_version.criteria,
        stages_reached=stages_reached,
        failure_codes=failure_codes,
    )
    criteria = episode.task_version.criteria
    stages_reached = judgement_contradiction(
        criteria=criteria,
        outcome=outcome,
        stages_reached=stages_reached,
        failure_codes=failure_codes,
    )
    verdict = check_verdict(episode)
    disagrees = bool(verdict) and verdict != _as_verdict(outcome)
    if disagrees and not confirm_disagreement:
        raise CheckDisagrees(disagreement_message(criteria, verdict))
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
            check_disagrees=disagrees,
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


def judgement_contradiction(
    *, criteria: dict, outcome: str, stages_reached: list[str], failure_codes: list[str]
) -> list[str]:
    """Refuse a judgement that contradicts itself: a success with a failure code, or a stage
    reached after one that was not (stages happen in the criteria's order). Returns the
    stages in that order. Raises InvalidInput naming the contradiction."""
    if outcome == Label.Outcome.SUCCESS and failure_codes:
        raise InvalidInput(
            f"A success has no failure code ({', '.join(failure_codes)} given): choose failure "
            "or partial, or untick the codes.",
            fields={"failure_codes": ["A success has no failure code."]},
        )
    order = [stage["id"] for stage in criteria.get("stages", [])]
    reached = set(stages_reached)
    missed = None
    for stage in order:
        if stage not in reached:
            missed = missed or stage
        elif missed is not None:
            raise InvalidInput(
                f"Stage '{stage}' is marked reached but '{missed}', which comes before it, is "
                f"not: stages are reached in order ({', '.join(order)}).",
                fields={"stages_reached": [f"'{stage}' is reached after '{missed}' was not."]},
            )
    return [stage for stage in order if stage in reached]


def check_verdict(episode: Episode) -> str:
    """What the task's success check says of a ready episode: "success", "failure", or ""
    when the criteria name no success check, the episode is not ready, or the check has no
    result or could not be evaluated."""
    check_id = (episode.task_version.criteria.get("success") or {}).get("check")
    if not check_id or episode.state != Episode.State.READY:
        return ""
    for result in episode.check_results or []:
        if isinstance(result, dict) and result.get("check_id") == check_id:
            return {"passed": Label.Outcome.SUCCESS, "failed": Label.Outcome.FAILURE}.get(
                result.get("status"), ""
            )
    return ""


def disagreement_message(criteria: dict, verdict: str) -> str:
    check_id = criteria["success"]["check"]
    if verdict == Label.Outcome.FAILURE:
        return (
            f"The success check '{check_id}' failed on this episode. Confirm to label it a "
            "success anyway; the label records that it disagrees with the check."
        )
    return (
        f"The success check '{check_id}' passed on this episode. Confirm to label it "
        "otherwise; the label records that it disagrees with the check."
    )


def _as_verdict(outcome: str) -> str:
    """A label's outcome as the check would say it: anything short of success fails."""
    return Label.Outcome.SUCCESS if outcome == Label.Outcome.SUCCESS else Label.Outcome.FAILURE


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
