"""Episode files, recordings and exports on object storage (moto's S3 server, see
tests/object_storage.py): stored through the real services, downloaded through the pages and
the API as a 302 to a presigned URL that answers the exact bytes; access checks answer before
any redirect; with local files the same endpoints stream."""

from __future__ import annotations

import datetime as dt
import hashlib
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client

from teleop import datasets, file_serving, storage
from teleop.models import DatasetExport, Episode
from teleop.services import recordings
from tests.teleop.recordings import ready_episode_row, record_episode

pytestmark = pytest.mark.django_db


def _client(user=None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def _fetch(url: str) -> requests.Response:
    """What a browser gets from a presigned URL: no cookie, no credentials."""
    return requests.get(url, timeout=10)


def _stored_episode(session, tmp_path) -> Episode:
    """A ready episode whose real HDF5 file is stored under its content address."""
    path = record_episode(tmp_path / "episode.h5", seconds=1.0)
    data = path.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    episode = ready_episode_row(session)
    key = storage.store_episode_file(path, sha256)
    Episode.objects.filter(pk=episode.pk).update(
        file=key, sha256=sha256, size_bytes=len(data), declared_sha256=sha256
    )
    episode.refresh_from_db()
    return episode


def _built_export(world, episode, name="Pick cube, été") -> DatasetExport:
    view = datasets.create_view(
        actor=world.a.researcher, team=world.a.team, name=name, includes=[str(episode.pk)]
    )
    export = datasets.start_export(
        actor=world.a.researcher, version=view.versions.get(), format="robomimic", images="none"
    )
    export = datasets.build_export(export_id=export.pk)
    assert export.state == DatasetExport.State.DONE
    return export


def _stored_bytes(key: str) -> bytes:
    with default_storage.open(key, "rb") as f:
        return f.read()


def _assert_presigned_redirect(response, s3, key: str) -> str:
    assert response.status_code == 302
    assert response["Cache-Control"] == "no-store"
    url = response["Location"]
    assert url.startswith(f"{s3.endpoint_url}/{s3.bucket}/{key}?")
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Expires"] == ["300"]
    return url


def test_an_episode_file_downloads_from_the_page_and_the_api_as_a_presigned_redirect(
    s3_storage, world, session, tmp_path
):
    episode = _stored_episode(session, tmp_path)
    assert episode.file in s3_storage.keys()
    expected = (tmp_path / "episode.h5").read_bytes()

    page = _client(world.a.researcher).get(f"/episodes/{episode.pk}/file.h5")
    url = _assert_presigned_redirect(page, s3_storage, episode.file)
    fetched = _fetch(url)
    assert fetched.status_code == 200
    assert fetched.content == expected
    assert fetched.headers["Content-Disposition"] == (
        f'attachment; filename="episode-{episode.pk}.h5"'
    )
    assert fetched.headers["Content-Type"] == "application/x-hdf5"

    api = _client(world.a.researcher).get(f"/api/v1/episodes/{episode.pk}/file")
    url = _assert_presigned_redirect(api, s3_storage, episode.file)
    assert api["X-Checksum-Sha256"] == episode.sha256
    assert hashlib.sha256(_fetch(url).content).hexdigest() == episode.sha256

    # The episode page links the download.
    detail = _client(world.a.researcher).get(f"/episodes/{episode.pk}/")
    assert f'href="/episodes/{episode.pk}/file.h5"' in detail.content.decode()


def test_a_recording_built_on_object_storage_replays_from_the_store(
    s3_storage, world, session, tmp_path, settings
):
    from teleop.views import recording_token

    episode = _stored_episode(session, tmp_path)
    episode = recordings.build_episode_recording(episode_id=episode.pk)
    assert episode.rerun_file == f"recordings/{episode.pk}.rrd"
    assert episode.rerun_file in s3_storage.keys()
    rrd = _stored_bytes(episode.rerun_file)
    assert len(rrd) == episode.rerun_size_bytes > 0

    # A rebuild replaces the recording under the same key (file_overwrite is off on S3).
    assert recordings.build_episode_recording(episode_id=episode.pk).rerun_file == (
        episode.rerun_file
    )
    rrd = _stored_bytes(episode.rerun_file)  # a rebuild writes new recording ids

    # The signed link and a member's own fetch both redirect to the store.
    token = recording_token(episode)
    response = Client().get(f"/episodes/{episode.pk}/recording.rrd?token={token}")
    url = _assert_presigned_redirect(response, s3_storage, episode.rerun_file)
    assert _fetch(url).content == rrd
    member = _client(world.a.operator).get(f"/episodes/{episode.pk}/recording.rrd")
    assert _fetch(_assert_presigned_redirect(member, s3_storage, episode.rerun_file)).content == rrd


def test_the_episode_page_hands_the_viewer_a_presigned_url_its_policy_may_connect_to(
    s3_storage, world, session, tmp_path, settings
):
    from urllib.parse import unquote

    from teleop import views

    settings.RERUN_VIEWER_ROOT = tmp_path / "viewer"
    index = views.viewer_index()
    index.parent.mkdir(parents=True)
    index.write_text("<html><head></head><body>viewer</body></html>")
    episode = recordings.build_episode_recording(episode_id=_stored_episode(session, tmp_path).pk)
    client = _client(world.a.researcher)

    page = client.get(f"/episodes/{episode.pk}/").content.decode()
    viewer_src = page.split('<iframe class="viewer" src="')[1].split('"')[0]
    viewer_src = viewer_src.replace("&amp;", "&")
    recording_url = parse_qs(urlsplit(viewer_src).query)["url"][0]
    assert recording_url.startswith(f"{s3_storage.endpoint_url}/{s3_storage.bucket}/recordings/")
    assert _fetch(unquote(recording_url)).content == _stored_bytes(episode.rerun_file)

    viewer = client.get(viewer_src)
    policy = viewer["Content-Security-Policy"]
    assert f"connect-src 'self' {s3_storage.endpoint_url};" in policy
    assert "connect-src 'self';" in client.get("/episodes/").headers["Content-Security-Policy"]


def test_an_export_built_on_object_storage_downloads_from_the_page_and_the_api(
    s3_storage, world, session, tmp_path
):
    episode = _stored_episode(session, tmp_path)
    export = _built_export(world, episode)
    assert export.file == f"exports/{export.pk}.hdf5"
    assert export.file in s3_storage.keys()
    stored = _stored_bytes(export.file)
    assert len(stored) == export.size_bytes

    page = _client(world.a.researcher).get(f"/exports/{export.pk}/download")
    fetched = _fetch(_assert_presigned_redirect(page, s3_storage, export.file))
    assert fetched.content == stored
    # The view's name as a slug with the export's short id: ASCII in `filename`, the
    # accented letters in `filename*` (tests/teleop/test_download_names.py).
    short = export.pk.hex[:8]
    assert fetched.headers["Content-Disposition"] == (
        f'attachment; filename="pick-cube-ete-v1-{short}-robomimic.hdf5"; '
        f"filename*=UTF-8''pick-cube-%C3%A9t%C3%A9-v1-{short}-robomimic.hdf5"
    )

    api = _client(world.a.researcher).get(f"/api/v1/exports/{export.pk}/download")
    assert api["X-Checksum-Sha256"] == export.checksum
    assert _fetch(_assert_presigned_redirect(api, s3_storage, export.file)).content == stored


def test_a_forged_or_expired_presigned_url_is_refused_by_the_store(s3_storage):
    key = default_storage.save("probe/secret.bin", ContentFile(b"secret bytes"))
    url = file_serving.presigned_url(key, filename="secret.bin")
    assert _fetch(url).content == b"secret bytes"

    signature = parse_qs(urlsplit(url).query)["X-Amz-Signature"][0]
    forged = url.replace(signature, "0" * len(signature))
    assert _fetch(forged).status_code == 403
    other_key = url.replace("probe/secret.bin", "probe/other.bin")
    assert _fetch(other_key).status_code == 403
    renamed = file_serving.presigned_url(key, filename="secret.bin").replace(
        "secret.bin%22", "evil.exe%22"
    )
    assert _fetch(renamed).status_code == 403  # the Content-Disposition is signed too

    eleven_minutes_ago = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=11)
    with mock.patch("botocore.auth.get_current_datetime", return_value=eleven_minutes_ago):
        expired = file_serving.presigned_url(key)
    refused = _fetch(expired)
    assert refused.status_code == 403
    assert b"expired" in refused.content


