"""A benchmark leaderboard over 1,000,000 trials on PostgreSQL: the selector against the bare
grouped SQL query it issues, measured side by side in one run.

The data: one public benchmark of 10 task versions x 5 conditions, 20 policy versions, and 10
finished campaigns of 100,000 trials each (100 per policy and cell per campaign; 100,000 is
the most one campaign schedules), with outcomes drawn per policy, task and condition and about
2% of trials invalid. The rows are written with COPY, the rest through the services.

Timed, each a few times (best and median printed):
- "bare query": the selector's own grouped query (`selectors.grouped_counts_queryset`), its SQL
  run on a cursor and fetched, nothing else;
- "selector": `selectors.benchmark_leaderboard`, which runs that query, reads the labels and
  computes every figure (Wilson intervals per cell, task and condition, bootstrap macro and
  rank intervals with 10,000 resamples, 190 Holm-adjusted exact tests with letters, the worst
  condition per policy). "cold" clears the caches of exact tests and cell summaries first (a
  worker's first refresh); "warm" keeps them (a refresh after a few trials changed reuses the
  unchanged cells' results); "after 10 trials changed" flips ten outcomes of one policy
  before the run, as a refresh after new results would see (its 19 pairs and changed cells
  are computed afresh, the rest come from the caches).

It creates the database it runs on and drops it at the end:

    .venv/bin/python -m bench.bench_leaderboard [--database-url postgres://postgres@127.0.0.1:5432/pg_bench_leaderboard]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from datetime import UTC, datetime

import numpy as np

POLICIES = 20
TASKS = 10
CONDITIONS = 5
CAMPAIGNS = 10
TRIALS_PER_CELL_PER_CAMPAIGN = 100  # per policy: 10 campaigns x 100 = 1,000 per cell
INVALID_RATE = 0.02
from bench.databases import recreate_database  # noqa: E402

REPEATS = 5
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/pg_bench_leaderboard"
INVALID_REASONS = ("success_at_reset", "no_actions", "missing_data", "timeout", "operator_error")


def _setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = "core.settings"
    # Production-like: no query log kept in memory by the debug cursor.
    os.environ["DJANGO_DEBUG"] = "false"
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-not-a-secret")
    os.environ["DJANGO_CONN_MAX_AGE"] = "0"
    import django

    django.setup()


def _design():
    """Teams, robot, tasks, conditions, policies, benchmark and campaigns, via the services."""
    from django.contrib.auth import get_user_model

    from core.models import Membership
    from core.services import conditions as condition_services
    from core.services import embodiments, robots, teams
    from core.services import task_versions as task_version_services
    from evaluation.services import benchmarks, policies
    from evaluation.services import campaigns as campaign_services
    from tests.core.factories import ARM_SPEC, PICK_CRITERIA

    team = teams.create_team(actor=None, name="Bench lab", slug="bench-lab")
    admin = get_user_model().objects.create_user("bench-admin")
    teams.add_member(actor=None, team=team, user=admin, role=Membership.Role.ADMIN)
    embodiment = embodiments.create_embodiment(actor=admin, team=team, name="arm", spec=ARM_SPEC)
    robot = robots.create_robot(actor=admin, team=team, embodiment=embodiment, name="arm-1")
    versions = [
        task_version_services.create_task(
            actor=admin,
            team=team,
            slug=f"task-{t}",
            name=f"Task {t}",
            instruction="Do the task.",
            time_limit_s=60.0,
            criteria=PICK_CRITERIA,
            allowed_embodiments=[embodiment],
        ).versions.get()
        for t in range(TASKS)
    ]
    conditions = [
        condition_services.create_condition(
            actor=admin, team=team, factor="lighting", level=f"level-{c}"
        )
        for c in range(CONDITIONS)
    ]
    policy_versions = []
    for p in range(POLICIES):
        policy = policies.create_policy(
            actor=admin, team=team, name=f"policy-{p:02d}", visibility="public"
        )
        policy_versions.append(
            policies.create_policy_version(
                actor=admin, policy=policy, label="v1", checkpoint_sha256=f"{p:064x}"
            )
        )
    benchmark = benchmarks.create_benchmark(
        actor=admin,
        team=team,
        name="bench",
        task_versions=versions,
        conditions=conditions,
        trials_per_cell=TRIALS_PER_CELL_PER_CAMPAIGN,
        visibility="public",
    )
    benchmark = benchmarks.publish_benchmark(actor=admin, benchmark=benchmark)
    campaigns = [
        campaign_services.create_campaign(
            actor=admin,
            team=team,
            name=f"round-{c}",
            policy_versions=policy_versions,
            robots=[robot],
            benchmark=benchmark,
            visibility="public",
            seed=c,
        )
        for c in range(CAMPAIGNS)
    ]
    return benchmark, campaigns, policy_versions, versions, conditions, robot


_COLUMNS = (
    'id, campaign_id, "order", block, policy_version_id, alias, task_version_id, '
    "condition_id, robot_id, block_head, state, outcome, stages_reached, stage_score, "
    "failure_codes, invalid_reason, notes, check_outcome, check_disagrees, outcome_source, "
    "reported_by, reported_at, created_at, updated_at"
)


def _insert_trials(campaigns, policy_versions, task_versions, conditions, robot) -> float:
    """COPY the trials in; returns seconds. Success probability per (policy, task, condition)
    on a logit scale: policy strength + task difficulty + condition effect."""
    from django.db import connection

    from evaluation.models import Campaign

    rng = np.random.default_rng(20240601)
    strength = np.linspace(-0.8, 1.2, POLICIES)
    difficulty = rng.normal(0.0, 0.6, TASKS)
    lighting = np.array([0.3, 0.1, 0.0, -0.2, -0.6])[:CONDITIONS]
    logit = strength[:, None, None] + difficulty[None, :, None] + lighting[None, None, :]
    p_success = 1.0 / (1.0 + np.exp(-logit))
    now = datetime.now(UTC)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        copy_sql = f"COPY evaluation_trial ({_COLUMNS}) FROM STDIN"
        raw = cursor.cursor  # the psycopg cursor under Django's wrapper
        for campaign in campaigns:
            cells = [
                (p, t, c)
                for p in range(POLICIES)
                for t in range(TASKS)
                for c in range(CONDITIONS)
                for _ in range(TRIALS_PER_CELL_PER_CAMPAIGN)
            ]
            order = rng.permutation(len(cells))
            success = rng.random(len(cells))
            invalid = rng.random(len(cells)) < INVALID_RATE
            reasons = rng.integers(0, len(INVALID_REASONS), len(cells))
            stages = rng.random(len(cells))
            with raw.copy(copy_sql) as copy:
                for index, (p, t, c) in enumerate(cells):
                    ok = success[index] < p_success[p, t, c]
                    bad = bool(invalid[index])
                    copy.write_row(
                        (
                            uuid.uuid4(),
                            campaign.pk,
                            int(order[index]),
                            int(order[index]) // POLICIES,
                            policy_versions[p].pk,
                            f"policy {chr(65 + p)}",
                            task_versions[t].pk,
                            conditions[c].pk,
                            robot.pk,
                            False,
                            "invalid" if bad else "done",
                            "" if bad else ("success" if ok else "failure"),
                            "[]",
                            None if bad else round(float(stages[index]), 3),
                            "[]",
                            INVALID_REASONS[reasons[index]] if bad else "",
                            "",
                            "",
                            False,
                            "robot",
                            "robot:arm-1",
                            now,
                            now,
                            now,
                        )
                    )
        Campaign.objects.filter(pk__in=[c.pk for c in campaigns]).update(
            status=Campaign.Status.DONE, started_at=now, finished_at=now
        )
        cursor.execute("ANALYZE evaluation_trial")
    return time.perf_counter() - started


def _timed(function, repeats: int, before=None) -> list[float]:
    timings = []
    for _ in range(repeats):
        if before is not None:
            before()
        start = time.perf_counter()
        function()
        timings.append(time.perf_counter() - start)
    return timings


def _clear_caches() -> None:
    from proving_ground import scoring
    from proving_ground.stats.comparisons import cached_boschloo_p, cached_fisher_p

    cached_fisher_p.cache_clear()
    cached_boschloo_p.cache_clear()
    scoring.cached_cell_summary.cache_clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    args = parser.parse_args()
    recreate_database(args.database_url)
    try:
        _setup_django(args.database_url)
        from django.core.management import call_command
        from django.db import connection

        from evaluation import selectors
        from evaluation.models import Trial

        call_command("migrate", verbosity=0)
        benchmark, campaigns, policy_versions, task_versions, conditions, robot = _design()
        insert_s = _insert_trials(campaigns, policy_versions, task_versions, conditions, robot)
        total = Trial.objects.count()
        print(
            f"{total:,} trials ({POLICIES} policies x {TASKS} tasks x {CONDITIONS} conditions,"
            f" {CAMPAIGNS} campaigns) written with COPY in {insert_s:.1f} s"
            f" ({total / insert_s:,.0f} rows/s)"
        )

        trials = Trial.objects.filter(
            campaign__in=selectors.leaderboard_campaigns(benchmark).values("pk")
        )
        sql, params = selectors.grouped_counts_queryset(trials).query.sql_with_params()

        def bare() -> int:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                return len(cursor.fetchall())

        rows = bare()  # warms the buffer cache for both
        board = selectors.benchmark_leaderboard(benchmark)
        assert rows == POLICIES * TASKS * CONDITIONS, rows
        assert (
            len(board.board.rows) == POLICIES and board.board.trials + board.board.invalid == total
        )

        def change_one_policy(repeat: int) -> None:
            # What a refresh after new results sees: ten trials of one policy flip outcome.
            pv = policy_versions[repeat % POLICIES]
            ids = list(
                Trial.objects.filter(policy_version=pv, state="done")
                .order_by("id")
                .values_list("id", flat=True)[repeat * 10 : repeat * 10 + 10]
            )
            Trial.objects.filter(id__in=ids, outcome="success").update(outcome="x")
            Trial.objects.filter(id__in=ids, outcome="failure").update(outcome="success")
            Trial.objects.filter(id__in=ids, outcome="x").update(outcome="failure")

        bare_s, cold_s, warm_s, changed_s = [], [], [], []
        for repeat in range(REPEATS):  # interleaved, so drifting load hits all alike
            bare_s += _timed(bare, 1)
            cold_s += _timed(lambda: selectors.benchmark_leaderboard(benchmark), 1, _clear_caches)
            warm_s += _timed(lambda: selectors.benchmark_leaderboard(benchmark), 1)
            change_one_policy(repeat)
            changed_s += _timed(lambda: selectors.benchmark_leaderboard(benchmark), 1)
        query_only = _timed(lambda: selectors.grouped_counts(trials), REPEATS)

        def line(name, timings, base=None):
            best, median = min(timings), statistics.median(timings)
            ratio = f"{median / statistics.median(base):6.2f}x" if base else "      "
            print(f"{name:<34} best {best:6.3f} s  median {median:6.3f} s  {ratio}")

        print(f"grouped rows: {rows:,}; repeats: {REPEATS}")
        line("bare grouped SQL query", bare_s)
        line("grouped_counts (ORM, same SQL)", query_only, bare_s)
        line("selector, cold caches", cold_s, bare_s)
        line("selector, warm caches", warm_s, bare_s)
        line("selector, after 10 trials changed", changed_s, bare_s)
        top = board.board.rows[0]
        label = board.policies[top.policy]
        print(
            f"top row: {label['policy']} macro {top.macro:.3f} [{top.macro_low:.3f}, "
            f"{top.macro_high:.3f}] rank {top.rank} ({top.rank_low}-{top.rank_high}) "
            f"letters {top.letters} n={top.trials:,} invalid={top.invalid:,}"
        )
        print("target: selector <= 2x the bare query and < 2 s")
    finally:
        from django.db import connections

        connections.close_all()
        recreate_database(args.database_url, drop_only=True)


if __name__ == "__main__":
    main()
