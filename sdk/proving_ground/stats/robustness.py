"""Robustness across conditions: per-condition rates and the worst condition with a
simultaneous interval (Bonferroni-adjusted exact Clopper-Pearson bounds); Pearson's
chi-square test of homogeneity across conditions.

Why exact bounds. Bonferroni guarantees the family level only if every interval holds its
own level; Wilson's does not at small n near 0 or 1 (one 10-trial cell at p = 0.99 reads
10/10 or 9/10, and 9/10 at the Bonferroni level excludes 0.99). With 8 conditions of 10 trials
at p = 0.99 the old Bonferroni-Wilson worst-condition interval covered the worst rate with
probability 0.45 (0.67 with 4 conditions, 0.82 with 2: 0.99^(10 m), computed exactly in
``tests/sdk/stats/test_robustness_coverage.py``). Clopper-Pearson's coverage is never below
its level, so the Bonferroni family level, and the worst-condition interval's, hold at every
n and rate (conservatively).
``method="wilson"`` keeps the old Bonferroni-Wilson figures for boards scored before.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from proving_ground.stats.conventions import (
    DEFAULT_CONFIDENCE,
    Result,
    as_count,
    check_counts,
    check_probability_level,
    sps,
)
from proving_ground.stats.intervals import (
    clopper_pearson_interval,
    wilson_bounds,
    z_two_sided,
)

# How each condition's simultaneous interval is computed at the Bonferroni level
# 1 - (1 - family_confidence) / m. "clopper-pearson" (the default) is exact; "wilson" is the
# method of boards scored before it (its family coverage can fall far below nominal).
SIMULTANEOUS_METHODS = ("clopper-pearson", "wilson")
DEFAULT_SIMULTANEOUS_METHOD = "clopper-pearson"


def chi_square_homogeneity(counts: Sequence[tuple[int, int]]) -> tuple[float, int, float]:
    """Pearson's chi-square test that every group has the same success rate (no continuity
    correction). Returns ``(statistic >= 0, degrees of freedom, p in [0, 1])``; when every
    trial succeeded or every trial failed the rates are trivially equal: (0.0, df, 1.0)."""
    checked = [check_counts(*cell, label=f"group {index}") for index, cell in enumerate(counts)]
    if len(checked) < 2:
        raise ValueError("a homogeneity test needs at least two groups")
    table = np.array([[k, n - k] for k, n in checked], dtype=float)
    df = len(checked) - 1
    if table[:, 0].sum() == 0 or table[:, 1].sum() == 0:
        return 0.0, df, 1.0
    result = sps.chi2_contingency(table, correction=False)
    return float(result.statistic), int(result.dof), float(result.pvalue)


@dataclasses.dataclass(frozen=True)
class ConditionRate(Result):
    """One condition: k/n, its own Wilson interval at ``confidence`` and the Bonferroni
    simultaneous interval (exact Clopper-Pearson by default; all conditions hold jointly at
    the family confidence)."""

    condition: str
    successes: int
    trials: int
    rate: float
    wilson_low: float
    wilson_high: float
    simultaneous_low: float
    simultaneous_high: float


@dataclasses.dataclass(frozen=True)
class RobustnessSummary(Result):
    """Per-condition rates, the worst condition and how far it falls behind.

    ``worst_low``/``worst_high`` = [min_g L_g, min_g U_g] over the simultaneous intervals: a
    valid interval for the lowest true rate, whichever condition it is. ``overall_rate`` is
    pooled (all trials), ``macro_rate`` the mean of condition rates; the gaps are
    differences of rates in [0, 1]; ``worst_over_best`` is None when the best rate is 0.
    ``simultaneous_method`` names how the simultaneous intervals were computed."""

    conditions: tuple[ConditionRate, ...]
    worst_condition: str
    worst_rate: float
    worst_low: float
    worst_high: float
    overall_rate: float
    macro_rate: float
    overall_minus_worst: float
    best_minus_worst: float
    worst_over_best: float | None
    heterogeneity_chi2: float | None
    heterogeneity_df: int | None
    heterogeneity_p: float | None
    family_confidence: float
    simultaneous_method: str = DEFAULT_SIMULTANEOUS_METHOD


def check_simultaneous_method(method: str) -> str:
    """`method` if it is one of ``SIMULTANEOUS_METHODS``, else ``ValueError``."""
    if method not in SIMULTANEOUS_METHODS:
        raise ValueError(f"method must be one of {SIMULTANEOUS_METHODS}, got {method!r}")
    return method


def simultaneous_bounds(
    successes: int,
    trials: int,
    conditions: int,
    family_confidence: float = DEFAULT_CONFIDENCE,
    method: str = DEFAULT_SIMULTANEOUS_METHOD,
) -> tuple[float, float]:
    """One condition's Bonferroni interval: two-sided at level 1 - (1 - family) / conditions,
    exact Clopper-Pearson (``method="clopper-pearson"``) or Wilson (``"wilson"``, the old
    method). With every condition's interval from here, all hold together with probability
    >= family_confidence for Clopper-Pearson (exactly, at every n and rate)."""
    k, n = check_counts(successes, trials)
    family = check_probability_level(family_confidence, "family_confidence")
    count = as_count(conditions, "conditions")
    if count < 1:
        raise ValueError("conditions must be at least 1")
    level = 1.0 - (1.0 - family) / count
    if check_simultaneous_method(method) == "wilson":
        return wilson_bounds(k, n, z_two_sided(level))
    low, high = clopper_pearson_interval(k, n, level)  # type: ignore[misc]
    return float(low), float(high)


def robustness_summary(
    conditions: Mapping[str, tuple[int, int]],
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    family_confidence: float = DEFAULT_CONFIDENCE,
    method: str = DEFAULT_SIMULTANEOUS_METHOD,
) -> RobustnessSummary:
    """Success by condition and the worst condition with a simultaneous interval.

    Each of the m conditions gets an exact Clopper-Pearson interval at level
    1 - (1 - family_confidence)/m (Bonferroni), so all hold together with probability
    >= family_confidence and the worst condition's interval [min L, min U] needs no further
    correction. ``method="wilson"`` uses Bonferroni-Wilson intervals instead: the figures of
    boards scored before, whose coverage can be far below the family level (0.45 with 8
    conditions of 10 trials at a rate of 0.99). The worst condition is the lowest
    observed rate (first in input order on ties). Heterogeneity is Pearson's chi-square
    across conditions (None with a single condition).
    """
    if not conditions:
        raise ValueError("robustness_summary needs at least one condition")
    level = check_probability_level(confidence, "confidence")
    family = check_probability_level(family_confidence, "family_confidence")
    check_simultaneous_method(method)
    names = list(conditions)
    counts = [check_counts(*conditions[name], label=str(name)) for name in names]
    z = z_two_sided(level)
    rows = []
    for name, (k, n) in zip(names, counts, strict=True):
        low, high = wilson_bounds(k, n, z)
        sim_low, sim_high = simultaneous_bounds(k, n, len(names), family, method)
        rows.append(ConditionRate(name, k, n, k / n, low, high, sim_low, sim_high))
    rates = [row.rate for row in rows]
    worst = rows[int(np.argmin(rates))]
    best_rate = max(rates)
    overall = sum(k for k, _ in counts) / sum(n for _, n in counts)
    heterogeneity = chi_square_homogeneity(counts) if len(counts) > 1 else (None, None, None)
    return RobustnessSummary(
        conditions=tuple(rows),
        worst_condition=worst.condition,
        worst_rate=worst.rate,
        worst_low=min(row.simultaneous_low for row in rows),
        worst_high=min(row.simultaneous_high for row in rows),
        overall_rate=overall,
        macro_rate=float(np.mean(rates)),
        overall_minus_worst=overall - worst.rate,
        best_minus_worst=best_rate - worst.rate,
        worst_over_best=worst.rate / best_rate if best_rate > 0 else None,
        heterogeneity_chi2=heterogeneity[0],
        heterogeneity_df=heterogeneity[1],
        heterogeneity_p=heterogeneity[2],
        family_confidence=family,
        simultaneous_method=method,
    )
