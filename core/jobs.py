"""Jobs that survive faults: worker heartbeats, and re-queueing work whose job was lost.

Two kinds of loss, two passes (both safe to run from several workers at once):

- A job row is `RUNNING` but its worker is dead (killed, machine gone): no heartbeat for
  `JOB_WORKER_DEAD_AFTER_S`. `requeue_orphaned_tasks` puts it back to `READY` under a row lock
  (`SKIP LOCKED`), so exactly one reaper moves it; after `JOB_MAX_ATTEMPTS` claims it is
  failed instead, so a job that kills its worker cannot loop forever.
- A domain row waits for a job that no longer exists (the enqueue after commit was lost to a
  database outage, or the job failed on a database error): an episode `processing` with no
  live processing job, an export `queued`/`running` with no live build, and so on. Each app
  registers a finder in its `jobs` module with `@lost_work_finder`; `requeue_lost_work` runs
  them all.

Every job is idempotent (teleop/tasks.py, evaluation/tasks.py), so a duplicate run is
harmless; these passes only make sure no work is left behind.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.module_loading import autodiscover_modules
from django_tasks.base import Task, TaskResultStatus
from django_tasks_db.models import DBTaskResult

from core.models import WorkerHeartbeat

log = logging.getLogger(__name__)

LIVE_STATUSES = (TaskResultStatus.READY, TaskResultStatus.RUNNING)
# One pass moves at most this many rows of each kind; the next pass takes the rest.
REQUEUE_BATCH = 200


class WorkerLost(Exception):
    """Recorded as a job's failure when its workers died `JOB_MAX_ATTEMPTS` times running it."""


# --- Heartbeats -----------------------------------------------------------------------------


def beat(*, worker_id: str, host: str, pid: int) -> None:
    """Record that the worker is alive now (one UPDATE; an INSERT the first time)."""
    now = timezone.now()
    if WorkerHeartbeat.objects.filter(worker_id=worker_id).update(last_seen=now, pid=pid):
        return
    try:
        with transaction.atomic():
            WorkerHeartbeat.objects.create(worker_id=worker_id, host=host, pid=pid, last_seen=now)
    except IntegrityError:  # another thread of the same worker inserted it first
        WorkerHeartbeat.objects.filter(worker_id=worker_id).update(last_seen=now, pid=pid)


def forget_worker(*, worker_id: str) -> None:
    """A worker stopping cleanly removes its heartbeat: a job it leaves `RUNNING` (a forced
    stop) is then re-queued without waiting for the heartbeat to age."""
    WorkerHeartbeat.objects.filter(worker_id=worker_id).delete()


def live_worker_ids(*, dead_after_s: float, now: datetime | None = None) -> set[str]:
    cutoff = (now or timezone.now()) - timedelta(seconds=dead_after_s)
    return set(
        WorkerHeartbeat.objects.filter(last_seen__gte=cutoff).values_list("worker_id", flat=True)
    )


# --- Jobs whose worker died -----------------------------------------------------------------


@dataclass
class RequeueCounts:
    """What one pass did: jobs put back to READY, jobs failed for good, and domain rows given
    a new job (by finder name)."""

    requeued_jobs: int = 0
    failed_jobs: int = 0
    lost_work: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.requeued_jobs + self.failed_jobs + sum(self.lost_work.values())

    def __str__(self) -> str:
        parts = [f"{self.requeued_jobs} job(s) re-queued", f"{self.failed_jobs} given up"]
        parts += [f"{count} {name}" for name, count in sorted(self.lost_work.items())]
        return ", ".join(parts)


