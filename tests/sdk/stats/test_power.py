"""Exact power of the campaign's tests, and the trials needed to reach a target."""

from __future__ import annotations

import itertools

import pytest
import scipy.stats

from proving_ground.stats.comparisons import cached_boschloo_p, cached_fisher_p, mcnemar_exact
from proving_ground.stats.power import (
    exact_power,
    exact_trials_per_policy,
    power_trials_per_policy,
    rejection_staircase,
)


def _enumerated_power(p_b, p_c, n, level, p_value):
    """Power by brute force: every table, its probability, its p-value."""
    return sum(
        scipy.stats.binom.pmf(k_a, n, p_c) * scipy.stats.binom.pmf(k_b, n, p_b)
        for k_a, k_b in itertools.product(range(n + 1), repeat=2)
        if p_value(k_a, n, k_b, n, "two-sided") < level
    )


@pytest.mark.parametrize(
    ("test", "p_value", "n"), [("fisher", cached_fisher_p, 25), ("boschloo", cached_boschloo_p, 12)]
)
def test_the_staircase_walk_equals_full_enumeration(test, p_value, n):
    for level in (0.05, 0.05 / 3):
        assert exact_power(0.4, 0.8, n, alpha=level, test=test) == pytest.approx(
            _enumerated_power(0.4, 0.8, n, level, p_value), abs=1e-12
        )
    steps = rejection_staircase(n, 0.05, test)
    assert list(steps) == sorted(steps)


def test_mcnemar_power_equals_enumeration_over_pairs():
    n, only_c, only_b = 20, 0.3, 0.1
    brute = 0.0
    for a in range(n + 1):
        for b in range(n + 1 - a):
            prob = scipy.stats.multinomial.pmf([a, b, n - a - b], n, [only_c, only_b, 0.6])
            if mcnemar_exact(a, b) < 0.05:
                brute += prob
    assert exact_power(0.5, 0.7, n, test="mcnemar", discordant=(only_c, only_b)) == (
        pytest.approx(brute, abs=1e-12)
    )


def test_exact_power_falls_short_of_what_the_normal_approximation_promises():
    # 0.5 vs 0.8: the normal approximation says 38 trials per policy for 80%.
    assert power_trials_per_policy(0.5, 0.8) == 38
    assert exact_power(0.5, 0.8, 38) == pytest.approx(0.772, abs=0.002)  # Boschloo (auto)
    assert exact_power(0.5, 0.8, 38, test="fisher") == pytest.approx(0.730, abs=0.002)
    # 0.5 vs 0.85: 27 promised, 79.6% (Boschloo) / 72.7% (Fisher) delivered.
    n = power_trials_per_policy(0.5, 0.85)
    assert n == 27
    assert exact_power(0.5, 0.85, n) < 0.8
    assert exact_power(0.5, 0.85, n, test="fisher") < 0.75
    # Paired with independent outcomes within a pair, McNemar's test is weaker still.
    assert exact_power(0.5, 0.8, 38, test="mcnemar") < exact_power(0.5, 0.8, 38)


def test_planned_comparisons_lower_the_power_through_the_bonferroni_level():
    one = exact_power(0.5, 0.8, 38)
    three = exact_power(0.5, 0.8, 38, comparisons=3)
    assert three < one
    assert three == pytest.approx(exact_power(0.5, 0.8, 38, alpha=0.05 / 3))
    assert exact_power(0.5, 0.5, 30, test="fisher") <= 0.05  # the size, under the null


def test_exact_trials_per_policy_reaches_the_target_and_the_step_before_does_not():
    n = exact_trials_per_policy(0.5, 0.8, test="fisher")
    assert n > power_trials_per_policy(0.5, 0.8)
    assert exact_power(0.5, 0.8, n, test="fisher") >= 0.8
    assert exact_power(0.5, 0.8, n - 1, test="fisher") < 0.8
    paired = exact_trials_per_policy(0.5, 0.8, test="mcnemar", discordant=(0.35, 0.05))
    assert exact_power(0.5, 0.8, paired, test="mcnemar", discordant=(0.35, 0.05)) >= 0.8


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="p_candidate"):
        exact_power(0.5, 1.5, 10)
    with pytest.raises(ValueError, match="test"):
        exact_power(0.5, 0.8, 10, test="wald")
    with pytest.raises(ValueError, match="comparisons"):
        exact_power(0.5, 0.8, 10, comparisons=0)
    with pytest.raises(ValueError, match="up to 20"):
        exact_trials_per_policy(0.5, 0.55, test="fisher", max_trials=20)
