"""Exports with faces blurred (docs/privacy.md, "Faces and voices"): asked for on the page or
in the API, off by default, built with the blur, and reported as such by the export row, the
API, the page and the exported file itself."""

import io

import h5py
import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.test import Client
from PIL import Image

from core.models import AuditEvent
from proving_ground.episode.spec import encode_jpeg
from proving_ground.exports.faces import FaceBlur, padded
from teleop import datasets
from teleop.models import DatasetExport, Episode
from tests.sdk.exports.face_images import face_box, face_frame
from tests.teleop.recordings import ready_episode_row, record_episode, upload_over_api

pytestmark = pytest.mark.django_db
OFFSETS = (64, 0)  # the operator's face, in two places


def _jpeg(offset: int) -> bytes:
    return encode_jpeg(face_frame(offset), quality=95)


@pytest.fixture
def face_episode(api, world, session, tmp_path, settings, django_capture_on_commit_callbacks):
    """A recorded episode whose two cameras show a face, uploaded and processed."""
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
    client = api(key=world.a.robot_key)
    frames = tuple(_jpeg(offset) for offset in OFFSETS)
    path = record_episode(tmp_path / "face.h5", seconds=0.2, stages=(), frames=frames)
    episode_id = upload_over_api(
        client, session, path.read_bytes(), django_capture_on_commit_callbacks
    )
    episode = Episode.objects.get(pk=episode_id)
    assert episode.state == "ready", episode.validation_report
    return episode


@pytest.mark.slow  # upload, processing and 12 frames searched for faces: ~25 s
def test_an_export_with_faces_blurred_holds_blurred_frames_and_says_so(
    api, world, face_episode, django_capture_on_commit_callbacks
):
    client = api(world.a.researcher)
    view = datasets.create_view(actor=world.a.researcher, team=world.a.team, name="faces")
    url = f"/api/v1/dataset-view-versions/{view.versions.get().pk}/exports"
    with django_capture_on_commit_callbacks(execute=True):
        asked = client.post(
            url,
            {"format": "robomimic", "images": "raw", "image_size": None, "blur_faces": True},
        )
    assert asked.status_code == 201, asked.json()
    assert asked.json()["blur_faces"] is True
    done = client.get(f"/api/v1/exports/{asked.json()['id']}/").json()
    assert done["state"] == "done", done
    description = FaceBlur().description
    assert done["frame_filter"] == description
    assert description.startswith("faces blurred with OpenCV ")
    export = DatasetExport.objects.get(pk=done["id"])
    assert (export.blur_faces, export.frame_filter) == (True, description)
    created = AuditEvent.objects.get(object_id=str(export.pk), action="create")
    assert created.after["blur_faces"] is True

    blur = FaceBlur()
    with default_storage.open(export.file) as stored, h5py.File(stored, "r") as f:
        assert f["data"].attrs["pg_frame_filter"] == description
        for cam in ("cam_high", "cam_wrist"):
            images = f[f"data/demo_0/obs/{cam}_image"][()]
            assert len(images) == 6  # 0.2 s at 30 fps, frames alternating between OFFSETS
            for row, image in enumerate(images):
                offset = OFFSETS[row % len(OFFSETS)]
                source = np.asarray(Image.open(io.BytesIO(_jpeg(offset))).convert("RGB"))
                x, y, w, h = face_box(offset)
                face_change = np.abs(
                    image[y : y + h, x : x + w].astype(int) - source[y : y + h, x : x + w]
                )
                assert face_change.mean() > 15, (cam, row)
                outside = np.ones(source.shape[:2], dtype=bool)
                for box in blur.detect(source):
                    x0, y0, x1, y1 = padded(box, source.shape[1], source.shape[0])
                    outside[y0:y1, x0:x1] = False
                assert np.array_equal(image[outside], source[outside]), (cam, row)

    page = Client()
    page.force_login(world.a.researcher)
    html = page.get(f"/datasets/{view.pk}/").content.decode()
    assert description in html


def test_faces_are_left_as_recorded_unless_asked(api, world, session):
    ready_episode_row(session)
    view = datasets.create_view(actor=world.a.researcher, team=world.a.team, name="plain")
    url = f"/api/v1/dataset-view-versions/{view.versions.get().pk}/exports"
    answer = api(world.a.researcher).post(url, {"format": "lerobot"})
    assert answer.status_code == 201 and answer.json()["blur_faces"] is False
    assert answer.json()["frame_filter"] == ""
    assert DatasetExport.objects.get(pk=answer.json()["id"]).blur_faces is False


def test_the_export_form_offers_the_blur_and_the_page_says_it_is_coming(world, session):
    ready_episode_row(session)
    view = datasets.create_view(actor=world.a.researcher, team=world.a.team, name="page")
    client = Client()
    client.force_login(world.a.researcher)
    page = client.get(f"/datasets/{view.pk}/").content.decode()
    assert 'name="blur_faces"' in page and "Blur faces" in page
    form = {"format": "robomimic", "images": "gzip", "image_size": "84", "blur_faces": "on"}
    assert client.post(f"/datasets/{view.pk}/", form).status_code == 302
    export = DatasetExport.objects.get()
    assert export.blur_faces is True and export.frame_filter == ""
    assert "faces to be blurred" in client.get(f"/datasets/{view.pk}/").content.decode()


def test_without_opencv_a_blur_is_refused_before_anything_is_queued(
    api, world, session, monkeypatch
):
    ready_episode_row(session)
    view = datasets.create_view(actor=world.a.researcher, team=world.a.team, name="nocv")
    monkeypatch.setattr(datasets.faces, "opencv_available", lambda: False)
    url = f"/api/v1/dataset-view-versions/{view.versions.get().pk}/exports"
    answer = api(world.a.researcher).post(url, {"format": "robomimic", "blur_faces": True})
    assert answer.status_code == 400 and "blur_faces" in answer.json()["fields"]
    assert not DatasetExport.objects.exists()