def test_strangers_are_refused_before_any_redirect(s3_storage, world, session, tmp_path):
    episode = _stored_episode(session, tmp_path)
    recordings.build_episode_recording(episode_id=episode.pk)
    export = _built_export(world, episode)
    pages = [
        f"/episodes/{episode.pk}/file.h5",
        f"/episodes/{episode.pk}/recording.rrd",
        f"/exports/{export.pk}/download",
    ]
    apis = [f"/api/v1/episodes/{episode.pk}/file", f"/api/v1/exports/{export.pk}/download"]

    stranger = _client(world.stranger)
    other_team = _client(world.b.admin)
    for url in pages + apis:
        assert stranger.get(url).status_code == 404, url
        assert other_team.get(url).status_code == 404, url
    anonymous = Client()
    for url in pages:
        response = anonymous.get(url)
        assert response.status_code in (302, 404), url
        if response.status_code == 302:
            assert response["Location"].startswith("/accounts/login/"), url
    for url in apis:
        assert anonymous.get(url).status_code in (401, 403), url
    forged = anonymous.get(f"/episodes/{episode.pk}/recording.rrd?token=forged")
    assert forged.status_code == 404
    # A robot sees its own episodes' files, not the exports of people's datasets.
    robot = Client(HTTP_AUTHORIZATION=f"Api-Key {world.b.robot_key}")
    assert robot.get(apis[0]).status_code == 404
    assert robot.get(apis[1]).status_code in (403, 404)


