"""A third-party tus 1.0 client, tuspy, against our upload endpoint over real HTTP.

tuspy's `Uploader` runs with its defaults (no `chunk_size`: the whole file in one PATCH)
against pytest-django's live server; nothing of the server is mocked. A connection cut
mid-PATCH comes from `CuttingProxy`, a TCP proxy between tuspy and the server.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
import uuid
from urllib.parse import urlsplit

import pytest
import requests
from django.core.management import call_command
from tusclient.client import TusClient
from tusclient.exceptions import TusCommunicationError
from tusclient.storage.filestorage import FileStorage

from core.services import operators
from teleop.models import Episode, Upload
from teleop.services import sessions
from tests.core import factories
from tests.teleop.recordings import record_episode, stored_upload_bytes

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

MIB = 1024 * 1024


# --- A network that cuts a request mid-body --------------------------------------------------


class CuttingProxy:
    """A TCP proxy in front of the live server. `cut_after_bytes`, when set, fires once: after
    that many more bytes from client to server, the server's side of that connection is
    ended (it reads the end of the body, as when a robot's network goes) and the client's
    is closed (tuspy sees the connection fail). `request_lines` lists what went through."""

    def __init__(self, upstream_url: str):
        parts = urlsplit(upstream_url)
        self._upstream = (parts.hostname, parts.port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.cut_after_bytes: int | None = None
        self.request_lines: list[str] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._upstream)
            threading.Thread(target=self._upward, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._downward, args=(client, upstream), daemon=True).start()

    def _upward(self, client: socket.socket, upstream: socket.socket) -> None:
        try:
            while block := client.recv(256 * 1024):
                if block[:16].split(b" ", 1)[0] in (b"HEAD", b"POST", b"PATCH", b"DELETE"):
                    self.request_lines.append(block.split(b"\r\n", 1)[0].decode())
                with self._lock:
                    limit = self.cut_after_bytes
                    if limit is not None:
                        self.cut_after_bytes = limit - len(block) if len(block) < limit else None
                if limit is not None and len(block) >= limit:
                    upstream.sendall(block[:limit])
                    upstream.shutdown(socket.SHUT_WR)  # the server reads the body's end
                    client.close()
                    return
                upstream.sendall(block)
            upstream.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _downward(self, client: socket.socket, upstream: socket.socket) -> None:
        try:
            while block := upstream.recv(256 * 1024):
                client.sendall(block)
        except OSError:
            pass
        finally:
            client.close()
            upstream.close()


# --- Fixtures and helpers -------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _request_threads_close_their_connections(monkeypatch):
    from django.db import connections

    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 0)


@pytest.fixture
def robot(transactional_db):
    """Team a's world: its robot records with `robot_key`."""
    return factories.build_world().a


@pytest.fixture
def session(robot):
    operator = operators.create_operator(actor=robot.admin, team=robot.team)
    return sessions.open_session(
        actor=robot.admin,
        robot=robot.robot,
        task_version=robot.task.versions.get(),
        operator_code=operator.code,
    )


@pytest.fixture
def proxy(live_server):
    cutting = CuttingProxy(live_server.url)
    yield cutting
    cutting.close()


@pytest.fixture(scope="module")
def big_episode(tmp_path_factory):
    """A real episode file over 16 MiB (the old cap on one PATCH)."""
    path = record_episode(tmp_path_factory.mktemp("tus") / "episode.h5", seconds=3.0)
    assert path.stat().st_size > 16 * MIB
    return path


def tus_client(base_url: str, key: str) -> TusClient:
    return TusClient(f"{base_url}/api/v1/uploads/", headers={"Authorization": f"Api-Key {key}"})


def episode_metadata(session, path) -> dict[str, str]:
    """What a generic tus client sends to create the episode with its upload."""
    return {
        "session": str(session.pk),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "filename": path.name,
    }


def run_worker() -> None:
    """Run the queued jobs (processing) in this process, as `manage.py db_worker` does."""
    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)


