"""Campaigns: their design checks, the seeded schedule, starting and finishing."""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterable

from django.db import IntegrityError, transaction
from django.utils import timezone

from core import access
from core.errors import Conflict, InvalidInput, NotPermitted
from core.models import Condition, Operator, Robot, TaskVersion, Team, Visibility
from core.services import audit
from core.services import task_versions as task_version_services
from evaluation.errors import CampaignNotDraft, CampaignNotRunning, RequirementsNotMet
from evaluation.models import Benchmark, Campaign, CampaignCell, PolicyVersion, Trial
from evaluation.services import blinding
from evaluation.services._common import require_designer, set_shared_with
from evaluation.services.benchmarks import check_scoring_version, check_trials_per_cell, design_grid
from evaluation.services.leaderboard_queue import enqueue_leaderboard_refresh
from evaluation.services.policies import requirement_gaps
from proving_ground import scheduling
from proving_ground.scoring import DEFAULT_SCORING_VERSION

# --- Campaigns ------------------------------------------------------------------------------


def _check_robots_fit(
    policy_versions: Iterable[PolicyVersion],
    robots: Iterable[Robot],
    cells: Iterable[tuple[TaskVersion, Condition]],
) -> None:
    """Refuse a design whose policies or task versions do not fit a robot's embodiment."""
    problems: list[str] = []
    robots = list(robots)
    for version in policy_versions:
        for robot in robots:
            gaps = requirement_gaps(version.requires, robot.embodiment.spec)
            if gaps:
                problems.append(
                    f"Policy version '{version}' cannot run on robot '{robot}' (embodiment "
                    f"'{robot.embodiment}'): {'; '.join(gaps)}."
                )
    allowed: dict = {}
    for task_version in dict.fromkeys(tv for tv, _ in cells):
        allowed[task_version.pk] = set(
            task_version.allowed_embodiments.values_list("pk", flat=True)
        )
        for robot in robots:
            if robot.embodiment_id not in allowed[task_version.pk]:
                problems.append(
                    f"Task version {task_version} does not allow robot '{robot}' "
                    f"(embodiment '{robot.embodiment}')."
                )
    if problems:
        raise RequirementsNotMet(" ".join(problems[:5]), fields={"requires": problems})


