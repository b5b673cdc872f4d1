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

The package's modules, each imported here so `services.<name>` keeps working:
- `_common`: the domain errors and the rights checks (`may_score` among them);
- `policies`: policies, policy versions and their observation/action contract;
- `benchmarks`: benchmarks, their cells, editing and publishing;
- `campaigns`: campaigns, their schedule, starting and finishing;
- `trials`: the robot's trial flow and results (reports, corrections, episode checks);
- `leaderboards`: queueing, computing and reading leaderboard snapshots.
"""

from evaluation.services._common import (
    BenchmarkFrozen,
    CampaignNotDraft,
    CampaignNotRunning,
    RequirementsNotMet,
    TrialAlreadyReported,
    TrialNotAssigned,
    may_score,
)
from evaluation.services.benchmarks import (
    MAX_CELLS,
    create_benchmark,
    publish_benchmark,
    update_benchmark,
)
from evaluation.services.campaigns import (
    build_campaign_schedule,
    create_campaign,
    finish_campaign,
    replicates_per_cell,
    start_campaign,
)
from evaluation.services.leaderboard_queue import enqueue_leaderboard_refresh
from evaluation.services.leaderboards import (
    SNAPSHOTS_KEPT,
    leaderboard_data,
    refresh_leaderboard,
)
from evaluation.services.policies import (
    MAX_REQUIRED_KEYS,
    create_policy,
    create_policy_version,
    normalize_requires,
    requirement_gaps,
    update_policy,
)
from evaluation.services.trials import (
    apply_pending_episode_checks,
    check_verdict,
    next_trial,
    next_trial_for_robot,
    report_trial_result,
)

__all__ = [
    "MAX_CELLS",
    "MAX_REQUIRED_KEYS",
    "SNAPSHOTS_KEPT",
    "BenchmarkFrozen",
    "CampaignNotDraft",
    "CampaignNotRunning",
    "RequirementsNotMet",
    "TrialAlreadyReported",
    "TrialNotAssigned",
    "apply_pending_episode_checks",
    "build_campaign_schedule",
    "check_verdict",
    "create_benchmark",
    "create_campaign",
    "create_policy",
    "create_policy_version",
    "enqueue_leaderboard_refresh",
    "finish_campaign",
    "leaderboard_data",
    "may_score",
    "next_trial",
    "next_trial_for_robot",
    "normalize_requires",
    "publish_benchmark",
    "refresh_leaderboard",
    "replicates_per_cell",
    "report_trial_result",
    "requirement_gaps",
    "start_campaign",
    "update_benchmark",
    "update_policy",
]