def wait_until(condition, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the condition never came true"
        time.sleep(0.05)


def upload_settled() -> bool:
    """The server has recorded what reached it of a cut PATCH (the request has ended)."""
    return Upload.objects.filter(offset__gt=0, lease_token__isnull=True).exists()


# --- tuspy with its defaults ----------------------------------------------------------------


def test_tuspy_sends_a_file_over_16_mib_in_one_patch_with_sha1_and_the_episode_is_accepted(
    robot, session, proxy, big_episode
):
    uploader = tus_client(proxy.url, robot.robot_key).uploader(
        file_path=str(big_episode),
        metadata=episode_metadata(session, big_episode),
        upload_checksum=True,  # Upload-Checksum: sha1 <base64>, which tus requires us to take
    )
    uploader.upload()

    assert uploader.offset == big_episode.stat().st_size
    patches = [line for line in proxy.request_lines if line.startswith("PATCH ")]
    assert len(patches) == 1
    episode = Episode.objects.get()
    assert episode.session == session and episode.state == "processing"
    upload = episode.uploads.get()
    assert upload.parts.count() == 2  # stored in parts of at most 16 MiB as it arrived
    assert stored_upload_bytes(upload) == big_episode.read_bytes()
    run_worker()
    episode.refresh_from_db()
    assert episode.state == "ready", episode.validation_report
    assert episode.sha256 == hashlib.sha256(big_episode.read_bytes()).hexdigest()
    assert episode.file


def test_tuspy_uploads_an_episode_registered_with_post_episodes(
    robot, session, live_server, tmp_path
):
    path = record_episode(tmp_path / "episode.h5", seconds=1.0)
    data = path.read_bytes()
    created = requests.post(
        f"{live_server.url}/api/v1/episodes/",
        json={
            "id": str(uuid.uuid4()),
            "session": str(session.pk),
            "size_bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        },
        headers={"Authorization": f"Api-Key {robot.robot_key}"},
        timeout=20,
    )
    assert created.status_code == 201, created.text
    uploader = tus_client(live_server.url, robot.robot_key).uploader(
        file_path=str(path), url=created.json()["upload_url"], upload_checksum=True
    )
    uploader.upload()
    run_worker()
    assert Episode.objects.get().state == "ready"


def test_tuspy_resumes_an_upload_cut_mid_patch_from_the_server_offset(
    robot, session, proxy, big_episode, tmp_path
):
    data = big_episode.read_bytes()
    urls = FileStorage(str(tmp_path / "tus-urls.json"))
    client = tus_client(proxy.url, robot.robot_key)
    metadata = episode_metadata(session, big_episode)
    proxy.cut_after_bytes = 5 * MIB  # the POST, then a few MiB of the PATCH
    first = client.uploader(
        file_path=str(big_episode), metadata=metadata, store_url=True, url_storage=urls
    )
    with pytest.raises(TusCommunicationError):
        first.upload()
    wait_until(upload_settled)
    kept = Upload.objects.get().offset
    assert 0 < kept < len(data)

    # A new run finds the upload's URL in tuspy's store and asks HEAD where to go on.
    resumed = client.uploader(
        file_path=str(big_episode), metadata=metadata, store_url=True, url_storage=urls
    )
    assert resumed.url == first.url and resumed.offset == kept
    resumed.upload()

    assert [line.split()[0] for line in proxy.request_lines].count("POST") == 1
    upload = Upload.objects.get()
    assert upload.state == "complete" and stored_upload_bytes(upload) == data
    run_worker()
    assert Episode.objects.get().state == "ready"


def test_tuspy_creating_again_after_a_partial_upload_starts_over_at_offset_0(
    robot, session, live_server, big_episode
):
    client = tus_client(live_server.url, robot.robot_key)
    metadata = episode_metadata(session, big_episode)
    partial = client.uploader(file_path=str(big_episode), metadata=metadata)
    partial.upload(stop_at=3 * MIB)
    assert Upload.objects.get().offset == 3 * MIB

    # A run that kept no URL creates the upload again: a new one, from byte 0.
    again = client.uploader(file_path=str(big_episode), metadata=metadata, upload_checksum=True)
    again.upload()

    assert again.url != partial.url
    assert requests.head(partial.url, headers=partial.get_headers(), timeout=20).status_code == 404
    assert Episode.objects.count() == 1
    upload = Upload.objects.get(state="complete")
    assert stored_upload_bytes(upload) == big_episode.read_bytes()


def test_after_termination_tuspy_finds_the_upload_gone(robot, session, live_server, big_episode):
    uploader = tus_client(live_server.url, robot.robot_key).uploader(
        file_path=str(big_episode), metadata=episode_metadata(session, big_episode)
    )
    uploader.upload(stop_at=MIB)
    terminated = requests.delete(uploader.url, headers=uploader.get_headers(), timeout=20)
    assert terminated.status_code == 204

    with pytest.raises(TusCommunicationError) as asked:
        uploader.get_offset()  # HEAD
    assert asked.value.status_code in (404, 410)
    with pytest.raises(TusCommunicationError) as sent:
        uploader.upload()  # PATCH at the offset it had
    assert sent.value.status_code in (404, 410)
    assert Upload.objects.get().state == "terminated"
    assert Episode.objects.get().state == "created"


@pytest.mark.parametrize("which", ["collection", "upload"])
def test_options_answers_the_tus_headers_without_credentials(
    robot, session, live_server, tmp_path, which
):
    url = f"{live_server.url}/api/v1/uploads/"
    if which == "upload":
        path = record_episode(tmp_path / "episode.h5", seconds=0.5)
        uploader = tus_client(live_server.url, robot.robot_key).uploader(
            file_path=str(path), metadata=episode_metadata(session, path)
        )
        uploader.upload(stop_at=1000)
        url = uploader.url
    response = requests.options(url, timeout=20)
    assert response.status_code == 204, response.text
    assert response.headers["Tus-Version"] == "1.0.0"
    assert set(response.headers["Tus-Extension"].split(",")) == {
        "creation",
        "checksum",
        "termination",
        "expiration",
    }
    assert int(response.headers["Tus-Max-Size"]) > 16 * MIB
    assert "sha1" in response.headers["Tus-Checksum-Algorithm"].split(",")


def test_x_http_method_override_reaches_the_view_over_real_http(
    robot, session, live_server, big_episode
):
    uploader = tus_client(live_server.url, robot.robot_key).uploader(
        file_path=str(big_episode), metadata=episode_metadata(session, big_episode)
    )
    uploader.upload(stop_at=1000)
    data = big_episode.read_bytes()[1000:2000]
    response = requests.post(
        uploader.url,
        data=data,
        headers=uploader.get_headers()
        | {
            "X-HTTP-Method-Override": "PATCH",
            "Upload-Offset": "1000",
            "Content-Type": "application/offset+octet-stream",
        },
        timeout=20,
    )
    assert response.status_code == 204 and response.headers["Upload-Offset"] == "2000"
    assert uploader.get_offset() == 2000
