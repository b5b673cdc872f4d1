"""Reads never write: a GET of a leaderboard page or endpoint inserts, updates and deletes
nothing, whether or not the board has a snapshot yet. Snapshots are stored by the refresh
job queued when results change; a board without one is computed for the reader and not
stored."""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from evaluation.models import LeaderboardSnapshot, Trial
from evaluation.services import leaderboards
from tests.evaluation.test_leaderboard_chart import played_board

pytestmark = pytest.mark.django_db

WRITES = ("INSERT", "UPDATE", "DELETE")


def _writes(queries) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith(WRITES)]


@pytest.fixture(params=["no snapshot yet", "with snapshots"])
def board(request, world):
    """A public benchmark one finished public campaign played; its boards either never
    refreshed (the commit hooks of a test transaction never run) or refreshed."""
    benchmark = played_board(world.a)
    campaign = benchmark.campaigns.get()
    if request.param == "no snapshot yet":
        LeaderboardSnapshot.objects.all().delete()
    else:
        leaderboards.refresh_leaderboard(
            scope=LeaderboardSnapshot.Scope.CAMPAIGN, object_id=campaign.pk
        )
    versions = sorted({str(pk) for pk in Trial.objects.values_list("policy_version_id", flat=True)})
    return benchmark, campaign, versions


def _get_writes_nothing(client, url) -> None:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    assert _writes(queries.captured_queries) == [], url


def test_leaderboard_pages_write_nothing(world, board):
    benchmark, _, (a, b, *_) = board
    snapshots = LeaderboardSnapshot.objects.count()
    for client in (Client(), _signed_in(world.a.researcher)):
        _get_writes_nothing(client, "/leaderboards/")
        _get_writes_nothing(client, f"/leaderboards/{benchmark.pk}/")
        _get_writes_nothing(client, f"/leaderboards/{benchmark.pk}/compare?a={a}&b={b}")
    assert LeaderboardSnapshot.objects.count() == snapshots


def test_leaderboard_endpoints_write_nothing(world, board, api):
    benchmark, campaign, (a, b, *_) = board
    snapshots = LeaderboardSnapshot.objects.count()
    for client in (api(), api(world.a.researcher)):
        _get_writes_nothing(client, f"/api/v1/benchmarks/{benchmark.pk}/leaderboard")
        _get_writes_nothing(client, f"/api/v1/benchmarks/{benchmark.pk}/leaderboard.csv")
    researcher = api(world.a.researcher)
    _get_writes_nothing(researcher, f"/api/v1/campaigns/{campaign.pk}/leaderboard")
    _get_writes_nothing(researcher, f"/api/v1/campaigns/{campaign.pk}/leaderboard.csv")
    _get_writes_nothing(researcher, f"/api/v1/campaigns/{campaign.pk}/compare?a={a}&b={b}")
    assert LeaderboardSnapshot.objects.count() == snapshots


def test_a_board_without_a_snapshot_is_computed_for_the_reader_and_not_stored(world, api):
    benchmark = played_board(world.a)
    stored = leaderboards.leaderboard_data(LeaderboardSnapshot.Scope.BENCHMARK, benchmark)
    LeaderboardSnapshot.objects.all().delete()
    body = api().get(f"/api/v1/benchmarks/{benchmark.pk}/leaderboard").json()
    assert body["snapshot_id"] is None and body["computed_at"]
    assert body["rows"] == stored["rows"]
    assert not LeaderboardSnapshot.objects.exists()


def _signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client
