"""Leaderboards: one grouped query, figures equal to the ones computed by hand, invalid trials
excluded and counted, benchmark boards pooling only what may be shown, blinding."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.models import Visibility
from core.services import operators
from evaluation import selectors
from evaluation.models import Trial
from evaluation.services import trials
from proving_ground.stats.comparisons import (
    compare_two_policies,
    mcnemar_exact,
    newcombe_difference_interval,
)
from proving_ground.stats.intervals import wilson_interval
from proving_ground.stats.sequential import sequential_paired_test
from tests.core.factories import make_task
from tests.evaluation.factories import (
    make_benchmark,
    make_campaign,
    make_conditions,
    make_policy_version,
    play_campaign,
    robot_actor,
)

pytestmark = pytest.mark.django_db


_play = play_campaign


def test_cells_equal_the_counts_and_wilson_intervals_computed_by_hand(world):
    good = make_policy_version(world.a, name="good")
    weak = make_policy_version(world.a, name="weak")
    # pg-score/1's rules, computed by hand (pooled pairwise test); pg-score/2 has its own tests.
    campaign = make_campaign(
        world.a, policy_versions=[good, weak], trials_per_cell=5, scoring_version="pg-score/1"
    )
    bright, dim = sorted(campaign.cells.all(), key=lambda c: c.condition.level)

    def decide(trial):
        # good fails only its first trial under dim light; weak succeeds on even orders only
        if trial.policy_version_id == good.pk:
            first_dim = (
                trial.condition_id == dim.condition_id
                and not Trial.objects.filter(
                    campaign=campaign,
                    policy_version=good,
                    condition_id=dim.condition_id,
                    order__lt=trial.order,
                ).exists()
            )
            return {"outcome": "failure" if first_dim else "success"}
        return {"outcome": "success" if trial.order % 2 == 0 else "failure"}

    _play(campaign, world.a.robot, decide)
    board = selectors.campaign_leaderboard(campaign).to_dict()
    rows = {row["policy"]: row for row in board["rows"]}

    expected = {}
    for trial in Trial.objects.filter(campaign=campaign):
        key = (trial.policy_version.policy.name, str(trial.condition_id))
        k, n = expected.get(key, (0, 0))
        expected[key] = (k + (trial.outcome == "success"), n + 1)
    for name in ("good", "weak"):
        for cell in rows[name]["cells"]:
            k, n = expected[(name, cell["condition"])]
            assert (cell["successes"], cell["trials"]) == (k, n)
            assert (cell["low"], cell["high"]) == pytest.approx(wilson_interval(k, n))
    assert rows["good"]["successes"] == 9 and rows["good"]["trials"] == 10
    assert rows["good"]["rank"] == 1 and board["rows"][0]["policy"] == "good"
    weak_k = sum(expected[("weak", str(c.condition_id))][0] for c in (bright, dim))
    assert rows["weak"]["successes"] == weak_k
    assert rows["good"]["macro"] == pytest.approx(0.9)
    task_cell = rows["good"]["tasks"][0]
    assert (task_cell["successes"], task_cell["trials"]) == (9, 10)
    worst = rows["good"]["worst_condition"]
    assert worst["condition"] == str(dim.condition_id) and worst["rate"] == pytest.approx(0.8)
    pair = board["pairwise"][0]
    totals = {good.pk: (9, 10), weak.pk: (weak_k, 10)}
    a, b = totals[_uuid(pair["first"])], totals[_uuid(pair["second"])]
    assert pair["p_value"] == pytest.approx(compare_two_policies(*a, *b).p_value)
    assert set(rows["good"]["letters"]) and rows["good"]["rank_low"] <= 1


def _uuid(value):
    import uuid

    return uuid.UUID(value)


def test_the_aggregation_is_one_grouped_query_whatever_the_number_of_trials(world):
    small = make_campaign(world.a, policy_versions=[make_policy_version(world.a)])
    large = make_campaign(
        world.a, policy_versions=[make_policy_version(world.a)], trials_per_cell=20
    )
    counts = []
    for campaign in (small, large):
        _play(campaign, world.a.robot, lambda trial: {"outcome": "success"})
        with CaptureQueriesContext(connection) as queries:
            selectors.campaign_leaderboard(campaign)
        grouped = [q["sql"] for q in queries if "GROUP BY" in q["sql"]]
        assert len(grouped) == 1 and "evaluation_trial" in grouped[0]
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_invalid_trials_are_excluded_and_counted_by_reason(world):
    version = make_policy_version(world.a)
    campaign = make_campaign(world.a, policy_versions=[version], trials_per_cell=3)
    reasons = {0: "success_at_reset", 1: "timeout", 2: "timeout"}

    def decide(trial):
        if trial.order in reasons:
            return {"valid": False, "invalid_reason": reasons[trial.order]}
        return {"outcome": "success"}

    _play(campaign, world.a.robot, decide)
    board = selectors.campaign_leaderboard(campaign).to_dict()
    (row,) = board["rows"]
    assert (row["successes"], row["trials"], row["invalid"]) == (3, 3, 3)
    assert row["invalid_reasons"] == {"success_at_reset": 1, "timeout": 2}
    assert board["invalid_reasons"] == {"success_at_reset": 1, "timeout": 2}
    assert sum(cell["invalid"] for cell in row["cells"]) == 3


def test_a_policy_missing_a_cell_is_shown_but_not_ranked(world):
    a, b = make_policy_version(world.a, name="a"), make_policy_version(world.a, name="b")
    campaign = make_campaign(world.a, policy_versions=[a, b], trials_per_cell=1)
    actor = robot_actor(world.a.robot)
    trial = trials.next_trial(actor=actor, campaign=campaign)
    trials.report_trial_result(actor=actor, trial=trial, outcome="success")
    board = selectors.campaign_leaderboard(campaign).to_dict()
    assert all(row["rank"] is None and row["macro"] is None for row in board["rows"])
    assert board["remaining"] == 3 and board["pairwise"] == []
    played = next(row for row in board["rows"] if row["trials"])
    assert played["rate"] == 1.0 and not played["complete"]


def test_the_benchmark_board_pools_finished_campaigns_that_may_be_shown(world):
    shared = make_task(
        world.a.team,
        world.a.admin,
        world.a.embodiment,
        allowed_embodiments=[world.a.embodiment, world.b.embodiment],
    )
    benchmark = make_benchmark(
        world.a, task_versions=[shared.versions.get()], conditions=make_conditions(world.a)
    )
    public_a = make_policy_version(world.a, name="public-a", visibility=Visibility.PUBLIC)
    shown = make_campaign(
        world.a, policy_versions=[public_a], benchmark=benchmark, visibility=Visibility.PUBLIC
    )
    hidden = make_campaign(
        world.b,
        policy_versions=[make_policy_version(world.b, name="b-secret")],
        benchmark=benchmark,
    )
    running = make_campaign(
        world.a,
        policy_versions=[make_policy_version(world.a, name="unfinished", visibility="public")],
        benchmark=benchmark,
        visibility=Visibility.PUBLIC,
    )
    _play(shown, world.a.robot, lambda t: {"outcome": "success"})
    _play(hidden, world.b.robot, lambda t: {"outcome": "failure"})
    actor = robot_actor(world.a.robot)
    trials.report_trial_result(
        actor=actor, trial=trials.next_trial(actor=actor, campaign=running), outcome="success"
    )
    board = selectors.benchmark_leaderboard(benchmark).to_dict()
    assert [row["policy"] for row in board["rows"]] == ["public-a"]
    assert board["campaigns"] == [str(shown.pk)]
    assert "b-secret" not in json.dumps(board) and "unfinished" not in json.dumps(board)
    assert board["rows"][0]["alias"] is None


def test_a_blinded_board_names_no_policy(world):
    secret = make_policy_version(world.a, name="secret-diffusion")
    other = make_policy_version(world.a, name="secret-act")
    campaign = make_campaign(world.a, policy_versions=[secret, other], trials_per_cell=1)
    _play(campaign, world.a.robot, lambda t: {"outcome": "success"})
    data = selectors.blinded_leaderboard(selectors.campaign_leaderboard(campaign).to_dict())
    text = json.dumps(data)
    for hidden in ("secret-diffusion", "secret-act", str(secret.pk), str(other.pk)):
        assert hidden not in text
    for hidden in (str(secret.policy_id), str(other.policy_id)):
        assert hidden not in text
    assert {row["alias"] for row in data["rows"]} == {"policy A", "policy B"}
    assert {data["pairwise"][0]["first"], data["pairwise"][0]["second"]} == {
        "policy A",
        "policy B",
    }


def test_progress_counts_done_invalid_and_remaining_per_cell(world):
    campaign = make_campaign(world.a, policy_versions=[make_policy_version(world.a)])
    actor = robot_actor(world.a.robot)
    trials.report_trial_result(
        actor=actor, trial=trials.next_trial(actor=actor, campaign=campaign), outcome="success"
    )
    trials.report_trial_result(
        actor=actor,
        trial=trials.next_trial(actor=actor, campaign=campaign),
        valid=False,
        invalid_reason="operator_error",
    )
    trials.next_trial(actor=actor, campaign=campaign)
    progress = selectors.campaign_progress(campaign)
    assert (progress.planned, progress.done, progress.invalid) == (4, 1, 1)
    assert (progress.assigned, progress.remaining) == (1, 2)
    assert sum(cell.planned for cell in progress.cells) == 4


def test_paired_comparison_reports_mcnemar_and_the_sequential_state(world):
    a, b = make_policy_version(world.a, name="a"), make_policy_version(world.a, name="b")
    campaign = make_campaign(world.a, policy_versions=[a, b], mode="paired", trials_per_cell=4)
    _play(
        campaign,
        world.a.robot,
        lambda t: {"outcome": "success" if t.policy_version_id == a.pk else "failure"},
    )
    result = selectors.compare_policies(
        campaign.trials.all(), str(a.pk), str(b.pk), a_label="a", b_label="b"
    )
    assert result.paired["pairs_planned"] == result.paired["pairs_complete"] == 8
    assert (result.paired["a_only"], result.paired["b_only"]) == (8, 0)
    assert result.paired["mcnemar_p"] == pytest.approx(mcnemar_exact(8, 0))
    expected = sequential_paired_test([1] * 8, [0] * 8, max_pairs=8)
    assert result.sequential["state"] == expected.state == "a_better"
    assert result.unpaired["difference"] == pytest.approx(1.0)
    low, high = newcombe_difference_interval(8, 8, 0, 8)
    assert (result.unpaired["difference_low"], result.unpaired["difference_high"]) == (
        pytest.approx(low),
        pytest.approx(high),
    )


def test_corrections_move_the_board(world):
    campaign = make_campaign(world.a, policy_versions=[make_policy_version(world.a)])
    operators.create_operator(actor=world.a.admin, team=world.a.team, user=world.a.operator)
    _play(campaign, world.a.robot, lambda t: {"outcome": "failure"})
    trial = campaign.trials.get(order=0)
    trials.report_trial_result(actor=world.a.operator, trial=trial, outcome="success")
    (row,) = selectors.campaign_leaderboard(campaign).to_dict()["rows"]
    assert (row["successes"], row["trials"]) == (1, 4)


def test_the_refresh_command_fills_snapshots_and_keeps_unchanged_ones(world):
    from io import StringIO

    from django.core.management import call_command

    from evaluation.models import LeaderboardSnapshot

    benchmark = make_benchmark(
        world.a, task_versions=[world.a.task.versions.get()], conditions=make_conditions(world.a)
    )
    campaign = make_campaign(world.a, policy_versions=[make_policy_version(world.a)])
    out = StringIO()
    call_command("refresh_leaderboards", stdout=out)
    assert "Refreshed 2 leaderboard(s)." in out.getvalue()
    assert LeaderboardSnapshot.objects.filter(campaign=campaign).count() == 1
    assert LeaderboardSnapshot.objects.filter(benchmark=benchmark).count() == 1
    call_command("refresh_leaderboards", "--campaign", str(campaign.pk), stdout=StringIO())
    assert LeaderboardSnapshot.objects.count() == 2
