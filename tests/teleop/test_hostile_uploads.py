"""The hostile and malformed corpus, uploaded through the API: each is rejected with its code,
no file is kept, and the server keeps serving."""

import hashlib
import uuid

import pytest
from django.core.files.storage import default_storage

from core.services import embodiments, operators, robots
from teleop import storage
from teleop.models import Episode
from teleop.services import sessions
from tests.core.factories import make_robot, make_task
from tests.teleop.hostile_files import HOSTILE_KINDS, SMALL_SPEC
from tests.teleop.recordings import upload_parts_left

pytestmark = pytest.mark.django_db
TUS = {"HTTP_TUS_RESUMABLE": "1.0.0"}
KINDS = [kind for kind in HOSTILE_KINDS if not kind.limits]


@pytest.fixture
def small_session(world, settings):
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
    embodiment = embodiments.create_embodiment(
        actor=world.a.admin, team=world.a.team, name="test-arm", spec=SMALL_SPEC
    )
    robot = make_robot(world.a.team, world.a.admin, embodiment)
    _, key = robots.issue_api_key(actor=world.a.admin, robot=robot)
    task = make_task(world.a.team, world.a.admin, embodiment)
    operator = operators.create_operator(actor=world.a.admin, team=world.a.team)
    session = sessions.open_session(
        actor=world.a.admin,
        robot=robot,
        task_version=task.versions.get(),
        operator_code=operator.code,
    )
    return session, key


@pytest.mark.parametrize("kind", KINDS, ids=[k.kind for k in KINDS])
def test_hostile_upload_is_rejected_with_its_code_and_not_kept(
    api, small_session, tmp_path, kind, django_capture_on_commit_callbacks, settings
):
    session, key = small_session
    client = api(key=key)
    data = kind.make(tmp_path).read_bytes()
    body = {
        "id": str(uuid.uuid4()),
        "session": str(session.pk),
        "size_bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    created = client.post("/api/v1/episodes/", body)
    if not data:
        assert created.status_code == 400  # an empty file is refused before any upload
        return
    url = created.json()["upload_url"].split("testserver")[1]
    with django_capture_on_commit_callbacks(execute=True):
        response = client.generic(
            "PATCH",
            url,
            data=data,
            content_type="application/offset+octet-stream",
            HTTP_UPLOAD_OFFSET="0",
            **TUS,
        )
    assert response.status_code == 204
    episode = Episode.objects.get(pk=body["id"])
    assert episode.state == "rejected", episode.validation_report
    codes = {p["code"] for p in episode.validation_report["problems"]}
    assert kind.code in codes
    assert not episode.file
    assert upload_parts_left(episode.uploads.get()) == []
    assert not default_storage.exists(storage.episode_key(episode.sha256))
    answer = client.get(f"/api/v1/episodes/{episode.pk}/")
    assert answer.json()["state"] == "rejected"
    # The report names places inside the HDF5 file, never where files live on the server.
    for server_place in (str(tmp_path), str(settings.UPLOAD_STAGING_DIR), str(settings.BASE_DIR)):
        assert server_place not in answer.content.decode()
