"""The worst-condition interval holds its level: exact coverage by enumeration.

``robustness_summary`` reports [min_g L_g, min_g U_g] for the lowest true rate. With the
conditions independent, its coverage is a product over conditions: the interval covers
p_min = min_g p_g when every U_g >= p_min and at least one L_g <= p_min, so

    coverage = prod_g P(U_g >= p_min) - prod_g P(U_g >= p_min and L_g > p_min),

each factor a sum of binomial probabilities over the condition's k = 0..n.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from proving_ground.stats.robustness import robustness_summary, simultaneous_bounds


def worst_condition_coverage(rates, trials, method, family_confidence=0.95):
    """Exact probability that the worst-condition interval contains min(rates)."""
    p_min = min(rates)
    m = len(rates)
    bounds = np.array(
        [simultaneous_bounds(k, trials, m, family_confidence, method) for k in range(trials + 1)]
    )
    upper_ok = bounds[:, 1] >= p_min
    lower_above = bounds[:, 0] > p_min
    all_upper, all_upper_and_above = 1.0, 1.0
    for p in rates:
        pmf = stats.binom.pmf(np.arange(trials + 1), trials, p)
        all_upper *= pmf[upper_ok].sum()
        all_upper_and_above *= pmf[upper_ok & lower_above].sum()
    return all_upper - all_upper_and_above


@pytest.mark.parametrize("conditions", [2, 4, 8])
def test_exact_worst_condition_interval_holds_95_percent_at_a_rate_near_one(conditions):
    coverage = worst_condition_coverage([0.99] * conditions, 10, "clopper-pearson")
    assert coverage >= 0.95


@pytest.mark.parametrize(("conditions", "old_coverage"), [(2, 0.818), (4, 0.669), (8, 0.448)])
def test_the_old_bonferroni_wilson_interval_covered_far_below_95_percent(conditions, old_coverage):
    # The bug the exact bounds fix: under Wilson at the Bonferroni level 9/10 already
    # excludes 0.99 (upper bound 0.982-0.989), so the interval covered only when every
    # condition went 10/10, with probability 0.99^(10 m).
    coverage = worst_condition_coverage([0.99] * conditions, 10, "wilson")
    assert coverage < 0.95
    assert coverage == pytest.approx(0.99 ** (10 * conditions))
    assert coverage == pytest.approx(old_coverage, abs=0.001)


@pytest.mark.parametrize("method", ["clopper-pearson", "wilson"])
def test_the_coverage_formula_matches_brute_force_enumeration_of_robustness_summary(method):
    rates, trials = (0.3, 0.6, 0.9), 6
    covered = 0.0
    for outcome in itertools.product(range(trials + 1), repeat=len(rates)):
        summary = robustness_summary(
            {f"c{g}": (k, trials) for g, k in enumerate(outcome)}, method=method
        )
        if summary.worst_low <= min(rates) <= summary.worst_high:
            covered += np.prod(
                [stats.binom.pmf(k, trials, p) for k, p in zip(outcome, rates, strict=True)]
            )
    assert worst_condition_coverage(rates, trials, method) == pytest.approx(covered, abs=1e-12)


@pytest.mark.parametrize("trials", [5, 10, 20, 50])
@pytest.mark.parametrize("conditions", [1, 2, 4, 8])
@pytest.mark.parametrize("rate", [0.01, 0.1, 0.5, 0.9, 0.97, 0.99])
def test_exact_worst_condition_interval_never_falls_below_its_level(rate, conditions, trials):
    assert worst_condition_coverage([rate] * conditions, trials, "clopper-pearson") >= 0.95


def test_the_worst_condition_interval_is_exact_clopper_pearson_at_the_bonferroni_level():
    summary = robustness_summary({"bright": (18, 20), "novel": (9, 20)})
    row = summary.conditions[1]
    expected = stats.binomtest(9, 20).proportion_ci(1 - 0.05 / 2, method="exact")
    assert (row.simultaneous_low, row.simultaneous_high) == pytest.approx(
        (expected.low, expected.high)
    )
    assert (summary.worst_low, summary.worst_high) == pytest.approx((expected.low, expected.high))
    assert summary.simultaneous_method == "clopper-pearson"


def test_the_old_method_stays_available_for_boards_scored_with_it():
    summary = robustness_summary({"only": (7, 10)}, method="wilson")
    assert (summary.worst_low, summary.worst_high) == pytest.approx((0.3968, 0.8922), abs=1e-4)
    assert summary.simultaneous_method == "wilson"
    with pytest.raises(ValueError, match="method"):
        robustness_summary({"only": (7, 10)}, method="wald")
