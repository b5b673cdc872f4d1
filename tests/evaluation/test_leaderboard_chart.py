"""The leaderboard page hands the interval chart its numbers through `json_script`: one row per
policy in rank order, with the macro success and its 95% interval in percent."""

import json
import re
from collections import Counter

import pytest
from django.test import Client

from core.models import Visibility
from evaluation.models import LeaderboardSnapshot
from evaluation.services import leaderboards
from tests.evaluation.factories import (
    make_benchmark,
    make_campaign,
    make_conditions,
    make_policy_version,
    play_campaign,
)

pytestmark = pytest.mark.django_db

CHART_DATA = re.compile(
    r'<script id="leaderboard-chart-data" type="application/json">(.*?)</script>', re.S
)


# Outcomes per policy and condition, in the order the robot plays that cell's trials: the
# macro successes differ (0.75, 0.5, 0.25) and no interval collapses to a point.
OUTCOMES = {
    "good-policy": ("SSSS", "SFSF"),
    "mid-policy": ("SSFS", "FSFF"),
    "weak-policy": ("SFFF", "FFSF"),
}


def played_board(tw, outcomes=OUTCOMES):
    """A public benchmark (one task, two conditions, four trials a cell) that one finished
    campaign has played with the given outcomes; its snapshot is refreshed."""
    conditions = make_conditions(tw)
    benchmark = make_benchmark(
        tw, task_versions=[tw.task.versions.get()], conditions=conditions, trials_per_cell=4
    )
    versions = [make_policy_version(tw, name=n, visibility=Visibility.PUBLIC) for n in outcomes]
    name_of = {v.pk: v.policy.name for v in versions}
    campaign = make_campaign(
        tw, policy_versions=versions, benchmark=benchmark, visibility=Visibility.PUBLIC
    )
    played = Counter()

    def decide(trial):
        key = (trial.policy_version_id, trial.condition_id)
        pattern = outcomes[name_of[trial.policy_version_id]][
            [c.pk for c in conditions].index(trial.condition_id)
        ]
        outcome = pattern[played[key]]
        played[key] += 1
        return {"outcome": "success" if outcome == "S" else "failure"}

    play_campaign(campaign, tw.robot, decide)
    leaderboards.refresh_leaderboard(
        scope=LeaderboardSnapshot.Scope.BENCHMARK, object_id=benchmark.pk
    )
    return benchmark


def test_public_leaderboard_carries_the_chart_data_in_rank_order(world):
    benchmark = played_board(world.a)
    response = Client().get(f"/leaderboards/{benchmark.pk}/")
    assert response.status_code == 200
    page = response.content.decode()
    found = CHART_DATA.findall(page)
    assert len(found) == 1
    rows = json.loads(found[0])
    assert [r["policy"] for r in rows] == ["good-policy", "mid-policy", "weak-policy"]
    assert [r["rank"] for r in rows] == sorted(r["rank"] for r in rows)

    expected = {
        r["policy_version"]: r
        for r in leaderboards.leaderboard_data(LeaderboardSnapshot.Scope.BENCHMARK, benchmark)[
            "rows"
        ]
    }
    for row in rows:
        source = expected[row["policy_version"]]
        assert row["bar"] == {
            "low": round(100 * source["macro_low"], 1),
            "high": round(100 * source["macro_high"], 1),
            "point": round(100 * source["macro"], 1),
        }
        assert row["trials"] == source["trials"] == 8  # 1 task x 2 conditions x 4 trials
        assert 0 <= row["bar"]["low"] < row["bar"]["point"] < row["bar"]["high"] <= 100
    assert [r["bar"]["point"] for r in rows] == [75.0, 50.0, 25.0]
    assert set(rows[0]) == {"policy_version", "policy", "version", "rank", "trials", "bar"}

    # The figure, its caption and scripts; the chart itself is hidden from assistive
    # technology (the table holds the same numbers) and from pages without JavaScript.
    assert "<figcaption>" in page and 'aria-hidden="true"' in page
    assert re.search(r"<figure[^>]*data-leaderboard-chart[^>]*hidden", page)
    assert '<script src="/static/vendor/chart.umd.min.js" defer>' in page
    assert '<script src="/static/evaluation/leaderboard.js" defer>' in page
    assert re.search(r"<script(?![^>]*\b(?:src|type)=)[^>]*>", page) is None  # no inline JS
    assert "OP-" not in page


def test_empty_leaderboard_loads_no_chart(world):
    benchmark = make_benchmark(
        world.a,
        task_versions=[world.a.task.versions.get()],
        conditions=make_conditions(world.a),
    )
    page = Client().get(f"/leaderboards/{benchmark.pk}/").content.decode()
    assert "No finished campaign" in page
    assert "leaderboard-chart-data" not in page and "chart.umd.min.js" not in page
