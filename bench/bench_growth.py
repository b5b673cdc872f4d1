"""Growth: the episode list API with filters, p95 at 10,000 episodes against 1,000,000, in one
run on one PostgreSQL database.

The data: one team, one robot, sessions of 100 episodes, states as a busy lab has them (90%
ready, 3% rejected, 2% processing, 3% created, 2% uploading), a current label on a third of
the episodes, two episodes per second of creation time (so ties on `created_at` are common and
the id breaks them). The team, people, robot, task and operator come from the services; the
sessions, episodes and labels are written by `INSERT ... SELECT generate_series` (10,000
first, then 990,000 more, newer), then `VACUUM ANALYZE`, as autovacuum leaves a table.

Timed at each size, through the whole stack in this process (middleware, session auth, DRF,
the serializer; DEBUG off), interleaved rounds of: the first page (a researcher; a researcher
of two teams; a superuser, unscoped; the robot with its key), `?state=ready`,
`?state=rejected` (rare), `?session=<a middle session>`, and the page after the middle row
(a cursor half-way down, alone and with `?state=rejected`).
Printed: p50 and p95 per request kind and over all, the ratio of p95 at 1,000,000 to p95 at
10,000 (target <= 1.5x), and what the limit/offset pagination it replaced ran per page at each
size: the `COUNT(*)` and the `OFFSET` to the middle (raw SQL, best of 3).

It creates the database it runs on and drops it at the end:

    .venv/bin/python bench/bench_growth.py [--rounds 30] [--database-url postgres://postgres@127.0.0.1:5432/pg_bench_growth]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.databases import recreate_database  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/pg_bench_growth"
SMALL = 10_000
LARGE = 1_000_000
PER_SESSION = 100

# States by mod(n, 100); created/uploading/processing rows carry no measured fields.
_STATE_SQL = """CASE WHEN mod(n, 100) < 90 THEN 'ready' WHEN mod(n, 100) < 93 THEN 'rejected'
    WHEN mod(n, 100) < 95 THEN 'processing' WHEN mod(n, 100) < 98 THEN 'created'
    ELSE 'uploading' END"""
_DONE_SQL = "mod(n, 100) < 93"


def _setup_django(url: str) -> None:
    os.environ.update(
        {
            "DATABASE_URL": url,
            "DJANGO_SETTINGS_MODULE": "core.settings",
            "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": "bench-only-not-a-secret",
            "DJANGO_ALLOWED_HOSTS": "testserver",
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            "PG_THROTTLE_USER": "1000000/min",
            "PG_THROTTLE_ROBOT": "1000000/min",
        }
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def _design() -> dict:
    """Team, researcher, robot (with a key), task and operator, through the services."""
    from django.contrib.auth import get_user_model

    from core.models import Membership
    from core.services import embodiments, operators, robots, task_versions, teams
    from tests.core.factories import ARM_SPEC, PICK_CRITERIA

    team = teams.create_team(actor=None, name="Bench lab", slug="bench-lab")
    admin = get_user_model().objects.create_user("bench-admin")
    teams.add_member(actor=None, team=team, user=admin, role=Membership.Role.ADMIN)
    researcher = get_user_model().objects.create_user("bench-researcher")
    teams.add_member(actor=admin, team=team, user=researcher, role=Membership.Role.RESEARCHER)
    embodiment = embodiments.create_embodiment(actor=admin, team=team, name="arm", spec=ARM_SPEC)
    robot = robots.create_robot(actor=admin, team=team, embodiment=embodiment, name="arm-1")
    _, key = robots.issue_api_key(actor=admin, robot=robot)
    task = task_versions.create_task(
        actor=admin,
        team=team,
        slug="pick",
        name="Pick",
        instruction="Pick the cube.",
        time_limit_s=60.0,
        criteria=PICK_CRITERIA,
        allowed_embodiments=[embodiment],
    )
    operator = operators.create_operator(actor=admin, team=team)
    # A researcher of this team and of another one (whose list reads both teams' rows), and
    # a superuser (whose list is unscoped).
    other = teams.create_team(actor=None, name="Other lab", slug="other-lab")
    two_teams = get_user_model().objects.create_user("bench-two-teams")
    teams.add_member(actor=admin, team=team, user=two_teams, role=Membership.Role.RESEARCHER)
    teams.add_member(actor=None, team=other, user=two_teams, role=Membership.Role.RESEARCHER)
    root = get_user_model().objects.create_superuser("bench-root", "root@example.org", "pw")
    return {
        "team": team.pk,
        "robot": robot.pk,
        "task_version": task.versions.get().pk,
        "operator": operator.pk,
        "labeler": researcher.pk,
        "researcher": researcher,
        "two_teams": two_teams,
        "root": root,
        "key": key,
    }


def _grow(design: dict, start: int, stop: int) -> float:
    """Write episodes n in [start, stop) (and their sessions and labels); seconds taken."""
    from django.db import connection, transaction

    params = {
        "start": start,
        "stop": stop - 1,
        "per": PER_SESSION,
        "team": design["team"],
        "robot": design["robot"],
        "tv": design["task_version"],
        "op": design["operator"],
        "labeler": design["labeler"],
    }
    began = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO teleop_session (id, team_id, operator_id, robot_id, task_version_id,
                kind, status, opened_by, opened_at, closed_at)
            SELECT md5('session-' || s)::uuid, %(team)s, %(op)s, %(robot)s, %(tv)s,
                'teleop', 'closed', 'robot:arm-1',
                timestamptz '2025-01-01 00:00+00' + s * %(per)s / 2 * interval '1 second',
                timestamptz '2025-01-01 00:00+00' + (s + 1) * %(per)s / 2 * interval '1 second'
            FROM generate_series(%(start)s / %(per)s, %(stop)s / %(per)s) AS s
            """,
            params,
        )
        cursor.execute(
            f"""
            INSERT INTO teleop_episode (id, session_id, team_id, robot_id, task_version_id,
                operator_id, state, declared_size_bytes, declared_sha256, file, sha256,
                size_bytes, num_steps, duration_s, measured_hz, camera_frame_counts, truncated,
                rejection_code, quality_flags, check_results, rerun_file, rerun_version,
                processing_attempts, processed_at, recorded_at, discard_reason, discarded_by,
                created_at, updated_at)
            SELECT md5('episode-' || n)::uuid, md5('session-' || (n / %(per)s))::uuid,
                %(team)s, %(robot)s, %(tv)s, %(op)s, {_STATE_SQL},
                180000000 + mod(n, 1000), md5('bytes-' || n) || md5('more-' || n),
                CASE WHEN mod(n, 100) < 90 THEN 'episodes/' || md5('bytes-' || n) || '.hdf5'
                    ELSE '' END,
                CASE WHEN {_DONE_SQL} THEN md5('bytes-' || n) || md5('more-' || n) ELSE '' END,
                CASE WHEN {_DONE_SQL} THEN 180000000 + mod(n, 1000) END,
                CASE WHEN {_DONE_SQL} THEN 12000 END,
                CASE WHEN {_DONE_SQL} THEN 60.0 END,
                CASE WHEN {_DONE_SQL} THEN 199.8 END,
                CASE WHEN {_DONE_SQL} THEN '{{"cam_high": 1800, "cam_wrist": 1800}}'::jsonb
                    ELSE '{{}}'::jsonb END,
                false,
                CASE WHEN mod(n, 100) BETWEEN 90 AND 92 THEN 'low_control_rate' ELSE '' END,
                '[]'::jsonb,
                CASE WHEN mod(n, 100) < 90 THEN
                    '[{{"check_id": "no-nan", "type": "finite", "status": "pass"}}]'::jsonb
                    ELSE '[]'::jsonb END,
                '', '', 1,
                CASE WHEN {_DONE_SQL} THEN t + interval '90 seconds' END,
                t - interval '60 seconds', '', '', t, t
            FROM (
                SELECT n, timestamptz '2025-01-01 00:00+00' + n / 2 * interval '1 second' AS t
                FROM generate_series(%(start)s, %(stop)s) AS n
            ) AS rows
            """,
            params,
        )
        cursor.execute(
            """
            INSERT INTO teleop_label (episode_id, outcome, stages_reached, stage_score,
                failure_codes, notes, labeler_id, labeler_label, created_at)
            SELECT md5('episode-' || n)::uuid,
                CASE WHEN mod(n, 7) < 5 THEN 'success' ELSE 'failure' END,
                '["reach", "grasp"]'::jsonb, 0.5, '[]'::jsonb, '', %(labeler)s,
                'user:bench-researcher',
                timestamptz '2025-01-01 00:10+00' + n / 2 * interval '1 second'
            FROM generate_series(%(start)s, %(stop)s) AS n
            WHERE mod(n, 100) < 90 AND mod(n, 3) = 0
            """,
            params,
        )
    with connection.cursor() as cursor:  # outside a transaction, as VACUUM needs
        cursor.execute("VACUUM ANALYZE teleop_session, teleop_episode, teleop_label")
    return time.perf_counter() - began


