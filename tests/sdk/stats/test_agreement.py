"""cohens_kappa against statsmodels.stats.inter_rater.cohens_kappa on contingency tables
(expanded to label lists), a hand computation, and properties (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
from hypothesis import given
from hypothesis import strategies as st
from statsmodels.stats.inter_rater import cohens_kappa as statsmodels_kappa

from proving_ground.stats.agreement import cohens_kappa
from proving_ground.stats.intervals import wilson_interval

TABLES = [
    [[20, 5], [10, 15]],
    [[45, 3], [2, 10]],
    [[10, 2, 1], [3, 12, 2], [0, 4, 9]],
    [[0, 5], [5, 0]],
    [[30, 0], [0, 10]],
    [[1, 0, 0, 0], [0, 1, 1, 0], [2, 0, 0, 1], [0, 0, 1, 3]],
    [[40, 10], [0, 0]],
]


def labels_of(table):
    first, second = [], []
    for i, row in enumerate(table):
        for j, count in enumerate(row):
            first += [f"c{i}"] * count
            second += [f"c{j}"] * count
    return first, second


@pytest.mark.parametrize("table", TABLES)
@pytest.mark.parametrize("confidence", [0.9, 0.95])
def test_kappa_and_interval_equal_statsmodels(table, confidence):
    result = cohens_kappa(*labels_of(table), confidence=confidence)
    with np.errstate(all="ignore"):  # its z test divides by a zero null SE on some tables
        expected = statsmodels_kappa(np.asarray(table))
    assert result.kappa == pytest.approx(expected.kappa, abs=1e-12)
    # statsmodels' own interval is at 95% (kappa_low, kappa_upp); others from its ASE.
    half_width = scipy.stats.norm.isf((1 - confidence) / 2) * expected.std_kappa
    if confidence == 0.95:
        assert expected.kappa_upp - expected.kappa == pytest.approx(half_width, abs=1e-12)
    assert result.low == pytest.approx(max(-1.0, expected.kappa - half_width), abs=1e-12)
    assert result.high == pytest.approx(min(1.0, expected.kappa + half_width), abs=1e-12)
    assert result.n == int(np.sum(table))


def test_operator_against_the_automatic_check_by_hand():
    # 50 trials: both say success 20, both failure 15, operator success / check failure 5,
    # operator failure / check success 10.
    operator = [True] * 25 + [False] * 25
    check = [True] * 20 + [False] * 5 + [True] * 10 + [False] * 15
    result = cohens_kappa(operator, check)
    assert result.observed_agreement == pytest.approx(0.7)
    assert result.expected_agreement == pytest.approx(0.5 * 0.6 + 0.5 * 0.4)
    assert result.kappa == pytest.approx(0.4)
    assert (round(result.low, 3), round(result.high, 3)) == (0.151, 0.649)
    assert result.to_dict() == {
        "kappa": result.kappa,
        "low": result.low,
        "high": result.high,
        "observed_agreement": 0.7,
        "expected_agreement": result.expected_agreement,
        "n": 50,
    }


def test_categories_are_the_union_of_both_raters():
    result = cohens_kappa(["a", "b", "a", "c"], ["a", "b", "b", "d"])
    expected = statsmodels_kappa(np.array([[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]]))
    assert result.kappa == pytest.approx(expected.kappa, abs=1e-12)


label = st.sampled_from(["success", "failure", "partial"])


@given(st.lists(st.tuples(label, label), min_size=1, max_size=200))
def test_kappa_lies_in_minus_one_one_and_inside_its_interval(pairs):
    first = [a for a, _ in pairs]
    second = [b for _, b in pairs]
    if len(set(first) | set(second)) == 1:
        with pytest.raises(ValueError, match="same label"):
            cohens_kappa(first, second)
        return
    for interval in ("large-sample", "agreement-score"):
        result = cohens_kappa(first, second, interval=interval)
        assert -1.0 <= result.low <= result.kappa <= result.high <= 1.0
    assert 0.0 <= result.expected_agreement < 1.0
    assert 0.0 <= result.observed_agreement <= 1.0


def test_bad_input_raises():
    with pytest.raises(ValueError, match="different numbers"):
        cohens_kappa([1, 0], [1])
    with pytest.raises(ValueError):
        cohens_kappa([], [])
    with pytest.raises(ValueError, match="same label"):
        cohens_kappa([True] * 5, [True] * 5)
    with pytest.raises(ValueError):
        cohens_kappa([1, 0], [1, 0], confidence=1.0)


def test_the_agreement_score_interval_keeps_width_when_raters_agreed_on_every_item():
    """At 19 of 19 agreements the large-sample standard error is 0 and its interval [1, 1];
    the true kappa of raters who agree 97% of the time lies outside it (bench_coverage:
    coverage 0.42-0.47 at 20 items). Wilson's interval of the agreement keeps width."""
    first = ["success"] * 14 + ["failure"] * 5
    large = cohens_kappa(first, first)
    assert (large.low, large.high) == (1.0, 1.0)
    score = cohens_kappa(first, first, interval="agreement-score")
    assert score.kappa == 1.0 and score.high == 1.0
    expected_agreement = (14 / 19) ** 2 + (5 / 19) ** 2
    wilson_low = wilson_interval(19, 19)[0]
    assert score.low == pytest.approx((wilson_low - expected_agreement) / (1 - expected_agreement))
    assert score.low < 0.75
    with pytest.raises(ValueError, match="interval must be one of"):
        cohens_kappa(first, first, interval="bootstrap")
