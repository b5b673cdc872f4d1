"""The robot's trial flow (handing out trials) and results (reports, corrections, checks)."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from core import access, rights
from core.errors import Conflict, InvalidInput, NotPermitted
from core.models import Operator, Robot, TaskVersion
from core.services import audit, task_versions
from evaluation.errors import (
    CampaignNotRunning,
    RequirementsNotMet,
    TrialAlreadyReported,
    TrialNotAssigned,
)
from evaluation.models import (
    Campaign,
    InvalidReason,
    Outcome,
    OutcomeSource,
    Trial,
    TrialReport,
)
from evaluation.services import blinding
from evaluation.services.leaderboard_queue import enqueue_leaderboard_refresh
from evaluation.services.policies import requirement_gaps
from proving_ground.criteria.automatic_checks import CheckResult, CheckStatus
from proving_ground.criteria.parsing import parse_criteria
from proving_ground.criteria.spec import CriteriaError
from teleop.models import Episode


def may_score(actor, campaign: Campaign) -> bool:
    """Operators and admins of the campaign's team run and score its trials."""
    return rights.may(actor, rights.Right.OPERATE, campaign.team_id)


# --- The robot's trial flow -----------------------------------------------------------------


def next_trial(*, actor, campaign: Campaign) -> Trial | None:
    """Hand the calling robot its next trial: the one it already holds (so a robot that lost
    the answer gets the same trial again), else the earliest scheduled trial of its blocks,
    now assigned; in a shared queue, when its blocks are done, it claims the earliest
    unclaimed block. None when nothing is left for it, or the campaign is done.

    Two robots asking at once never get the same trial: rows are locked with SKIP LOCKED on
    PostgreSQL, so a second request passes over a row (or block head) another request is
    taking instead of waiting for it and then taking it too; SQLite serializes writers. A
    robot racing itself is stopped by the one-assigned-trial-per-robot constraint. Raises
    NotPermitted (not a robot of the campaign), CampaignNotRunning (a draft),
    RequirementsNotMet (the robot's embodiment changed since the start)."""
    if not access.is_robot(actor):
        raise NotPermitted("Only a robot asks for its next trial.")
    return _assign_next(campaign, actor.robot)


def next_trial_for_robot(*, actor, campaign: Campaign, robot: Robot) -> Trial | None:
    """The evaluation console's "next trial": an operator or admin of the campaign's team
    takes the next trial for a robot of the campaign, exactly as the robot asking for it
    would (the held one first; the same locks). A robot may ask only for itself."""
    if access.is_robot(actor):
        if actor.robot.pk != robot.pk:
            raise NotPermitted("A robot asks only for its own trials.")
    elif not may_score(actor, campaign):
        raise NotPermitted("Only operators and admins of the campaign's team run trials.")
    return _assign_next(campaign, robot)


def _assign_next(campaign: Campaign, robot: Robot) -> Trial | None:
    if not campaign.robots.filter(pk=robot.pk).exists():
        raise NotPermitted("This robot is not part of the campaign.")
    if campaign.status == Campaign.Status.DONE:
        return None  # a robot's loop ends as it does when its trials run out
    if campaign.status != Campaign.Status.RUNNING:
        raise CampaignNotRunning("The campaign has not started.")
    for _attempt in range(3):
        try:
            with transaction.atomic():
                held = _held_trial(campaign, robot)
                if held is not None:
                    return held
                trial = _take(campaign).filter(robot=robot).first()
                if trial is None and campaign.robot_assignment == Campaign.RobotAssignment.SHARED:
                    trial = _take(campaign).filter(robot__isnull=True, block_head=True).first()
                    if trial is not None:
                        # The locked head stands for its block: only the request holding it
                        # hands the block's trials to a robot.
                        Trial.objects.filter(
                            campaign=campaign, block=trial.block, robot__isnull=True
                        ).update(robot=robot)
                        trial.robot = robot
                if trial is None:
                    return None
                _check_trial_fits(trial, robot)
                trial.state = Trial.State.ASSIGNED
                trial.assigned_at = timezone.now()
                trial.save(update_fields=["state", "robot", "assigned_at", "updated_at"])
                # The locked row came with what the answer shows; no second read.
                trial.campaign = campaign
                trial.robot = robot
                return trial
        except IntegrityError:
            # The same robot raced itself (a retry while the first request ran): the other
            # request took a trial, and the one-assigned-per-robot constraint refused this
            # one. The loop returns the trial the robot now holds.
            continue
    raise Conflict("Could not hand out a trial; retry.")