def _position(n: int) -> tuple:
    """(created_at, id) of episode n, as the SQL above wrote it."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT created_at, id FROM teleop_episode WHERE id = md5('episode-' || %s)::uuid",
            [n],
        )
        return cursor.fetchone()


def _old_pagination_ms(design: dict, size: int) -> tuple[float, float]:
    """What limit/offset pagination ran per page of the team's list: COUNT(*), and the
    page at the middle (OFFSET size / 2); best of 3, in ms."""
    from django.db import connection

    def best(sql, params) -> float:
        timings = []
        for _ in range(3):
            began = time.perf_counter()
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                cursor.fetchall()
            timings.append(time.perf_counter() - began)
        return 1000 * min(timings)

    count = best("SELECT COUNT(*) FROM teleop_episode WHERE team_id = %s", [design["team"]])
    offset = best(
        "SELECT * FROM teleop_episode WHERE team_id = %s ORDER BY created_at DESC "
        "LIMIT 50 OFFSET %s",
        [design["team"], size // 2],
    )
    return count, offset


def _measure(design: dict, size: int, rounds: int) -> dict[str, list[float]]:
    """Latency of each request kind in seconds, `rounds` interleaved rounds after one
    unmeasured round."""
    from django.test import Client

    from core.api.keyset_pagination import encode_cursor

    middle = size // 2
    at, pk = _position(middle)
    deep = encode_cursor("n", at, pk)
    session = _position_session(middle)
    person = Client()
    person.force_login(design["researcher"])
    robot = Client(HTTP_AUTHORIZATION=f"Api-Key {design['key']}")
    two_teams, root = Client(), Client()
    two_teams.force_login(design["two_teams"])
    root.force_login(design["root"])
    kinds = {
        "first page": (person, "/api/v1/episodes/"),
        "first page, robot": (robot, "/api/v1/episodes/"),
        "first page, two teams": (two_teams, "/api/v1/episodes/"),
        "first page, superuser": (root, "/api/v1/episodes/"),
        "state=ready": (person, "/api/v1/episodes/?state=ready"),
        "state=rejected": (person, "/api/v1/episodes/?state=rejected"),
        "session=<middle>": (person, f"/api/v1/episodes/?session={session}"),
        "cursor at the middle": (person, f"/api/v1/episodes/?cursor={deep}"),
        "state=rejected, middle": (person, f"/api/v1/episodes/?state=rejected&cursor={deep}"),
    }
    timings: dict[str, list[float]] = {name: [] for name in kinds}
    for round_ in range(rounds + 1):
        for name, (client, url) in kinds.items():
            began = time.perf_counter()
            response = client.get(url)
            elapsed = time.perf_counter() - began
            if response.status_code != 200 or len(response.json()["results"]) != 50:
                raise SystemExit(f"{name}: {response.status_code} {response.content[:300]!r}")
            if round_:
                timings[name].append(elapsed)
    return timings


def _position_session(n: int) -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT md5('session-' || %s)::uuid", [n // PER_SESSION])
        return str(cursor.fetchone()[0])


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    recreate_database(args.database_url)
    try:
        _setup_django(args.database_url)
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        design = _design()
        results, old, built = {}, {}, {}
        for start, stop in ((0, SMALL), (SMALL, LARGE)):
            built[stop] = _grow(design, start, stop)
            old[stop] = _old_pagination_ms(design, stop)
            results[stop] = _measure(design, stop, args.rounds)
    finally:
        from django.db import connections

        connections.close_all()
        recreate_database(args.database_url, drop_only=True)

    print(
        f"episodes written with INSERT ... SELECT generate_series: {SMALL:,} in "
        f"{built[SMALL]:.1f} s, then {LARGE - SMALL:,} more in {built[LARGE]:.1f} s "
        f"(with VACUUM ANALYZE); {args.rounds} interleaved rounds per size, 50 rows a page"
    )
    print(f"{'request (GET /api/v1/episodes/...)':<30} {'p50 / p95 ms at 10k':>20} {'at 1M':>16}")
    for name in results[SMALL]:
        small, large = results[SMALL][name], results[LARGE][name]
        print(
            f"{name:<30} {_p(small, 0.5):9.1f} / {_p(small, 0.95):6.1f}"
            f" {_p(large, 0.5):8.1f} / {_p(large, 0.95):6.1f}"
        )
    every_small = [t for timings in results[SMALL].values() for t in timings]
    every_large = [t for timings in results[LARGE].values() for t in timings]
    p95_small, p95_large = _p(every_small, 0.95), _p(every_large, 0.95)
    print(
        f"{'all kinds':<30} {_p(every_small, 0.5):9.1f} / {p95_small:6.1f}"
        f" {_p(every_large, 0.5):8.1f} / {p95_large:6.1f}"
    )
    print(
        f"p95: 10,000 episodes (baseline) {p95_small:.1f} ms; 1,000,000 episodes "
        f"{p95_large:.1f} ms; ratio {p95_large / p95_small:.2f}x (target <= 1.5x)"
    )
    for size in (SMALL, LARGE):
        count_ms, offset_ms = old[size]
        print(
            f"limit/offset (replaced) at {size:>9,}: COUNT(*) {count_ms:7.1f} ms, "
            f"OFFSET {size // 2:,} page {offset_ms:7.1f} ms, on every page"
        )


if __name__ == "__main__":
    main()
