"""An episode page shows the recording in the embedded Rerun viewer, with no console errors and
no request leaving the machine."""

import hashlib
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from core.services import operators
from teleop.models import Episode
from teleop.services import processing, sessions, uploads
from teleop.views import viewer_index
from tests.browser.watch import watch
from tests.core import factories
from tests.teleop.recordings import record_episode

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


def _ready_episode(tmp_path) -> tuple[Episode, object]:
    world = factories.build_world()
    operator = operators.create_operator(actor=world.a.admin, team=world.a.team)
    session = sessions.open_session(
        actor=world.a.admin,
        robot=world.a.robot,
        task_version=world.a.task.versions.get(),
        operator_code=operator.code,
    )
    data = record_episode(tmp_path / "e.h5", seconds=2.0).read_bytes()
    episode, upload, _ = uploads.create_episode(
        actor=world.a.admin,
        episode_id=uuid.uuid4(),
        session=session,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    import io

    uploads.receive_chunk(
        actor=world.a.admin,
        upload_id=upload.pk,
        offset=0,
        length=len(data),
        stream=io.BytesIO(data),
    )
    episode = processing.process_episode(episode_id=episode.pk)
    assert episode.state == "ready" and episode.rerun_file
    return episode, world.a.researcher


def _replay(page, live_server, user, episode):
    """Sign in, open the episode page, and wait until its viewer has fetched the `.rrd`;
    that request."""
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", "pw")
    page.click("button[type=submit]")
    with page.expect_request_finished(
        lambda r: urlsplit(r.url).path.endswith(".rrd"), timeout=120_000
    ) as finished:
        page.goto(f"{live_server.url}/episodes/{episode.pk}/")
    page.frame_locator("iframe[data-viewer]").locator("canvas").first.wait_for(
        state="visible", timeout=60_000
    )
    return finished.value


def test_episode_page_replays_the_recording_with_no_errors_and_no_outside_requests(
    live_server, browser, tmp_path, settings
):
    if not viewer_index().exists():
        pytest.fail("Rerun's web viewer is not installed: run `make assets`")
    settings.UPLOAD_STAGING_DIR = tmp_path / "uploads"
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}
    episode, user = _ready_episode(tmp_path)
    user.set_password("pw")
    user.save()
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    seen = watch(page, urlsplit(live_server.url).netloc)
    errors, outside = seen.errors, seen.outside
    fetched = _replay(page, live_server, user, episode)
    fetched_from = (urlsplit(fetched.url).netloc, fetched.response().status)
    # For the screenshot only: let the viewer draw two frames after its canvas showed.
    page.frame_locator("iframe[data-viewer]").locator("canvas").first.evaluate(
        "() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))"
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "episode-page.png"))
    page.close()  # a live viewer keeps rendering: it would load the cores for later tests
    assert fetched_from == (urlsplit(live_server.url).netloc, 200)
    assert errors == []
    assert outside == []


def test_the_replay_loads_from_object_storage_by_a_presigned_url(
    live_server, browser, tmp_path, settings, s3_storage
):
    """On S3 the viewer fetches the `.rrd` from the store itself (a presigned URL): its
    request guard and its policy let it reach the store's origin, and nothing else."""
    settings.UPLOAD_STAGING_DIR = tmp_path / "uploads"
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}
    episode, user = _ready_episode(tmp_path)
    assert episode.rerun_file in s3_storage.keys()
    user.set_password("pw")
    user.save()
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    seen = watch(page, urlsplit(live_server.url).netloc)
    store = urlsplit(s3_storage.endpoint_url).netloc
    try:
        fetched = _replay(page, live_server, user, episode)
        assert (urlsplit(fetched.url).netloc, fetched.response().status) == (store, 200)
        assert seen.errors == []
        assert {urlsplit(url).netloc for url in seen.outside} == {store}
    finally:
        page.close()  # a live viewer keeps rendering: it would load the cores for later tests
