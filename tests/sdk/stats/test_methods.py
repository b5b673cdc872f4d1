"""proving_ground.stats beyond the reference vectors: properties of every method (hypothesis),
worked examples, the sequential tests' error rates, and edge cases."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

# The statistics import scipy on first use (about a second); importing it here keeps that
# one-off cost out of the first hypothesis example's deadline.
import scipy.stats  # noqa: F401
from hypothesis import given, settings
from hypothesis import strategies as st

from proving_ground.stats.aggregates import interquartile_mean, macro_average, policy_leaderboard
from proving_ground.stats.bradley_terry import bradley_terry, bradley_terry_intervals
from proving_ground.stats.comparisons import (
    BOSCHLOO_MAX_TRIALS_PER_ARM,
    boschloo_exact,
    cached_fisher_p,
    compare_two_policies,
    fisher_exact,
    mcnemar_exact,
    newcombe_difference_interval,
)
from proving_ground.stats.intervals import cell_summary, clopper_pearson_interval, wilson_interval
from proving_ground.stats.multiple_comparisons import (
    compact_letter_display,
    holm_adjust,
    pairwise_comparisons,
)
from proving_ground.stats.power import power_trials_per_policy
from proving_ground.stats.robustness import chi_square_homogeneity, robustness_summary
from proving_ground.stats.sequential import discordant_log_e, savi_log_e, sequential_paired_test

BOSCHLOO = 1e-3  # scipy maximises over a 32-point grid of the nuisance parameter


def reference_inputs(vector_id: str) -> dict:
    vectors = json.loads(Path(__file__).with_name("stats_reference_vectors.json").read_text())
    return next(v for v in vectors["vectors"] if v["id"] == vector_id)["inputs"]


# --------------------------------------------------------------------------------------------
# Properties


counts = st.integers(min_value=1, max_value=400).flatmap(
    lambda n: st.tuples(st.integers(min_value=0, max_value=n), st.just(n))
)
confidences = st.sampled_from([0.8, 0.9, 0.95, 0.99])


@given(counts, confidences)
def test_intervals_contain_the_rate_and_stay_in_the_unit_interval(count, confidence):
    k, n = count
    rate = k / n
    for low, high in (
        wilson_interval(k, n, confidence),
        clopper_pearson_interval(k, n, confidence),
    ):
        assert 0.0 <= low <= rate <= high <= 1.0
    lower_bound = clopper_pearson_interval(k, n, confidence, side="lower")
    upper_bound = clopper_pearson_interval(k, n, confidence, side="upper")
    assert 0.0 <= lower_bound <= rate <= upper_bound <= 1.0
    cell = cell_summary(k, n, confidence)
    assert cell.certified_lower_bound == lower_bound
    assert 0.0 <= cell.wilson_low <= cell.rate <= cell.wilson_high <= 1.0


@given(counts, counts)
def test_difference_interval_contains_the_difference(a, b):
    low, high = newcombe_difference_interval(*a, *b)
    difference = a[0] / a[1] - b[0] / b[1]
    assert -1.0 <= low <= difference + 1e-12
    assert difference - 1e-12 <= high <= 1.0


@given(counts, st.integers(min_value=2, max_value=20), confidences)
def test_intervals_shrink_as_trials_grow_at_a_fixed_rate(count, factor, confidence):
    k, n = count
    for interval in (wilson_interval, clopper_pearson_interval):
        small_low, small_high = interval(k, n, confidence)
        large_low, large_high = interval(k * factor, n * factor, confidence)
        assert large_high - large_low <= small_high - small_low + 1e-12


@given(st.lists(st.floats(min_value=0.0, max_value=1.0), max_size=30))
def test_holm_adjusted_values_are_monotone_in_the_raw_order_and_not_below_raw(pvalues):
    adjusted = holm_adjust(pvalues)
    assert len(adjusted) == len(pvalues)
    for raw, adj in zip(pvalues, adjusted, strict=True):
        assert raw <= adj <= 1.0
    in_raw_order = [adj for _, adj in sorted(zip(pvalues, adjusted, strict=True))]
    assert in_raw_order == sorted(in_raw_order)


def _win_matrices(min_size: int = 2, max_size: int = 6):
    def build(size):
        cell = st.integers(min_value=1, max_value=30)
        return st.tuples(
            st.lists(st.lists(cell, min_size=size, max_size=size), min_size=size, max_size=size),
            st.lists(
                st.lists(st.integers(0, 5), min_size=size, max_size=size),
                min_size=size,
                max_size=size,
            ),
            st.permutations(range(size)),
        )

    return st.integers(min_value=min_size, max_value=max_size).flatmap(build)


def _zero_diagonal(matrix):
    array = np.array(matrix, dtype=int)
    np.fill_diagonal(array, 0)
    return array


@given(_win_matrices())
def test_bradley_terry_is_invariant_to_relabelling_and_sums_to_zero(data):
    wins, tie_seed, permutation = data
    wins = _zero_diagonal(wins)
    ties = _zero_diagonal(tie_seed)
    ties = ties + ties.T
    strengths = np.array(bradley_terry(wins, ties))
    order = np.array(permutation)
    permuted = np.array(bradley_terry(wins[np.ix_(order, order)], ties[np.ix_(order, order)]))
    assert abs(strengths.sum()) < 1e-9
    assert abs(permuted.sum()) < 1e-9
    np.testing.assert_allclose(permuted, strengths[order], atol=1e-8)


cells_lists = st.lists(
    st.integers(min_value=10, max_value=50).flatmap(
        lambda n: st.tuples(st.integers(min_value=1, max_value=n - 1), st.just(n))
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=40)
@given(cells_lists, st.data())
def test_bootstrap_interval_is_deterministic_and_changes_with_the_data(cells, data):
    first = macro_average(cells, resamples=2_000)
    again = macro_average([tuple(cell) for cell in cells], resamples=2_000)
    assert first == again
    assert first.low <= first.estimate <= first.high
    index = data.draw(st.integers(min_value=0, max_value=len(cells) - 1))
    # Move one cell to its far end: the macro average moves by at least 1/(2 * cells). (A
    # one-trial change can leave both percentiles on the same lattice point k/n.)
    changed = list(cells)
    k, n = changed[index]
    changed[index] = (0, n) if 2 * k >= n else (n, n)
    other = macro_average(changed, resamples=2_000)
    assert (other.low, other.high) != (first.low, first.high)
    assert (other.low < first.low) == (other.estimate < first.estimate)


significance_patterns = st.integers(min_value=1, max_value=8).flatmap(
    lambda m: st.tuples(
        st.lists(st.floats(0.0, 1.0), min_size=m, max_size=m),
        st.sets(
            st.tuples(st.integers(0, m - 1), st.integers(0, m - 1)).filter(lambda p: p[0] < p[1])
        ),
    )
)


@given(significance_patterns)
def test_letters_are_shared_exactly_by_pairs_that_are_not_significantly_different(pattern):
    estimates, significant = pattern
    letters = compact_letter_display(estimates, significant)
    for i in range(len(estimates)):
        assert letters[i], "every item gets at least one letter"
        for j in range(i + 1, len(estimates)):
            share = bool(set(letters[i]) & set(letters[j]))
            assert share == ((i, j) not in significant), (i, j, letters)
    best = max(range(len(estimates)), key=lambda i: (estimates[i], -i))
    assert "a" in letters[best]


@settings(max_examples=25)
@given(st.lists(counts, min_size=2, max_size=6))
def test_policies_whose_adjusted_p_is_at_least_alpha_share_a_letter(totals):
    labelled = {f"policy-{index}": count for index, count in enumerate(totals)}
    result = pairwise_comparisons(labelled, alpha=0.05, test="fisher")
    assert len(result.pairs) == len(totals) * (len(totals) - 1) // 2
    for pair in result.pairs:
        share = bool(set(result.letters[pair.first]) & set(result.letters[pair.second]))
        assert share == (pair.p_adjusted >= 0.05)
        assert pair.p_value <= pair.p_adjusted <= 1.0


# --------------------------------------------------------------------------------------------
# Methods beyond the vectors


def test_cell_summary_of_seven_in_ten():
    cell = cell_summary(7, 10)
    assert (cell.successes, cell.trials, cell.rate) == (7, 10, 0.7)
    assert (round(cell.wilson_low, 3), round(cell.wilson_high, 3)) == (0.397, 0.892)
    # One-sided 95% Clopper-Pearson = the lower end of the two-sided 90% interval.
    assert cell.certified_lower_bound == pytest.approx(clopper_pearson_interval(7, 10, 0.90)[0])
    assert json.loads(json.dumps(cell.to_dict()))["wilson_low"] == cell.wilson_low


def test_exact_tests_agree_on_direction_and_boschloo_is_not_less_powerful():
    fisher = fisher_exact(18, 20, 10, 20)
    boschloo = boschloo_exact(18, 20, 10, 20)
    assert boschloo <= fisher
    assert fisher_exact(18, 20, 10, 20, alternative="less") > 0.99
    assert boschloo_exact(10, 20, 18, 20, alternative="less") == pytest.approx(
        boschloo_exact(18, 20, 10, 20, alternative="greater"), abs=BOSCHLOO
    )


def test_exact_tests_are_cached_by_counts():
    fisher_exact(3, 11, 9, 13)
    before = cached_fisher_p.cache_info().hits
    fisher_exact(3, 11, 9, 13)
    assert cached_fisher_p.cache_info().hits == before + 1


def test_comparison_uses_boschloo_for_small_arms_and_fisher_for_large():
    assert compare_two_policies(18, 20, 10, 20).test == "boschloo"
    large = BOSCHLOO_MAX_TRIALS_PER_ARM + 1
    assert compare_two_policies(50, large, 40, large).test == "fisher"


def test_mcnemar_with_no_discordant_pairs_is_one():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(9, 2) == mcnemar_exact(2, 9)


def test_letters_mark_the_best_group_a():
    totals = {"A": (18, 20), "B": (10, 20), "C": (17, 20), "D": (3, 20)}
    result = pairwise_comparisons(totals)
    assert result.letters == {"A": "a", "B": "bc", "C": "ab", "D": "c"}
    assert compact_letter_display([0.1, 0.9], [(0, 1)]) == ["b", "a"]
    assert compact_letter_display([], []) == []


def test_leaderboard_ranks_best_first_with_rank_intervals_that_contain_the_rank():
    policies = {
        "strong": [(9, 10), (8, 10), (10, 10)],
        "twin-1": [(6, 10), (5, 10), (7, 10)],
        "twin-2": [(6, 10), (5, 10), (7, 10)],
        "weak": [(1, 10), (2, 10), (0, 10)],
    }
    rows = policy_leaderboard(policies, resamples=4_000)
    assert [row.policy for row in rows] == ["strong", "twin-1", "twin-2", "weak"]
    assert [row.rank for row in rows] == [1, 2, 2, 4]
    for row in rows:
        assert 1 <= row.rank_low <= row.rank <= row.rank_high <= len(policies)
        assert row.macro == macro_average(policies[row.policy], resamples=4_000)
    twins = [row for row in rows if row.policy.startswith("twin")]
    assert (twins[0].rank_low, twins[0].rank_high) == (twins[1].rank_low, twins[1].rank_high)
    # Reordering the mapping changes nothing but the order of tied rows.
    reordered = policy_leaderboard(dict(reversed(policies.items())), resamples=4_000)
    assert {row.policy: row for row in reordered} == {row.policy: row for row in rows}
    json.dumps([row.to_dict() for row in rows])


def test_bootstrap_interval_covers_a_rate_like_wilson_for_one_cell():
    macro = macro_average([(7, 10)])
    assert macro.estimate == 0.7 and macro.cells == 1 and macro.trials == 10
    assert 0.3 < macro.low < 0.55 and 0.85 < macro.high <= 1.0


@pytest.mark.parametrize(
    "cells, low, high",
    [
        ([(1, 1)], 0.207, 1.0),  # Wilson 1/1: never [1, 1]
        ([(0, 3)], 0.0, 0.5615),  # Wilson 0/3
        ([(5, 5), (0, 5)], 0.237, 0.763),  # Wilson 5/10: the bootstrap alone gives [0.5, 0.5]
        ([(10, 10), (10, 10), (9, 10)], 0.833, 1.0),
        ([(7, 10), (3, 10), (9, 10)], 0.5, 0.767),  # no all-or-nothing cell: bootstrap as is
    ],
)
def test_macro_interval_does_not_collapse_on_all_or_nothing_cells(cells, low, high):
    macro = macro_average(cells)
    assert (macro.low, macro.high) == pytest.approx((low, high), abs=5e-4)
    assert macro.low <= macro.estimate <= macro.high


def test_macro_interval_of_equal_all_success_cells_is_the_pooled_wilson_interval():
    macro = macro_average([(4, 4)] * 5)
    assert (macro.low, macro.high) == pytest.approx(wilson_interval(20, 20))


def test_bradley_terry_ties_count_half_a_win_to_each_side():
    wins = [[0, 3], [1, 0]]
    with_ties = bradley_terry(wins, [[0, 2], [2, 0]])
    assert with_ties == pytest.approx(bradley_terry([[0, 4], [2, 0]]), abs=1e-9)
    # Two policies: theta_1 - theta_2 is the log-odds of the score share.
    assert with_ties[0] - with_ties[1] == pytest.approx(math.log(4 / 2))


def test_bradley_terry_intervals_contain_the_strengths_and_are_seeded():
    wins = reference_inputs("BT-1")["win_matrix_row_beats_col"]
    fit = bradley_terry_intervals(wins, [[0, 1, 0, 0], [1, 0, 0, 0], [0] * 4, [0] * 4])
    assert fit == bradley_terry_intervals(wins, [[0, 1, 0, 0], [1, 0, 0, 0], [0] * 4, [0] * 4])
    for low, strength, high in zip(fit.low, fit.strengths, fit.high, strict=True):
        assert low <= strength <= high
    assert fit.degenerate_resamples < 0.05 * fit.resamples


def test_bradley_terry_refuses_a_policy_that_never_lost():
    with pytest.raises(ValueError, match="unbounded"):
        bradley_terry([[0, 5, 3], [0, 0, 2], [0, 1, 0]])


def test_power_for_a_half_to_four_fifths_improvement():
    h = 2 * math.asin(math.sqrt(0.8)) - 2 * math.asin(math.sqrt(0.5))
    z = 1.959963984540054 + 0.8416212335729143
    assert power_trials_per_policy(0.5, 0.8) == math.ceil(2 * (z / h) ** 2) == 38
    assert power_trials_per_policy(0.8, 0.5) == 38
    assert power_trials_per_policy(0.5, 0.6) > power_trials_per_policy(0.5, 0.8)
    assert power_trials_per_policy(0.5, 0.8, power=0.9) > 38


# --------------------------------------------------------------------------------------------
# Sequential A/B


def test_sequential_test_under_no_difference_rejects_at_most_alpha_of_streams():
    """Validity, by simulation: 20,000 streams of 200 pairs with no difference between A
    and B, monitored after every pair. Ville's inequality says at most alpha ever cross."""
    rng = np.random.default_rng(20240601)
    streams, pairs, alpha = 20_000, 200, 0.05
    # Each pair: concordant (0.6), A only (0.2), B only (0.2).
    outcome = rng.choice(3, size=(streams, pairs), p=[0.6, 0.2, 0.2])
    a_only = np.cumsum(outcome == 1, axis=1)
    b_only = np.cumsum(outcome == 2, axis=1)
    log_e = discordant_log_e(a_only, b_only)
    rejected = (log_e >= math.log(1 / alpha)).any(axis=1).mean()
    assert rejected <= alpha
    # Spot-check that the public function agrees with the vectorised helper on one stream.
    a = (outcome[0] == 1).astype(int)
    b = (outcome[0] == 2).astype(int)
    state = sequential_paired_test(a, b, max_pairs=pairs, alpha=alpha)
    assert state.state in ("inconclusive", "a_better", "b_better")
    assert (state.state != "inconclusive") == bool((log_e[0] >= math.log(1 / alpha)).any())


