"""Resumable uploads (tus 1.0.0) of episode files, end to end through the API."""

import base64
import hashlib
import http.client
import random
import re
import socket
import threading
import uuid
from urllib.parse import urlsplit

import pytest

from core.services import operators, robots
from teleop.models import Episode, Upload
from teleop.services import processing, sessions, uploads
from tests.teleop.recordings import record_episode, stored_upload_bytes, upload_parts_left

pytestmark = pytest.mark.django_db
TUS = {"HTTP_TUS_RESUMABLE": "1.0.0"}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def episode_file(tmp_path):
    return record_episode(tmp_path / "episode.h5", seconds=1.0)


def _create(client, session, data: bytes, episode_id=None):
    body = {
        "id": str(episode_id or uuid.uuid4()),
        "session": str(session.pk),
        "size_bytes": len(data),
        "sha256": _sha(data),
    }
    response = client.post("/api/v1/episodes/", body)
    assert response.status_code in (200, 201), response.json()
    return response.json()


def _patch(
    client,
    url,
    chunk: bytes,
    offset: int,
    *,
    checksum: bytes | None = None,
    declared_length: int | None = None,
):
    headers = dict(TUS, HTTP_UPLOAD_OFFSET=str(offset))
    if checksum is not None:
        headers["HTTP_UPLOAD_CHECKSUM"] = "sha256 " + base64.b64encode(checksum).decode()
    if declared_length is not None:
        headers["CONTENT_LENGTH"] = str(declared_length)
    return client.generic(
        "PATCH",
        urlsplit(url).path,
        data=chunk,
        content_type="application/offset+octet-stream",
        **headers,
    )


def _head(client, url):
    response = client.head(urlsplit(url).path, **TUS)
    assert response.status_code == 200
    return int(response["Upload-Offset"])


def test_upload_in_chunks_completes_and_queues_processing(api, world, session, episode_file):
    data = episode_file.read_bytes()
    client = api(key=world.a.robot_key)
    episode = _create(client, session, data)
    assert episode["state"] == "created" and episode["upload_url"]
    offset = 0
    for start in range(0, len(data), 64 * 1024):
        chunk = data[start : start + 64 * 1024]
        response = _patch(
            client, episode["upload_url"], chunk, offset, checksum=hashlib.sha256(chunk).digest()
        )
        assert response.status_code == 204, response.content
        offset = int(response["Upload-Offset"])
    row = Episode.objects.get(pk=episode["id"])
    assert row.state == "processing" and row.sha256 == _sha(data)
    assert stored_upload_bytes(row.uploads.get()) == data


def test_chunk_at_a_stale_offset_is_409(api, world, session, episode_file):
    data = episode_file.read_bytes()
    client = api(key=world.a.robot_key)
    url = _create(client, session, data)["upload_url"]
    assert _patch(client, url, data[:1000], 0).status_code == 204
    response = _patch(client, url, data[:1000], 0)
    assert response.status_code == 409
    assert response.json()["error"] == "upload_offset_mismatch"
    assert _head(client, url) == 1000


def test_chunk_with_a_wrong_checksum_is_460_and_nothing_is_kept(api, world, session, episode_file):
    data = episode_file.read_bytes()
    client = api(key=world.a.robot_key)
    url = _create(client, session, data)["upload_url"]
    response = _patch(client, url, data[:5000], 0, checksum=hashlib.sha256(b"other").digest())
    assert response.status_code == 460
    assert response.json()["error"] == "checksum_mismatch"
    assert _head(client, url) == 0


def test_file_with_a_wrong_declared_checksum_is_rejected_and_not_kept(
    api, world, session, episode_file, django_capture_on_commit_callbacks
):
    data = episode_file.read_bytes()
    client = api(key=world.a.robot_key)
    body = {
        "id": str(uuid.uuid4()),
        "session": str(session.pk),
        "size_bytes": len(data),
        "sha256": _sha(b"something else"),
    }
    episode = client.post("/api/v1/episodes/", body).json()
    with django_capture_on_commit_callbacks(execute=True):
        assert _patch(client, episode["upload_url"], data, 0).status_code == 204
    row = Episode.objects.get(pk=episode["id"])
    assert row.state == "rejected" and row.rejection_code == "checksum_mismatch"
    assert upload_parts_left(row.uploads.get()) == []
    assert not row.file


