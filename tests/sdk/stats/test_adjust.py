"""adjust_pvalues against statsmodels' multipletests for every method, on worked examples
and on random p-value vectors (hypothesis), and holm_adjust as its Holm case."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.multitest import multipletests

from proving_ground.stats.multiple_comparisons import (
    ADJUSTMENT_METHODS,
    adjust_pvalues,
    holm_adjust,
)

RAW = [0.01, 0.04, 0.03, 0.005, 0.2]
EXPECTED = {
    "bonferroni": [0.05, 0.2, 0.15, 0.025, 1.0],
    "holm": [0.04, 0.09, 0.09, 0.025, 0.2],
    "hommel": [0.04, 0.08, 0.06, 0.025, 0.2],
    "fdr_bh": [0.025, 0.05, 0.05, 0.025, 0.2],
}


@pytest.mark.parametrize("method", ADJUSTMENT_METHODS)
def test_the_worked_example_for_every_method(method):
    adjusted = adjust_pvalues(RAW, method=method)
    assert adjusted == pytest.approx(EXPECTED[method], abs=1e-12)
    assert adjusted == pytest.approx(list(multipletests(RAW, method=method)[1]), abs=1e-15)


p_value = st.one_of(
    st.floats(min_value=0.0, max_value=1.0),
    st.sampled_from([0.0, 1.0, 0.05, 0.01]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(p_value, min_size=1, max_size=40), st.sampled_from(ADJUSTMENT_METHODS))
def test_random_vectors_equal_statsmodels(pvalues, method):
    adjusted = np.asarray(adjust_pvalues(pvalues, method=method))
    expected = multipletests(np.asarray(pvalues), method=method)[1]
    np.testing.assert_allclose(adjusted, expected, rtol=1e-12, atol=1e-15)
    raw = np.asarray(pvalues)
    assert np.all(adjusted >= raw) and np.all(adjusted <= 1.0)
    order = np.argsort(raw, kind="stable")
    assert np.all(np.diff(adjusted[order]) >= 0.0)


@settings(max_examples=100, deadline=None)
@given(st.lists(p_value, min_size=1, max_size=40))
def test_the_methods_order_by_power(pvalues):
    # Bonferroni >= Holm >= Hommel, and Benjamini-Hochberg is the least strict.
    bonferroni, holm, hommel, bh = (
        np.asarray(adjust_pvalues(pvalues, method=method))
        for method in ("bonferroni", "holm", "hommel", "fdr_bh")
    )
    assert np.all(bonferroni >= holm - 1e-15)
    assert np.all(holm >= hommel - 1e-15)
    assert np.all(hommel >= bh - 1e-15)


def test_holm_adjust_is_the_holm_case():
    assert holm_adjust(RAW) == adjust_pvalues(RAW) == adjust_pvalues(RAW, method="holm")


def test_empty_input_and_bad_input():
    assert adjust_pvalues([], method="hommel") == []
    with pytest.raises(ValueError, match="method"):
        adjust_pvalues(RAW, method="sidak")
    for bad in ([0.1, 1.2], [-0.1], [float("nan")], [[0.1, 0.2]]):
        with pytest.raises(ValueError):
            adjust_pvalues(bad)
