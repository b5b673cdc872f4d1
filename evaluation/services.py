"""Every write of the evaluation app: policies, benchmarks, campaigns, trials, reports and
leaderboard snapshots.

Rules enforced here, before anything is saved:
- admins and researchers of a team define its policies, benchmarks and campaigns;
- a policy version's observation/action contract is checked against each robot's embodiment
  and each task version must allow it, before trials are scheduled (and again when a robot
  asks for a trial, since a robot's embodiment may change);
- a published benchmark's cells are frozen; campaigns run only on published benchmarks;
- a robot takes and reports only its own trials, one at a time; people (operators and admins
  of the campaign's team) enter and correct outcomes, and every report is kept;
- a leaderboard refresh is queued after a result commits, never computed inside it.

Each function documents the domain errors it raises (`core.errors` and the ones below).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from core import access
from core import services as core_services
from core.criteria import CheckResult, CheckStatus, CriteriaError, parse_criteria
from core.embodiment_spec import EmbodimentSpecError, parse_embodiment_spec
from core.errors import Conflict, InvalidInput, NotPermitted
from core.models import Condition, Membership, Operator, Robot, TaskVersion, Team, Visibility
from evaluation import scheduling
from evaluation.models import (
    Benchmark,
    BenchmarkCell,
    Campaign,
    CampaignCell,
    InvalidReason,
    LeaderboardSnapshot,
    Outcome,
    OutcomeSource,
    Policy,
    PolicyVersion,
    Trial,
    TrialReport,
)
from evaluation.scoring import SCORING_VERSIONS
from teleop.models import Episode

Role = Membership.Role
MAX_CELLS = 1_000
MAX_REQUIRED_KEYS = 64
SNAPSHOTS_KEPT = 20


class RequirementsNotMet(InvalidInput):
    """A policy version needs observations, cameras or an action shape a robot lacks."""

    code = "requirements_not_met"


class BenchmarkFrozen(Conflict):
    code = "benchmark_frozen"


class CampaignNotDraft(Conflict):
    code = "campaign_not_draft"


class CampaignNotRunning(Conflict):
    code = "campaign_not_running"


class TrialNotAssigned(Conflict):
    code = "trial_not_assigned"


class TrialAlreadyReported(Conflict):
    code = "trial_already_reported"


# --- Rights ---------------------------------------------------------------------------------


def _require_designer(actor, team_id) -> None:
    if not access.has_role(actor, team_id, Role.ADMIN, Role.RESEARCHER):
        raise NotPermitted("Only an admin or researcher of the owning team may do this.")


def _label(actor) -> str:
    return access.actor_label(actor)


def _set_sharing(obj, shared_with: Iterable[Team] | None) -> None:
    if shared_with is not None:
        obj.shared_with.set(list(shared_with))


# --- Policies -------------------------------------------------------------------------------


def create_policy(
    *,
    actor,
    team: Team,
    name: str,
    description: str = "",
    visibility: str = Visibility.PRIVATE,
    shared_with: Iterable[Team] = (),
) -> Policy:
    """Raises NotPermitted, Conflict (name taken in the team)."""
    _require_designer(actor, team.pk)
    try:
        with transaction.atomic():
            policy = Policy.objects.create(
                team=team,
                name=name,
                description=description,
                visibility=visibility,
                created_by=_label(actor),
            )
            _set_sharing(policy, shared_with)
            core_services.record_audit(
                actor=actor, action="create", obj=policy, after=core_services.snapshot(policy)
            )
    except IntegrityError as exc:
        raise Conflict(f"Team '{team}' has a policy named '{name}' already.") from exc
    return policy


def update_policy(*, actor, policy: Policy, **changes) -> Policy:
    """Change a policy's name, description or sharing. Raises NotPermitted, InvalidInput,
    Conflict (name taken)."""
    _require_designer(actor, policy.team_id)
    shared_with = changes.pop("shared_with", None)
    unknown = set(changes) - {"name", "description", "visibility"}
    if unknown:
        raise InvalidInput(
            f"These fields cannot be changed: {', '.join(sorted(unknown))}.",
            fields={name: ["This field cannot be changed."] for name in sorted(unknown)},
        )
    try:
        with transaction.atomic():
            policy = Policy.objects.select_for_update().get(pk=policy.pk)
            before = core_services.snapshot(policy)
            for name, value in changes.items():
                setattr(policy, name, value)
            policy.save()
            _set_sharing(policy, shared_with)
            core_services.record_audit(
                actor=actor,
                action="update",
                obj=policy,
                before=before,
                after=core_services.snapshot(policy),
            )
    except IntegrityError as exc:
        raise Conflict(f"This team has a policy named '{changes.get('name')}' already.") from exc
    return policy


def _shape(value: Any, where: str, problems: list[str]) -> list[int] | None:
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) > 4
        or not all(isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= 4096 for d in value)
    ):
        problems.append(f"{where}: a shape is a list of at most 4 integers in 1..4096, or null.")
        return None
    return list(value)


def normalize_requires(requires: Any) -> dict[str, Any]:
    """Validate a policy version's contract and return it in canonical form:
    ``{"observations": {key: shape|None}, "cameras": [names], "action": shape|None}``.
    Raises InvalidInput naming every problem."""
    if requires is None:
        requires = {}
    problems: list[str] = []
    if not isinstance(requires, dict):
        raise InvalidInput(
            "requires must be an object.", fields={"requires": ["Must be a JSON object."]}
        )
    unknown = sorted(set(requires) - {"observations", "cameras", "action"})
    if unknown:
        problems.append(
            f"unknown keys: {', '.join(unknown)} (allowed: observations, cameras, action)"
        )
    observations = requires.get("observations") or {}
    cameras = requires.get("cameras") or []
    out: dict[str, Any] = {"observations": {}, "cameras": [], "action": None}
    if not isinstance(observations, dict) or len(observations) > MAX_REQUIRED_KEYS:
        problems.append("observations: an object of at most 64 keys mapping to shapes.")
    else:
        for key, shape in sorted(observations.items()):
            if not isinstance(key, str) or not 1 <= len(key) <= 64:
                problems.append(f"observations: bad key {key!r}.")
                continue
            out["observations"][key] = _shape(shape, f"observations/{key}", problems)
    if (
        not isinstance(cameras, list)
        or len(cameras) > 16
        or not all(isinstance(c, str) and 1 <= len(c) <= 64 for c in cameras)
    ):
        problems.append("cameras: a list of at most 16 camera names.")
    else:
        out["cameras"] = sorted(set(cameras))
    out["action"] = _shape(requires.get("action"), "action", problems)
    if problems:
        raise InvalidInput(
            f"The policy's requirements are not valid: {problems[0]}",
            fields={"requires": problems},
        )
    return out


def requirement_gaps(requires: dict[str, Any], embodiment_spec: dict[str, Any]) -> list[str]:
    """What an embodiment lacks for a policy version: one sentence per gap, [] when it fits."""
    try:
        spec = parse_embodiment_spec(embodiment_spec)
    except EmbodimentSpecError:
        return ["the robot's embodiment spec is not valid"]
    gaps = []
    for key, shape in sorted((requires.get("observations") or {}).items()):
        have = spec.observations.get(key)
        if have is None:
            gaps.append(f"observation '{key}' is missing")
        elif shape is not None and list(have.shape) != list(shape):
            gaps.append(
                f"observation '{key}' has shape {list(have.shape)}, the policy needs {shape}"
            )
    camera_names = {camera.name for camera in spec.cameras}
    for camera in requires.get("cameras") or []:
        if camera not in camera_names:
            gaps.append(f"camera '{camera}' is missing")
    action = requires.get("action")
    if action is not None and list(spec.action.shape) != list(action):
        gaps.append(f"the action has shape {list(spec.action.shape)}, the policy needs {action}")
    return gaps


def create_policy_version(
    *,
    actor,
    policy: Policy,
    label: str,
    checkpoint_sha256: str = "",
    checkpoint_uri: str = "",
    server_url: str = "",
    requires: dict | None = None,
    notes: str = "",
) -> PolicyVersion:
    """A new, immutable version. Needs a checkpoint SHA-256 or a server URL. Raises
    NotPermitted, InvalidInput, Conflict (label taken)."""
    _require_designer(actor, policy.team_id)
    checkpoint_sha256 = checkpoint_sha256.lower()
    if not checkpoint_sha256 and not server_url:
        raise InvalidInput(
            "A policy version needs a checkpoint SHA-256 or a server URL.",
            fields={"checkpoint_sha256": ["Give this or server_url."]},
        )
    requires = normalize_requires(requires)
    try:
        with transaction.atomic():
            version = PolicyVersion.objects.create(
                policy=policy,
                label=label,
                checkpoint_sha256=checkpoint_sha256,
                checkpoint_uri=checkpoint_uri,
                server_url=server_url,
                requires=requires,
                notes=notes,
                created_by=_label(actor),
            )
            core_services.record_audit(
                actor=actor,
                action="create",
                obj=version,
                team=policy.team,
                after=core_services.snapshot(version),
            )
    except IntegrityError as exc:
        raise Conflict(f"Policy '{policy}' has a version '{label}' already.") from exc
    return version


# --- Benchmarks -----------------------------------------------------------------------------


def _grid(
    task_versions: Iterable[TaskVersion], conditions: Iterable[Condition]
) -> list[tuple[TaskVersion, Condition]]:
    versions = list(dict.fromkeys(task_versions))
    levels = list(dict.fromkeys(conditions))
    if not versions or not levels:
        raise InvalidInput(
            "A design needs at least one task version and one condition.",
            fields={"task_versions": ["At least one."], "conditions": ["At least one."]},
        )
    if len(versions) * len(levels) > MAX_CELLS:
        raise InvalidInput(f"A design holds at most {MAX_CELLS} cells.")
    return [(version, condition) for version in versions for condition in levels]


def _check_scoring(scoring_version: str) -> None:
    if scoring_version not in SCORING_VERSIONS:
        raise InvalidInput(
            f"Unknown scoring version '{scoring_version}'.",
            fields={"scoring_version": [f"One of: {', '.join(SCORING_VERSIONS)}."]},
        )


def _check_trials_per_cell(trials_per_cell: int) -> None:
    if not 1 <= trials_per_cell <= 10_000:
        raise InvalidInput(
            "trials_per_cell must be between 1 and 10000.",
            fields={"trials_per_cell": ["Between 1 and 10000."]},
        )


def create_benchmark(
    *,
    actor,
    team: Team,
    name: str,
    task_versions: Iterable[TaskVersion],
    conditions: Iterable[Condition],
    trials_per_cell: int,
    scoring_version: str = "pg-score/1",
    description: str = "",
    visibility: str = Visibility.PRIVATE,
    shared_with: Iterable[Team] = (),
) -> Benchmark:
    """A benchmark over task versions x conditions (every pair is a cell), unpublished.
    Raises NotPermitted, InvalidInput, Conflict (name taken)."""
    _require_designer(actor, team.pk)
    _check_scoring(scoring_version)
    _check_trials_per_cell(trials_per_cell)
    grid = _grid(task_versions, conditions)
    try:
        with transaction.atomic():
            benchmark = Benchmark.objects.create(
                team=team,
                name=name,
                description=description,
                trials_per_cell=trials_per_cell,
                scoring_version=scoring_version,
                visibility=visibility,
                created_by=_label(actor),
            )
            _set_sharing(benchmark, shared_with)
            BenchmarkCell.objects.bulk_create(
                BenchmarkCell(benchmark=benchmark, task_version=v, condition=c) for v, c in grid
            )
            core_services.record_audit(
                actor=actor,
                action="create",
                obj=benchmark,
                after=core_services.snapshot(benchmark) | {"cells": len(grid)},
            )
    except IntegrityError as exc:
        raise Conflict(f"Team '{team}' has a benchmark named '{name}' already.") from exc
    return benchmark


_DESIGN_FIELDS = {"task_versions", "conditions", "trials_per_cell", "scoring_version"}


def update_benchmark(*, actor, benchmark: Benchmark, **changes) -> Benchmark:
    """Change name, description or sharing at any time; the design (task versions,
    conditions, trials per cell, scoring version) only before publishing. Raises
    NotPermitted, InvalidInput, BenchmarkFrozen, Conflict."""
    _require_designer(actor, benchmark.team_id)
    shared_with = changes.pop("shared_with", None)
    unknown = set(changes) - {"name", "description", "visibility"} - _DESIGN_FIELDS
    if unknown:
        raise InvalidInput(f"These fields cannot be changed: {', '.join(sorted(unknown))}.")
    design = {name: changes.pop(name) for name in list(changes) if name in _DESIGN_FIELDS}
    try:
        with transaction.atomic():
            benchmark = Benchmark.objects.select_for_update().get(pk=benchmark.pk)
            before = core_services.snapshot(benchmark)
            if design:
                if benchmark.is_published:
                    raise BenchmarkFrozen(
                        f"Benchmark '{benchmark}' is published; its cells, trials per cell and "
                        "scoring are frozen. Create a new benchmark to change them."
                    )
                if "scoring_version" in design:
                    _check_scoring(design["scoring_version"])
                    benchmark.scoring_version = design["scoring_version"]
                if "trials_per_cell" in design:
                    _check_trials_per_cell(design["trials_per_cell"])
                    benchmark.trials_per_cell = design["trials_per_cell"]
                if "task_versions" in design or "conditions" in design:
                    cells = list(benchmark.cells.select_related("task_version", "condition"))
                    grid = _grid(
                        design.get("task_versions", [c.task_version for c in cells]),
                        design.get("conditions", [c.condition for c in cells]),
                    )
                    benchmark.cells.all().delete()
                    BenchmarkCell.objects.bulk_create(
                        BenchmarkCell(benchmark=benchmark, task_version=v, condition=c)
                        for v, c in grid
                    )
            pooled_before = (benchmark.visibility, benchmark.team_id)
            for name, value in changes.items():
                setattr(benchmark, name, value)
            benchmark.save()
            _set_sharing(benchmark, shared_with)
            if (benchmark.visibility, benchmark.team_id) != pooled_before:
                # Which campaigns the board pools depends on the benchmark's visibility.
                _enqueue_benchmark_refresh(benchmark.pk)
            core_services.record_audit(
                actor=actor,
                action="update",
                obj=benchmark,
                before=before,
                after=core_services.snapshot(benchmark),
            )
    except IntegrityError as exc:
        raise Conflict(f"This team has a benchmark named '{changes.get('name')}'.") from exc
    return benchmark


def publish_benchmark(*, actor, benchmark: Benchmark) -> Benchmark:
    """Freeze a benchmark's design so campaigns can run on it; locks its task versions.
    Idempotent. Raises NotPermitted."""
    _require_designer(actor, benchmark.team_id)
    with transaction.atomic():
        benchmark = Benchmark.objects.select_for_update().get(pk=benchmark.pk)
        if benchmark.is_published:
            return benchmark
        for version in TaskVersion.objects.filter(
            pk__in=benchmark.cells.values("task_version")
        ).distinct():
            core_services.lock_task_version(actor=actor, version=version)
        benchmark.published_at = timezone.now()
        benchmark.save(update_fields=["published_at", "updated_at"])
        core_services.record_audit(
            actor=actor,
            action="lock",
            obj=benchmark,
            after={"published_at": benchmark.published_at},
        )
    return benchmark


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
    _require_designer(actor, team.pk)
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
        grid = _grid(task_versions, conditions)
        if trials_per_cell is None:
            raise InvalidInput(
                "An ad hoc campaign needs trials_per_cell.",
                fields={"trials_per_cell": ["Required without a benchmark."]},
            )
        scoring_version = scoring_version or "pg-score/1"
    _check_scoring(scoring_version)
    _check_trials_per_cell(trials_per_cell)
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
                visibility=visibility,
                created_by=_label(actor),
            )
            campaign.policy_versions.set(versions)
            campaign.robots.set(robots)
            campaign.operators.set(operators)
            _set_sharing(campaign, shared_with)
            CampaignCell.objects.bulk_create(
                CampaignCell(campaign=campaign, task_version=v, condition=c) for v, c in grid
            )
            core_services.record_audit(
                actor=actor,
                action="create",
                obj=campaign,
                after=core_services.snapshot(campaign) | {"cells": len(grid)},
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
    """The campaign's schedule from its stored design and seed (no writes). Robots are part
    of it when blocks are dealt to them; a shared queue schedules no robots."""
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
    )


def start_campaign(*, actor, campaign: Campaign) -> Campaign:
    """Build the schedule from the stored seed, store every trial and the schedule's
    fingerprint, lock the task versions, and set the campaign running. Raises NotPermitted,
    CampaignNotDraft, RequirementsNotMet, InvalidInput."""
    _require_designer(actor, campaign.team_id)
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if campaign.status != Campaign.Status.DRAFT:
            raise CampaignNotDraft(f"Campaign '{campaign}' is {campaign.status} already.")
        cells = list(campaign.cells.select_related("task_version", "condition"))
        robots = list(campaign.robots.select_related("embodiment"))
        versions = list(campaign.policy_versions.select_related("policy"))
        _check_robots_fit(versions, robots, [(c.task_version, c.condition) for c in cells])
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
            core_services.lock_task_version(actor=actor, version=version)
        campaign.schedule_algorithm = scheduling.SCHEDULE_ALGORITHM
        campaign.schedule_fingerprint = scheduling.schedule_fingerprint(schedule)
        campaign.status = Campaign.Status.RUNNING
        campaign.started_at = timezone.now()
        campaign.save()
        core_services.record_audit(
            actor=actor,
            action="update",
            obj=campaign,
            before={"status": Campaign.Status.DRAFT},
            after={
                "status": campaign.status,
                "trials": len(schedule),
                "seed": campaign.seed,
                "schedule_fingerprint": campaign.schedule_fingerprint,
            },
        )
        enqueue_leaderboard_refresh(campaign)
    return campaign


def finish_campaign(*, actor, campaign: Campaign) -> Campaign:
    """Stop a running campaign early (a sequential test stopped, the lab closes): no more
    trials are handed out; those not run stay `scheduled` and show as remaining. Idempotent.
    Raises NotPermitted, CampaignNotRunning (a draft)."""
    _require_designer(actor, campaign.team_id)
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if campaign.status == Campaign.Status.DONE:
            return campaign
        if campaign.status != Campaign.Status.RUNNING:
            raise CampaignNotRunning("A draft campaign has nothing to finish; start it first.")
        campaign.status = Campaign.Status.DONE
        campaign.finished_at = timezone.now()
        campaign.save(update_fields=["status", "finished_at", "updated_at"])
        core_services.record_audit(
            actor=actor,
            action="update",
            obj=campaign,
            before={"status": Campaign.Status.RUNNING},
            after={"status": campaign.status},
        )
        enqueue_leaderboard_refresh(campaign)
    return campaign


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
    robot = actor.robot
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
                return _trial_for_answer(trial.pk)
        except IntegrityError:
            # The same robot raced itself (a retry while the first request ran): the other
            # request took a trial, and the one-assigned-per-robot constraint refused this
            # one. The loop returns the trial the robot now holds.
            continue
    raise Conflict("Could not hand out a trial; retry.")


def _take(campaign: Campaign):
    """Scheduled trials of the campaign in schedule order, locked as read, skipping rows
    another transaction holds."""
    return (
        Trial.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(campaign=campaign, state=Trial.State.SCHEDULED)
        .order_by("order")
    )


def _held_trial(campaign: Campaign, robot: Robot) -> Trial | None:
    held = (
        Trial.objects.filter(campaign=campaign, robot=robot, state=Trial.State.ASSIGNED)
        .values_list("pk", flat=True)
        .first()
    )
    return _trial_for_answer(held) if held is not None else None


def _trial_for_answer(trial_id) -> Trial:
    return Trial.objects.select_related(
        "campaign", "policy_version", "task_version__task", "condition", "robot"
    ).get(pk=trial_id)


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
    from core.criteria import success_from_checks

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


def _may_score(actor, campaign: Campaign) -> bool:
    return access.has_role(actor, campaign.team_id, Role.OPERATOR, Role.ADMIN)


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
    campaign = trial.campaign
    if robot_actor:
        if actor.robot.pk != trial.robot_id:
            raise NotPermitted("A robot reports only its own trials.")
    elif not _may_score(actor, campaign):
        raise NotPermitted("Only operators and admins of the campaign's team score trials.")
    if campaign.status == Campaign.Status.DRAFT:
        raise CampaignNotRunning("The campaign has not started.")
    stages_reached, failure_codes, score = core_services.validate_judgement(
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
            trial = Trial.objects.select_for_update(of=("self",)).get(pk=trial.pk)
            if trial.state == Trial.State.SCHEDULED:
                raise TrialNotAssigned("This trial has not been handed to its robot yet.")
            if robot_actor and trial.state != Trial.State.ASSIGNED:
                raise TrialAlreadyReported(
                    "This trial was reported already; corrections are made by people."
                )
            if episode is None and trial.episode_id is not None:
                episode = trial.episode  # a correction keeps the attached episode
            verdict = check_verdict(trial.task_version, episode)
            if valid and outcome is None:
                if not verdict:
                    raise InvalidInput(
                        "outcome is required: no success check decided this trial.",
                        fields={"outcome": ["Required."]},
                    )
                outcome, source = verdict, OutcomeSource.CHECKS
            disagrees = bool(valid and verdict and outcome != verdict)
            now = timezone.now()
            before = core_services.snapshot(trial)
            TrialReport.objects.filter(trial=trial, superseded_at=None).update(superseded_at=now)
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
                reporter_label=_label(actor),
                **fields,
            )
            for name, value in fields.items():
                setattr(trial, name, value)
            trial.outcome_source = source
            trial.operator = operator or trial.operator
            trial.reported_by = _label(actor)
            trial.reported_at = now
            trial.save()
            core_services.record_audit(
                actor=actor,
                action="update",
                obj=trial,
                team=campaign.team,
                before=before,
                after=core_services.snapshot(trial),
            )
            if not Trial.objects.filter(
                campaign_id=campaign.pk,
                state__in=[Trial.State.SCHEDULED, Trial.State.ASSIGNED],
            ).exists():
                Campaign.objects.filter(pk=campaign.pk, status=Campaign.Status.RUNNING).update(
                    status=Campaign.Status.DONE, finished_at=now, updated_at=now
                )
            enqueue_leaderboard_refresh(Campaign.objects.get(pk=campaign.pk))
    except IntegrityError as exc:
        raise Conflict("That episode is attached to another trial already.") from exc
    return _trial_for_answer(trial.pk)


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


# --- Leaderboard snapshots ------------------------------------------------------------------


def enqueue_leaderboard_refresh(campaign: Campaign) -> None:
    """Queue a refresh of the campaign's leaderboard, and of its benchmark's when the
    campaign is done (benchmark boards pool finished campaigns), once this commits."""
    from evaluation.tasks import refresh_leaderboard_job

    jobs = [("campaign", str(campaign.pk))]
    if campaign.benchmark_id is not None and campaign.status == Campaign.Status.DONE:
        jobs.append(("benchmark", str(campaign.benchmark_id)))

    def enqueue():
        # Stamped after the commit: a snapshot started later sees the change, so a job may
        # skip its work when such a snapshot exists.
        requested_at = timezone.now().isoformat()
        for scope, object_id in jobs:
            refresh_leaderboard_job.enqueue(scope, object_id, requested_at)

    transaction.on_commit(enqueue)


def _enqueue_benchmark_refresh(benchmark_id) -> None:
    from evaluation.tasks import refresh_leaderboard_job

    transaction.on_commit(
        lambda: refresh_leaderboard_job.enqueue(
            "benchmark", str(benchmark_id), timezone.now().isoformat()
        )
    )


def refresh_leaderboard(
    *, scope: str, object_id, requested_at: datetime | None = None
) -> LeaderboardSnapshot:
    """Compute and store a leaderboard snapshot. Idempotent and coalescing: when a snapshot
    started after `requested_at` exists, it already covers the change and is returned; when
    the counts are unchanged, the latest snapshot is returned and nothing is stored."""
    from evaluation import selectors

    if scope == LeaderboardSnapshot.Scope.CAMPAIGN:
        target = Campaign.objects.select_related("benchmark").get(pk=object_id)
        latest = target.snapshots.first()
    elif scope == LeaderboardSnapshot.Scope.BENCHMARK:
        target = Benchmark.objects.get(pk=object_id)
        latest = target.snapshots.first()
    else:
        raise InvalidInput(f"Unknown leaderboard scope '{scope}'.")
    if latest is not None and requested_at is not None and latest.started_at >= requested_at:
        return latest
    started = timezone.now()
    if scope == LeaderboardSnapshot.Scope.CAMPAIGN:
        apply_pending_episode_checks(campaign=target)
        board = selectors.campaign_leaderboard(target)
    else:
        board = selectors.benchmark_leaderboard(target)
    if (
        latest is not None
        and latest.counts_digest == board.counts_digest
        and latest.scoring_version == board.scoring_version
    ):
        return latest
    snapshot = LeaderboardSnapshot.objects.create(
        scope=scope,
        benchmark=target if scope == LeaderboardSnapshot.Scope.BENCHMARK else None,
        campaign=target if scope == LeaderboardSnapshot.Scope.CAMPAIGN else None,
        scoring_version=board.scoring_version,
        data=board.to_dict(),
        counts_digest=board.counts_digest,
        trials_counted=board.trials_counted,
        started_at=started,
        compute_s=board.compute_s,
    )
    stale = LeaderboardSnapshot.objects.filter(
        Q(benchmark=snapshot.benchmark_id) if snapshot.benchmark_id else Q(campaign=target)
    ).values_list("pk", flat=True)[SNAPSHOTS_KEPT:]
    LeaderboardSnapshot.objects.filter(pk__in=list(stale)).delete()
    return snapshot


def leaderboard_data(scope: str, target) -> dict:
    """The latest leaderboard snapshot's JSON for a benchmark or campaign; computed now (and
    stored) when none exists yet."""
    snapshot = target.snapshots.first()
    if snapshot is None:
        snapshot = refresh_leaderboard(scope=scope, object_id=target.pk)
    return snapshot.data | {
        "snapshot_id": snapshot.pk,
        "computed_at": snapshot.computed_at.isoformat(),
    }