# What a trial's answer shows (and `_check_trial_fits` reads), loaded with the trial.
_ANSWER_RELATIONS = ("policy_version", "task_version__task", "condition")


def _take(campaign: Campaign):
    """Scheduled trials of the campaign in schedule order, locked as read (the trial row
    only), skipping rows another transaction holds."""
    return (
        Trial.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related(*_ANSWER_RELATIONS)
        .filter(campaign=campaign, state=Trial.State.SCHEDULED)
        .order_by("order")
    )


def _held_trial(campaign: Campaign, robot: Robot) -> Trial | None:
    # Usually none is held: a plain id query first, the joined read only for a held one.
    held = (
        Trial.objects.filter(campaign=campaign, robot=robot, state=Trial.State.ASSIGNED)
        .values_list("pk", flat=True)
        .first()
    )
    return _trial_for_answer(held) if held is not None else None


def _trial_for_answer(trial_id) -> Trial:
    return Trial.objects.select_related("campaign", "robot", *_ANSWER_RELATIONS).get(pk=trial_id)


def _check_trial_fits(trial: Trial, robot: Robot) -> None:
    gaps = requirement_gaps(trial.policy_version.requires, robot.embodiment.spec)
    if gaps:
        # The alias, not the policy's name: this message goes to the robot and its operator.
        raise RequirementsNotMet(
            f"{trial.alias} cannot run on robot '{robot}' (embodiment '{robot.embodiment}'): "
            f"{'; '.join(gaps)}. Ask the campaign's researchers.",
            fields={"requires": gaps},
        )


# --- Results --------------------------------------------------------------------------------


def _check_results(episode: Episode) -> list[CheckResult]:
    results = []
    for item in episode.check_results or []:
        try:
            results.append(
                CheckResult(
                    check_id=str(item["check_id"]),
                    type=str(item.get("type", "")),
                    status=CheckStatus(item["status"]),
                    value=item.get("value"),
                    message=str(item.get("message", "")),
                    details=item.get("details") or {},
                )
            )
        except (KeyError, TypeError, ValueError):
            continue  # a malformed stored result decides nothing
    return results


def check_verdict(task_version: TaskVersion, episode: Episode | None) -> str:
    """The outcome the task's success check gives a ready episode: "success", "failure", or
    "" when the criteria name no success check, the episode is not ready, or the check could
    not be evaluated."""
    from proving_ground.criteria.spec import success_from_checks

    if episode is None or episode.state != Episode.State.READY:
        return ""
    try:
        criteria = parse_criteria(task_version.criteria)
    except CriteriaError:
        return ""
    verdict = success_from_checks(criteria, _check_results(episode))
    if verdict is None:
        return ""
    return Outcome.SUCCESS if verdict else Outcome.FAILURE


def _operator_for(actor, campaign: Campaign, operator_code: str | None) -> Operator | None:
    if operator_code:
        operator = Operator.objects.filter(
            code=operator_code, team_id=campaign.team_id, active=True
        ).first()
        if operator is None:
            raise InvalidInput(
                f"No active operator '{operator_code}' in the campaign's team.",
                fields={"operator": ["Unknown operator code."]},
            )
    elif not access.is_robot(actor):
        operator = Operator.objects.filter(
            user=actor, team_id=campaign.team_id, active=True
        ).first()
    else:
        return None
    if operator is not None and campaign.operators.exists():
        if not campaign.operators.filter(pk=operator.pk).exists():
            raise InvalidInput(
                f"Operator '{operator.code}' is not one of the campaign's operators.",
                fields={"operator": ["Not an operator of this campaign."]},
            )
    return operator


