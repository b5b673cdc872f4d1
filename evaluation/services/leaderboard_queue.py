"""Queueing leaderboard refreshes once a change commits: one job per board per transaction.

The job (`evaluation.tasks.refresh_leaderboard_job`) runs `leaderboards.refresh_leaderboard`;
it is named by path (`core.job_queue`), so the services that queue it never import the tasks
module that imports them.
"""

from __future__ import annotations

from django.utils import timezone

from core import job_queue
from core.commit_hooks import on_commit_once
from evaluation.models import Campaign, LeaderboardSnapshot


def enqueue_leaderboard_refresh(campaign: Campaign) -> None:
    """Queue a refresh of the campaign's leaderboard, and of its benchmark's when the
    campaign is done (benchmark boards pool finished campaigns), once this commits."""
    _queue_refresh(LeaderboardSnapshot.Scope.CAMPAIGN, campaign.pk)
    if campaign.benchmark_id is not None and campaign.status == Campaign.Status.DONE:
        _queue_refresh(LeaderboardSnapshot.Scope.BENCHMARK, campaign.benchmark_id)


def enqueue_benchmark_refresh(benchmark_id) -> None:
    """Queue a refresh of the benchmark's leaderboard once this commits."""
    _queue_refresh(LeaderboardSnapshot.Scope.BENCHMARK, benchmark_id)


def _queue_refresh(scope: str, object_id) -> None:
    """Queue one refresh job for the board once the transaction commits, however many
    changes in it ask for one: a transaction that scores a hundred trials (an import, the
    demo seed) queues one job per board, not a hundred. Outside a transaction the job is
    queued at once."""
    refresh_leaderboard_job = job_queue.task_at("evaluation.tasks.refresh_leaderboard_job")
    board = (scope, str(object_id))

    def enqueue():
        # Stamped after the commit: a snapshot started later sees the change, so a job may
        # skip its work when such a snapshot exists.
        refresh_leaderboard_job.enqueue(*board, timezone.now().isoformat())

    on_commit_once(("leaderboard-refresh", *board), enqueue)
