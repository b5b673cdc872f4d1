"""Robustness across conditions: per-condition rates and the worst condition with a
simultaneous interval (Bonferroni-adjusted Wilson); Pearson's chi-square test of homogeneity
across conditions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from proving_ground.stats.conventions import (
    DEFAULT_CONFIDENCE,
    Result,
    check_counts,
    check_probability_level,
    sps,
)
from proving_ground.stats.intervals import wilson_bounds, z_two_sided


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
    simultaneous Wilson interval (all conditions hold jointly at the family confidence)."""

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
    differences of rates in [0, 1]; ``worst_over_best`` is None when the best rate is 0."""

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


def robustness_summary(
    conditions: Mapping[str, tuple[int, int]],
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    family_confidence: float = DEFAULT_CONFIDENCE,
) -> RobustnessSummary:
    """Success by condition and the worst condition with a simultaneous interval.

    Each of the m conditions gets a Wilson interval at level 1 - (1 - family_confidence)/m
    (Bonferroni), so all hold together with probability >= family_confidence and the worst
    condition's interval needs no further correction. The worst condition is the lowest
    observed rate (first in input order on ties). Heterogeneity is Pearson's chi-square
    across conditions (None with a single condition).
    """
    if not conditions:
        raise ValueError("robustness_summary needs at least one condition")
    level = check_probability_level(confidence, "confidence")
    family = check_probability_level(family_confidence, "family_confidence")
    names = list(conditions)
    counts = [check_counts(*conditions[name], label=str(name)) for name in names]
    z = z_two_sided(level)
    z_simultaneous = z_two_sided(1.0 - (1.0 - family) / len(names))
    rows = []
    for name, (k, n) in zip(names, counts, strict=True):
        low, high = wilson_bounds(k, n, z)
        sim_low, sim_high = wilson_bounds(k, n, z_simultaneous)
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
    )
