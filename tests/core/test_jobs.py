"""Jobs that survive faults: heartbeats, the reaper of dead workers' jobs, and the worker's
handling of database errors (core/jobs.py, core/worker.py). The production-shape tests with
real processes and a real PostgreSQL restart are in tests/production/."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import OperationalError
from django.utils import timezone
from django_tasks import task
from django_tasks_db.models import DBTaskResult, DBTaskResultQuerySet

from core import jobs
from core.models import WorkerHeartbeat
from core.worker import ResilientWorker, backoff_delays

CALLS: list[str] = []


@task()
def record_call(name: str) -> str:
    CALLS.append(name)
    return name


@task()
def fail_on_database(name: str) -> str:
    CALLS.append(name)
    raise OperationalError("server closed the connection unexpectedly")


@task()
def fail_on_bug(name: str) -> str:
    CALLS.append(name)
    raise ValueError("a bug, not a fault")


@pytest.fixture(autouse=True)
def _no_calls():
    CALLS.clear()


def running_job(*, worker_ids, started_s_ago: float) -> DBTaskResult:
    result = record_call.enqueue("x")
    DBTaskResult.objects.filter(pk=result.id).update(
        status="RUNNING",
        worker_ids=worker_ids,
        started_at=timezone.now() - timedelta(seconds=started_s_ago),
    )
    return DBTaskResult.objects.get(pk=result.id)


def seen(worker_id: str, *, s_ago: float) -> None:
    WorkerHeartbeat.objects.create(
        worker_id=worker_id, host="h", pid=1, last_seen=timezone.now() - timedelta(seconds=s_ago)
    )


def make_worker(**overrides) -> ResilientWorker:
    options = dict(
        queue_names=["default"],
        interval=0,
        batch=True,
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        worker_id="test-worker",
        excluded_queue_names=[],
        heartbeat_s=0.05,
        dead_after_s=60,
        reap_interval_s=3600,
        max_attempts=3,
        reconnect_max_s=0.01,
    )
    return ResilientWorker(**(options | overrides))


def test_backoff_grows_to_its_cap_with_jitter():
    delays = backoff_delays(cap_s=4.0, base_s=0.5)
    first = [next(delays) for _ in range(12)]
    assert 0.25 <= first[0] <= 0.5
    assert all(2.0 <= d <= 4.0 for d in first[4:])  # capped: between half the cap and the cap
    assert len(set(first)) > 1


@pytest.mark.django_db
def test_a_heartbeat_is_written_then_refreshed_then_forgotten():
    jobs.beat(worker_id="w1", host="h", pid=10)
    first = WorkerHeartbeat.objects.get().last_seen
    jobs.beat(worker_id="w1", host="h", pid=10)
    assert WorkerHeartbeat.objects.get().last_seen >= first
    assert jobs.live_worker_ids(dead_after_s=60) == {"w1"}
    jobs.forget_worker(worker_id="w1")
    assert not WorkerHeartbeat.objects.exists()


@pytest.mark.django_db
def test_a_job_whose_worker_stopped_beating_is_queued_again():
    seen("dead", s_ago=120)
    job = running_job(worker_ids=["dead"], started_s_ago=300)
    counts = jobs.requeue_orphaned_tasks(dead_after_s=60, max_attempts=5)
    assert counts.requeued_jobs == 1
    job.refresh_from_db()
    assert job.status == "READY" and job.worker_ids == ["dead"]


@pytest.mark.django_db
def test_a_job_of_a_live_worker_or_just_started_is_left_running():
    seen("alive", s_ago=2)
    long_job = running_job(worker_ids=["alive"], started_s_ago=3600)
    fresh_job = running_job(worker_ids=["never-beat"], started_s_ago=1)
    assert jobs.requeue_orphaned_tasks(dead_after_s=60, max_attempts=5).requeued_jobs == 0
    assert {j.status for j in DBTaskResult.objects.filter(pk__in=[long_job.pk, fresh_job.pk])} == {
        "RUNNING"
    }


@pytest.mark.django_db
def test_a_job_that_killed_its_workers_too_often_is_failed_for_good():
    job = running_job(worker_ids=["a", "b", "c"], started_s_ago=300)
    counts = jobs.requeue_orphaned_tasks(dead_after_s=60, max_attempts=3)
    assert (counts.requeued_jobs, counts.failed_jobs) == (0, 1)
    job.refresh_from_db()
    assert job.status == "FAILED"
    assert job.exception_class_path == "core.jobs.WorkerLost"


@pytest.mark.django_db
def test_old_heartbeats_are_pruned():
    seen("long-gone", s_ago=7200)
    seen("recent", s_ago=5)
    assert jobs.prune_heartbeats(dead_after_s=60) == 1
    assert list(WorkerHeartbeat.objects.values_list("worker_id", flat=True)) == ["recent"]


@pytest.mark.django_db
def test_every_app_registers_a_finder_for_its_lost_work():
    names = {finder.__module__ for finder in jobs.lost_work_finders()}
    assert names == {"core.jobs", "teleop.jobs", "evaluation.jobs"}


@pytest.mark.django_db
def test_requeue_jobs_command_reports_what_it_did():
    seen("dead", s_ago=120)
    running_job(worker_ids=["dead"], started_s_ago=300)
    out = StringIO()
    call_command("requeue_jobs", stdout=out)
    assert "1 job(s) re-queued" in out.getvalue()
    out = StringIO()
    call_command("requeue_stuck_episodes", stdout=out)  # the old name, an alias
    assert "0 job(s) re-queued" in out.getvalue()


# --- The worker (its own connections: transactional tests) ----------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_worker_survives_a_database_error_while_claiming(monkeypatch):
    real_get_locked = DBTaskResultQuerySet.get_locked
    failures = iter([True, True])

    def flaky_get_locked(self):
        if next(failures, False):
            raise OperationalError("could not connect to server: Connection refused")
        return real_get_locked(self)

    monkeypatch.setattr(DBTaskResultQuerySet, "get_locked", flaky_get_locked)
    result = record_call.enqueue("after the outage")
    make_worker().run()
    assert CALLS == ["after the outage"]
    assert DBTaskResult.objects.get(pk=result.id).status == "SUCCESSFUL"


@pytest.mark.django_db(transaction=True)
def test_a_result_that_cannot_be_stored_yet_is_stored_once_the_database_is_back(monkeypatch):
    real_set_successful = DBTaskResult.set_successful
    failures = iter([True, True, True])

    def flaky_set_successful(self, return_value):
        if next(failures, False):
            raise OperationalError("terminating connection due to administrator command")
        return real_set_successful(self, return_value)

    monkeypatch.setattr(DBTaskResult, "set_successful", flaky_set_successful)
    result = record_call.enqueue("once")
    make_worker().run()
    assert CALLS == ["once"]  # not run again: only its outcome waited
    job = DBTaskResult.objects.get(pk=result.id)
    assert job.status == "SUCCESSFUL" and job.return_value == "once"


@pytest.mark.django_db(transaction=True)
def test_a_job_failing_on_a_database_error_is_queued_again_until_its_attempts_run_out():
    result = fail_on_database.enqueue("flaky")
    make_worker(max_attempts=3).run()
    job = DBTaskResult.objects.get(pk=result.id)
    assert CALLS == ["flaky"] * 3
    assert job.status == "FAILED" and job.exception_class_path.endswith("OperationalError")
    assert len(job.worker_ids) == 3


@pytest.mark.django_db(transaction=True)
def test_a_job_failing_on_a_bug_fails_at_once():
    result = fail_on_bug.enqueue("bug")
    make_worker(max_attempts=3).run()
    assert CALLS == ["bug"]
    assert DBTaskResult.objects.get(pk=result.id).status == "FAILED"


@pytest.mark.django_db(transaction=True)
def test_the_worker_beats_while_it_runs_and_forgets_its_heartbeat_when_it_stops(monkeypatch):
    beats = []
    real_beat = jobs.beat

    def counting_beat(**kwargs):
        beats.append(kwargs["worker_id"])
        real_beat(**kwargs)

    monkeypatch.setattr(jobs, "beat", counting_beat)
    record_call.enqueue("one")
    worker = make_worker(batch=False, max_tasks=1, interval=0.05)
    worker.run()
    assert "test-worker" in beats
    assert not WorkerHeartbeat.objects.exists()  # removed on a clean stop