def test_chunk_past_the_declared_length_is_413(api, world, session):
    client = api(key=world.a.robot_key)
    url = _create(client, session, b"x" * 100)["upload_url"]
    assert _patch(client, url, b"x" * 101, 0).status_code == 413
    assert _head(client, url) == 0


def test_a_chunk_of_any_size_is_taken_and_stored_in_parts_as_it_arrives(
    api, world, session, episode_file, monkeypatch
):
    from teleop import storage

    # tuspy sends a whole file in one PATCH by default: there is no cap on a chunk, but it is
    # stored in parts of at most UPLOAD_PART_MAX_BYTES (here 100 kB), each as it fills.
    monkeypatch.setattr(storage, "UPLOAD_PART_MAX_BYTES", 100_000)
    data = episode_file.read_bytes()
    client = api(key=world.a.robot_key)
    url = _create(client, session, data)["upload_url"]
    response = _patch(client, url, data, 0, checksum=hashlib.sha256(data).digest())
    assert response.status_code == 204 and response["Upload-Offset"] == str(len(data))
    upload = Upload.objects.get()
    assert [p.size_bytes for p in upload.parts.all()] == [
        min(100_000, len(data) - at) for at in range(0, len(data), 100_000)
    ]
    assert stored_upload_bytes(upload) == data
    assert Episode.objects.get().state == "processing"


class _DyingStream:
    """A request body whose web process dies after `limit` bytes (as gunicorn's timeout
    kills a worker mid-PATCH)."""

    def __init__(self, data: bytes, limit: int):
        self.data, self.limit, self.position = data, limit, 0

    def read(self, size: int) -> bytes:
        if self.position >= self.limit:
            raise SystemExit("worker killed")
        piece = self.data[self.position : min(self.position + size, self.limit)]
        self.position += len(piece)
        return piece


@pytest.mark.parametrize("with_checksum", [False, True])
def test_a_long_chunk_cut_on_the_server_keeps_its_full_parts_unless_it_has_a_checksum(
    world, session, episode_file, monkeypatch, with_checksum
):
    from teleop import storage

    monkeypatch.setattr(storage, "UPLOAD_PART_MAX_BYTES", 100_000)
    data = episode_file.read_bytes()[:350_000]
    episode, upload, _ = uploads.create_episode(
        actor=world.a.operator,
        episode_id=uuid.uuid4(),
        session=session,
        size_bytes=len(data),
        sha256=_sha(data),
    )
    checksum = ("sha256", hashlib.sha256(data).digest()) if with_checksum else None
    with pytest.raises(SystemExit):
        uploads.receive_chunk(
            actor=world.a.operator,
            upload_id=upload.pk,
            offset=0,
            length=len(data),
            stream=_DyingStream(data, 250_000),
            checksum=checksum,
        )
    upload.refresh_from_db()
    if with_checksum:
        assert upload.offset == 0 and not upload.parts.exists()
        assert upload_parts_left(upload) == []
    else:  # the two full parts were recorded as they were stored; the third never was
        assert upload.offset == 200_000
        assert [(p.offset, p.size_bytes) for p in upload.parts.all()] == [
            (0, 100_000),
            (100_000, 100_000),
        ]
        assert stored_upload_bytes(upload) == data[:200_000]
    assert len(upload_parts_left(upload)) == upload.parts.count()


def test_a_chunk_stored_in_parts_whose_checksum_fails_leaves_no_part(
    api, world, session, episode_file, monkeypatch
):
    from teleop import storage

    monkeypatch.setattr(storage, "UPLOAD_PART_MAX_BYTES", 100_000)
    data = episode_file.read_bytes()
    client = api(key=world.a.robot_key)
    url = _create(client, session, data)["upload_url"]
    response = _patch(client, url, data[:350_000], 0, checksum=hashlib.sha256(b"x").digest())
    assert response.status_code == 460
    upload = Upload.objects.get()
    assert _head(client, url) == 0
    assert not upload.parts.exists() and upload_parts_left(upload) == []


