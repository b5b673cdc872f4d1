"""Leaderboard refreshes whose job was lost, queued again (registered with core.jobs).

A refresh is queued after a result commits (`evaluation.services.leaderboards`); if that
enqueue is lost (the database went away between the commit and the job's insert) or the job
failed, the board stays behind its results. A board is behind when a trial was reported
after its latest snapshot started and no refresh job was queued after that report (one that
ran covers it: it either stored a newer snapshot or found the counts unchanged).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django_tasks.base import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from core.jobs import LIVE_STATUSES, REQUEUE_BATCH, lost_work_finder
from evaluation.models import Benchmark, Campaign, LeaderboardSnapshot, Trial

log = logging.getLogger(__name__)

# Results older than this are taken to be on their boards already: the check stays cheap
# however long the history is.
LOOKBACK = timedelta(days=1)


@lost_work_finder
def requeue_leaderboards_behind(*, grace_s: float, max_attempts: int) -> int:
    """Queue a refresh for each campaign or benchmark board behind its results."""
    from evaluation.tasks import refresh_leaderboard_job

    now = timezone.now()
    reported = dict(
        Trial.objects.filter(
            reported_at__gte=now - LOOKBACK, reported_at__lt=now - timedelta(seconds=grace_s)
        )
        .values("campaign_id")
        .annotate(last=Max("reported_at"))
        .values_list("campaign_id", "last")[:REQUEUE_BATCH]
    )
    if not reported:
        return 0
    queued = 0
    with transaction.atomic():
        campaigns = list(
            Campaign.objects.select_for_update(skip_locked=True)
            .filter(pk__in=list(reported))
            .values_list("pk", "benchmark_id", "status")
        )
        changes = {(LeaderboardSnapshot.Scope.CAMPAIGN, pk): reported[pk] for pk, _, _ in campaigns}
        for pk, benchmark_id, status in campaigns:
            if benchmark_id is not None and status == Campaign.Status.DONE:
                key = (LeaderboardSnapshot.Scope.BENCHMARK, benchmark_id)
                changes[key] = max(changes.get(key, reported[pk]), reported[pk])
        benchmark_ids = [
            pk for scope, pk in changes if scope == LeaderboardSnapshot.Scope.BENCHMARK
        ]
        locked_benchmarks = set(
            Benchmark.objects.select_for_update(skip_locked=True)
            .filter(pk__in=benchmark_ids)
            .values_list("pk", flat=True)
        )
        latest_started = _latest_snapshot_starts(changes)
        jobs = _refresh_jobs(refresh_leaderboard_job, [str(pk) for _, pk in changes])
        for (scope, pk), changed_at in changes.items():
            if scope == LeaderboardSnapshot.Scope.BENCHMARK and pk not in locked_benchmarks:
                continue
            started = latest_started.get((scope, pk))
            if started is not None and started >= changed_at:
                continue
            since = [status for enqueued, status in jobs.get(str(pk), []) if enqueued >= changed_at]
            if any(
                status in LIVE_STATUSES or status == TaskResultStatus.SUCCESSFUL for status in since
            ):
                continue
            if len(since) >= max_attempts:
                log.error(
                    "%s leaderboard %s: %d refreshes failed; not queued again",
                    scope,
                    pk,
                    len(since),
                )
                continue
            refresh_leaderboard_job.enqueue(scope, str(pk), now.isoformat())
            queued += 1
    return queued


def _latest_snapshot_starts(changes) -> dict:
    campaign_ids = [pk for scope, pk in changes if scope == LeaderboardSnapshot.Scope.CAMPAIGN]
    benchmark_ids = [pk for scope, pk in changes if scope == LeaderboardSnapshot.Scope.BENCHMARK]
    latest = {}
    for campaign_id, started in (
        LeaderboardSnapshot.objects.filter(campaign_id__in=campaign_ids)
        .values("campaign_id")
        .annotate(last=Max("started_at"))
        .values_list("campaign_id", "last")
    ):
        latest[(LeaderboardSnapshot.Scope.CAMPAIGN, campaign_id)] = started
    for benchmark_id, started in (
        LeaderboardSnapshot.objects.filter(benchmark_id__in=benchmark_ids)
        .values("benchmark_id")
        .annotate(last=Max("started_at"))
        .values_list("benchmark_id", "last")
    ):
        latest[(LeaderboardSnapshot.Scope.BENCHMARK, benchmark_id)] = started
    return latest


def _refresh_jobs(task, object_ids: list[str]) -> dict[str, list[tuple]]:
    """(enqueued_at, status) of each refresh job, keyed by the board's object id."""
    found: dict[str, list[tuple]] = {}
    rows = DBTaskResult.objects.filter(
        task_path=task.module_path, args_kwargs__args__1__in=object_ids
    ).values_list("args_kwargs", "enqueued_at", "status")
    for args_kwargs, enqueued_at, status in rows:
        found.setdefault(str(args_kwargs["args"][1]), []).append((enqueued_at, status))
    return found
