"""proving_ground.stats.stratified against statsmodels' StratifiedTable: the CMH test (with
and without the continuity correction), the Mantel-Haenszel odds ratio and its
Robins-Breslow-Greenland interval, and the Breslow-Day test."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.contingency_tables import StratifiedTable, Table2x2

from proving_ground.stats.stratified import stratified_test

TABLES = {
    "three tasks": [[[18, 2], [10, 10]], [[7, 3], [5, 5]], [[3, 7], [1, 9]]],
    "zero cells": [[[0, 5], [2, 3]], [[4, 1], [4, 1]], [[9, 1], [3, 7]]],
    "B better": [[[2, 8], [5, 5]], [[10, 10], [8, 12]]],
    "uneven sizes": [[[1, 1], [0, 3]], [[30, 20], [22, 28]], [[4, 0], [2, 2]], [[6, 9], [3, 12]]],
    "heterogeneous": [[[19, 1], [5, 15]], [[5, 15], [12, 8]], [[10, 10], [10, 10]]],
}


def reference(strata, correction):
    table = StratifiedTable([np.asarray(s, dtype=float) for s in strata])
    null = table.test_null_odds(correction=correction)
    low, high = table.oddsratio_pooled_confint()
    return {
        "statistic": float(null.statistic),
        "p_value": float(null.pvalue),
        "odds_ratio": float(table.oddsratio_pooled),
        "odds_ratio_low": float(low),
        "odds_ratio_high": float(high),
        "homogeneity_p": float(table.test_equal_odds().pvalue),
    }


def cmh_deviation(strata):
    a = np.asarray(strata, dtype=float)
    n = a.sum(axis=(1, 2))
    return abs(np.sum(a[:, 0, 0] - a[:, 0].sum(1) * a[:, :, 0].sum(1) / n))


@pytest.mark.parametrize("name", sorted(TABLES))
@pytest.mark.parametrize("correction", [False, True])
def test_every_figure_equals_statsmodels(name, correction):
    strata = TABLES[name]
    if correction and cmh_deviation(strata) < 0.5:
        pytest.skip("statsmodels does not floor the corrected deviation at 0")
    result = stratified_test(strata, correction=correction).to_dict()
    expected = reference(strata, correction)
    for field, value in expected.items():
        assert result[field] == pytest.approx(value, rel=1e-9, abs=1e-12), field


def test_worked_example():
    result = stratified_test(TABLES["three tasks"])
    assert round(result.statistic, 2) == 8.45
    assert round(result.p_value, 4) == 0.0036
    assert round(result.odds_ratio, 2) == 4.75
    assert (round(result.odds_ratio_low, 2), round(result.odds_ratio_high, 2)) == (1.60, 14.06)
    assert round(result.homogeneity_p, 2) == 0.56


def test_the_continuity_correction_is_floored_at_zero():
    strata = [[[5, 5], [5, 5]], [[3, 2], [3, 2]]]
    assert cmh_deviation(strata) < 0.5
    assert stratified_test(strata, correction=True).statistic == 0.0
    assert stratified_test(strata, correction=True).p_value == 1.0


def test_uninformative_strata_are_left_out_where_statsmodels_gives_nan():
    informative = TABLES["three tasks"]
    # An all-success stratum, a one-trial stratum, a stratum without B's trials.
    padded = informative + [[[5, 0], [4, 0]], [[1, 0], [0, 0]], [[2, 3], [0, 0]]]
    with np.errstate(all="ignore"):
        assert math.isnan(reference(padded, False)["statistic"])
    assert stratified_test(padded) == stratified_test(informative)
    # With only an all-success stratum added, statsmodels' CMH and odds ratio are defined
    # and equal ours. Its Breslow-Day is finite only by rounding (E[a] = a up to 1e-16,
    # variance ~ 0) and counts the stratum as a degree of freedom: the same statistic on
    # 3 degrees of freedom instead of our 2.
    all_success = informative + [[[5, 0], [4, 0]]]
    with np.errstate(all="ignore"):
        expected = reference(all_success, False)
        bd = StratifiedTable([np.asarray(s, dtype=float) for s in all_success]).test_equal_odds()
    result = stratified_test(all_success).to_dict()
    for field in ("statistic", "p_value", "odds_ratio", "odds_ratio_low", "odds_ratio_high"):
        assert result[field] == pytest.approx(expected[field], rel=1e-9)
    assert result["homogeneity_p"] == stratified_test(informative).homogeneity_p
    assert scipy.stats.chi2.isf(result["homogeneity_p"], 2) == pytest.approx(bd.statistic)


def test_one_stratum_gives_the_tables_odds_ratio_and_woolfs_interval():
    stratum = [[18, 2], [10, 10]]
    result = stratified_test([stratum])
    table = Table2x2(np.asarray(stratum, dtype=float))
    assert result.odds_ratio == pytest.approx(table.oddsratio, rel=1e-12)
    low, high = table.oddsratio_confint()
    assert result.odds_ratio_low == pytest.approx(low, rel=1e-9)
    assert result.odds_ratio_high == pytest.approx(high, rel=1e-9)
    assert result.homogeneity_p is None


def test_a_common_odds_ratio_of_one_has_a_breslow_day_test():
    # statsmodels divides by 1 - r there and returns NaN; the limit is E[a] = (a+b)(a+c)/n.
    strata = [[[5, 5], [5, 5]], [[8, 2], [2, 8]], [[2, 8], [8, 2]]]
    result = stratified_test(strata)
    assert result.odds_ratio == 1.0
    assert 0.0 < result.homogeneity_p < 0.01
    nudged = stratified_test(
        [[[5, 5], [5, 5]], [[8, 2], [2, 8]], [[2, 8], [8, 2]], [[1000, 1], [999, 1]]]
    )
    assert nudged.odds_ratio != 1.0
    expected = reference(
        [[[5, 5], [5, 5]], [[8, 2], [2, 8]], [[2, 8], [8, 2]], [[1000, 1], [999, 1]]], False
    )
    assert nudged.homogeneity_p == pytest.approx(expected["homogeneity_p"], rel=1e-6)


def test_a_separated_comparison_has_an_infinite_or_zero_odds_ratio_and_no_interval():
    a_never_fails = [[[10, 0], [5, 5]], [[8, 0], [3, 5]]]
    result = stratified_test(a_never_fails)
    assert result.odds_ratio is None
    assert (result.odds_ratio_low, result.odds_ratio_high, result.homogeneity_p) == (None,) * 3
    assert result.p_value < 0.001
    a_never_succeeds = [[[0, 10], [5, 5]], [[0, 8], [3, 5]]]
    assert stratified_test(a_never_succeeds).odds_ratio == 0.0


cell = st.integers(min_value=1, max_value=60)
stratum = st.tuples(st.tuples(cell, cell), st.tuples(cell, cell))


@settings(max_examples=60, deadline=None)
@given(st.lists(stratum, min_size=2, max_size=6), st.booleans())
def test_random_tables_equal_statsmodels(strata, correction):
    if correction and cmh_deviation(strata) < 0.5:
        return
    result = stratified_test(strata, correction=correction).to_dict()
    with np.errstate(all="ignore"):
        expected = reference(strata, correction)
    if math.isnan(expected["homogeneity_p"]):
        # statsmodels divides by 1 - r: NaN when the pooled odds ratio is exactly 1.
        assert expected["odds_ratio"] == 1.0
        del expected["homogeneity_p"]
        assert 0.0 <= result["homogeneity_p"] <= 1.0
    for field, value in expected.items():
        assert result[field] == pytest.approx(value, rel=1e-7, abs=1e-12), field


@pytest.mark.parametrize(
    ("strata", "error"),
    [
        ([], ValueError),
        ([[[5, 0], [4, 0]]], ValueError),
        ([[[1, 2, 3], [4, 5, 6]]], ValueError),
        ([[[1, 2], [3, -1]]], ValueError),
        ([[[1, 2], [3, 1.5]]], TypeError),
    ],
)
def test_bad_strata_raise(strata, error):
    with pytest.raises(error):
        stratified_test(strata)
