"""The campaign planner's figures: how many trials a design runs, how long they take, and the
power of the test its comparisons use to detect a chosen difference (docs/evaluation.md,
"Planning a campaign"). No writes; the page's live figures and its server-side preview both
come from `plan_campaign`, so they agree.

Power is `proving_ground.stats.power.exact_power` of the test a comparison runs: McNemar's on
the pairs of a paired campaign; Boschloo's on an interleaved one's pooled trials (Fisher's
above `BOSCHLOO_MAX_TRIALS_PER_ARM` per arm, as `compare_two_policies` does), at the
Bonferroni level alpha / m for the m = P(P - 1)/2 planned comparisons of P policies (a lower
bound on the power under Holm, which the boards use). Trials needed come from
`exact_trials_per_policy`.

Cost bounds (a page must answer in about a second): Boschloo's rejection region costs about
2n exact tests (0.8 s cold at n = 40, 9 s at n = 100). Above `BOSCHLOO_PLANNED_MAX` per arm the
planner computes Fisher's power instead and says it is a lower bound: Boschloo's test rejects
every table Fisher's does (Boschloo 1970), so its power is at least Fisher's. For the same
reason trials needed are searched with Fisher's test on interleaved designs (Boschloo's needs
at most as many), and only up to `NEEDED_SEARCH_MAX` per policy (the normal approximation is
given beyond). Rejection regions are cached per process by n and level, whatever the rates;
trials needed also in the shared cache (every web worker, and across restarts).
A cold search is still slow: 50% vs 70% at 0.05 scans Fisher's power from n = 46 to 102, 18 s
on a loaded two-core machine (then cached). So the page's live panel asks twice: the trials
and the duration at once (`with_power=False`), then the power.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache

from django.core.cache import cache

from evaluation.models import Campaign
from evaluation.services.campaigns import replicates_per_cell
from proving_ground.stats.comparisons import BOSCHLOO_MAX_TRIALS_PER_ARM
from proving_ground.stats.conventions import DEFAULT_ALPHA
from proving_ground.stats.power import (
    exact_power,
    exact_trials_per_policy,
    power_trials_per_policy,
)

#: Seconds allowed per trial beyond the task's time limit: resetting the scene to the
#: condition, loading the policy, starting the episode. A planning figure, not measured.
RESET_ALLOWANCE_S = 60.0
TARGET_POWER = 0.8
#: Per arm: Boschloo's power is computed up to here, Fisher's (a lower bound) above.
BOSCHLOO_PLANNED_MAX = 50
#: Trials per policy (pairs per comparison when paired) the exact search goes up to.
NEEDED_SEARCH_MAX = 150


@dataclass(frozen=True)
class PlanFigures:
    """What a design costs and what it can detect. Counts are trials unless named pairs."""

    policies: int
    cells: int
    trials: int  # in the whole campaign
    trials_per_policy: int  # each policy, over all cells
    duration_s: float  # sum over trials of the task's time limit plus the reset allowance
    reset_allowance_s: float
    comparisons: int  # policy pairs, P(P - 1)/2
    # Per comparison: trials per policy (interleaved) or pairs (paired), pooled over cells.
    per_comparison: int
    baseline: float
    candidate: float
    alpha: float
    alpha_per_comparison: float  # Bonferroni level for m comparisons
    test: str  # the test whose power is given: "boschloo", "fisher" or "mcnemar"
    board_test: str  # the test the comparisons run
    power: float | None  # None with fewer than two policies
    power_is_lower_bound: bool  # Fisher's power stands in for Boschloo's
    needed: int | None  # per comparison, as per_comparison; None when not found
    needed_test: str
    needed_beyond: int | None  # the search's limit when `needed` was not found under it
    needed_estimate: int | None  # the normal approximation (Cohen's h), given with the power
    needed_trials_per_cell: int | None  # trials per cell that reach `needed`
    enough: bool  # power >= TARGET_POWER
    power_pending: bool = False  # asked without power (with_power=False), two policies or more

    @property
    def duration_h(self) -> float:
        return self.duration_s / 3600.0

    def as_json(self) -> dict:
        return asdict(self) | {"duration_h": round(self.duration_h, 2), "target": TARGET_POWER}


def plan_campaign(
    *,
    policies: int,
    time_limits_s: list[float],
    trials_per_cell: int,
    mode: str,
    baseline: float,
    difference: float,
    alpha: float = DEFAULT_ALPHA,
    with_power: bool = True,
) -> PlanFigures:
    """Figures for `policies` policy versions on cells whose tasks have `time_limits_s` (one
    entry per cell), `trials_per_cell` trials per policy and cell, in `mode` ("interleaved"
    or "paired"), detecting `baseline` vs `baseline + difference` (rates in [0, 1]).
    `with_power=False` leaves out the power and the trials needed (None, `power_pending`
    set): the counts and the duration at once, while the exact tests (seconds the first
    time) are computed by a second call. Raises ValueError for rates outside [0, 1] or an
    empty design."""
    if policies < 1 or not time_limits_s or trials_per_cell < 1:
        raise ValueError("a plan needs a policy, a cell and a trial per cell")
    candidate = baseline + difference
    if not (0.0 <= baseline <= 1.0 and 0.0 <= candidate <= 1.0 and difference > 0.0):
        raise ValueError("the baseline and baseline + difference must be rates in [0, 1]")
    paired = mode == Campaign.Mode.PAIRED and policies >= 2
    cells = len(time_limits_s)
    replicates = replicates_per_cell(trials_per_cell, policies, mode) if paired else None
    if paired:
        per_cell = policies * (policies - 1) * replicates
        per_comparison = replicates * cells  # pairs
        trials_per_policy = (policies - 1) * replicates * cells
    else:
        per_cell = policies * trials_per_cell
        per_comparison = trials_per_cell * cells
        trials_per_policy = per_comparison
    comparisons = max(1, policies * (policies - 1) // 2)
    board_test = "mcnemar" if paired else _unpaired(per_comparison)
    test = board_test
    if board_test == "boschloo" and per_comparison > BOSCHLOO_PLANNED_MAX:
        test = "fisher"
    power = None
    if policies >= 2 and with_power:
        power = exact_power(
            baseline, candidate, per_comparison, alpha=alpha, comparisons=comparisons, test=test
        )
    needed_test = "mcnemar" if paired else ("fisher" if board_test == "boschloo" else board_test)
    needed, beyond, estimate = None, None, None
    if with_power:
        needed, beyond, estimate = _needed(baseline, candidate, alpha, comparisons, needed_test)
    per_cell_needed = None
    if needed is not None:
        blocks = math.ceil(needed / cells)
        per_cell_needed = blocks * (policies - 1) if paired else blocks
    return PlanFigures(
        policies=policies,
        cells=cells,
        trials=per_cell * cells,
        trials_per_policy=trials_per_policy,
        duration_s=per_cell * math.fsum(limit + RESET_ALLOWANCE_S for limit in time_limits_s),
        reset_allowance_s=RESET_ALLOWANCE_S,
        comparisons=comparisons,
        per_comparison=per_comparison,
        baseline=baseline,
        candidate=candidate,
        alpha=alpha,
        alpha_per_comparison=alpha / comparisons,
        test=test,
        board_test=board_test,
        power=power,
        power_is_lower_bound=test != board_test,
        needed=needed,
        needed_test=needed_test,
        needed_beyond=beyond,
        needed_estimate=estimate,
        needed_trials_per_cell=per_cell_needed,
        enough=power is not None and power >= TARGET_POWER,
        power_pending=policies >= 2 and not with_power,
    )


def _unpaired(n: int) -> str:
    return "boschloo" if n <= BOSCHLOO_MAX_TRIALS_PER_ARM else "fisher"


@lru_cache(maxsize=512)
def _needed(
    baseline: float, candidate: float, alpha: float, comparisons: int, test: str
) -> tuple[int | None, int | None, int]:
    """(exact trials needed or None, the search limit when not found, normal estimate).
    Kept in the shared cache too (a pure function of its arguments), so one process's
    search answers every web worker, and after a restart."""
    key = f"pg:planner:needed:{baseline!r}:{candidate!r}:{alpha!r}:{comparisons}:{test}"
    found = cache.get(key)
    if found is None:
        found = _search_needed(baseline, candidate, alpha, comparisons, test)
        cache.set(key, list(found), timeout=30 * 24 * 3600)
    return tuple(found)


def _search_needed(
    baseline: float, candidate: float, alpha: float, comparisons: int, test: str
) -> tuple[int | None, int | None, int]:
    estimate = power_trials_per_policy(baseline, candidate, alpha / comparisons, TARGET_POWER)
    if estimate > NEEDED_SEARCH_MAX:  # the exact answer is at least about this: skip
        return None, NEEDED_SEARCH_MAX, estimate
    try:
        needed = exact_trials_per_policy(
            baseline,
            candidate,
            alpha=alpha,
            power=TARGET_POWER,
            comparisons=comparisons,
            test=test,
            max_trials=NEEDED_SEARCH_MAX,
        )
    except ValueError:
        return None, NEEDED_SEARCH_MAX, estimate
    return needed, None, estimate
