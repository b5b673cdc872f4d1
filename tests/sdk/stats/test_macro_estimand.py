"""One estimand per board (pg-score/2): the ranking, rank intervals, pairwise tests and letters
all about the macro average; ties; order-free seeds; invalid trials; NaN stage scores."""

from __future__ import annotations

import math

import pytest
import scipy.stats  # noqa: F401  (imported up front: keeps the cost out of hypothesis deadlines)
from hypothesis import given, settings
from hypothesis import strategies as st

from proving_ground.scoring import SCORING_VERSIONS, CellCounts, score
from proving_ground.stats.aggregates import policy_leaderboard
from proving_ground.stats.bradley_terry import bradley_terry_intervals
from proving_ground.stats.invalid_rates import invalid_rate_tests
from proving_ground.stats.macro_estimand import macro_leaderboard

# t1 x {c1, c2, c3} and t2 x c1, 30 trials each.
CELLS = [("t1", "c1"), ("t1", "c2"), ("t1", "c3"), ("t2", "c1")]


def _counts(policy, successes, trials=30):
    return [
        CellCounts(policy, task, condition, successes=k, trials=trials)
        for (task, condition), k in zip(CELLS, successes, strict=True)
    ]


BALANCED = _counts("A", [30, 30, 30, 0]) + _counts("B", [12, 12, 12, 30])


def test_pooled_tests_contradict_the_macro_ranking_in_the_old_version_only():
    old = score(BALANCED, policies=["A", "B"], cells=CELLS, version="pg-score/1")
    # The bug, kept for boards stored under pg-score/1: B ranks first, yet A has letter "a"
    # and the pooled test favours A.
    assert [(r.policy, r.rank, r.letters) for r in old.rows] == [("B", 1, "b"), ("A", 2, "a")]
    assert old.pairwise[0]["difference"] > 0 and old.pairwise[0]["first"] == "A"
    assert old.pairwise[0]["p_value"] == pytest.approx(0.0018, abs=1e-4)

    new = score(BALANCED, policies=["A", "B"], cells=CELLS, version="pg-score/2")
    rows = [(r.policy, r.macro, r.rank, r.rank_low, r.rank_high, r.letters) for r in new.rows]
    assert rows == [("B", 0.7, 1, 1, 1, "a"), ("A", 0.5, 2, 2, 2, "b")]
    (pair,) = new.pairwise
    assert (pair["first"], pair["second"]) == ("B", "A")
    assert pair["difference"] == pytest.approx(0.2)
    assert pair["difference_low"] > 0 and pair["significant"]
    assert "pg-score/1" in SCORING_VERSIONS and "pg-score/2" in SCORING_VERSIONS


def test_old_boards_keep_exactly_their_keys():
    old = score(BALANCED, policies=["A", "B"], cells=CELLS, version="pg-score/1").to_dict()
    assert "invalid_warning" not in old and "invalid_rate" not in old["rows"][0]
    new = score(BALANCED, policies=["A", "B"], cells=CELLS, version="pg-score/2").to_dict()
    assert new["invalid_warning"] is None and new["rows"][0]["invalid_flagged"] is False


def test_tied_macro_averages_share_the_better_rank():
    rows = policy_leaderboard({"A": [(1, 10), (1, 10), (4, 10)], "B": [(4, 10), (1, 10), (1, 10)]})
    assert [row.rank for row in rows] == [1, 1]
    board = macro_leaderboard(
        {"A": [[(1, 10)], [(1, 10)], [(4, 10)]], "B": [[(4, 10)], [(1, 10)], [(1, 10)]]},
        resamples=500,
    )
    assert [row.rank for row in board.rows] == [1, 1]
    assert [row.letters for row in board.rows] == ["a", "a"]
    assert board.pairs[0].p_value == 1.0


def test_bradley_terry_interval_is_not_a_point_when_every_session_is_a_tie():
    fit = bradley_terry_intervals([[0, 0], [0, 0]], ties=[[0, 10], [10, 0]])
    assert fit.strengths == (0.0, 0.0)
    for se, low, high in zip(fit.standard_errors, fit.low, fit.high, strict=True):
        assert se > 0.2
        assert low <= -1.9 * se and high >= 1.9 * se


def _rename(counts, tasks, conditions):
    return [
        CellCounts(c.policy, tasks[c.task], conditions[c.condition], c.successes, c.trials)
        for c in counts
    ]


def test_renaming_or_reordering_tasks_and_cells_leaves_every_interval_unchanged():
    counts = _counts("A", [25, 20, 28, 9]) + _counts("B", [12, 17, 14, 22])
    base = score(counts, policies=["A", "B"], cells=CELLS, version="pg-score/2")
    tasks, conditions = {"t1": "zz-last", "t2": "aa-first"}, {"c1": "x", "c2": "b", "c3": "a"}
    renamed_cells = [(tasks[t], conditions[c]) for t, c in reversed(CELLS)]
    moved = score(
        list(reversed(_rename(counts, tasks, conditions))),
        policies=["A", "B"],
        cells=renamed_cells,
        version="pg-score/2",
    )
    figures = ("macro", "macro_low", "macro_high", "rank", "rank_low", "rank_high", "letters")
    for before, after in zip(base.rows, moved.rows, strict=True):
        assert [getattr(before, f) for f in figures] == [getattr(after, f) for f in figures]
    keys = ("difference", "difference_low", "difference_high", "p_value")
    assert [base.pairwise[0][k] for k in keys] == [moved.pairwise[0][k] for k in keys]


