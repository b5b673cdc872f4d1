"""Scoring versions: how a campaign's or benchmark's trials become leaderboard figures.

Free of Django (numpy/scipy through `proving_ground.stats`), so a leaderboard can be recomputed
from exported counts anywhere. The input is the small grouped result the database returns
(one row per policy version x task version x condition with its counts), never the trials.

A scoring version is a name and a fixed set of rules. Changing a rule means a new name; a
benchmark stores the name it is scored by, so its figures never change meaning silently.

``pg-score/1``:

* A trial counts when it is *done* (valid, with an outcome); success is outcome "success".
  Invalid trials (success at reset, no actions, missing data, timeout, operator error) are
  excluded from every rate and counted by reason. Scheduled and assigned trials are
  "remaining".
* Cells (task version x condition): k/n, Wilson 95% interval, one-sided Clopper-Pearson
  lower bound (``stats.intervals.cell_summary``). Per task and per condition: the same on the
  pooled counts.
* A policy is *complete* when every cell of the design has at least one counted trial.
  Only complete policies are ranked and compared, so every ranked policy is measured on the
  same cells.
* Headline: the macro average over tasks (each task's rate pooled over its conditions, tasks
  weighted equally) with the seeded stratified bootstrap interval and the bootstrap rank
  interval (``stats.aggregates.policy_leaderboard``, 10,000 resamples).
* Comparisons: every pair of complete policies on their pooled counts with an exact test
  (Boschloo up to 100 trials per arm, Fisher above), Holm-adjusted at alpha 0.05; compact
  letter display (``stats.multiple_comparisons.pairwise_comparisons``).
* Robustness: per-condition rates and the worst condition with a Bonferroni-simultaneous
  Wilson interval and the heterogeneity test (``stats.robustness.robustness_summary``).
* Stage score: the mean stage score of the counted trials (partial credit, in [0, 1]).

``pg-score/2`` (one estimand per board; docs/statistics.md) changes three rules:

* Invalid trials the policy caused (``POLICY_FAULT_REASONS``) count as failures; others stay
  excluded. Invalid-trial rates are tested between policies (Holm); a significantly higher
  one is flagged and the board carries ``invalid_warning``.
* Ranks, rank intervals, pairwise tests and letters are all on the macro average
  (``stats.macro_estimand.macro_leaderboard``), not on pooled counts as in ``pg-score/1``.
* Seeds are order-free and the draws frozen across numpy versions.

``pg-score/2`` boards also carry, beside the frequentist figures (docs/statistics.md, "Bayesian
view and task-adjusted effects on the board"): per policy the Beta posterior of its pooled
success rate (uniform prior, 95% equal-tailed credible interval), P(best) over the ranked
policies on pooled counts, and pass^3 on pooled counts; on an unbalanced design with two or
more tasks, task-adjusted log-odds effects (``stats.logistic.logistic_effects``).

Results are frozen dataclasses with ``to_dict()``; the server stores that dict as the
leaderboard snapshot.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from proving_ground.stats.aggregates import (
    DEFAULT_BOOTSTRAP_RESAMPLES,
    LeaderboardRow,
    policy_leaderboard,
)
from proving_ground.stats.bayes import beta_posterior, pass_hat_k, probability_best
from proving_ground.stats.intervals import CellSummary, cell_summary
from proving_ground.stats.invalid_rates import invalid_rate_tests
from proving_ground.stats.logistic import SeparationError, logistic_effects
from proving_ground.stats.macro_estimand import macro_leaderboard
from proving_ground.stats.multiple_comparisons import pairwise_comparisons
from proving_ground.stats.robustness import robustness_summary

__all__ = [
    "DEFAULT_SCORING_VERSION",
    "INVALID_REASONS",
    "POLICY_FAULT_REASONS",
    "SCORING_VERSIONS",
    "CellCounts",
    "CellScore",
    "PolicyScore",
    "Scoreboard",
    "ScoringRules",
    "WorstCondition",
    "score",
]

# The invalid reasons a trial may carry, in display order (kept in step with the model).
INVALID_REASONS = ("success_at_reset", "no_actions", "missing_data", "timeout", "operator_error")
# The ones that are the policy's fault (the model: "The policy sent no actions"; a timeout is
# "Timed out for a reason other than the policy"). From pg-score/2 they count as failures.
POLICY_FAULT_REASONS = ("no_actions",)


@dataclasses.dataclass(frozen=True)
class ScoringRules:
    version: str
    confidence: float
    alpha: float
    resamples: int
    summary: str
    # "pooled": pairwise tests and letters on pooled counts (pg-score/1); "macro": everything
    # on the macro average (pg-score/2).
    estimand: str = "pooled"
    # Invalid reasons counted as failed trials instead of being excluded.
    failure_reasons: tuple[str, ...] = ()
    # The worst condition's simultaneous bounds: "wilson" (Bonferroni-Wilson, pg-score/1: its
    # coverage falls to 0.45, docs/statistics.md) or "clopper-pearson" (exact, pg-score/2).
    simultaneous_method: str = "wilson"


SCORING_VERSIONS: dict[str, ScoringRules] = {
    "pg-score/1": ScoringRules(
        version="pg-score/1",
        confidence=0.95,
        alpha=0.05,
        resamples=DEFAULT_BOOTSTRAP_RESAMPLES,
        summary=(
            "Done trials count (success = outcome success); invalid trials excluded and "
            "counted by reason. Macro average over tasks with a stratified bootstrap interval; "
            "Wilson intervals per cell; exact pairwise tests, Holm-adjusted, letter groups; "
            "worst condition with a simultaneous interval."
        ),
    ),
    "pg-score/2": ScoringRules(
        version="pg-score/2",
        confidence=0.95,
        alpha=0.05,
        resamples=DEFAULT_BOOTSTRAP_RESAMPLES,
        summary=(
            "Done trials count; invalid trials where the policy sent no actions count as "
            "failures, other invalid trials are excluded, and invalid-trial rates are tested "
            "between policies (Holm) with a warning. One estimand: the macro average over "
            "tasks is ranked, given bootstrap and rank intervals, compared pairwise "
            "(stratified permutation tests, Holm) and lettered; seeds are order-free; the "
            "worst condition has exact (Clopper-Pearson) simultaneous bounds."
        ),
        estimand="macro",
        failure_reasons=POLICY_FAULT_REASONS,
        simultaneous_method="clopper-pearson",
    ),
}
# New benchmarks and campaigns; a board keeps the version it was created with.
DEFAULT_SCORING_VERSION = "pg-score/2"


@dataclasses.dataclass(frozen=True)
class CellCounts:
    """One row of the grouped query: a policy version in one cell.

    ``trials`` counts done (valid) trials, ``successes`` those with outcome success,
    ``invalid`` the invalid ones (``invalid_by_reason`` splits them), ``remaining`` those
    scheduled or assigned; ``stage_score_sum`` sums the stage scores of done trials;
    ``disagreements`` counts trials whose success check contradicts their outcome."""

    policy: str
    task: str
    condition: str
    successes: int = 0
    trials: int = 0
    invalid: int = 0
    remaining: int = 0
    stage_score_sum: float = 0.0
    disagreements: int = 0
    invalid_by_reason: Mapping[str, int] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"policy {self.policy}, task {self.task}, condition {self.condition}"
        if not math.isfinite(self.stage_score_sum):
            raise ValueError(
                f"{where}: stage_score_sum is {self.stage_score_sum!r}; a stage score must be a "
                "number in [0, 1] (is a trial's stage_score NaN or infinite in the database?)"
            )
        if not 0.0 <= self.stage_score_sum <= self.trials + 1e-9:
            raise ValueError(
                f"{where}: stage_score_sum {self.stage_score_sum} is outside [0, trials = "
                f"{self.trials}]: every stage score lies in [0, 1]"
            )


class _Result:
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: nested dataclasses as dicts, tuples as lists."""
        return _lists(dataclasses.asdict(self))  # type: ignore[call-overload]