def test_savi_under_equal_rates_rejects_at_most_alpha_of_streams():
    rng = np.random.default_rng(7)
    streams, pairs, alpha = 20_000, 200, 0.05
    first = rng.binomial(1, 0.5, size=(streams, pairs))
    second = rng.binomial(1, 0.5, size=(streams, pairs))
    log_e = savi_log_e(first, second, "less")
    assert (log_e >= math.log(1 / alpha)).any(axis=1).mean() <= alpha


def test_sequential_test_stops_early_for_a_clear_winner():
    a = [1] * 12 + [0] * 3
    b = [0] * 12 + [0] * 3
    state = sequential_paired_test(a, b, max_pairs=50)
    assert state.state == "a_better"
    assert state.pairs < 12 and state.b_only == 0
    assert state.e_value >= 20 and state.anytime_p_value <= 0.05
    flipped = sequential_paired_test(b, a, max_pairs=50)
    assert flipped.state == "b_better" and flipped.pairs == state.pairs


def test_sequential_test_continues_then_says_inconclusive_at_the_planned_maximum():
    a = [1, 0, 1, 1, 0, 1] * 5
    b = [0, 1, 1, 1, 0, 0] * 5
    assert sequential_paired_test(a[:10], b[:10], max_pairs=30).state == "continue"
    final = sequential_paired_test(a, b, max_pairs=30)
    assert final.state == "inconclusive" and final.pairs == 30
    assert sequential_paired_test([], [], max_pairs=30).state == "continue"
    with pytest.raises(ValueError, match="at most max_pairs"):
        sequential_paired_test(a + [1], b + [1], max_pairs=30)


