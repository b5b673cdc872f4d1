"""Throttles keyed by the caller: robots by robot, people by user, strangers by address.

Every web process must count against the same numbers. With the database cache (the default,
`PG_CACHE_URL=dbcache://...`), DRF's sliding-window history would cost a read, a `COUNT(*)`
for culling and a write, each a round trip, on every request (12 of a robot loop's 45 round
trips, bench/bench_robots.py). So there the counter is one statement: an upsert of the
caller's row in `core_throttlewindow` that returns the window's count — a fixed window, which
may let up to twice the rate through across a window's edge. With any other shared cache
(Redis), DRF's own history in the cache is used.
"""

from __future__ import annotations

import random

from django.core.cache import caches
from django.core.cache.backends.db import DatabaseCache
from django.db import connection
from rest_framework.throttling import SimpleRateThrottle

from core.access import is_robot, principal_key
from core.models import ThrottleWindow

# One request in this many also sweeps windows older than a day (callers that went away).
SWEEP_ONE_IN = 1000
SWEEP_AFTER_S = 24 * 3600


def count_hit(key: str, window_start: int) -> int:
    """Count one request of `key` in the window starting at `window_start` (Unix seconds);
    returns the requests in that window so far, this one included. One round trip."""
    quote = connection.ops.quote_name
    table, key_, start, hits_ = (
        quote(name) for name in (ThrottleWindow._meta.db_table, "key", "window_start", "hits")
    )
    with connection.cursor() as cursor:
        # PostgreSQL and SQLite (3.35+) both take this upsert.
        cursor.execute(
            f"INSERT INTO {table} ({key_}, {start}, {hits_}) VALUES (%s, %s, 1) "
            f"ON CONFLICT ({key_}) DO UPDATE SET "
            f"{hits_} = CASE WHEN {table}.{start} = excluded.{start} "
            f"THEN {table}.{hits_} + 1 ELSE 1 END, "
            f"{start} = excluded.{start} "
            f"RETURNING {hits_}",
            [key, window_start],
        )
        (hits,) = cursor.fetchone()
        if random.randrange(SWEEP_ONE_IN) == 0:
            cursor.execute(
                f"DELETE FROM {table} WHERE {start} < %s", [window_start - SWEEP_AFTER_S]
            )
    return hits


def counts_in_database() -> bool:
    return isinstance(caches["default"], DatabaseCache)


class PrincipalRateThrottle(SimpleRateThrottle):
    _window_end: float | None = None

    def get_rate(self):  # the rate depends on the caller; chosen in allow_request
        return None

    def allow_request(self, request, view):
        user = request.user
        if user is None or not user.is_authenticated:
            self.scope = "anon"
            ident = f"anon:{self.get_ident(request)}"
        else:
            self.scope = "robot" if is_robot(user) else "user"
            ident = principal_key(user)
        self.rate = self.THROTTLE_RATES.get(self.scope)
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        self.key = self.cache_format % {"scope": self.scope, "ident": ident}
        if not counts_in_database():
            return super().allow_request(request, view)
        window_start = int(self.timer() // self.duration) * self.duration
        self._window_end = window_start + self.duration
        return count_hit(self.key, window_start) <= self.num_requests

    def wait(self):
        if self._window_end is not None:
            return max(0.0, self._window_end - self.timer())
        return super().wait()

    def get_cache_key(self, request, view):
        return self.key