def create_campaign(
    *,
    actor,
    team: Team,
    name: str,
    policy_versions: Iterable[PolicyVersion],
    robots: Iterable[Robot],
    benchmark: Benchmark | None = None,
    task_versions: Iterable[TaskVersion] = (),
    conditions: Iterable[Condition] = (),
    trials_per_cell: int | None = None,
    operators: Iterable[Operator] = (),
    mode: str = Campaign.Mode.INTERLEAVED,
    robot_assignment: str = Campaign.RobotAssignment.DEALT,
    blinded: bool = True,
    seed: int | None = None,
    scoring_version: str | None = None,
    description: str = "",
    visibility: str = Visibility.PRIVATE,
    shared_with: Iterable[Team] = (),
) -> Campaign:
    """A draft campaign on a published benchmark (its cells, trials per cell and scoring) or
    on an ad hoc grid (task versions x conditions). The seed is drawn now unless given, and
    stored. Raises NotPermitted, InvalidInput, RequirementsNotMet, Conflict."""
    require_designer(actor, team.pk)
    versions = list(dict.fromkeys(policy_versions))
    robots = list(dict.fromkeys(robots))
    operators = list(dict.fromkeys(operators))
    if not versions:
        raise InvalidInput(
            "A campaign needs at least one policy version.",
            fields={"policy_versions": ["At least one."]},
        )
    if mode not in Campaign.Mode.values:
        raise InvalidInput(f"Unknown mode '{mode}'.", fields={"mode": ["Unknown."]})
    if robot_assignment not in Campaign.RobotAssignment.values:
        raise InvalidInput(
            f"Unknown robot assignment '{robot_assignment}'.",
            fields={"robot_assignment": ["Unknown."]},
        )
    if mode == Campaign.Mode.PAIRED and len(versions) < 2:
        raise InvalidInput(
            "Paired mode needs at least two policy versions.",
            fields={"policy_versions": ["At least two in paired mode."]},
        )
    if not robots:
        raise InvalidInput("A campaign needs at least one robot.", fields={"robots": ["Required."]})
    foreign = [r.name for r in robots if r.team_id != team.pk]
    if foreign:
        raise InvalidInput(
            f"A campaign runs on its own team's robots; not: {', '.join(foreign)}.",
            fields={"robots": ["Robots of another team."]},
        )
    retired = [r.name for r in robots if r.status == Robot.Status.RETIRED]
    if retired:
        raise InvalidInput(f"Retired robots cannot run trials: {', '.join(retired)}.")
    if any(op.team_id != team.pk or not op.active for op in operators):
        raise InvalidInput(
            "Operators must be active operators of the campaign's team.",
            fields={"operators": ["Unknown operator for this team."]},
        )
    if visibility == Visibility.PUBLIC:
        private = [str(v) for v in versions if v.policy.visibility != Visibility.PUBLIC]
        if private:
            raise InvalidInput(
                "A public campaign runs public policies only, or their names would leak: "
                f"{', '.join(private)}.",
                fields={"visibility": ["The campaign's policies are not all public."]},
            )
    if benchmark is not None:
        if list(task_versions) or list(conditions) or trials_per_cell is not None:
            raise InvalidInput(
                "A campaign on a benchmark takes the benchmark's cells and trials per cell.",
                fields={"benchmark": ["Give a benchmark or an ad hoc grid, not both."]},
            )
        if not benchmark.is_published:
            raise InvalidInput(
                f"Benchmark '{benchmark}' is not published yet; publish it (which freezes its "
                "cells) before running campaigns on it.",
                fields={"benchmark": ["Not published."]},
            )
        grid = [
            (cell.task_version, cell.condition)
            for cell in benchmark.cells.select_related("task_version", "condition")
        ]
        trials_per_cell = benchmark.trials_per_cell
        scoring_version = benchmark.scoring_version
    else:
        grid = design_grid(task_versions, conditions)
        if trials_per_cell is None:
            raise InvalidInput(
                "An ad hoc campaign needs trials_per_cell.",
                fields={"trials_per_cell": ["Required without a benchmark."]},
            )
        scoring_version = scoring_version or DEFAULT_SCORING_VERSION
    check_scoring_version(scoring_version)
    check_trials_per_cell(trials_per_cell)
    if seed is None:
        seed = secrets.randbelow(scheduling.MAX_SEED + 1)
    if not 0 <= seed <= scheduling.MAX_SEED:
        raise InvalidInput("The seed must be between 0 and 2**63 - 1.", fields={"seed": ["Range."]})
    _check_robots_fit(versions, robots, grid)
    _planned_size(len(versions), len(grid), trials_per_cell, mode)
    try:
        with transaction.atomic():
            campaign = Campaign.objects.create(
                team=team,
                name=name,
                description=description,
                benchmark=benchmark,
                trials_per_cell=trials_per_cell,
                scoring_version=scoring_version,
                mode=mode,
                robot_assignment=robot_assignment,
                blinded=blinded,
                seed=seed,
                seed_salt=blinding.new_seed_salt(),
                visibility=visibility,
                created_by=access.actor_label(actor),
            )
            campaign.policy_versions.set(versions)
            campaign.robots.set(robots)
            campaign.operators.set(operators)
            set_shared_with(campaign, shared_with)
            CampaignCell.objects.bulk_create(
                CampaignCell(campaign=campaign, task_version=v, condition=c) for v, c in grid
            )
            audit.record_audit(
                actor=actor,
                action="create",
                obj=campaign,
                after=blinding.campaign_snapshot(campaign) | {"cells": len(grid)},
            )
    except IntegrityError as exc:
        raise Conflict(f"Team '{team}' has a campaign named '{name}' already.") from exc
    return campaign


def replicates_per_cell(trials_per_cell: int, policies: int, mode: str) -> int:
    """Blocks per cell so that each policy runs at least `trials_per_cell` trials of it: in
    interleaved mode a block runs each policy once; in paired mode each policy P - 1 times
    (once per comparison)."""
    if mode == Campaign.Mode.PAIRED:
        return max(1, math.ceil(trials_per_cell / (policies - 1)))
    return trials_per_cell


def _planned_size(policies: int, cells: int, trials_per_cell: int, mode: str) -> int:
    replicates = replicates_per_cell(trials_per_cell, policies, mode)
    per_block = policies * (policies - 1) if mode == Campaign.Mode.PAIRED else policies
    total = per_block * replicates * cells
    if total > scheduling.MAX_TRIALS:
        raise InvalidInput(
            f"The design asks for {total:,} trials; a campaign holds at most "
            f"{scheduling.MAX_TRIALS:,}."
        )
    return total


def build_campaign_schedule(campaign: Campaign) -> list[scheduling.ScheduledTrial]:
    """The campaign's schedule from its stored design, seed and schedule algorithm (no
    writes). Robots are part of it when blocks are dealt to them; a shared queue schedules
    no robots."""
    versions = list(campaign.policy_versions.all())
    cells = list(campaign.cells.all())
    replicates = replicates_per_cell(campaign.trials_per_cell, len(versions), campaign.mode)
    return scheduling.build_schedule(
        [scheduling.PolicySpec(str(v.pk)) for v in versions],
        [
            scheduling.CellSpec(str(c.task_version_id), str(c.condition_id), replicates)
            for c in cells
        ],
        seed=campaign.seed,
        robots=(
            [str(r.pk) for r in campaign.robots.all()]
            if campaign.robot_assignment == Campaign.RobotAssignment.DEALT
            else None
        ),
        mode=campaign.mode,
        algorithm=campaign.schedule_algorithm,
    )


