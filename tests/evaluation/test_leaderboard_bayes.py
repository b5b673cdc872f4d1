"""pg-score/2 boards carry a Bayesian view (posterior, P(best), pass^3) and, on unbalanced
designs, task-adjusted effects; pg-score/1 boards keep exactly their keys."""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from html import unescape

import pytest
from django.test import Client

from core.models import Visibility
from evaluation.models import LeaderboardSnapshot
from evaluation.services import benchmarks, leaderboards
from proving_ground.scoring import CellCounts, score
from proving_ground.stats.bayes import beta_posterior, pass_hat_k, probability_best
from proving_ground.stats.logistic import logistic_effects
from tests.evaluation.factories import (
    make_benchmark,
    make_campaign,
    make_conditions,
    make_policy_version,
    play_campaign,
)
from tests.evaluation.test_leaderboard_chart import played_board

CELLS = [("t1", "c1"), ("t1", "c2"), ("t2", "c1"), ("t2", "c2")]
NEW_ROW_KEYS = {"posterior_mean", "credible_low", "credible_high", "p_best", "pass3"}
NEW_ROW_KEYS |= {"adjusted_effect"}
NEW_BOARD_KEYS = {"adjusted_order_differs", "adjusted_unavailable"}


def _counts(policy, successes, trials):
    return [
        CellCounts(policy, task, condition, successes=k, trials=n)
        for (task, condition), k, n in zip(CELLS, successes, trials, strict=True)
    ]


BALANCED = _counts("A", [8, 9, 3, 4], [10] * 4) + _counts("B", [6, 5, 7, 6], [10] * 4)
# A was run on twice as many trials in some cells: unbalanced, and the task-adjusted log-odds
# order A above B while the macro average puts B first.
UNBALANCED = _counts("A", [11, 17, 7, 2], [20, 20, 10, 5]) + _counts("B", [5, 5, 8, 9], [10] * 4)


def test_pg_score_2_rows_carry_the_bayesian_view_and_pg_score_1_rows_do_not():
    old = score(BALANCED, policies=["A", "B"], cells=CELLS, version="pg-score/1").to_dict()
    new = score(BALANCED, policies=["A", "B"], cells=CELLS, version="pg-score/2").to_dict()
    assert not NEW_BOARD_KEYS & old.keys() and NEW_BOARD_KEYS <= new.keys()
    for row in old["rows"]:
        assert not NEW_ROW_KEYS & row.keys()
    # Old rows keep exactly the keys they had; new rows add only the pg-score/2 ones.
    assert set(new["rows"][0]) - set(old["rows"][0]) >= NEW_ROW_KEYS
    assert set(old["rows"][0]) <= set(new["rows"][0])


def test_bayesian_figures_equal_the_sdk_functions_and_p_best_sums_to_one():
    board = score(BALANCED, policies=["A", "B"], cells=CELLS, version="pg-score/2")
    best = probability_best({row.policy: (row.successes, row.trials) for row in board.rows})
    assert math.fsum(row.p_best for row in board.rows) == pytest.approx(1.0, abs=1e-6)
    for row in board.rows:
        posterior = beta_posterior(row.successes, row.trials)
        assert (row.posterior_mean, row.credible_low, row.credible_high) == (
            posterior.mean,
            posterior.low,
            posterior.high,
        )
        assert row.p_best == best[row.policy]
        assert row.pass3 == pass_hat_k(row.successes, row.trials, 3)
    # Balanced design: no task-adjusted effects, no sentence.
    assert all(row.adjusted_effect is None for row in board.rows)
    assert board.adjusted_order_differs is None and board.adjusted_unavailable is None


def test_pass3_is_none_under_three_trials():
    counts = [CellCounts("A", "t1", "c1", successes=2, trials=2)]
    (row,) = score(counts, policies=["A"], cells=[("t1", "c1")], version="pg-score/2").rows
    assert row.pass3 is None and row.p_best == 1.0 and row.posterior_mean == 0.75


def test_an_unbalanced_design_gets_task_adjusted_effects_and_the_order_sentence():
    board = score(UNBALANCED, policies=["A", "B"], cells=CELLS, version="pg-score/2")
    assert [row.policy for row in board.rows] == ["B", "A"]
    fit = logistic_effects(
        [
            (policy, task, cell.successes, cell.trials)
            for policy in ("B", "A")
            for cell in next(r for r in board.rows if r.policy == policy).cells
            for task in [cell.task]
        ]
    )
    for row in board.rows:
        estimate, error, low, high = fit.policy_effects[row.policy]
        assert row.adjusted_effect == pytest.approx(
            {"estimate": estimate, "standard_error": error, "low": low, "high": high}
        )
    assert (
        board.rows[0].adjusted_effect["estimate"] == 0.0
    )  # B, the board's first, is the reference
    assert board.rows[1].adjusted_effect["estimate"] > 0
    assert "different order" in board.adjusted_order_differs
    assert board.adjusted_unavailable is None


