"""Optimality gap and probability of improvement (Agarwal et al. 2021), with intervals."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from proving_ground.stats.rliable import (
    optimality_gap,
    optimality_gap_interval,
    probability_of_improvement,
    probability_of_improvement_interval,
)

RNG = np.random.default_rng(7)
X = np.round(RNG.beta(5, 2, size=(8, 4)) * 4) / 4  # stage scores in quarters: many ties
Y = np.round(RNG.beta(3, 3, size=(6, 4)) * 4) / 4


def _rliable_optimality_gap(scores, gamma=1):
    return gamma - np.mean(np.minimum(scores, gamma))  # rliable's metrics.py form


def _rliable_probability_of_improvement(x, y):
    # rliable's metrics.py: Mann-Whitney U (alternative="greater") / (n_x n_y) per task.
    values = []
    for task in range(x.shape[1]):
        if np.array_equal(x[:, task], y[:, task]):
            values.append(0.5)
        else:
            u = scipy.stats.mannwhitneyu(x[:, task], y[:, task], alternative="greater")[0]
            values.append(u / (x.shape[0] * y.shape[0]))
    return np.mean(values)


def test_optimality_gap_is_the_mean_shortfall_below_gamma_as_in_rliable():
    assert optimality_gap([[1, 0.5], [0.8, 1.2]]) == pytest.approx(0.175)
    assert optimality_gap(X) == pytest.approx(_rliable_optimality_gap(X))
    assert optimality_gap(X, gamma=0.5) == pytest.approx(_rliable_optimality_gap(X, 0.5))
    assert optimality_gap(np.ones((3, 2))) == 0.0


def test_probability_of_improvement_is_mann_whitney_over_tasks_as_in_rliable():
    assert probability_of_improvement(X, Y) == pytest.approx(
        _rliable_probability_of_improvement(X, Y)
    )
    assert probability_of_improvement(X, Y) + probability_of_improvement(Y, X) == pytest.approx(1)
    assert probability_of_improvement(X, X) == pytest.approx(0.5)
    # One task, ties count one half: X = [1, 0.5], Y = [0.5]: (1 + 0.5) / 2.
    assert probability_of_improvement([[1.0], [0.5]], [[0.5]]) == pytest.approx(0.75)


def test_intervals_contain_the_estimate_and_are_reproducible():
    gap = optimality_gap_interval(X)
    assert gap.low <= gap.estimate <= gap.high
    assert gap.estimate == pytest.approx(optimality_gap(X))
    assert gap == optimality_gap_interval(X.tolist())
    poi = probability_of_improvement_interval(X, Y)
    assert poi.low <= poi.estimate <= poi.high
    assert poi.estimate == pytest.approx(probability_of_improvement(X, Y))
    assert poi == probability_of_improvement_interval(X, Y)
    assert poi.to_dict()["resamples"] == 2000
    assert poi != probability_of_improvement_interval(X, Y[:5])


def test_bootstrap_resamples_runs_within_each_task():
    # One run per task: resampling within tasks cannot change anything.
    single = np.array([[0.2, 0.9, 0.4]])
    gap = optimality_gap_interval(single)
    assert gap.low == gap.high == pytest.approx(optimality_gap(single))
    # Task columns that are constant contribute no spread; the width comes from the others.
    constant = np.column_stack([np.full(10, 0.3), np.linspace(0, 1, 10)])
    only_second = optimality_gap_interval(constant[:, 1:])
    both = optimality_gap_interval(constant)
    assert both.high - both.low == pytest.approx((only_second.high - only_second.low) / 2, abs=0.02)


def test_interval_covers_the_truth_about_as_often_as_it_claims():
    # 200 data sets of 10 runs x 3 tasks from Beta(2, 2): true optimality gap 0.5 at gamma 1.
    rng = np.random.default_rng(1)
    covered = sum(
        lo <= 0.5 <= hi
        for lo, hi in (
            (r.low, r.high)
            for r in (
                optimality_gap_interval(rng.beta(2, 2, (10, 3)), resamples=500) for _ in range(200)
            )
        )
    )
    assert 0.85 <= covered / 200 <= 1.0


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="runs x tasks"):
        optimality_gap([1, 2, 3])
    with pytest.raises(ValueError, match="finite"):
        optimality_gap([[np.nan]])
    with pytest.raises(ValueError, match="tasks"):
        probability_of_improvement(np.ones((2, 3)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="resamples"):
        optimality_gap_interval(X, resamples=10)
