"""Throttle counters with the database cache: one upsert a request, shared by every process,
a fixed window whose end is the Retry-After."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.api import throttling
from core.models import ThrottleWindow

pytestmark = pytest.mark.django_db


@pytest.fixture
def database_counters(settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "pg_cache",
        }
    }


def test_count_hit_counts_within_a_window_and_starts_again_in_the_next():
    assert [throttling.count_hit("k", 600) for _ in range(3)] == [1, 2, 3]
    assert throttling.count_hit("other", 600) == 1
    assert throttling.count_hit("k", 660) == 1
    assert ThrottleWindow.objects.get(key="k").window_start == 660


def test_a_robot_over_its_rate_gets_429_with_the_window_end_as_retry_after(
    api, world, monkeypatch, database_counters
):
    # The class reads its rates once, at import: patch them here (restored after the test).
    rates = {**throttling.PrincipalRateThrottle.THROTTLE_RATES, "robot": "3/min"}
    monkeypatch.setattr(throttling.PrincipalRateThrottle, "THROTTLE_RATES", rates)
    client = api(key=world.a.robot_key)
    statuses = [client.get("/api/v1/whoami").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = client.get("/api/v1/whoami")
    assert 1 <= int(refused["Retry-After"]) <= 60
    (row,) = ThrottleWindow.objects.filter(key__contains="robot")
    assert row.hits == 5


def test_the_database_counter_is_one_query_a_request(api, world, database_counters):
    client = api(key=world.a.robot_key)
    client.get("/api/v1/whoami")
    with CaptureQueriesContext(connection) as queries:
        client.get("/api/v1/whoami")
    throttle_queries = [q for q in queries if "throttlewindow" in q["sql"].lower()]
    cache_queries = [q for q in queries if "pg_cache" in q["sql"].lower()]
    assert len(throttle_queries) == 1 and cache_queries == []