def test_with_local_files_the_same_endpoints_stream(world, session, tmp_path, settings):
    from teleop.views import recording_token

    assert not file_serving.can_sign_urls()
    episode = _stored_episode(session, tmp_path)
    episode = recordings.build_episode_recording(episode_id=episode.pk)
    export = _built_export(world, episode, name="local")
    short = export.pk.hex[:8]
    client = _client(world.a.researcher)
    token = recording_token(episode)
    cases = [
        (f"/episodes/{episode.pk}/file.h5", episode.file, f"episode-{episode.pk}.h5"),
        (f"/api/v1/episodes/{episode.pk}/file", episode.file, f"episode-{episode.pk}.h5"),
        (f"/exports/{export.pk}/download", export.file, f"local-v1-{short}-robomimic.hdf5"),
        (
            f"/api/v1/exports/{export.pk}/download",
            export.file,
            f"local-v1-{short}-robomimic.hdf5",
        ),
    ]
    for url, key, filename in cases:
        response = client.get(url)
        assert response.status_code == 200, url
        assert response["Content-Disposition"] == f'attachment; filename="{filename}"', url
        assert b"".join(response.streaming_content) == _stored_bytes(key), url
    replay = Client().get(f"/episodes/{episode.pk}/recording.rrd?token={token}")
    assert replay.status_code == 200
    assert replay["Cache-Control"] == "private, max-age=60"
    assert b"".join(replay.streaming_content) == _stored_bytes(episode.rerun_file)


@pytest.mark.parametrize(
    "name, safe",
    [
        ("plain-v1-lerobot.tar", "plain-v1-lerobot.tar"),
        ("invoice\u202egpj.exe", "invoicegpj.exe"),  # right-to-left override dropped
        ('a "quoted"; name\r\nX-Evil: 1.h5', "a_quoted_nameX-Evil_1.h5"),
        ("Été à Zürich.hdf5", "Ete_a_Zurich.hdf5"),
        ("../../etc/passwd", "etc_passwd"),
        ("\u202e\u200f", "download"),
        ("x" * 300 + ".hdf5", "x" * 145 + ".hdf5"),
    ],
)
def test_download_filenames_are_ascii_without_control_or_bidi_characters(name, safe):
    assert file_serving.download_filename(name) == safe