def requeue_orphaned_tasks(
    *, dead_after_s: float | None = None, max_attempts: int | None = None
) -> RequeueCounts:
    """Put back to READY every RUNNING job whose worker has no heartbeat younger than
    `dead_after_s` (and that started before then); fail it with WorkerLost once it has been
    claimed `max_attempts` times. Rows are taken with `SELECT ... FOR UPDATE SKIP LOCKED` and
    updated only while still RUNNING under the same claim, so concurrent reapers (and a worker
    finishing the job at that moment) never move a row twice."""
    dead_after_s = settings.JOB_WORKER_DEAD_AFTER_S if dead_after_s is None else dead_after_s
    max_attempts = settings.JOB_MAX_ATTEMPTS if max_attempts is None else max_attempts
    now = timezone.now()
    cutoff = now - timedelta(seconds=dead_after_s)
    counts = RequeueCounts()
    live = live_worker_ids(dead_after_s=dead_after_s, now=now)
    with transaction.atomic():
        candidates = (
            DBTaskResult.objects.select_for_update(skip_locked=True)
            .filter(status=TaskResultStatus.RUNNING)
            .filter(Q(started_at__lt=cutoff) | Q(started_at=None))
            .order_by("started_at")[:REQUEUE_BATCH]
        )
        for job in candidates:
            claimed_by = job.worker_ids[-1] if job.worker_ids else None
            if claimed_by in live:
                continue
            if len(job.worker_ids) >= max_attempts:
                error = WorkerLost(
                    f"Its worker died {len(job.worker_ids)} times running it "
                    f"(last: {claimed_by}); not tried again."
                )
                job.set_failed(error)
                counts.failed_jobs += 1
                log.error("job %s (%s) failed for good: %s", job.pk, job.task_path, error)
                continue
            DBTaskResult.objects.filter(pk=job.pk, status=TaskResultStatus.RUNNING).update(
                status=TaskResultStatus.READY
            )
            counts.requeued_jobs += 1
            log.warning(
                "job %s (%s) re-queued: its worker %s has not been seen for %.0f s",
                job.pk,
                job.task_path,
                claimed_by,
                dead_after_s,
            )
    return counts


def prune_heartbeats(*, dead_after_s: float | None = None) -> int:
    """Delete the heartbeats of workers gone for a long while (their jobs were re-queued
    long before)."""
    dead_after_s = settings.JOB_WORKER_DEAD_AFTER_S if dead_after_s is None else dead_after_s
    keep_s = max(10 * dead_after_s, 3600)
    cutoff = timezone.now() - timedelta(seconds=keep_s)
    deleted, _ = WorkerHeartbeat.objects.filter(last_seen__lt=cutoff).delete()
    return deleted


# --- Domain rows whose job was lost ---------------------------------------------------------

LostWorkFinder = Callable[..., int]
_finders: list[LostWorkFinder] = []


def lost_work_finder(finder: LostWorkFinder) -> LostWorkFinder:
    """Register `finder(*, grace_s, max_attempts) -> int`: it queues a job for each of its
    rows that waits for work no live job will do, and returns how many. It must be safe to run
    concurrently (lock its rows with `skip_locked`, enqueue inside that transaction)."""
    if finder not in _finders:
        _finders.append(finder)
    return finder


def lost_work_finders() -> list[LostWorkFinder]:
    autodiscover_modules("jobs")  # each app's jobs module registers its finders
    return list(_finders)


def requeue_lost_work(
    *, grace_s: float | None = None, max_attempts: int | None = None
) -> dict[str, int]:
    """Run every registered finder. `grace_s` (default `JOB_WORKER_DEAD_AFTER_S`) keeps a
    finder off rows changed that recently, whose job may be about to be queued."""
    grace_s = settings.JOB_WORKER_DEAD_AFTER_S if grace_s is None else grace_s
    max_attempts = settings.JOB_MAX_ATTEMPTS if max_attempts is None else max_attempts
    done = {}
    for finder in lost_work_finders():
        name = finder.__name__.removeprefix("requeue_")
        done[name] = finder(grace_s=grace_s, max_attempts=max_attempts)
        if done[name]:
            log.warning("re-queued %d row(s) whose job was lost: %s", done[name], name)
    return done