# --------------------------------------------------------------------------------------------
# Edge cases


def test_zero_trials_raise_a_clear_error():
    with pytest.raises(ValueError, match=r"no trials \(0/0\)"):
        wilson_interval(0, 0)
    with pytest.raises(ValueError, match="no trials"):
        clopper_pearson_interval(0, 0)
    with pytest.raises(ValueError, match="B: no trials"):
        fisher_exact(1, 2, 0, 0)


def test_all_failures_and_all_successes_touch_the_bounds():
    assert wilson_interval(0, 20)[0] == 0.0
    assert wilson_interval(20, 20)[1] == 1.0
    assert clopper_pearson_interval(0, 20, side="lower") == 0.0
    assert clopper_pearson_interval(20, 20, side="upper") == 1.0
    # k = n: the one-sided lower bound is alpha^(1/n).
    assert clopper_pearson_interval(20, 20, side="lower") == pytest.approx(0.05 ** (1 / 20))


def test_a_single_trial_gives_a_wide_interval():
    low, high = wilson_interval(1, 1)
    assert high == 1.0 and 0.1 < low < 0.3
    assert clopper_pearson_interval(0, 1) == (0.0, pytest.approx(0.975))


@pytest.mark.parametrize(
    ("successes", "trials", "message"),
    [
        (-1, 10, "successes must be >= 0"),
        (3, -2, "trials must be >= 0"),
        (11, 10, r"successes \(11\) cannot exceed trials \(10\)"),
    ],
)
def test_invalid_counts_raise_value_error(successes, trials, message):
    with pytest.raises(ValueError, match=message):
        wilson_interval(successes, trials)
    with pytest.raises(ValueError, match=message):
        cell_summary(successes, trials)


