"""Intervals for the mean stage score, the IQM and the best-minus-worst gap."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from proving_ground.stats.aggregates import interquartile_mean
from proving_ground.stats.intervals import wilson_interval
from proving_ground.stats.robustness import robustness_summary
from proving_ground.stats.uncertainty import (
    best_minus_worst_interval,
    iqm_interval,
    stage_score_interval,
)


def test_stage_score_interval_of_zero_one_scores_is_the_cells_wilson_interval():
    result = stage_score_interval([1] * 7 + [0] * 3)
    assert result.estimate == pytest.approx(0.7)
    assert (result.low, result.high) == pytest.approx(wilson_interval(7, 10))


def test_stage_score_interval_is_never_degenerate_and_stays_in_the_unit_interval():
    all_full = stage_score_interval([1.0] * 10)
    assert all_full.high == 1.0 and all_full.low == pytest.approx(wilson_interval(10, 10)[0])
    none = stage_score_interval([0.0] * 5)
    assert none.low == 0.0 and 0.0 < none.high < 1.0
    worked = stage_score_interval([1, 1, 0.5, 0])
    assert (worked.estimate, worked.low, worked.high) == pytest.approx(
        (0.625, 0.2194, 0.9081), abs=1e-4
    )


@pytest.mark.parametrize(
    ("draw", "true_mean"),
    [
        (lambda rng, size: rng.beta(2, 2, size), 0.5),
        (lambda rng, size: rng.beta(5, 1, size), 5 / 6),
        # partial credit piled at the ends: 0 w.p. 0.2, 1 w.p. 0.5, else uniform
        (
            lambda rng, size: np.select(
                [(u := rng.random(size)) < 0.2, u < 0.7], [0.0, 1.0], rng.random(size)
            ),
            0.5 + 0.3 * 0.5,
        ),
    ],
)
@pytest.mark.parametrize("n", [10, 30])
def test_stage_score_interval_covers_the_true_mean_by_simulation(draw, true_mean, n):
    rng = np.random.default_rng(12)
    runs = 2000
    covered = 0
    for _ in range(runs):
        result = stage_score_interval(draw(rng, n))
        covered += result.low <= true_mean <= result.high
    # Monte Carlo standard error at 0.95 with 2,000 runs: 0.005.
    assert covered / runs >= 0.94


def test_iqm_interval_is_seeded_by_the_sorted_scores_and_contains_the_iqm():
    scores = [0, 0.1, 0.2, 0.3, 0.5, 0.6, 0.7, 0.9, 1, 1]
    first = iqm_interval(scores)
    assert iqm_interval(list(reversed(scores))) == first
    assert first.estimate == pytest.approx(interquartile_mean(scores))
    assert first.low <= first.estimate <= first.high
    assert iqm_interval(scores, resamples=500) != first
    same = iqm_interval([0.4, 0.4, 0.4])
    assert same.low == same.high == pytest.approx(0.4)


@pytest.mark.parametrize(("a", "b"), [(1, 1), (2, 5)])
def test_iqm_interval_covers_the_population_iqm_by_simulation(a, b):
    # Population IQM: the mean of the distribution between its 25% and 75% quantiles.
    u = np.linspace(0.25, 0.75, 20001)
    true_iqm = float(np.mean(stats.beta.ppf(u, a, b)))
    rng = np.random.default_rng(3)
    runs = 300
    covered = sum(
        (result := iqm_interval(rng.beta(a, b, 30), resamples=2000)).low <= true_iqm <= result.high
        for _ in range(runs)
    )
    # A percentile bootstrap at n = 30 runs a little below nominal; 300 runs: MC s.e. 0.013.
    assert covered / runs >= 0.88


def _gap_coverage(rates, trials):
    covered = 0.0
    gap = max(rates) - min(rates)
    for outcome in itertools.product(range(trials + 1), repeat=len(rates)):
        result = best_minus_worst_interval([(k, trials) for k in outcome])
        if result.low <= gap <= result.high:
            covered += math.prod(
                stats.binom.pmf(k, trials, p) for k, p in zip(outcome, rates, strict=True)
            )
    return covered


@pytest.mark.parametrize("rates", [(0.5, 0.5), (0.9, 0.99), (0.2, 0.7), (0.5, 0.5, 0.5)])
def test_best_minus_worst_interval_holds_its_level_by_exact_enumeration(rates):
    assert _gap_coverage(rates, 8) >= 0.95


def test_best_minus_worst_interval_agrees_with_the_robustness_summary():
    conditions = {"bright": (18, 20), "dim": (11, 20), "novel": (9, 20)}
    result = best_minus_worst_interval(conditions)
    summary = robustness_summary(conditions)
    assert result.estimate == pytest.approx(summary.best_minus_worst)
    lows = [row.simultaneous_low for row in summary.conditions]
    highs = [row.simultaneous_high for row in summary.conditions]
    assert result.low == pytest.approx(max(0.0, max(lows) - min(highs)))
    assert result.high == pytest.approx(max(highs) - min(lows))
    assert best_minus_worst_interval(list(conditions.values())) == result


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: stage_score_interval([0.5, float("nan")]), "NaN"),
        (lambda: stage_score_interval([]), "at least one"),
        (lambda: stage_score_interval([0.5, 1.2]), r"\[0, 1\]"),
        (lambda: stage_score_interval([0.5], confidence=1.0), "confidence"),
        (lambda: iqm_interval([0.1, float("nan"), 0.3]), "NaN"),
        (lambda: iqm_interval([0.1, float("inf")]), "NaN"),
        (lambda: iqm_interval([0.1]), "at least two"),
        (lambda: iqm_interval([0.1, 0.2], resamples=10), "resamples"),
        (lambda: best_minus_worst_interval([(3, 10)]), "at least two"),
        (lambda: best_minus_worst_interval([(3, 10), (0, 0)]), "condition 1"),
        (lambda: best_minus_worst_interval([(3, 10), (11, 10)]), "exceed"),
    ],
)
def test_bad_input_is_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()