def _repeats_the_robots_report(
    trial: Trial,
    robot,
    *,
    outcome,
    stages_reached,
    failure_codes,
    valid,
    invalid_reason,
    notes,
    episode,
) -> bool:
    """Whether the trial's standing report is this robot's, with this content."""
    return (
        trial.outcome_source == OutcomeSource.ROBOT
        and trial.state == (Trial.State.DONE if valid else Trial.State.INVALID)
        and (outcome is None or trial.outcome == outcome)
        and list(trial.stages_reached) == list(stages_reached)
        and list(trial.failure_codes) == list(failure_codes)
        and trial.invalid_reason == ("" if valid else invalid_reason)
        and trial.notes == notes
        and (episode is None or trial.episode_id == episode.pk)
        and TrialReport.objects.filter(
            trial=trial, superseded_at=None, reporter_robot=robot
        ).exists()
    )


def report_trial_result(
    *,
    actor,
    trial: Trial,
    outcome: str | None = None,
    stages_reached: list[str] | None = None,
    failure_codes: list[str] | None = None,
    valid: bool = True,
    invalid_reason: str = "",
    notes: str = "",
    episode: Episode | None = None,
    operator_code: str | None = None,
) -> Trial:
    """Report a trial's result, or correct it (people only; the history is kept).

    A robot reports once, for a trial it holds. Operators and admins of the campaign's team
    report for a held trial or correct a reported one. A valid trial needs an outcome, unless
    the attached episode is ready and the task's success check decides it; when both exist
    and differ, the reported outcome stands and the trial is flagged. An invalid trial needs
    its reason. Stages and failure codes must be the task version's. The leaderboard refresh
    is queued after commit. Raises NotPermitted, InvalidInput, TrialNotAssigned,
    TrialAlreadyReported, CampaignNotRunning, Conflict (the episode belongs to another
    trial)."""
    robot_actor = access.is_robot(actor)
    given = trial
    campaign = trial.campaign
    if robot_actor:
        if actor.robot.pk != trial.robot_id:
            raise NotPermitted("A robot reports only its own trials.")
    elif not may_score(actor, campaign):
        raise NotPermitted("Only operators and admins of the campaign's team score trials.")
    if campaign.status == Campaign.Status.DRAFT:
        raise CampaignNotRunning("The campaign has not started.")
    stages_reached, failure_codes, score = task_versions.validate_judgement(
        criteria_spec=trial.task_version.criteria,
        stages_reached=stages_reached,
        failure_codes=failure_codes,
    )
    if outcome is not None and outcome not in Outcome.values:
        raise InvalidInput(f"Unknown outcome '{outcome}'.", fields={"outcome": ["Unknown."]})
    if valid and invalid_reason:
        raise InvalidInput(
            "A valid trial has no invalid reason.", fields={"invalid_reason": ["Leave it out."]}
        )
    if not valid and invalid_reason not in InvalidReason.values:
        raise InvalidInput(
            "An invalid trial needs its reason.",
            fields={"invalid_reason": [f"One of: {', '.join(InvalidReason.values)}."]},
        )
    if episode is not None and (
        episode.robot_id != trial.robot_id or episode.task_version_id != trial.task_version_id
    ):
        raise InvalidInput(
            "The episode was not recorded on this trial's robot and task version.",
            fields={"episode": ["Another robot's or task's episode."]},
        )
    operator = _operator_for(actor, campaign, operator_code)
    source = OutcomeSource.ROBOT if robot_actor else OutcomeSource.OPERATOR

    try:
        with transaction.atomic():
            trial = (
                Trial.objects.select_for_update(of=("self",))
                .select_related("task_version")
                .get(pk=trial.pk)
            )
            trial.campaign = campaign  # str(trial), for the audit record, names it
            if trial.state == Trial.State.SCHEDULED:
                raise TrialNotAssigned("This trial has not been handed to its robot yet.")
            if robot_actor and trial.state != Trial.State.ASSIGNED:
                if _repeats_the_robots_report(
                    trial,
                    actor.robot,
                    outcome=outcome,
                    stages_reached=stages_reached,
                    failure_codes=failure_codes,
                    valid=valid,
                    invalid_reason=invalid_reason,
                    notes=notes,
                    episode=episode,
                ):
                    # A retry whose first attempt was stored but never answered (the
                    # database went away before the answer, and its Idempotency-Key with
                    # it): the same report again is that report, not a second one.
                    trial.campaign = campaign
                    return trial
                raise TrialAlreadyReported(
                    "This trial was reported already; corrections are made by people."
                )
            if episode is None and trial.episode_id is not None:
                episode = trial.episode  # a correction keeps the attached episode
            verdict = check_verdict(trial.task_version, episode)
            if valid and outcome is None:
                if not verdict:
                    raise InvalidInput(
                        "Choose an outcome: no success check decided this trial.",
                        fields={"outcome": ["Choose an outcome, or mark the trial invalid."]},
                    )
                outcome, source = verdict, OutcomeSource.CHECKS
            disagrees = bool(valid and verdict and outcome != verdict)
            now = timezone.now()
            before = blinding.trial_snapshot(trial, campaign)
            if trial.reported_at is not None:  # a trial never reported has no report yet
                TrialReport.objects.filter(trial=trial, superseded_at=None).update(
                    superseded_at=now
                )
            fields = {
                "state": Trial.State.DONE if valid else Trial.State.INVALID,
                "outcome": outcome or "",
                "stages_reached": stages_reached,
                "stage_score": score,
                "failure_codes": failure_codes,
                "invalid_reason": "" if valid else invalid_reason,
                "notes": notes,
                "episode": episode,
                "check_outcome": verdict,
                "check_disagrees": disagrees,
            }
            TrialReport.objects.create(
                trial=trial,
                source=source,
                operator=operator,
                reporter_user=None if robot_actor else actor,
                reporter_robot=actor.robot if robot_actor else None,
                reporter_label=access.actor_label(actor),
                **fields,
            )
            for name, value in fields.items():
                setattr(trial, name, value)
            trial.outcome_source = source
            trial.operator = operator or trial.operator
            trial.reported_by = access.actor_label(actor)
            trial.reported_at = now
            trial.save()
            audit.record_audit(
                actor=actor,
                action="update",
                obj=trial,
                team=campaign.team,
                before=before,
                after=blinding.trial_snapshot(trial, campaign),
            )
            finished = 0
            if not Trial.objects.filter(
                campaign_id=campaign.pk,
                state__in=[Trial.State.SCHEDULED, Trial.State.ASSIGNED],
            ).exists():
                finished = Campaign.objects.filter(
                    pk=campaign.pk, status=Campaign.Status.RUNNING
                ).update(status=Campaign.Status.DONE, finished_at=now, updated_at=now)
            campaign = Campaign.objects.get(pk=campaign.pk)  # its status as of this report
            if finished:  # the last result ends the campaign: a blinded one is revealed
                blinding.record_unblinding(actor=actor, campaign=campaign)
            enqueue_leaderboard_refresh(campaign)
    except IntegrityError as exc:
        raise Conflict("That episode is attached to another trial already.") from exc
    # The saved row is the answer, with the relations the caller loaded (no second read).
    trial.campaign = campaign
    trial.robot = given.robot
    trial.policy_version = given.policy_version
    return trial


def apply_pending_episode_checks(*, campaign: Campaign) -> int:
    """For reported trials whose episode became ready after the report, record what the
    task's success check says and flag a disagreement. The reported outcome is never
    overwritten here (a person or robot stated it). Idempotent; returns the trials updated."""
    candidates = (
        Trial.objects.filter(
            campaign=campaign,
            state=Trial.State.DONE,
            check_outcome="",
            episode__state=Episode.State.READY,
            task_version__criteria__success__has_key="check",
        )
        .select_related("episode", "task_version")
        .only("pk", "outcome", "episode", "task_version")
    )
    updated = 0
    for trial in candidates[:1000]:
        verdict = check_verdict(trial.task_version, trial.episode)
        if verdict:
            updated += Trial.objects.filter(pk=trial.pk, check_outcome="").update(
                check_outcome=verdict, check_disagrees=verdict != trial.outcome
            )
    return updated
