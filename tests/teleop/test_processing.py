"""Processing: a real upload is validated in a child process by the worker, measured, checked
against the task's criteria, and stored under its content address."""

import hashlib
import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.utils import timezone

from teleop import jobs as teleop_jobs
from teleop import storage
from teleop.models import Episode
from teleop.services import processing, sessions
from tests.teleop.recordings import record_episode, upload_parts_left

pytestmark = pytest.mark.django_db
TUS = {"HTTP_TUS_RESUMABLE": "1.0.0"}


def upload_file(client, session, path, capture):
    """Create the episode and send the file in one chunk, running on-commit callbacks."""
    data = path.read_bytes()
    body = {
        "id": str(uuid.uuid4()),
        "session": str(session.pk),
        "size_bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    episode = client.post("/api/v1/episodes/", body).json()
    with capture(execute=True):
        response = client.generic(
            "PATCH",
            episode["upload_url"].split("testserver")[1],
            data=data,
            content_type="application/offset+octet-stream",
            HTTP_UPLOAD_OFFSET="0",
            **TUS,
        )
    assert response.status_code == 204, response.content
    return Episode.objects.get(pk=episode["id"])


def run_worker():
    """The real worker: takes every queued job from the database and runs it."""
    call_command("db_worker", "--batch", stdout=StringIO(), stderr=StringIO())


def test_uploaded_episode_becomes_ready_with_its_measurements(
    api, world, session, tmp_path, django_capture_on_commit_callbacks, immediate_jobs
):
    path = record_episode(tmp_path / "e.h5", seconds=2.0)
    episode = upload_file(
        api(key=world.a.robot_key), session, path, django_capture_on_commit_callbacks
    )
    episode.refresh_from_db()
    assert episode.state == "ready", episode.validation_report
    assert episode.num_steps == 400
    assert episode.duration_s == pytest.approx(1.995)
    assert episode.measured_hz == pytest.approx(200.0)
    assert episode.camera_frame_counts == {"cam_high": 60, "cam_wrist": 60}
    assert not episode.truncated and episode.quality_flags == []
    assert [r["status"] for r in episode.check_results] == ["passed", "passed"]
    assert episode.file == storage.episode_key(episode.sha256)
    with default_storage.open(episode.file, "rb") as stored:
        assert hashlib.sha256(stored.read()).hexdigest() == episode.sha256
    assert upload_parts_left(episode.uploads.get()) == []


def test_processing_twice_changes_nothing(
    api, world, session, tmp_path, django_capture_on_commit_callbacks, immediate_jobs
):
    path = record_episode(tmp_path / "e.h5", seconds=1.0)
    episode = upload_file(
        api(key=world.a.robot_key), session, path, django_capture_on_commit_callbacks
    )
    again = processing.process_episode(episode_id=episode.pk)
    assert again.state == "ready" and again.processing_attempts == 1


@pytest.mark.slow
def test_the_database_worker_processes_a_queued_episode_and_requeues_a_stuck_one(
    transactional_db, tmp_path, settings, django_capture_on_commit_callbacks
):
    from django_tasks_db.models import DBTaskResult
    from rest_framework.test import APIClient

    from core.services import operators
    from tests.core import factories

    settings.UPLOAD_STAGING_DIR = tmp_path / "uploads"
    world = factories.build_world()
    operator = operators.create_operator(actor=world.a.admin, team=world.a.team)
    session = sessions.open_session(
        actor=world.a.admin,
        robot=world.a.robot,
        task_version=world.a.task.versions.get(),
        operator_code=operator.code,
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {world.a.robot_key}")
    first = upload_file(
        client,
        session,
        record_episode(tmp_path / "a.h5", seconds=1.0),
        django_capture_on_commit_callbacks,
    )
    assert DBTaskResult.objects.count() == 1
    run_worker()
    first.refresh_from_db()
    assert first.state == "ready"

    stuck = upload_file(
        client,
        session,
        record_episode(tmp_path / "b.h5", seconds=1.0),
        django_capture_on_commit_callbacks,
    )
    DBTaskResult.objects.filter(status="READY").delete()  # its worker died with the job
    Episode.objects.filter(pk=stuck.pk).update(updated_at=timezone.now() - timedelta(minutes=5))
    assert teleop_jobs.requeue_episodes_processing(grace_s=60, max_attempts=5) == 1
    run_worker()
    episode = stuck
    episode.refresh_from_db()
    assert episode.state == "ready"


def test_a_truncated_recording_is_flagged_not_rejected(
    api, world, session, tmp_path, django_capture_on_commit_callbacks, immediate_jobs
):
    from proving_ground.episode.writer import EpisodeWriter
    from tests.core.factories import ARM_SPEC
    from tests.teleop.recordings import distinct_frames

    writer = EpisodeWriter(
        tmp_path / "crash.h5",
        ARM_SPEC,
        episode_id=str(uuid.uuid4()),
        robot="r",
        task_version="t",
        operator="OP-1",
        embodiment="arm",
    )
    import numpy as np

    for i in range(300):
        writer.add_step(
            i / 200,
            {"qpos": np.zeros(7, np.float32), "qvel": np.zeros(7, np.float32)},
            np.zeros(7, np.float32),
        )
    for j in range(30):
        for cam in ("cam_high", "cam_wrist"):
            writer.add_frame(cam, j / 30, distinct_frames()[j % 6])
    writer.flush()  # what a crash leaves: flushed data, no clean close
    partial = writer.partial_path
    episode = upload_file(
        api(key=world.a.robot_key), session, partial, django_capture_on_commit_callbacks
    )
    episode.refresh_from_db()
    assert episode.state == "ready"
    assert episode.truncated and "truncated" in episode.quality_flags


def test_a_partial_file_left_under_the_content_address_is_replaced(tmp_path):
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    data = record_episode(tmp_path / "e.h5", seconds=1.0).read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    default_storage.save(storage.episode_key(sha), ContentFile(data[:1000]))  # a killed save
    (tmp_path / "whole.h5").write_bytes(data)
    key = storage.store_episode_file(tmp_path / "whole.h5", sha)
    with default_storage.open(key, "rb") as stored:
        assert stored.read() == data