def test_requests_without_tus_resumable_are_412(api, world, session):
    client = api(key=world.a.robot_key)
    url = _create(client, session, b"x" * 100)["upload_url"]
    response = client.generic(
        "PATCH",
        urlsplit(url).path,
        data=b"x",
        content_type="application/offset+octet-stream",
        HTTP_UPLOAD_OFFSET="0",
    )
    assert response.status_code == 412 and response["Tus-Version"] == "1.0.0"


def test_options_advertises_the_tus_extensions(api, world):
    response = api(key=world.a.robot_key).options("/api/v1/uploads/")
    assert response.status_code == 204
    assert response["Tus-Version"] == "1.0.0"
    assert set(response["Tus-Extension"].split(",")) == {
        "creation",
        "checksum",
        "termination",
        "expiration",
    }


def test_options_needs_no_credentials_and_answers_tus_headers_on_an_upload_too(
    api, world, session, settings
):
    url = _create(api(key=world.a.robot_key), session, b"x" * 100)["upload_url"]
    for path in ("/api/v1/uploads/", urlsplit(url).path):
        response = api().options(path)
        assert response.status_code == 204, (path, response.content)
        assert response.content == b""
        assert response["Tus-Resumable"] == response["Tus-Version"] == "1.0.0"
        assert response["Tus-Max-Size"] == str(settings.MAX_EPISODE_BYTES)
        assert set(response["Tus-Checksum-Algorithm"].split(",")) == {"sha1", "sha256"}
        assert "termination" in response["Tus-Extension"].split(",")
    # Discovery only: the upload itself still needs the robot's key.
    assert api().head(urlsplit(url).path, **TUS).status_code == 401


def test_tus_creation_with_metadata_finds_the_episode_upload(api, world, session):
    client = api(key=world.a.robot_key)
    episode = _create(client, session, b"x" * 100)
    metadata = "episode_id " + base64.b64encode(episode["id"].encode()).decode()
    response = client.post(
        "/api/v1/uploads/", HTTP_UPLOAD_LENGTH="100", HTTP_UPLOAD_METADATA=metadata, **TUS
    )
    assert response.status_code == 201
    assert response["Location"] == episode["upload_url"]


def _metadata(**pairs: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in pairs.items())


def _tus_create(client, length: int, **metadata: str):
    return client.post(
        "/api/v1/uploads/",
        HTTP_UPLOAD_LENGTH=str(length),
        HTTP_UPLOAD_METADATA=_metadata(**metadata),
        **TUS,
    )


def test_a_generic_tus_client_creates_the_episode_and_its_upload_with_metadata(
    api, world, session, episode_file, django_capture_on_commit_callbacks, immediate_jobs
):
    data = episode_file.read_bytes()
    client = api(key=world.a.robot_key)
    response = _tus_create(
        client, len(data), session=str(session.pk), sha256=_sha(data), filename="episode.h5"
    )
    assert response.status_code == 201, response.content
    assert response["Upload-Offset"] == "0" and response["Upload-Length"] == str(len(data))
    episode = Episode.objects.get()
    assert (episode.session, episode.declared_sha256, episode.state) == (
        session,
        _sha(data),
        "created",
    )
    upload = Upload.objects.get()
    assert response["Location"].endswith(f"/api/v1/uploads/{upload.pk}")
    # Creating it again (a client run twice) names the same episode and the same upload.
    again = _tus_create(client, len(data), session=str(session.pk), sha256=_sha(data))
    assert again.status_code == 201 and again["Location"] == response["Location"]
    assert Episode.objects.count() == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert _patch(client, response["Location"], data, 0).status_code == 204
    episode.refresh_from_db()
    assert episode.state == "ready", episode.validation_report
    # The file is received: a third creation is refused rather than starting over.
    third = _tus_create(client, len(data), session=str(session.pk), sha256=_sha(data))
    assert third.status_code == 409 and third.json()["error"] == "upload_not_active"