def start_campaign(*, actor, campaign: Campaign) -> Campaign:
    """Build the schedule from the stored seed, store every trial and the schedule's
    fingerprint, lock the task versions, and set the campaign running. Raises NotPermitted,
    CampaignNotDraft, RequirementsNotMet, InvalidInput."""
    require_designer(actor, campaign.team_id)
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if campaign.status != Campaign.Status.DRAFT:
            raise CampaignNotDraft(f"Campaign '{campaign}' is {campaign.status} already.")
        cells = list(campaign.cells.select_related("task_version", "condition"))
        robots = list(campaign.robots.select_related("embodiment"))
        versions = list(campaign.policy_versions.select_related("policy"))
        _check_robots_fit(versions, robots, [(c.task_version, c.condition) for c in cells])
        # A draft's stored algorithm is only a default: a campaign gets the current one.
        campaign.schedule_algorithm = scheduling.SCHEDULE_ALGORITHM
        try:
            schedule = build_campaign_schedule(campaign)
        except ValueError as exc:
            raise InvalidInput(f"The schedule cannot be built: {exc}") from exc
        heads = {}
        for item in schedule:
            heads.setdefault(item.block, item.order)
        Trial.objects.bulk_create(
            (
                Trial(
                    campaign=campaign,
                    order=item.order,
                    block=item.block,
                    policy_version_id=item.policy_id,
                    alias=item.alias,
                    task_version_id=item.task_version_id,
                    condition_id=item.condition_id,
                    robot_id=item.robot_id,
                    block_head=heads[item.block] == item.order,
                    pair_id=item.pair_id,
                    pair_position=item.pair_position,
                )
                for item in schedule
            ),
            batch_size=2_000,
        )
        for version in {c.task_version for c in cells}:
            task_version_services.lock_task_version(actor=actor, version=version)
        campaign.schedule_fingerprint = scheduling.schedule_fingerprint(schedule)
        campaign.status = Campaign.Status.RUNNING
        campaign.started_at = timezone.now()
        campaign.save()
        audit.record_audit(
            actor=actor,
            action="update",
            obj=campaign,
            before={"status": Campaign.Status.DRAFT},
            after={
                "status": campaign.status,
                "trials": len(schedule),
                **blinding.seed_record(campaign),
                "schedule_fingerprint": campaign.schedule_fingerprint,
            },
        )
        enqueue_leaderboard_refresh(campaign)
    return campaign


def finish_campaign(*, actor, campaign: Campaign) -> Campaign:
    """Stop a running campaign early (a sequential test stopped, the lab closes): no more
    trials are handed out; those not run stay `scheduled` and show as remaining. Idempotent.
    Raises NotPermitted, CampaignNotRunning (a draft)."""
    require_designer(actor, campaign.team_id)
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if campaign.status == Campaign.Status.DONE:
            return campaign
        if campaign.status != Campaign.Status.RUNNING:
            raise CampaignNotRunning("A draft campaign has nothing to finish; start it first.")
        campaign.status = Campaign.Status.DONE
        campaign.finished_at = timezone.now()
        campaign.save(update_fields=["status", "finished_at", "updated_at"])
        if campaign.blinded:  # done: the seed and the aliases' policies are revealed
            blinding.record_unblinding(actor=actor, campaign=campaign)
        else:
            audit.record_audit(
                actor=actor,
                action="update",
                obj=campaign,
                before={"status": Campaign.Status.RUNNING},
                after={"status": campaign.status},
            )
        enqueue_leaderboard_refresh(campaign)
    return campaign


def unblind_campaign(*, actor, campaign: Campaign) -> Campaign:
    """End a blinded campaign's blinding before it is done (a safety review, a protocol
    deviation): from now on everyone who may see the campaign sees its policies, and one
    audited event reveals the seed, its salt and every alias's policy version, as finishing
    does. Irreversible; the audit trail keeps that the campaign was unblinded early.
    Idempotent (an unblinded or done campaign is returned as it is). Raises NotPermitted:
    authors of the team only, and not one of the campaign's operators, who are blinded."""
    require_designer(actor, campaign.team_id)
    if campaign.operators.filter(user_id=actor.pk).exists():
        raise NotPermitted("One of the campaign's operators cannot unblind it.")
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if not blinding.hides_mapping(campaign):
            return campaign
        campaign.blinded = False
        campaign.save(update_fields=["blinded", "updated_at"])
        audit.record_audit(
            actor=actor,
            action="update",
            obj=campaign,
            before={"status": campaign.status, "blinded": True},
            after={"status": campaign.status, "blinded": False} | blinding.revelation(campaign),
        )
        enqueue_leaderboard_refresh(campaign)  # its board named aliases only
    return campaign
