"""The job worker that keeps running through database faults (`manage.py worker`).

django_tasks_db's `Worker` claims and runs jobs; `ResilientWorker` subclasses it and adds
what production needs (docs/jobs.md):

- **Reconnects**: a database error while claiming a job (PostgreSQL restarting, a network
  cut) no longer ends the process. The worker closes its broken connections, waits for
  `SELECT 1` to answer with capped exponential backoff and jitter, logs the outage and its
  end, and carries on.
- **Finishing survives too**: recording a job's result is retried until the database is back,
  so a job that ran across an outage is not left `RUNNING`. A job that failed *because* of a
  database error (or was interrupted by a forced stop) is queued again rather than failed, up
  to `JOB_MAX_ATTEMPTS` claims.
- **Heartbeat and reaper**: a daemon thread writes this worker's heartbeat every
  `JOB_WORKER_HEARTBEAT_S` and, every `JOB_REAP_INTERVAL_S`, runs `core.jobs.requeue_everything`
  (jobs of dead workers, domain rows whose job was lost). Being a thread, it keeps beating and
  reaping while the main thread runs a long job.
- **Graceful stop**: SIGTERM/SIGINT let the running job finish (a second signal interrupts
  it; the job goes back to the queue), then the heartbeat is removed.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

from django.db import (
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
    connections,
)
from django_tasks.base import TaskResultStatus
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult

from core import jobs

log = logging.getLogger(__name__)

DATABASE_ERRORS = (OperationalError, InterfaceError)
# Exceptions that interrupt a job rather than show it is broken: it is queued again.
INTERRUPTIONS = (SystemExit, KeyboardInterrupt)
BACKOFF_BASE_S = 0.5


def backoff_delays(*, cap_s: float, base_s: float = BACKOFF_BASE_S) -> Iterator[float]:
    """Capped exponential backoff with jitter: attempt n waits between half and all of
    min(cap_s, base_s * 2**n) seconds, so workers restarted together do not reconnect in
    lockstep, and none waits longer than `cap_s`."""
    attempt = 0
    while True:
        ceiling = min(cap_s, base_s * 2**attempt)
        yield ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 (jitter, not secrets)
        attempt += 1


def close_broken_connections() -> None:
    """Close this thread's database connections; Django opens a fresh one on next use."""
    for conn in connections.all(initialized_only=True):
        try:
            conn.close()
        except Exception:  # a connection that died with the server cannot close cleanly
            log.debug("closing a broken %s connection failed", conn.alias, exc_info=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


class ResilientWorker(Worker):
    """django_tasks_db's Worker, kept running through database faults, with a heartbeat."""

    def __init__(
        self,
        *,
        heartbeat_s: float,
        dead_after_s: float,
        reap_interval_s: float,
        max_attempts: int,
        reconnect_max_s: float,
        **worker_options: Any,
    ):
        super().__init__(**worker_options)
        self.heartbeat_s = heartbeat_s
        self.dead_after_s = dead_after_s
        self.reap_interval_s = reap_interval_s
        self.max_attempts = max_attempts
        self.reconnect_max_s = reconnect_max_s
        self.host = socket.gethostname()[:255]
        self.pid = os.getpid()
        self._stopping = threading.Event()  # set by a stop signal: cuts backoff sleeps short
        self._heartbeat_stop = threading.Event()
        self._heartbeat_thread: threading.Thread | None = None

    # --- The main loop ----------------------------------------------------------------------

    def run(self) -> None:
        self.pid = os.getpid()  # under the autoreloader this runs in the child
        self._start_heartbeat()
        try:
            while self.running:
                try:
                    super().run()
                    return  # batch done, max tasks reached, or stopped
                except DATABASE_ERRORS as exc:
                    if not self.running:
                        return
                    log.warning("worker %s lost the database: %s", self.worker_id, _first_line(exc))
                    self.startup_delay = False
                    self._wait_for_database()
        finally:
            self._stop_heartbeat()

    def _wait_for_database(self) -> None:
        """Poll the database with backoff until it answers (or a stop signal comes)."""
        lost_at = time.monotonic()
        delays = backoff_delays(cap_s=self.reconnect_max_s)
        while self.running:
            close_broken_connections()
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT 1")
            except DATABASE_ERRORS as exc:
                delay = next(delays)
                log.warning(
                    "worker %s: database unavailable for %.0f s (%s); retrying in %.1f s",
                    self.worker_id,
                    time.monotonic() - lost_at,
                    _first_line(exc),
                    delay,
                )
                self._stopping.wait(delay)
                continue
            log.warning(
                "worker %s: database back after %.1f s; taking jobs again",
                self.worker_id,
                time.monotonic() - lost_at,
            )
            return

    def shutdown(self, signum: int, frame: FrameType | None) -> None:
        self._stopping.set()
        super().shutdown(signum, frame)

    # --- Recording a job's outcome ----------------------------------------------------------

    def run_task(self, db_task_result: DBTaskResult) -> None:
        """Run the job as the base Worker does, with its outcome recorded through the
        database-fault handling below."""
        set_successful = db_task_result.set_successful
        set_failed = db_task_result.set_failed

        def record_success(return_value: Any) -> None:
            self._until_stored(db_task_result, lambda: set_successful(return_value))

        def record_failure(exc: BaseException) -> None:
            if isinstance(exc, DATABASE_ERRORS + INTERRUPTIONS) and (
                len(db_task_result.worker_ids) < self.max_attempts
            ):
                self._until_stored(db_task_result, lambda: self._requeue(db_task_result, exc))
            else:
                self._until_stored(db_task_result, lambda: set_failed(exc))

        db_task_result.set_successful = record_success  # type: ignore[method-assign]
        db_task_result.set_failed = record_failure  # type: ignore[method-assign]
        super().run_task(db_task_result)

    def _requeue(self, db_task_result: DBTaskResult, exc: BaseException) -> None:
        DBTaskResult.objects.filter(pk=db_task_result.pk, status=TaskResultStatus.RUNNING).update(
            status=TaskResultStatus.READY
        )
        db_task_result.status = TaskResultStatus.READY  # what the task_finished log shows
        log.warning(
            "job %s (%s) queued again after attempt %d: %s",
            db_task_result.pk,
            db_task_result.task_path,
            len(db_task_result.worker_ids),
            _first_line(exc),
        )

    def _until_stored(self, db_task_result: DBTaskResult, store: Callable[[], None]) -> None:
        """Run `store` until the database takes it. On a stop signal, give up: the job stays
        RUNNING and is re-queued once this worker's heartbeat has aged (it is removed at
        exit, so at once when that works)."""
        delays = backoff_delays(cap_s=self.reconnect_max_s)
        failed_at = None
        while True:
            try:
                store()
                if failed_at is not None:
                    log.warning(
                        "worker %s: database back after %.1f s; job %s's outcome recorded",
                        self.worker_id,
                        time.monotonic() - failed_at,
                        db_task_result.pk,
                    )
                return
            except DATABASE_ERRORS as exc:
                if not self.running:
                    log.error(
                        "worker %s stopping with job %s's outcome unrecorded (%s); "
                        "it will be re-queued",
                        self.worker_id,
                        db_task_result.pk,
                        _first_line(exc),
                    )
                    raise
                failed_at = failed_at or time.monotonic()
                delay = next(delays)
                log.warning(
                    "worker %s: cannot record job %s's outcome (%s); retrying in %.1f s",
                    self.worker_id,
                    db_task_result.pk,
                    _first_line(exc),
                    delay,
                )
                close_broken_connections()
                self._stopping.wait(delay)

    # --- Heartbeat and reaper (a daemon thread) ---------------------------------------------

    def _start_heartbeat(self) -> None:
        if self._heartbeat_thread is not None:
            return
        self._heartbeat_stop.clear()
        self._heartbeat_thread = threading.Thread(
            target=self._heartbeat_loop, name=f"heartbeat-{self.worker_id}", daemon=True
        )
        self._heartbeat_thread.start()

    def _stop_heartbeat(self) -> None:
        thread = self._heartbeat_thread
        if thread is None:
            return
        self._heartbeat_stop.set()
        thread.join(timeout=max(5.0, 2 * self.heartbeat_s))
        self._heartbeat_thread = None
        try:
            jobs.forget_worker(worker_id=self.worker_id)
        except DATABASE_ERRORS as exc:
            log.warning("worker %s could not remove its heartbeat: %s", self.worker_id, exc)
        finally:
            close_broken_connections()
        log.info("worker %s stopped", self.worker_id)

    def _heartbeat_loop(self) -> None:
        """Beat every `heartbeat_s`; reap every `reap_interval_s`, but only once this worker
        has beaten without a fault for a few periods: after an outage every worker's
        heartbeat is old, and the others need a moment to beat again before anyone judges
        them dead."""
        healthy_since: float | None = None
        next_reap = time.monotonic() + random.uniform(0, self.reap_interval_s)  # noqa: S311
        settle_s = 3 * self.heartbeat_s
        try:
            while True:
                try:
                    close_old_connections()
                    jobs.beat(worker_id=self.worker_id, host=self.host, pid=self.pid)
                    now = time.monotonic()
                    if healthy_since is None:
                        healthy_since = now
                    if now >= next_reap and now - healthy_since >= settle_s:
                        next_reap = now + self.reap_interval_s * random.uniform(0.8, 1.2)  # noqa: S311
                        counts = jobs.requeue_everything(
                            dead_after_s=self.dead_after_s, max_attempts=self.max_attempts
                        )
                        if counts.total:
                            log.warning("worker %s reaper: %s", self.worker_id, counts)
                except DATABASE_ERRORS as exc:
                    if healthy_since is not None:
                        log.warning(
                            "worker %s heartbeat: database unavailable (%s)",
                            self.worker_id,
                            _first_line(exc),
                        )
                    healthy_since = None
                    close_broken_connections()
                except Exception:  # the thread must outlive any one bad pass
                    log.exception("worker %s heartbeat/reaper pass failed", self.worker_id)
                    close_broken_connections()
                if self._heartbeat_stop.wait(self.heartbeat_s):
                    return
        finally:
            close_broken_connections()
