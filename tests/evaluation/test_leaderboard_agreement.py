"""pg-score/2 boards say how well reported outcomes and automatic checks agree (Cohen's kappa,
statsmodels' figures); undefined kappa comes with a reason; pg-score/1 boards are unchanged."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from django.test import Client
from statsmodels.stats.inter_rater import cohens_kappa as statsmodels_kappa

from evaluation.models import Benchmark, LeaderboardSnapshot, OutcomeSource, Trial
from evaluation.services import leaderboards
from proving_ground.stats.agreement import cohens_kappa, cohens_kappa_from_counts
from tests.evaluation.test_leaderboard_chart import played_board

pytestmark = pytest.mark.django_db

LABELS = ("success", "failure")


def _check(trials, verdicts) -> None:
    """Give `trials` these check verdicts: "same" (the reported outcome) or "flip"."""
    for trial, verdict in zip(trials, verdicts, strict=True):
        check = trial.outcome if verdict == "same" else LABELS[trial.outcome == "success"]
        Trial.objects.filter(pk=trial.pk).update(
            check_outcome=check, check_disagrees=check != trial.outcome
        )


def _board(benchmark) -> dict:
    leaderboards.refresh_leaderboard(
        scope=LeaderboardSnapshot.Scope.BENCHMARK, object_id=benchmark.pk
    )
    return leaderboards.leaderboard_data(LeaderboardSnapshot.Scope.BENCHMARK, benchmark)


def test_a_board_reports_statsmodels_kappa_over_the_trials_with_both_labels(world):
    benchmark = played_board(world.a)
    trials = list(Trial.objects.filter(state=Trial.State.DONE).order_by("order"))
    # 20 of the 24 trials checked, 5 of them contradicted; one more decided by the check
    # itself (it agrees by construction and is not counted).
    _check(trials[:20], ["flip" if i % 4 == 0 else "same" for i in range(20)])
    decided = trials[20]
    Trial.objects.filter(pk=decided.pk).update(
        check_outcome=decided.outcome, outcome_source=OutcomeSource.CHECKS
    )
    table = Counter(
        Trial.objects.filter(pk__in=[t.pk for t in trials[:20]]).values_list(
            "outcome", "check_outcome"
        )
    )
    expected = statsmodels_kappa([[table[(a, b)] for b in LABELS] for a in LABELS])

    agreement = _board(benchmark)["check_agreement"]

    assert agreement["n"] == 20 and agreement["disagreements"] == 5
    assert agreement["observed_agreement"] == pytest.approx(0.75)
    assert agreement["kappa"] == pytest.approx(expected.kappa, abs=1e-12)
    # The interval is the agreement-score one (statsmodels' large-sample interval falls
    # short where operators and checks nearly always agree: docs/statistics.md).
    shown = cohens_kappa_from_counts(table, interval="agreement-score")
    assert (agreement["low"], agreement["high"]) == pytest.approx((shown.low, shown.high))
    assert agreement["low"] < agreement["kappa"] < agreement["high"]
    assert agreement["reason"] is None
    # The page says it in one line, with the way to the disagreeing trials.
    page = Client().get(f"/leaderboards/{benchmark.pk}/").content.decode()
    assert "Operators and automatic checks agree on 75% of 20 trials (Cohen's kappa" in page
    assert "leaderboard/trials?check_disagrees=true" in page
    listed = Client().get(
        f"/api/v1/benchmarks/{benchmark.pk}/leaderboard/trials?check_disagrees=true"
    )
    assert listed.status_code == 200
    assert {t["id"] for t in listed.json()["results"]} == {str(t.pk) for t in trials[:20:4]}


def test_a_new_check_verdict_refreshes_the_board(world):
    benchmark = played_board(world.a)
    before = _board(benchmark)
    assert before["check_agreement"]["n"] == 0
    _check(Trial.objects.filter(state=Trial.State.DONE)[:3], ["same"] * 3)
    after = _board(benchmark)
    assert after["snapshot_id"] != before["snapshot_id"]
    assert after["check_agreement"]["n"] == 3


def test_kappa_is_null_with_a_reason_when_undefined(world):
    benchmark = played_board(world.a)
    agreement = _board(benchmark)["check_agreement"]
    assert agreement["kappa"] is None and agreement["observed_agreement"] is None
    assert agreement["n"] == 0 and "No counted trial" in agreement["reason"]
    # Both raters say "success" on every trial they share: kappa is 0/0, raw agreement 1.
    successes = Trial.objects.filter(state=Trial.State.DONE, outcome="success")
    _check(successes, ["same"] * successes.count())
    agreement = _board(benchmark)["check_agreement"]
    assert agreement["kappa"] is None and agreement["low"] is None
    assert agreement["observed_agreement"] == 1.0 and agreement["disagreements"] == 0
    assert "undefined" in agreement["reason"]
    page = Client().get(f"/leaderboards/{benchmark.pk}/").content.decode()
    assert f"agree on 100% of {successes.count()} trials (Every trial" in page


def test_a_pg_score_1_board_has_no_agreement_and_keeps_its_digest(world):
    benchmark = played_board(world.a)
    Benchmark.objects.filter(pk=benchmark.pk).update(scoring_version="pg-score/1")
    benchmark.refresh_from_db()
    before = _board(benchmark)
    assert "check_agreement" not in before
    # Agreeing check verdicts are not part of a pg-score/1 board (its cells count only the
    # disagreements, as before): its digest and snapshot stay.
    _check(Trial.objects.filter(state=Trial.State.DONE)[:3], ["same"] * 3)
    after = _board(benchmark)
    assert after["snapshot_id"] == before["snapshot_id"]
    page = Client().get(f"/leaderboards/{benchmark.pk}/").content.decode()
    assert "automatic checks agree" not in page


@pytest.mark.parametrize("seed", range(5))
def test_kappa_from_a_table_equals_kappa_from_the_labels(seed):
    rng = random.Random(seed)
    pairs = [(rng.choice("abc"), rng.choice("abc")) for _ in range(rng.randint(5, 60))]
    from_labels = cohens_kappa([a for a, _ in pairs], [b for _, b in pairs])
    from_table = cohens_kappa_from_counts(Counter(pairs))
    assert from_table.to_dict() == pytest.approx(from_labels.to_dict())
    assert -1.0 <= from_table.kappa <= 1.0


def test_kappa_from_a_table_refuses_bad_counts():
    for bad in ({("a", "a"): -1}, {("a", "a"): 1.5}, {("a", "b"): 0}):
        with pytest.raises(ValueError):
            cohens_kappa_from_counts(bad)
    with pytest.raises(ValueError, match="same label"):
        cohens_kappa_from_counts({("a", "a"): 4})