def test_generic_creation_takes_the_client_episode_id_and_condition(api, world, session):
    episode_id = str(uuid.uuid4())
    client = api(key=world.a.robot_key)
    metadata = {"session": str(session.pk), "sha256": _sha(b"x" * 100), "episode_id": episode_id}
    assert _tus_create(client, 100, **metadata).status_code == 201
    assert str(Episode.objects.get().pk) == episode_id
    # The same id with other content is the conflict POST /episodes/ answers.
    other = _tus_create(client, 100, **(metadata | {"sha256": _sha(b"y" * 100)}))
    assert other.status_code == 409 and other.json()["error"] == "episode_id_conflict"


def test_generic_creation_validates_the_metadata_as_post_episodes_does(api, world, session):
    client = api(key=world.a.robot_key)
    bad_sha = _tus_create(client, 100, session=str(session.pk), sha256="nothex")
    assert bad_sha.status_code == 400
    assert set(bad_sha.json()["fields"]["Upload-Metadata"]) == {"sha256"}
    bad_id = _tus_create(client, 100, session=str(session.pk), sha256=_sha(b"x"), episode_id="1")
    assert bad_id.status_code == 400
    assert set(bad_id.json()["fields"]["Upload-Metadata"]) == {"episode_id"}
    no_sha = _tus_create(client, 100, session=str(session.pk))
    assert no_sha.status_code == 400
    assert set(no_sha.json()["fields"]["Upload-Metadata"]) == {"sha256"}
    elsewhere = _tus_create(client, 100, session=str(uuid.uuid4()), sha256=_sha(b"x"))
    assert elsewhere.status_code == 400
    assert elsewhere.json()["fields"]["Upload-Metadata"] == {"session": ["No such session."]}
    # Team b's robot cannot record into team a's session.
    foreign = _tus_create(
        api(key=world.b.robot_key), 100, session=str(session.pk), sha256=_sha(b"x")
    )
    assert foreign.status_code == 400
    assert not Episode.objects.exists()


def test_generic_creation_in_a_closed_session_is_refused(api, world, session):
    sessions.close_session(actor=world.a.operator, session=session)
    response = _tus_create(
        api(key=world.a.robot_key), 100, session=str(session.pk), sha256=_sha(b"x")
    )
    assert response.status_code == 409 and response.json()["error"] == "session_closed"


def test_creation_over_tus_max_size_is_413(api, world, session, settings):
    settings.MAX_EPISODE_BYTES = 1000
    response = _tus_create(
        api(key=world.a.robot_key), 1001, session=str(session.pk), sha256=_sha(b"x")
    )
    assert response.status_code == 413
    assert not Episode.objects.exists()


def test_creating_the_upload_of_a_partly_uploaded_file_again_starts_a_new_one_at_0(
    api, world, session, episode_file, django_capture_on_commit_callbacks
):
    data = episode_file.read_bytes()
    client = api(key=world.a.robot_key)
    episode = _create(client, session, data)
    first = episode["upload_url"]
    assert _patch(client, first, data[:1000], 0).status_code == 204
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/api/v1/uploads/",
            HTTP_UPLOAD_LENGTH=str(len(data)),
            HTTP_UPLOAD_METADATA=_metadata(episode_id=episode["id"]),
            **TUS,
        )
    assert response.status_code == 201
    assert response["Location"] != first and response["Upload-Offset"] == "0"
    assert _head(client, response["Location"]) == 0
    # The partial upload is terminated and its bytes dropped: its URL is gone.
    assert client.head(urlsplit(first).path, **TUS).status_code == 404
    old = Upload.objects.get(state="terminated")
    assert upload_parts_left(old) == []
    assert Episode.objects.get().state == "created"
    assert _patch(client, response["Location"], data, 0).status_code == 204
    assert Episode.objects.get().state == "processing"


