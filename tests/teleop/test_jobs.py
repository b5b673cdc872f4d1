"""Recording work whose job was lost is queued again (teleop/jobs.py), and the export job
re-run after its worker died builds the export again under the same key."""

from types import SimpleNamespace

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django_tasks_db.models import DBTaskResult

from teleop import datasets, jobs
from teleop.models import DatasetExport, Episode
from teleop.tasks import build_export_job, build_recording_job, process_episode_job
from tests.teleop.recordings import ready_episode_row

pytestmark = pytest.mark.django_db


def queued(task) -> list[str]:
    return [
        row["args"][0]
        for row in DBTaskResult.objects.filter(
            task_path=task.module_path, status="READY"
        ).values_list("args_kwargs", flat=True)
    ]


def requeue(finder, max_attempts=5) -> int:
    return finder(grace_s=0, max_attempts=max_attempts)


@pytest.fixture
def processing_episode(session):
    episode = ready_episode_row(session)
    Episode.objects.filter(pk=episode.pk).update(state=Episode.State.PROCESSING)
    return episode


def test_an_episode_processing_with_no_live_job_is_queued_again_once(processing_episode):
    assert requeue(jobs.requeue_episodes_processing) == 1
    assert queued(process_episode_job) == [str(processing_episode.pk)]
    assert requeue(jobs.requeue_episodes_processing) == 0  # its job is live now


def test_an_episode_whose_processing_failed_too_often_is_left_for_an_operator(
    processing_episode,
):
    for _ in range(2):
        result = process_episode_job.enqueue(str(processing_episode.pk))
        DBTaskResult.objects.filter(pk=result.id).update(status="FAILED")
    assert requeue(jobs.requeue_episodes_processing, max_attempts=2) == 0


def test_a_ready_episode_missing_its_recording_gets_a_recording_job(session):
    missing = ready_episode_row(session)
    unavailable = ready_episode_row(session)
    built = ready_episode_row(session)
    Episode.objects.update(file="episodes/x.h5", processed_at="2026-01-01T00:00:00Z")
    Episode.objects.filter(pk=unavailable.pk).update(quality_flags=["replay_unavailable"])
    Episode.objects.filter(pk=built.pk).update(rerun_file="recordings/y.rrd")
    assert requeue(jobs.requeue_recordings_missing) == 1
    assert queued(build_recording_job) == [str(missing.pk)]
    assert requeue(jobs.requeue_recordings_missing) == 0


@pytest.fixture
def export(world, session):
    episode = ready_episode_row(session)
    Episode.objects.filter(pk=episode.pk).update(file="episodes/x.h5")
    view = datasets.create_view(actor=world.a.researcher, team=world.a.team, name="all")
    version = view.versions.get()
    # Queued with the job lost: outside captured on-commit callbacks, none is enqueued.
    return datasets.start_export(actor=world.a.researcher, version=version, format="robomimic")


@pytest.fixture
def fake_writer(monkeypatch):
    def write_export(version, format, out, *options, **named_options):
        out.write_bytes(b"the whole export")
        return SimpleNamespace(
            sha256="f" * 64,
            exporter_version="t",
            num_episodes=1,
            num_frames=9,
            frame_filter=None,
        )

    monkeypatch.setattr(datasets, "write_export", write_export)


def test_an_export_left_running_by_a_dead_worker_is_built_again_under_the_same_key(
    export, fake_writer
):
    # A build died after storing part of its file and before recording anything.
    DatasetExport.objects.filter(pk=export.pk).update(state=DatasetExport.State.RUNNING)
    default_storage.save(f"exports/{export.pk}.hdf5", ContentFile(b"half an exp"))
    assert requeue(jobs.requeue_exports_unfinished) == 1
    assert queued(build_export_job) == [str(export.pk)]

    built = datasets.build_export(export_id=export.pk)
    assert built.state == DatasetExport.State.DONE
    assert built.file == f"exports/{export.pk}.hdf5"
    with default_storage.open(built.file) as f:
        assert f.read() == b"the whole export"
    again = datasets.build_export(export_id=export.pk)  # a duplicate run changes nothing
    assert (again.state, again.finished_at) == (built.state, built.finished_at)


def test_an_export_whose_builds_never_finish_is_marked_failed(export):
    for _ in range(2):
        result = build_export_job.enqueue(str(export.pk))
        DBTaskResult.objects.filter(pk=result.id).update(status="FAILED")
    assert requeue(jobs.requeue_exports_unfinished, max_attempts=2) == 0
    export.refresh_from_db()
    assert export.state == DatasetExport.State.FAILED and "tried 2 times" in export.error


def test_a_recording_that_failed_too_often_is_marked_unavailable(session):
    episode = ready_episode_row(session)
    Episode.objects.filter(pk=episode.pk).update(
        file="episodes/x.h5", processed_at="2026-01-01T00:00:00Z"
    )
    result = build_recording_job.enqueue(str(episode.pk))
    DBTaskResult.objects.filter(pk=result.id).update(status="FAILED")
    assert requeue(jobs.requeue_recordings_missing, max_attempts=1) == 0
    episode.refresh_from_db()
    assert "replay_unavailable" in episode.quality_flags