def test_non_integer_counts_and_bad_options_are_refused():
    with pytest.raises(TypeError, match="integer"):
        wilson_interval(2.5, 10)
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(2, 10, confidence=1.5)
    with pytest.raises(ValueError, match="side"):
        clopper_pearson_interval(2, 10, side="both")
    with pytest.raises(ValueError, match="alternative"):
        fisher_exact(1, 2, 1, 2, alternative="bigger")
    with pytest.raises(ValueError, match="p-value"):
        holm_adjust([0.2, 1.5])
    with pytest.raises(ValueError, match="at least one score"):
        interquartile_mean([])
    with pytest.raises(ValueError, match="equal"):
        power_trials_per_policy(0.5, 0.5)
    with pytest.raises(ValueError, match="square"):
        bradley_terry([[0, 1, 2]])
    with pytest.raises(ValueError, match="symmetric"):
        bradley_terry([[0, 1], [1, 0]], ties=[[0, 1], [0, 0]])
    with pytest.raises(ValueError, match="0 .failure. and 1"):
        sequential_paired_test([0, 2], [1, 1], max_pairs=5)
    with pytest.raises(ValueError, match="cell 1"):
        macro_average([(1, 2), (0, 0)])
    assert holm_adjust([]) == []


def test_robustness_with_one_condition_has_no_heterogeneity_test():
    summary = robustness_summary({"only": (7, 10)}, method="wilson")
    assert summary.worst_condition == "only"
    assert (summary.worst_low, summary.worst_high) == pytest.approx(wilson_interval(7, 10))
    assert summary.heterogeneity_p is None
    assert chi_square_homogeneity([(10, 10), (5, 5)]) == (0.0, 1, 1.0)


def test_results_serialise_to_json():
    results = [
        compare_two_policies(18, 20, 10, 20),
        macro_average([(7, 10), (3, 10)], resamples=500),
        robustness_summary({"dim": (3, 10), "bright": (9, 10)}),
        sequential_paired_test([1, 0], [0, 0], max_pairs=10),
        bradley_terry_intervals([[0, 3], [2, 0]], resamples=200),
    ]
    for result in results:
        assert json.loads(json.dumps(result.to_dict())) == result.to_dict()