def test_requests_to_a_terminated_upload_are_404(api, world, session):
    client = api(key=world.a.robot_key)
    url = _create(client, session, b"x" * 100)["upload_url"]
    assert _patch(client, url, b"x" * 10, 0).status_code == 204
    assert client.delete(urlsplit(url).path, **TUS).status_code == 204
    assert client.head(urlsplit(url).path, **TUS).status_code == 404
    patched = _patch(client, url, b"x" * 10, 10)
    assert patched.status_code == 404 and patched.json()["error"] == "not_found"
    assert client.delete(urlsplit(url).path, **TUS).status_code == 404


def test_x_http_method_override_terminates_with_a_post(api, world, session):
    client = api(key=world.a.robot_key)
    url = _create(client, session, b"x" * 100)["upload_url"]
    response = client.post(urlsplit(url).path, HTTP_X_HTTP_METHOD_OVERRIDE="DELETE", **TUS)
    assert response.status_code == 204
    assert Upload.objects.get().state == "terminated"


def test_termination_drops_the_bytes_and_a_new_upload_can_start(api, world, session):
    client = api(key=world.a.robot_key)
    episode = _create(client, session, b"x" * 100)
    url = episode["upload_url"]
    _patch(client, url, b"x" * 10, 0)
    assert client.delete(urlsplit(url).path, **TUS).status_code == 204
    assert Episode.objects.get(pk=episode["id"]).state == "created"
    again = _create(client, session, b"x" * 100, episode_id=episode["id"])
    assert again["upload_url"] != url


def test_expired_upload_is_410(api, world, session):
    from django.utils import timezone

    client = api(key=world.a.robot_key)
    url = _create(client, session, b"x" * 100)["upload_url"]
    Upload.objects.update(expires_at=timezone.now())
    assert _patch(client, url, b"x" * 10, 0).status_code == 410


def test_creating_an_episode_again_is_harmless(api, world, session):
    client = api(key=world.a.robot_key)
    first = _create(client, session, b"x" * 100)
    again = _create(client, session, b"x" * 100, episode_id=first["id"])
    assert again["upload_url"] == first["upload_url"]
    assert Episode.objects.count() == 1
    body = {"id": first["id"], "session": str(session.pk), "size_bytes": 101, "sha256": _sha(b"y")}
    response = client.post("/api/v1/episodes/", body)
    assert response.status_code == 409 and response.json()["error"] == "episode_id_conflict"


def test_another_robot_cannot_see_or_feed_the_upload(api, world, session):
    url = _create(api(key=world.a.robot_key), session, b"x" * 100)["upload_url"]
    _, other_key = robots.issue_api_key(actor=world.a.admin, robot=world.a.other_robot)
    assert _patch(api(key=other_key), url, b"x" * 10, 0).status_code == 404
    assert _patch(api(key=world.b.robot_key), url, b"x" * 10, 0).status_code == 404


def test_episode_in_a_closed_session_is_refused(api, world, session):
    sessions.close_session(actor=world.a.operator, session=session)
    body = {
        "id": str(uuid.uuid4()),
        "session": str(session.pk),
        "size_bytes": 10,
        "sha256": _sha(b"x"),
    }
    response = api(key=world.a.robot_key).post("/api/v1/episodes/", body)
    assert response.status_code == 409 and response.json()["error"] == "session_closed"


# --- Over real HTTP -------------------------------------------------------------------------


def _live(world, session, live_server, data: bytes):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {world.a.robot_key}")
    body = {
        "id": str(uuid.uuid4()),
        "session": str(session.pk),
        "size_bytes": len(data),
        "sha256": _sha(data),
    }
    return client.post("/api/v1/episodes/", body, format="json").json()["upload_url"]


