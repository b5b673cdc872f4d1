"""A board computed on a read (here: a shared benchmark's board for a reader who may not see
everything it pools) is scored once per what it shows, not on every GET; a changed count or
a renamed policy is a new board, never a stale one."""

import pytest

from evaluation.models import Policy, Trial
from proving_ground import scoring
from tests.evaluation import test_benchmark_audience

pytestmark = pytest.mark.django_db

shared_board = test_benchmark_audience.shared_board


@pytest.fixture
def scorings(monkeypatch):
    """The calls of `scoring.score`, counted."""
    calls = []
    real = scoring.score

    def counted(*args, **kwargs):
        calls.append(kwargs.get("version"))
        return real(*args, **kwargs)

    monkeypatch.setattr(scoring, "score", counted)
    return calls


def test_a_partial_readers_board_is_scored_once_and_rescored_on_a_change(
    api,
    world,
    shared_board,
    scorings,
):
    benchmark, private, shared, secret, shown = shared_board
    url = f"/api/v1/benchmarks/{benchmark.pk}/leaderboard"
    first = api(world.b.operator).get(url).json()
    assert first["snapshot_id"] is None and len(scorings) == 1
    # The same reader again, and another of team b who may see the same: no new scoring.
    again = api(world.b.operator).get(url).json()
    assert api(world.b.admin).get(url).json() == first == again
    assert len(scorings) == 1

    # A changed outcome: new counts, scored again.
    trial = Trial.objects.filter(campaign=shared, state=Trial.State.DONE).first()
    Trial.objects.filter(pk=trial.pk).update(outcome="failure")
    changed = api(world.b.operator).get(url).json()
    assert len(scorings) == 2
    assert changed["rows"][0]["successes"] == first["rows"][0]["successes"] - 1

    # A renamed policy: the same counts, but never the old name.
    Policy.objects.filter(pk=shown.policy_id).update(name="renamed-public-policy")
    renamed = api(world.b.operator).get(url).json()
    assert len(scorings) == 3
    assert [row["policy"] for row in renamed["rows"]] == ["renamed-public-policy"]
    api(world.b.operator).get(url)
    assert len(scorings) == 3
