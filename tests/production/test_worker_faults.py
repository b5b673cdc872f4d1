"""The job worker in its production shape survives faults: a PostgreSQL restart, and a
worker killed mid-job (docs/jobs.md). Real `manage.py worker` processes with DEBUG off, on a
private PostgreSQL cluster the test stops and starts."""

import json
import os
import time
from pathlib import Path

import psycopg
import pytest

from tests.production.conftest import manage, production_environment, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres_only, pytest.mark.production]

FAST_FAULTS = {
    "PG_WORKER_HEARTBEAT_S": "1",
    "PG_JOB_REAP_INTERVAL_S": "1",
    "PG_WORKER_RECONNECT_MAX_S": "2",
}


def enqueue_hold_jobs(database_url, tmp_path, *jobs) -> list[str]:
    """Queue `tests.production.tasks.hold_job` once per (name, seconds, touch_database),
    through the real backend in one process (so the jobs start together); their ids."""
    env = production_environment(database_url, tmp_path / "var")
    code = "from tests.production.tasks import hold_job\n" + "".join(
        f"print(hold_job.enqueue({str(tmp_path)!r}, {name!r}, {seconds!r}, {touch!r}).id)\n"
        for name, seconds, touch in jobs
    )
    return manage(env, "shell", "-c", code).strip().splitlines()[-len(jobs) :]


def job_row(database_url, job_id) -> dict:
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        status, worker_ids = conn.execute(
            "SELECT status, worker_ids FROM django_tasks_database_dbtaskresult WHERE id = %s",
            [job_id],
        ).fetchone()
    if isinstance(worker_ids, str):
        worker_ids = json.loads(worker_ids)
    return {"status": status, "worker_ids": worker_ids}


def marker_pids(tmp_path: Path, name: str, kind: str) -> list[int]:
    path = tmp_path / f"{name}.{kind}"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def job_status_is(database_url, job_id, status):
    def check():
        try:
            return job_row(database_url, job_id)["status"] == status
        except psycopg.OperationalError:
            return False

    return check


def test_workers_keep_running_through_a_postgresql_restart_and_finish_their_jobs(
    private_postgres, production_database, start_worker, tmp_path
):
    db = production_database
    # Heartbeats go stale during the 10 s outage (dead after 8 s): the workers must not
    # take each other for dead once the database is back.
    workers = [
        start_worker(f"restart-{i}", PG_WORKER_DEAD_AFTER_S="8", **FAST_FAULTS) for i in range(2)
    ]
    querying, sleeping = enqueue_hold_jobs(
        db, tmp_path, ("querying", 8, True), ("sleeping", 6, False)
    )
    wait_for(
        lambda: (
            marker_pids(tmp_path, "querying", "started")
            and marker_pids(tmp_path, "sleeping", "started")
        ),
        timeout_s=120,
        what="both jobs to start",
    )

    private_postgres.stop()
    outage_ends = time.monotonic() + 10
    while time.monotonic() < outage_ends:  # the outage itself, watched: nobody exits
        assert all(w.alive() for w in workers), "a worker exited during the outage"
        time.sleep(0.5)
    # The job that queried failed mid-run on the outage; the sleeping one finished during it.
    assert marker_pids(tmp_path, "sleeping", "done")
    private_postgres.start()

    wait_for(job_status_is(db, querying, "SUCCESSFUL"), timeout_s=180, what="the querying job")
    wait_for(job_status_is(db, sleeping, "SUCCESSFUL"), timeout_s=180, what="the sleeping job")
    assert len(marker_pids(tmp_path, "querying", "started")) == 2  # run again after the outage
    assert len(marker_pids(tmp_path, "querying", "done")) == 1
    # Its result was recorded once the database was back; it was never run twice.
    assert len(marker_pids(tmp_path, "sleeping", "started")) == 1
    assert len(job_row(db, sleeping)["worker_ids"]) == 1

    (after,) = enqueue_hold_jobs(db, tmp_path, ("after", 0, True))
    wait_for(job_status_is(db, after, "SUCCESSFUL"), timeout_s=120, what="a job queued afterwards")
    assert all(w.alive() for w in workers)
    for worker in workers:
        assert worker.stop() == 0  # SIGTERM: a clean exit
        assert "database back after" in worker.output()


def test_a_job_whose_worker_is_killed_is_run_again_by_another_worker_in_bounded_time(
    production_database, start_worker, tmp_path
):
    db = production_database
    dead_after_s = 4
    fault_env = {"PG_WORKER_DEAD_AFTER_S": str(dead_after_s), **FAST_FAULTS}
    first = start_worker("doomed", **fault_env)
    (job,) = enqueue_hold_jobs(db, tmp_path, ("held", 5, False))
    pids = wait_for(
        lambda: marker_pids(tmp_path, "held", "started"), timeout_s=120, what="the job to start"
    )
    assert pids == [first.pid]
    second = start_worker("rescuer", **fault_env)

    first.kill9()
    killed_at = time.monotonic()
    rerun = wait_for(
        lambda: len(marker_pids(tmp_path, "held", "started")) == 2,
        timeout_s=120,
        what="another worker to run the job again",
    )
    assert rerun
    # Bounded: dead-after plus a reap interval or two; generous for a loaded machine.
    assert time.monotonic() - killed_at < dead_after_s + 60
    wait_for(job_status_is(db, job, "SUCCESSFUL"), timeout_s=120, what="the re-run to finish")
    assert marker_pids(tmp_path, "held", "done") == [second.pid]
    assert job_row(db, job)["worker_ids"] == [first.worker_id, second.worker_id]

    # The killed worker restarted takes jobs again.
    restarted = start_worker("doomed-again", **fault_env)
    (after,) = enqueue_hold_jobs(db, tmp_path, ("after-kill", 0, False))
    wait_for(job_status_is(db, after, "SUCCESSFUL"), timeout_s=120, what="a job queued afterwards")
    assert second.alive() and restarted.alive()
    assert os.path.exists(tmp_path / "after-kill.done")