def test_a_missing_cell_makes_the_design_unbalanced():
    counts = _counts("A", [8, 9, 3, 4], [10] * 4) + _counts("B", [6, 5, 7, 6], [10] * 4)
    counts += [CellCounts("C", "t1", "c1", successes=4, trials=10)]
    counts += [CellCounts("C", "t1", "c2", successes=5, trials=10)]
    board = score(counts, policies=["A", "B", "C"], cells=CELLS, version="pg-score/2")
    by_policy = {row.policy: row for row in board.rows}
    assert by_policy["C"].rank is None and by_policy["C"].adjusted_effect is not None
    assert by_policy["C"].p_best is None  # P(best) is over the ranked policies only
    assert math.fsum(by_policy[p].p_best for p in "AB") == pytest.approx(1.0, abs=1e-6)


def test_separation_records_adjusted_unavailable_instead_of_failing():
    counts = _counts("A", [20, 10, 10, 5], [20, 10, 10, 5]) + _counts("B", [5, 5, 8, 9], [10] * 4)
    board = score(counts, policies=["A", "B"], cells=CELLS, version="pg-score/2")
    assert "separation" in board.adjusted_unavailable
    assert board.adjusted_order_differs is None
    assert all(row.adjusted_effect is None for row in board.rows)
    assert [row.rank for row in board.rows] == [1, 2]
    data = board.to_dict()
    assert data["adjusted_unavailable"] == board.adjusted_unavailable


def _text(html: str) -> str:
    return " ".join(unescape(html).split())


@pytest.mark.django_db
def test_the_leaderboard_page_shows_the_bayesian_columns_on_a_pg_score_2_board(world):
    benchmark = played_board(world.a)
    data = Client().get(f"/api/v1/benchmarks/{benchmark.pk}/leaderboard").json()
    assert data["scoring_version"] == "pg-score/2"
    assert all(NEW_ROW_KEYS <= row.keys() for row in data["rows"])
    assert math.fsum(row["p_best"] for row in data["rows"]) == pytest.approx(1.0, abs=1e-6)
    page = _text(Client().get(f"/leaderboards/{benchmark.pk}/").content.decode())
    assert "Bayesian: posterior mean [95% credible]" in page and "P(best)" in page
    assert "pass^3" in page
    row = data["rows"][0]
    shown = f"{row['posterior_mean']:.2f} [{row['credible_low']:.2f}, {row['credible_high']:.2f}]"
    assert shown in page
    # The CSV carries the same figures as columns.
    listed = Client().get(f"/api/v1/benchmarks/{benchmark.pk}/leaderboard.csv").content.decode()
    head, first, *_ = csv.reader(io.StringIO(listed))
    for key in ("invalid_rate", "posterior_mean", "credible_low", "credible_high", "p_best"):
        assert key in head
        assert float(first[head.index(key)]) == pytest.approx(row[key], abs=1e-4)


@pytest.mark.django_db
def test_a_pg_score_1_board_page_has_no_bayesian_columns(world):
    tw = world.a
    conditions = make_conditions(tw)
    benchmark = make_benchmark(
        tw, task_versions=[tw.task.versions.get()], conditions=conditions, publish=False
    )
    benchmark.scoring_version = "pg-score/1"
    benchmark.save(update_fields=["scoring_version"])
    benchmark = benchmarks.publish_benchmark(actor=tw.researcher, benchmark=benchmark)
    versions = [make_policy_version(tw, name=n, visibility=Visibility.PUBLIC) for n in "AB"]
    campaign = make_campaign(
        tw, policy_versions=versions, benchmark=benchmark, visibility=Visibility.PUBLIC
    )
    played = Counter()

    def decide(trial):
        played[trial.policy_version_id] += 1
        return {"outcome": "success" if played[trial.policy_version_id] % 2 else "failure"}

    play_campaign(campaign, tw.robot, decide)
    leaderboards.refresh_leaderboard(
        scope=LeaderboardSnapshot.Scope.BENCHMARK, object_id=benchmark.pk
    )
    data = Client().get(f"/api/v1/benchmarks/{benchmark.pk}/leaderboard").json()
    assert data["scoring_version"] == "pg-score/1"
    assert not NEW_BOARD_KEYS & data.keys()
    assert all(not NEW_ROW_KEYS & row.keys() for row in data["rows"])
    listed = Client().get(f"/api/v1/benchmarks/{benchmark.pk}/leaderboard.csv").content.decode()
    head = next(csv.reader(io.StringIO(listed)))
    assert not {"invalid_rate", "posterior_mean", "p_best", "pass3"} & set(head)
    page = _text(Client().get(f"/leaderboards/{benchmark.pk}/").content.decode())
    assert "Bayesian" not in page and "P(best)" not in page