def _raw_patch(live_server, key, url, body: bytes, offset: int, *, chunked=False):
    parts = urlsplit(live_server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    headers = {
        "Authorization": f"Api-Key {key}",
        "Tus-Resumable": "1.0.0",
        "Upload-Offset": str(offset),
        "Content-Type": "application/offset+octet-stream",
    }
    if chunked:
        conn.putrequest("PATCH", urlsplit(url).path)
        for name, value in (headers | {"Transfer-Encoding": "chunked"}).items():
            conn.putheader(name, value)
        conn.endheaders()
        conn.send(f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")
    else:
        conn.request(
            "PATCH",
            urlsplit(url).path,
            body=body,
            headers=headers | {"Content-Length": str(len(body))},
        )
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status


def _open_live_session(tmp_path, settings):
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
    return world, session


def _send_and_drop(live_server, key, url, chunk: bytes, cut: int, offset: int) -> int:
    """PATCH declaring the whole chunk, send only `cut` bytes, then end the stream, as a
    robot losing its network mid-chunk. Returns the offset the server answers."""
    parts = urlsplit(live_server.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as sock:
        head = (
            f"PATCH {urlsplit(url).path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Authorization: Api-Key {key}\r\nTus-Resumable: 1.0.0\r\n"
            f"Upload-Offset: {offset}\r\nContent-Length: {len(chunk)}\r\n"
            "Content-Type: application/offset+octet-stream\r\nConnection: close\r\n\r\n"
        )
        sock.sendall(head.encode() + chunk[:cut])
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while block := sock.recv(65536):
            answer += block
    assert answer.startswith(b"HTTP/1.1 204"), answer[:300]
    return int(re.search(rb"Upload-Offset: (\d+)", answer).group(1))


@pytest.mark.slow
def test_upload_interrupted_at_random_offsets_resumes_byte_identical(
    transactional_db, live_server, tmp_path, settings
):
    world, session = _open_live_session(tmp_path, settings)
    data = record_episode(tmp_path / "episode.h5", seconds=1.0).read_bytes()
    url = _live(world, session, live_server, data)
    rng, offset = random.Random(3), 0
    while offset < len(data):
        chunk = data[offset : offset + rng.randint(1, 300_000)]
        cut = rng.randint(0, len(chunk))
        new_offset = _send_and_drop(live_server, world.a.robot_key, url, chunk, cut, offset)
        assert new_offset == offset + cut  # what arrived is kept; resume from there
        offset = new_offset
    row = Episode.objects.get()
    assert row.state == "processing" and row.sha256 == _sha(data)
    assert stored_upload_bytes(row.uploads.get()) == data


@pytest.mark.slow
def test_two_racing_chunks_at_one_offset_one_wins_one_gets_409(
    transactional_db, live_server, tmp_path, settings
):
    world, session = _open_live_session(tmp_path, settings)
    data = bytes(random.Random(1).randbytes(24 * 1024 * 1024))
    url = _live(world, session, live_server, data)
    chunk = data[: 12 * 1024 * 1024]
    statuses = []
    threads = [
        threading.Thread(
            target=lambda: statuses.append(
                _raw_patch(live_server, world.a.robot_key, url, chunk, 0)
            )
        )
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [204, 409]
    upload = Upload.objects.get()
    assert upload.offset == len(chunk)
    assert stored_upload_bytes(upload) == chunk


@pytest.mark.slow
def test_chunked_body_without_content_length_is_411(
    transactional_db, live_server, tmp_path, settings
):
    world, session = _open_live_session(tmp_path, settings)
    url = _live(world, session, live_server, b"x" * 100)
    assert _raw_patch(live_server, world.a.robot_key, url, b"x" * 10, 0, chunked=True) == 411
    assert Upload.objects.get().offset == 0


# --- Stateless uploads: leases, carried hash, parts in the storage ---------------------------


def test_a_chunk_while_another_holds_the_lease_is_409_with_retry_after(
    api, world, session, episode_file
):
    from datetime import timedelta

    from django.utils import timezone

    data = episode_file.read_bytes()
    client = api(key=world.a.robot_key)
    url = _create(client, session, data)["upload_url"]
    upload = Upload.objects.get()
    # Another web process is receiving a chunk of this upload right now.
    Upload.objects.filter(pk=upload.pk).update(
        lease_token=uuid.uuid4(), lease_expires_at=timezone.now() + timedelta(seconds=20)
    )
    response = _patch(client, url, data[:1000], 0)
    assert response.status_code == 409
    assert response.json()["error"] == "upload_busy"
    assert 1 <= int(response["Retry-After"]) <= 20
    assert _head(client, url) == 0 and not upload.parts.exists()


def test_a_lease_left_by_a_dead_web_process_expires_and_the_upload_goes_on(
    api, world, session, episode_file
):
    from datetime import timedelta

    from django.utils import timezone

    data = episode_file.read_bytes()
    client = api(key=world.a.robot_key)
    url = _create(client, session, data)["upload_url"]
    Upload.objects.update(
        lease_token=uuid.uuid4(), lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert _patch(client, url, data, 0).status_code == 204
    row = Episode.objects.get()
    assert row.state == "processing" and row.sha256 == _sha(data)
    assert Upload.objects.get().lease_token is None


def test_the_last_chunk_completes_from_the_carried_hash_without_reading_the_parts(
    api, world, session, episode_file, monkeypatch
):
    from django.core.files.storage import default_storage

    data = episode_file.read_bytes()
    client = api(key=world.a.robot_key)
    url = _create(client, session, data)["upload_url"]
    assert _patch(client, url, data[:40_000], 0).status_code == 204

    def no_reading(*args, **kwargs):
        raise AssertionError("completing an upload must not read the stored file")

    monkeypatch.setattr(default_storage, "open", no_reading)
    assert _patch(client, url, data[40_000:], 40_000).status_code == 204
    row = Episode.objects.get()
    assert row.state == "processing" and row.sha256 == _sha(data)
    upload = Upload.objects.get()
    assert [(p.offset, p.size_bytes) for p in upload.parts.all()] == [
        (0, 40_000),
        (40_000, len(data) - 40_000),
    ]


def test_each_chunk_is_its_own_object_in_the_storage(api, world, session, episode_file):
    data = episode_file.read_bytes()
    client = api(key=world.a.robot_key)
    url = _create(client, session, data)["upload_url"]
    for offset in range(0, len(data), 100_000):
        assert _patch(client, url, data[offset : offset + 100_000], offset).status_code == 204
    upload = Upload.objects.get()
    assert len(upload_parts_left(upload)) == upload.parts.count() == -(-len(data) // 100_000)
    assert stored_upload_bytes(upload) == data


def test_a_sha1_upload_checksum_is_accepted_as_tus_requires(api, world, session, episode_file):
    data = episode_file.read_bytes()
    client = api(key=world.a.robot_key)
    url = _create(client, session, data)["upload_url"]
    good = "sha1 " + base64.b64encode(hashlib.sha1(data[:500]).digest()).decode()
    bad = "sha1 " + base64.b64encode(hashlib.sha1(b"other").digest()).decode()
    path = urlsplit(url).path
    kind = "application/offset+octet-stream"
    wrong = client.generic(
        "PATCH",
        path,
        data=data[:500],
        content_type=kind,
        HTTP_UPLOAD_OFFSET="0",
        HTTP_UPLOAD_CHECKSUM=bad,
        **TUS,
    )
    assert wrong.status_code == 460
    right = client.generic(
        "PATCH",
        path,
        data=data[:500],
        content_type=kind,
        HTTP_UPLOAD_OFFSET="0",
        HTTP_UPLOAD_CHECKSUM=good,
        **TUS,
    )
    assert right.status_code == 204 and right["Upload-Offset"] == "500"
    options = client.options("/api/v1/uploads/", **TUS)
    assert "sha1" in options["Tus-Checksum-Algorithm"].split(",")


def test_x_http_method_override_is_honoured(api, world, session, episode_file):
    data = episode_file.read_bytes()
    client = api(key=world.a.robot_key)
    url = _create(client, session, data)["upload_url"]
    response = client.generic(
        "POST",
        urlsplit(url).path,
        data=data[:300],
        content_type="application/offset+octet-stream",
        HTTP_UPLOAD_OFFSET="0",
        HTTP_X_HTTP_METHOD_OVERRIDE="PATCH",
        **TUS,
    )
    assert response.status_code == 204 and response["Upload-Offset"] == "300"


@pytest.mark.parametrize("header", ["HTTP_UPLOAD_OFFSET", "HTTP_UPLOAD_LENGTH"])
def test_superscript_digits_in_a_tus_number_are_a_400(api, world, session, episode_file, header):
    data = episode_file.read_bytes()
    client = api(key=world.a.robot_key)
    episode = _create(client, session, data)
    if header == "HTTP_UPLOAD_OFFSET":
        response = client.generic(
            "PATCH",
            urlsplit(episode["upload_url"]).path,
            data=b"x",
            content_type="application/offset+octet-stream",
            HTTP_UPLOAD_OFFSET="²",
            **TUS,
        )
    else:
        metadata = "episode_id " + base64.b64encode(episode["id"].encode()).decode()
        response = client.post(
            "/api/v1/uploads/", HTTP_UPLOAD_LENGTH="²", HTTP_UPLOAD_METADATA=metadata, **TUS
        )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"


def test_a_part_stored_by_a_request_that_died_before_recording_it_is_dropped(
    api, world, session, episode_file, django_capture_on_commit_callbacks, immediate_jobs
):
    import io

    from teleop import storage

    data = episode_file.read_bytes()
    client = api(key=world.a.robot_key)
    url = _create(client, session, data)["upload_url"]
    upload = Upload.objects.get()
    storage.save_upload_part(upload.pk, 0, io.BytesIO(data[:123]))  # stored, never recorded
    with django_capture_on_commit_callbacks(execute=True):
        assert _patch(client, url, data, 0).status_code == 204
    episode = Episode.objects.get()
    assert episode.state == "ready", episode.validation_report
    assert upload_parts_left(upload) == []


def test_processing_refuses_an_upload_whose_stored_part_is_gone(
    api, world, session, episode_file, django_capture_on_commit_callbacks
):
    from django.core.files.storage import default_storage

    data = episode_file.read_bytes()
    client = api(key=world.a.robot_key)
    url = _create(client, session, data)["upload_url"]
    assert _patch(client, url, data[:1000], 0).status_code == 204
    assert _patch(client, url, data[1000:], 1000).status_code == 204
    default_storage.delete(Upload.objects.get().parts.first().key)
    episode = processing.process_episode(episode_id=Episode.objects.get().pk)
    assert episode.state == "rejected" and episode.rejection_code == "file_missing"
    assert "part at 0 is gone" in episode.validation_report["problems"][0]["message"]


def test_an_upload_on_object_storage_is_stored_in_parts_processed_and_its_parts_dropped(
    api,
    world,
    session,
    episode_file,
    s3_storage,
    django_capture_on_commit_callbacks,
    immediate_jobs,
):
    from teleop import storage

    data = episode_file.read_bytes()
    client = api(key=world.a.robot_key)
    url = _create(client, session, data)["upload_url"]
    upload = Upload.objects.get()
    step = 70_000
    for offset in range(0, len(data) - step, step):
        assert _patch(client, url, data[offset : offset + step], offset).status_code == 204
    part_keys = [k for k in s3_storage.keys() if k.startswith(f"uploads/{upload.pk}/")]
    assert len(part_keys) == upload.parts.count() > 1
    last = upload.parts.count() * step
    with django_capture_on_commit_callbacks(execute=True):
        assert _patch(client, url, data[last:], last).status_code == 204
    episode = Episode.objects.get()
    assert episode.state == "ready", episode.validation_report
    keys = s3_storage.keys()
    assert storage.episode_key(episode.sha256) in keys
    assert not [k for k in keys if k.startswith("uploads/")]
    body = s3_storage.client().get_object(Bucket=s3_storage.bucket, Key=episode.file)["Body"]
    assert hashlib.sha256(body.read()).hexdigest() == _sha(data)