def test_an_invalid_trial_the_policy_caused_counts_as_a_failure_and_is_flagged():
    cells = [("t", "easy"), ("t", "hard")]
    counts = [
        CellCounts("A", "t", "easy", 10, 10),
        CellCounts("A", "t", "hard", 0, 2, invalid=8, invalid_by_reason={"no_actions": 8}),
        CellCounts("B", "t", "easy", 10, 10),
        CellCounts("B", "t", "hard", 0, 10),
    ]
    old = score(counts, policies=["A", "B"], cells=cells, version="pg-score/1")
    assert [(r.policy, round(r.tasks[0].rate, 2)) for r in old.rows] == [("A", 0.83), ("B", 0.5)]
    new = score(counts, policies=["A", "B"], cells=cells, version="pg-score/2")
    by_policy = {row.policy: row for row in new.rows}
    assert by_policy["A"].tasks[0].rate == by_policy["B"].tasks[0].rate == 0.5
    assert by_policy["A"].invalid_counted_as_failure == 8 and by_policy["A"].invalid == 0
    assert by_policy["A"].invalid_flagged and not by_policy["B"].invalid_flagged
    assert by_policy["A"].invalid_rate == pytest.approx(8 / 20)
    assert new.invalid_warning and "invalid-trial rate" in new.invalid_warning


def test_invalid_trials_the_policy_did_not_cause_stay_excluded():
    cells = [("t", "c")]
    counts = [
        CellCounts(
            "A", "t", "c", 5, 10, invalid=3, invalid_by_reason={"operator_error": 2, "timeout": 1}
        ),
        CellCounts("B", "t", "c", 5, 10),
    ]
    new = score(counts, policies=["A", "B"], cells=cells, version="pg-score/2")
    row = next(r for r in new.rows if r.policy == "A")
    assert (row.trials, row.invalid, row.invalid_counted_as_failure) == (10, 3, 0)
    assert row.invalid_reasons == {"timeout": 1, "operator_error": 2}


def test_invalid_rate_tests_are_holm_adjusted_and_flag_only_the_higher_rate():
    tests = invalid_rate_tests({"A": (10, 40), "B": (0, 40), "C": (1, 40)})
    assert tests["A"].flagged and not tests["B"].flagged and not tests["C"].flagged
    assert all(t.p_adjusted is not None and 0 <= t.p_adjusted <= 1 for t in tests.values())


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0, 11.0])
def test_a_stage_score_sum_that_is_not_a_number_in_range_is_refused(bad):
    with pytest.raises(ValueError, match="stage_score_sum"):
        CellCounts("A", "t", "c", 5, 10, stage_score_sum=bad)


_cell = st.tuples(st.integers(0, 8), st.integers(1, 8)).map(lambda c: (min(c), max(c)))


@settings(max_examples=25, deadline=None)
@given(
    data=st.data(),
    policies=st.integers(2, 5),
    shape=st.lists(st.integers(1, 2), min_size=1, max_size=3),
)
def test_letters_and_rank_intervals_never_contradict_the_order_of_the_estimates(
    data, policies, shape
):
    designs = {
        f"p{i}": [[data.draw(_cell) for _ in range(cells)] for cells in shape]
        for i in range(policies)
    }
    board = macro_leaderboard(designs, resamples=200)
    rows = board.rows
    estimates = [row.estimate for row in rows]
    assert estimates == sorted(estimates, reverse=True)
    for row in rows:
        assert row.rank_low <= row.rank <= row.rank_high and row.low <= row.estimate <= row.high
    for above, below in zip(rows, rows[1:], strict=False):
        assert above.rank <= below.rank
        assert (above.rank == below.rank) == (above.estimate == below.estimate)
        assert above.rank_low <= below.rank_low and above.rank_high <= below.rank_high
        assert min(above.letters) <= min(below.letters)
    significant = {(p.first, p.second) for p in board.pairs if p.significant}
    for i, a in enumerate(rows):
        for b in rows[i + 1 :]:
            apart = not set(a.letters) & set(b.letters)
            assert apart == ((a.policy, b.policy) in significant)
            if apart:
                assert a.estimate > b.estimate and min(a.letters) < min(b.letters)


@settings(max_examples=15, deadline=None)
@given(data=st.data(), shape=st.lists(st.integers(1, 3), min_size=1, max_size=3))
def test_permuting_tasks_and_cells_changes_no_figure(data, shape):
    designs = {p: [[data.draw(_cell) for _ in range(c)] for c in shape] for p in ("A", "B", "C")}
    order = data.draw(st.permutations(range(len(shape))))
    shuffled = {p: [list(reversed(design[t])) for t in order] for p, design in designs.items()}
    assert macro_leaderboard(designs, resamples=200) == macro_leaderboard(shuffled, resamples=200)