def _lists(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _lists(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_lists(item) for item in value]
    return value


@dataclasses.dataclass(frozen=True)
class CellScore(_Result):
    """k/n of one policy in a cell, a task (``condition`` None) or a condition (``task``
    None). ``rate``, ``low``, ``high`` and ``certified_low`` are None when n = 0."""

    task: str | None
    condition: str | None
    successes: int
    trials: int
    invalid: int
    remaining: int
    rate: float | None
    low: float | None
    high: float | None
    certified_low: float | None
    mean_stage_score: float | None
    invalid_reasons: dict[str, int]


@dataclasses.dataclass(frozen=True)
class WorstCondition(_Result):
    condition: str
    rate: float
    low: float
    high: float
    best_minus_worst: float
    heterogeneity_p: float | None
    family_confidence: float


@dataclasses.dataclass(frozen=True)
class PolicyScore(_Result):
    """One leaderboard row. ``macro_*``, ``rank*`` and ``letters`` are None for a policy that
    is not complete (some cell has no counted trial yet)."""

    policy: str
    complete: bool
    successes: int
    trials: int
    invalid: int
    remaining: int
    invalid_reasons: dict[str, int]
    disagreements: int
    rate: float | None
    low: float | None
    high: float | None
    mean_stage_score: float | None
    macro: float | None
    macro_low: float | None
    macro_high: float | None
    rank: int | None
    rank_low: int | None
    rank_high: int | None
    letters: str | None
    worst_condition: WorstCondition | None
    tasks: tuple[CellScore, ...]
    conditions: tuple[CellScore, ...]
    cells: tuple[CellScore, ...]
    # pg-score/2 only (absent from pg-score/1 dicts): invalid trials counted as failures, the
    # invalid-trial rate (all reasons, over settled trials), its Holm-adjusted p against the
    # rest of the board, and whether it is significantly higher.
    invalid_counted_as_failure: int | None = None
    invalid_rate: float | None = None
    invalid_p_adjusted: float | None = None
    invalid_flagged: bool | None = None
    # pg-score/2 only: the Beta posterior (uniform prior) of the pooled success rate, its mean
    # and 95% equal-tailed credible interval (None with no trials); P(best) on pooled counts
    # over the ranked policies (None for unranked rows); pass^3 on pooled counts (None under
    # 3 trials); the task-adjusted effect on the log-odds scale against the board's first
    # fitted policy, {"estimate", "standard_error", "low", "high"} (None unless fitted).
    posterior_mean: float | None = None
    credible_low: float | None = None
    credible_high: float | None = None
    p_best: float | None = None
    pass3: float | None = None
    adjusted_effect: dict[str, float] | None = None


@dataclasses.dataclass(frozen=True)
class Scoreboard(_Result):
    scoring_version: str
    confidence: float
    alpha: float
    resamples: int
    trials: int
    invalid: int
    remaining: int
    invalid_reasons: dict[str, int]
    rows: tuple[PolicyScore, ...]
    pairwise: tuple[dict[str, Any], ...]
    # pg-score/2 only: a sentence when some policy's invalid-trial rate is significantly
    # higher than the rest's, else None.
    invalid_warning: str | None = None
    # pg-score/2 only: a sentence when the order of the task-adjusted effects differs from
    # the macro ranking; the reason when adjusted effects were due but could not be fitted.
    adjusted_order_differs: str | None = None
    adjusted_unavailable: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        if SCORING_VERSIONS[self.scoring_version].estimand == "pooled":
            # pg-score/1 boards keep exactly the keys they always had.
            for key in _V2_BOARD_KEYS:
                data.pop(key)
            for row in data["rows"]:
                for key in _V2_ROW_KEYS:
                    row.pop(key)
        return data


_V2_ROW_KEYS = (
    "invalid_counted_as_failure",
    "invalid_rate",
    "invalid_p_adjusted",
    "invalid_flagged",
    "posterior_mean",
    "credible_low",
    "credible_high",
    "p_best",
    "pass3",
    "adjusted_effect",
)
_V2_BOARD_KEYS = ("invalid_warning", "adjusted_order_differs", "adjusted_unavailable")
# pass^k on the board: k = 3 (three tries in a row all succeed).
PASS_K = 3


@lru_cache(maxsize=65_536)
def cached_cell_summary(successes: int, trials: int, confidence: float) -> CellSummary:
    # Cached by counts: a refresh after one new result recomputes one cell, not all of them.
    return cell_summary(successes, trials, confidence)


class _Tally:
    """Counts summed over some cells of one policy."""

    __slots__ = ("k", "n", "invalid", "remaining", "stage_sum", "disagreements", "reasons")
    __slots__ += ("failed_invalid",)

    def __init__(self) -> None:
        self.k = self.n = self.invalid = self.remaining = self.disagreements = 0
        self.failed_invalid = 0
        self.stage_sum = 0.0
        self.reasons: dict[str, int] = defaultdict(int)

    def add(self, row: CellCounts, failure_reasons: tuple[str, ...] = ()) -> None:
        # Invalid trials for a reason in `failure_reasons` count as failed trials (stage
        # score 0), the others stay excluded.
        failed = sum(row.invalid_by_reason.get(reason, 0) for reason in failure_reasons)
        self.failed_invalid += failed
        self.k += row.successes
        self.n += row.trials + failed
        self.invalid += row.invalid - failed
        self.remaining += row.remaining
        self.stage_sum += row.stage_score_sum
        self.disagreements += row.disagreements
        for reason, count in row.invalid_by_reason.items():
            if count and reason not in failure_reasons:
                self.reasons[reason] += count

    def score(self, task: str | None, condition: str | None, confidence: float) -> CellScore:
        rate = low = high = certified = stage = None
        if self.n:
            summary = cached_cell_summary(self.k, self.n, confidence)
            rate, low, high = summary.rate, summary.wilson_low, summary.wilson_high
            certified = summary.certified_lower_bound
            stage = self.stage_sum / self.n
        return CellScore(
            task=task,
            condition=condition,
            successes=self.k,
            trials=self.n,
            invalid=self.invalid,
            remaining=self.remaining,
            rate=rate,
            low=low,
            high=high,
            certified_low=certified,
            mean_stage_score=stage,
            invalid_reasons=_ordered_reasons(self.reasons),
        )


def _ordered_reasons(reasons: Mapping[str, int]) -> dict[str, int]:
    known = {reason: reasons[reason] for reason in INVALID_REASONS if reasons.get(reason)}
    extra = {reason: count for reason, count in sorted(reasons.items()) if reason not in known}
    return known | {k: v for k, v in extra.items() if v}


def score(
    counts: Iterable[CellCounts],
    *,
    policies: Sequence[str],
    cells: Sequence[tuple[str, str]],
    version: str = DEFAULT_SCORING_VERSION,
) -> Scoreboard:
    """Score a design: ``policies`` (policy version ids, one row each, even with no trials),
    ``cells`` ((task, condition) pairs of the design) and the grouped ``counts``. Counts for
    a policy or cell outside the design are ignored. Raises KeyError for an unknown version.
    No side effects; deterministic (bootstrap seeds derive from the counts)."""
    rules = SCORING_VERSIONS[version]
    design = list(dict.fromkeys(cells))
    tasks = list(dict.fromkeys(task for task, _ in design))
    conditions = list(dict.fromkeys(condition for _, condition in design))
    in_design = set(design)
    wanted = set(policies)
    by_policy: dict[str, dict[tuple[str, str], _Tally]] = {p: {} for p in policies}
    total = _Tally()
    for row in counts:
        key = (row.task, row.condition)
        if row.policy not in wanted or key not in in_design:
            continue
        by_policy[row.policy].setdefault(key, _Tally()).add(row, rules.failure_reasons)
        total.add(row, rules.failure_reasons)

    confidence = rules.confidence
    partial: dict[str, dict[str, Any]] = {}
    for policy in policies:
        tallies = by_policy[policy]
        pooled, per_task, per_condition = _Tally(), defaultdict(_Tally), defaultdict(_Tally)
        cell_scores = []
        for task, condition in design:
            tally = tallies.get((task, condition)) or _Tally()
            cell_scores.append(tally.score(task, condition, confidence))
            for target in (pooled, per_task[task], per_condition[condition]):
                _merge(target, tally)
        partial[policy] = {
            "pooled": pooled,
            "cells": tuple(cell_scores),
            "tasks": tuple(per_task[t].score(t, None, confidence) for t in tasks),
            "conditions": tuple(per_condition[c].score(None, c, confidence) for c in conditions),
            "complete": bool(design) and all(cell.trials > 0 for cell in cell_scores),
        }

    complete = [policy for policy in policies if partial[policy]["complete"]]
    if rules.estimand == "macro":
        return _macro_board(policies, complete, partial, by_policy, design, tasks, total, rules)
    ranked = policy_leaderboard(
        {p: [(t.successes, t.trials) for t in partial[p]["tasks"]] for p in complete},
        confidence=confidence,
        resamples=rules.resamples,
    )
    ranks = {row.policy: row for row in ranked}
    letters: dict[str, str] = {}
    pairwise: tuple[dict[str, Any], ...] = ()
    if len(complete) >= 2:
        compared = pairwise_comparisons(
            {p: (partial[p]["pooled"].k, partial[p]["pooled"].n) for p in complete},
            alpha=rules.alpha,
        )
        letters = compared.letters
        pairwise = tuple(pair.to_dict() for pair in compared.pairs)
    elif complete:
        letters = {complete[0]: "a"}

    rows = [
        _policy_row(policy, partial[policy], ranks.get(policy), letters.get(policy), rules)
        for policy in policies
    ]
    position = {row.policy: index for index, row in enumerate(ranked)}
    rows.sort(key=lambda row: _board_order(row, position))
    return Scoreboard(
        scoring_version=rules.version,
        confidence=confidence,
        alpha=rules.alpha,
        resamples=rules.resamples,
        trials=total.n,
        invalid=total.invalid,
        remaining=total.remaining,
        invalid_reasons=_ordered_reasons(total.reasons),
        rows=tuple(rows),
        pairwise=pairwise,
    )


def _macro_board(
    policies: Sequence[str],
    complete: list[str],
    partial: dict[str, dict[str, Any]],
    by_policy: dict[str, dict[tuple[str, str], _Tally]],
    design: list[tuple[str, str]],
    tasks: list[str],
    total: _Tally,
    rules: ScoringRules,
) -> Scoreboard:
    """pg-score/2: rank, intervals, comparisons and letters all on the macro average."""
    designs = {
        policy: [
            [
                (tally.k, tally.n) if (tally := by_policy[policy].get(cell)) else (0, 0)
                for cell in design
                if cell[0] == task
            ]
            for task in tasks
        ]
        for policy in complete
    }
    board = (
        macro_leaderboard(
            designs, confidence=rules.confidence, alpha=rules.alpha, resamples=rules.resamples
        )
        if complete
        else None
    )
    macro_rows = {row.policy: row for row in board.rows} if board else {}
    invalid = _invalid_rates(policies, partial, rules.alpha)
    rows = []
    for policy in policies:
        row = _policy_row(policy, partial[policy], None, None, rules)
        macro = macro_rows.get(policy)
        if macro is not None:
            row = dataclasses.replace(
                row,
                macro=macro.estimate,
                macro_low=macro.low,
                macro_high=macro.high,
                rank=macro.rank,
                rank_low=macro.rank_low,
                rank_high=macro.rank_high,
                letters=macro.letters,
            )
        rows.append(dataclasses.replace(row, **invalid[policy]))
    position = {row.policy: index for index, row in enumerate(board.rows if board else ())}
    rows.sort(key=lambda row: _board_order(row, position))
    rows = _bayesian_view(rows, rules.confidence)
    rows, order_differs, unavailable = _adjusted_effects(rows, by_policy, design, tasks, rules)
    flagged = sum(1 for row in rows if row.invalid_flagged)
    warning = None
    if flagged:
        warning = (
            f"{flagged} {'policy has' if flagged == 1 else 'policies have'} a significantly "
            "higher invalid-trial rate than the rest (exact tests, Holm-adjusted, alpha "
            f"{rules.alpha}). Invalid trials the policy caused count as failures; the others "
            "are excluded from success rates, which a difference here can bias."
        )
    return Scoreboard(
        scoring_version=rules.version,
        confidence=rules.confidence,
        alpha=rules.alpha,
        resamples=rules.resamples,
        trials=total.n,
        invalid=total.invalid,
        remaining=total.remaining,
        invalid_reasons=_ordered_reasons(total.reasons),
        rows=tuple(rows),
        pairwise=tuple(pair.to_dict() for pair in board.pairs) if board else (),
        invalid_warning=warning,
        adjusted_order_differs=order_differs,
        adjusted_unavailable=unavailable,
    )


def _bayesian_view(rows: list[PolicyScore], confidence: float) -> list[PolicyScore]:
    """Posterior mean and credible interval (uniform prior) and pass^3 on each row's pooled
    counts; P(best) on pooled counts over the ranked rows."""
    ranked = {row.policy: (row.successes, row.trials) for row in rows if row.rank is not None}
    best = probability_best(ranked) if ranked else {}
    result = []
    for row in rows:
        changes: dict[str, Any] = {"p_best": best.get(row.policy)}
        if row.trials:
            posterior = beta_posterior(row.successes, row.trials, confidence=confidence)
            changes |= {
                "posterior_mean": posterior.mean,
                "credible_low": posterior.low,
                "credible_high": posterior.high,
            }
        if row.trials >= PASS_K:
            changes["pass3"] = pass_hat_k(row.successes, row.trials, PASS_K)
        result.append(dataclasses.replace(row, **changes))
    return result


def _adjusted_effects(
    rows: list[PolicyScore],
    by_policy: dict[str, dict[tuple[str, str], _Tally]],
    design: list[tuple[str, str]],
    tasks: list[str],
    rules: ScoringRules,
) -> tuple[list[PolicyScore], str | None, str | None]:
    """Task-adjusted log-odds effects when the design is unbalanced (two or more tasks, and
    some policy lacks trials in some cell or the cells' trial counts differ): the binomial GLM
    logit(p) = policy + task on every (policy, task x condition) cell with trials, the board's
    first fitted row the reference. Returns the rows, the order sentence and the reason the
    fit failed (each None when not applicable)."""
    fitted = [row.policy for row in rows if row.trials]
    if len(tasks) < 2 or len(fitted) < 2:
        return rows, None, None
    sizes = {
        tally.n if (tally := by_policy[policy].get(cell)) else 0
        for policy in fitted
        for cell in design
    }
    if len(sizes) < 2:
        return rows, None, None
    cells = [
        (policy, task, tally.k, tally.n)
        for policy in fitted
        for task in tasks
        for cell in design
        if cell[0] == task and (tally := by_policy[policy].get(cell)) and tally.n
    ]
    try:
        effects = logistic_effects(cells, confidence=rules.confidence)
    except SeparationError:
        return (
            rows,
            None,
            "separation: some policy or task succeeds (or fails) in every trial where the "
            "model could fit it exactly, so its log-odds effect is infinite and has no "
            "estimate",
        )
    except ValueError as error:
        return rows, None, str(error)
    keys = ("estimate", "standard_error", "low", "high")
    rows = [
        dataclasses.replace(
            row, adjusted_effect=dict(zip(keys, effects.policy_effects[row.policy], strict=True))
        )
        if row.policy in effects.policy_effects
        else row
        for row in rows
    ]
    ranked = [row for row in rows if row.rank is not None and row.adjusted_effect is not None]
    sentence = None
    if len(ranked) >= 2 and _order_differs(ranked):
        sentence = (
            "Ordered by task-adjusted effects (log-odds, adjusted for task difficulty on this "
            "unbalanced design), the ranked policies come in a different order than by macro "
            "success: the two estimands weight tasks and trials differently."
        )
    return rows, sentence, None


def _order_differs(ranked: list[PolicyScore]) -> bool:
    """True when some pair is strictly ordered one way by macro rank and the other way by
    the adjusted effect (ties on either side do not count)."""
    for index, first in enumerate(ranked):
        for second in ranked[index + 1 :]:
            by_rank = (first.rank or 0) - (second.rank or 0)
            by_effect = second.adjusted_effect["estimate"] - first.adjusted_effect["estimate"]  # type: ignore[index]
            if by_rank * by_effect < 0:
                return True
    return False


def _invalid_rates(
    policies: Sequence[str], partial: dict[str, dict[str, Any]], alpha: float
) -> dict[str, dict[str, Any]]:
    """Invalid-trial rates (every reason, over settled trials) tested between policies."""
    pooled = {policy: partial[policy]["pooled"] for policy in policies}
    tests = invalid_rate_tests(
        {
            p: (t.invalid + t.failed_invalid, t.n + t.invalid)  # n already holds failed_invalid
            for p, t in pooled.items()
        },
        alpha=alpha,
    )
    return {
        p: {
            "invalid_counted_as_failure": pooled[p].failed_invalid,
            "invalid_rate": tests[p].rate,
            "invalid_p_adjusted": tests[p].p_adjusted,
            "invalid_flagged": tests[p].flagged,
        }
        for p in policies
    }


def _board_order(row: PolicyScore, position: dict[str, int]) -> tuple:
    """Ranked rows in board order, then the others by pooled rate and name."""
    rate = row.rate if row.rate is not None else -1.0
    return (row.policy not in position, position.get(row.policy, 0), -rate, row.policy)


def _merge(target: _Tally, source: _Tally) -> None:
    target.k += source.k
    target.n += source.n
    target.invalid += source.invalid
    target.remaining += source.remaining
    target.stage_sum += source.stage_sum
    target.disagreements += source.disagreements
    target.failed_invalid += source.failed_invalid
    for reason, count in source.reasons.items():
        target.reasons[reason] += count


def _policy_row(
    policy: str,
    parts: dict[str, Any],
    ranked: LeaderboardRow | None,
    letters: str | None,
    rules: ScoringRules,
) -> PolicyScore:
    pooled: _Tally = parts["pooled"]
    overall = pooled.score(None, None, rules.confidence)
    conditions = [c for c in parts["conditions"] if c.trials]
    worst = None
    if conditions and len(conditions) == len(parts["conditions"]):
        summary = robustness_summary(
            {c.condition: (c.successes, c.trials) for c in conditions},
            confidence=rules.confidence,
            family_confidence=rules.confidence,
            method=rules.simultaneous_method,
        )
        worst = WorstCondition(
            condition=summary.worst_condition,
            rate=summary.worst_rate,
            low=summary.worst_low,
            high=summary.worst_high,
            best_minus_worst=summary.best_minus_worst,
            heterogeneity_p=summary.heterogeneity_p,
            family_confidence=summary.family_confidence,
        )
    return PolicyScore(
        policy=policy,
        complete=parts["complete"],
        successes=pooled.k,
        trials=pooled.n,
        invalid=pooled.invalid,
        remaining=pooled.remaining,
        invalid_reasons=overall.invalid_reasons,
        disagreements=pooled.disagreements,
        rate=overall.rate,
        low=overall.low,
        high=overall.high,
        mean_stage_score=overall.mean_stage_score,
        macro=ranked.macro.estimate if ranked else None,
        macro_low=ranked.macro.low if ranked else None,
        macro_high=ranked.macro.high if ranked else None,
        rank=ranked.rank if ranked else None,
        rank_low=ranked.rank_low if ranked else None,
        rank_high=ranked.rank_high if ranked else None,
        letters=letters if ranked else None,
        worst_condition=worst,
        tasks=parts["tasks"],
        conditions=parts["conditions"],
        cells=parts["cells"],
    )