def requeue_everything(
    *, dead_after_s: float | None = None, max_attempts: int | None = None
) -> RequeueCounts:
    """One full pass: jobs of dead workers, then domain rows with no live job. What the
    workers run periodically and `manage.py requeue_jobs` runs once."""
    counts = requeue_orphaned_tasks(dead_after_s=dead_after_s, max_attempts=max_attempts)
    counts.lost_work = requeue_lost_work(grace_s=dead_after_s, max_attempts=max_attempts)
    prune_heartbeats(dead_after_s=dead_after_s)
    return counts


# --- For finders ----------------------------------------------------------------------------


def jobs_for(task: Task, *, arg_index: int = 0, values: Iterable[str]) -> dict[str, list[str]]:
    """The statuses of `task`'s job rows whose positional argument `arg_index` is one of
    `values`, keyed by that argument: what a finder needs to tell lost work (no live job) and
    hopeless work (`max_attempts` jobs already) apart."""
    values = [str(v) for v in values]
    if not values:
        return {}
    rows = DBTaskResult.objects.filter(
        task_path=task.module_path, **{f"args_kwargs__args__{arg_index}__in": values}
    ).values_list("args_kwargs", "status")
    found: dict[str, list[str]] = {}
    for args_kwargs, status in rows:
        found.setdefault(str(args_kwargs["args"][arg_index]), []).append(status)
    return found


def has_live_job(statuses: list[str]) -> bool:
    return any(status in LIVE_STATUSES for status in statuses)


def requeue_unfinished_builds(
    model,
    job: Task,
    rows,
    *,
    grace_s: float,
    max_attempts: int,
    on_hopeless: Callable[[object, int], None] | None = None,
) -> int:
    """The shared part of the build finders (access archives, dataset exports): of `rows`
    (a queryset of `model`, which has `state` QUEUED/RUNNING/FAILED, `created_at`,
    `started_at`, `finished_at` and `error`), those queued or running for longer than
    `grace_s` with no live `job` are queued again; one that already had `max_attempts` jobs
    is marked failed instead (after `on_hopeless(pk, attempts)`), so its page stops saying
    it is on the way. Returns how many were queued."""
    cutoff = timezone.now() - timedelta(seconds=grace_s)
    with transaction.atomic():
        ids = list(
            rows.select_for_update(skip_locked=True)
            .filter(state__in=[model.State.QUEUED, model.State.RUNNING], created_at__lt=cutoff)
            .exclude(started_at__gte=cutoff)
            .order_by("created_at")
            .values_list("pk", flat=True)[:REQUEUE_BATCH]
        )
        known = jobs_for(job, values=ids)
        queued = 0
        for pk in ids:
            statuses = known.get(str(pk), [])
            if has_live_job(statuses):
                continue
            if len(statuses) >= max_attempts:
                if on_hopeless is not None:
                    on_hopeless(pk, len(statuses))
                model.objects.filter(pk=pk).update(
                    state=model.State.FAILED,
                    error=f"Its build was tried {len(statuses)} times and never finished.",
                    finished_at=timezone.now(),
                )
                continue
            job.enqueue(str(pk))
            queued += 1
    return queued


# --- Core's own work ------------------------------------------------------------------------


@lost_work_finder
def requeue_access_archives_unfinished(*, grace_s: float, max_attempts: int) -> int:
    """Access archives `queued` or `running` with no live build job (failed after
    `max_attempts` jobs); expired ones are left to `expire_access_archives`."""
    from core.models import DataRequest
    from core.tasks import build_access_archive_job

    return requeue_unfinished_builds(
        DataRequest,
        build_access_archive_job,
        DataRequest.objects.filter(expires_at__gt=timezone.now()),
        grace_s=grace_s,
        max_attempts=max_attempts,
    )


@lost_work_finder
def expire_access_archives(*, grace_s: float, max_attempts: int) -> int:
    """Not lost work but the same timer: delete access archives past their expiry, and
    files a download that died left behind (core.services.data_requests.expire_due)."""
    from core.services import data_requests

    return data_requests.expire_due()
