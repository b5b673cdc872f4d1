"""Anytime-valid betting tests on partial credit (Waudby-Smith & Ramdas 2023)."""

from __future__ import annotations

import numpy as np
import pytest

from proving_ground.stats.betting import (
    betting_e_process,
    betting_paired_test,
    betting_threshold_test,
)

ALPHA = 0.05
SEQUENCES = 2000
# Monte Carlo margin: three binomial standard errors of a rate alpha over 2000 sequences.
MARGIN = 3 * np.sqrt(ALPHA * (1 - ALPHA) / SEQUENCES)  # 0.0146
QUARTERS = np.array([0.0, 0.25, 0.5, 0.75, 1.0])


def _ever_rejects(paths):
    return (paths.max(axis=1) >= 1 / ALPHA).mean()


def test_paired_type_one_error_under_no_difference_monitored_after_every_pair():
    # A and B draw stage scores (quarters) from the same skewed distribution: E[a - b] = 0.
    rng = np.random.default_rng(2023)
    weights = [0.3, 0.1, 0.1, 0.2, 0.3]
    a = rng.choice(QUARTERS, p=weights, size=(SEQUENCES, 200))
    b = rng.choice(QUARTERS, p=weights, size=(SEQUENCES, 200))
    rate = _ever_rejects(betting_e_process((a - b + 1) / 2, 0.5))
    assert rate <= ALPHA + MARGIN


def test_threshold_type_one_error_at_the_boundary_of_the_null():
    # Mean exactly 0.7 (Beta(7, 3)): the hardest null for "mean > 0.7".
    rng = np.random.default_rng(11)
    scores = rng.beta(7, 3, size=(SEQUENCES, 200))
    assert _ever_rejects(betting_e_process(scores, 0.7, "greater")) <= ALPHA + MARGIN
    assert _ever_rejects(betting_e_process(scores, 0.7, "two-sided")) <= ALPHA + MARGIN


def test_power_on_an_easy_alternative():
    # A's mean score 0.75, B's 0.45, 100 pairs: the test stops early almost always.
    rng = np.random.default_rng(5)
    a = rng.beta(3, 1, size=(500, 100))
    b = rng.beta(9, 11, size=(500, 100))
    paths = betting_e_process((a - b + 1) / 2, 0.5)
    assert _ever_rejects(paths) >= 0.95
    stops = [betting_paired_test(a[i], b[i]) for i in range(20)]
    assert all(s.decision == "a_better" for s in stops)
    assert np.median([s.stopped_at for s in stops]) < 40


def test_paired_test_reports_decision_e_value_and_anytime_p():
    a = [1.0] * 12
    b = [0.0] * 12
    result = betting_paired_test(a, b)
    assert result.rejected and result.decision == "a_better"
    assert result.e_value >= 20 and result.stopped_at <= 12
    assert result.anytime_p_value == pytest.approx(1 / result.e_value)
    assert betting_paired_test(b, a).decision == "b_better"
    quiet = betting_paired_test([0.5, 0.25, 0.75], [0.5, 0.75, 0.25])
    assert quiet.decision == "continue" and not quiet.rejected and quiet.stopped_at is None
    assert quiet.anytime_p_value == 1.0 or quiet.anytime_p_value > ALPHA
    assert quiet.to_dict()["observations"] == 3
    assert betting_paired_test([], []).e_value == 1.0


def test_e_process_is_predictable_the_first_bet_is_neutral_at_one_half():
    # With the starting estimate 1/2 = m, no stake on the first score: wealth stays 1.
    assert betting_e_process([1.0], 0.5)[0] == pytest.approx(1.0)
    path = betting_e_process([0.9] * 30, 0.6, "greater")
    # The first estimate (1/2) is below 0.6: no stake yet; then the wealth grows every step.
    assert path[0] == 1.0 and np.all(np.diff(path) > 0) and path[-1] > 20
    assert np.all(betting_e_process([0.9] * 30, 0.6, "less") <= 1.0)


def test_threshold_test_certifies_a_policy_well_above_the_threshold():
    rng = np.random.default_rng(3)
    result = betting_threshold_test(rng.beta(9, 1, size=80), 0.7)
    assert result.decision == "above"
    below = betting_threshold_test(rng.beta(1, 4, size=80), 0.7, alternative="two-sided")
    assert below.decision == "below"


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        betting_threshold_test([1.2], 0.5)
    with pytest.raises(ValueError, match="equal lengths"):
        betting_paired_test([1.0], [])
    with pytest.raises(ValueError, match="null_mean"):
        betting_threshold_test([0.5], 1.0)
    with pytest.raises(ValueError, match="alternative"):
        betting_threshold_test([0.5], 0.5, alternative="up")
