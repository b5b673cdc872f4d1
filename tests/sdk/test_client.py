"""The robot client (`proving_ground.client`) against the real server over real HTTP.

Everything runs against pytest-django's live server with files made by `EpisodeWriter`; no
part of our server is mocked. Network faults (a cut connection, a lost answer, a corrupted
chunk, a gateway's 503) come from `FlakyProxy`, a TCP proxy put between the client and the
live server, because that is where such faults happen in the field.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import h5py
import pytest
import requests
from django.core.management import call_command

from core.services import idempotency, operators
from proving_ground.client import api, errors, transfer
from proving_ground.client.outbox import Outbox
from teleop.models import Episode, Session, Upload
from tests.core import factories
from tests.teleop.recordings import record_episode, stored_upload_bytes

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
OPERATOR = "OP-TEST"
CHUNK = 1024 * 1024  # small chunks: many of them in a test-sized file


# --- A network that misbehaves on demand ----------------------------------------------------

_REQUEST_LINE = re.compile(rb"^(GET|HEAD|POST|PATCH|PUT|DELETE|OPTIONS) (\S+) HTTP/1\.[01]\r\n")


def _kill(sock: socket.socket) -> None:
    # shutdown() wakes a thread blocked in recv() on this socket; close() alone does not.
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class FlakyProxy:
    """A TCP proxy in front of the live server. Faults are armed by setting attributes and
    each fires once:

    - ``cut_after_bytes``: after this many more bytes from client to server (over all
      connections), cut that connection mid-stream;
    - ``drop_answer_to``: a request-line prefix (``"POST /api/v1/sessions"``); the request
      reaches the server, its answer is swallowed and the connection cut;
    - ``corrupt_patch_body_at``: flip this byte of the next PATCH body;
    - ``gateway_errors``: answer this many requests ``503`` with ``Retry-After: 1`` without
      forwarding them, as a load balancer does while the app restarts.

    ``requests`` lists the request lines that went through; ``replayed`` counts answers that
    were idempotent replays."""

    def __init__(self, upstream_url: str):
        parts = urlsplit(upstream_url)
        self._upstream = (parts.hostname, parts.port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._lock = threading.Lock()
        self.requests: list[str] = []
        self.replayed = 0
        self.cut_after_bytes: int | None = None
        self.drop_answer_to: str | None = None
        self.corrupt_patch_body_at: int | None = None
        self.gateway_errors = 0
        self.faults_fired: list[str] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._closed = True
        _kill(self._listener)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._upstream)
            state = {"swallow": False, "corrupt_in": None}
            threading.Thread(
                target=self._client_to_server, args=(client, upstream, state), daemon=True
            ).start()
            threading.Thread(
                target=self._server_to_client, args=(client, upstream, state), daemon=True
            ).start()

    def _gateway_error(self, client: socket.socket, upstream: socket.socket) -> None:
        body = b"<html><body><h1>503 Service Unavailable</h1></body></html>"
        client.sendall(
            b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n"
            b"Content-Type: text/html\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        # Let the client read the answer before the socket goes (an unread request body
        # would otherwise turn our close into a reset that hides the 503).
        client.shutdown(socket.SHUT_WR)
        client.settimeout(2)
        try:
            while client.recv(65536):
                pass
        except OSError:
            pass
        _kill(client)
        _kill(upstream)

    def _client_to_server(self, client, upstream, state) -> None:
        try:
            while data := client.recv(65536):
                data = bytearray(data)
                with self._lock:
                    line = _REQUEST_LINE.match(data)
                    if line:
                        request = f"{line[1].decode()} {line[2].decode()}"
                        self.requests.append(request)
                        if self.gateway_errors > 0:
                            self.gateway_errors -= 1
                            self.faults_fired.append("gateway_error")
                            self._gateway_error(client, upstream)
                            return
                        if self.drop_answer_to and request.startswith(self.drop_answer_to):
                            self.drop_answer_to = None
                            state["swallow"] = True
                        if request.startswith("PATCH") and self.corrupt_patch_body_at is not None:
                            header_end = data.find(b"\r\n\r\n") + 4
                            state["corrupt_in"] = self.corrupt_patch_body_at + header_end
                            self.corrupt_patch_body_at = None
                    if state["corrupt_in"] is not None:
                        if state["corrupt_in"] < len(data):
                            data[state["corrupt_in"]] ^= 0xFF
                            state["corrupt_in"] = None
                            self.faults_fired.append("corrupted")
                        else:
                            state["corrupt_in"] -= len(data)
                    if self.cut_after_bytes is not None:
                        if self.cut_after_bytes < len(data):
                            upstream.sendall(data[: self.cut_after_bytes])
                            self.cut_after_bytes = None
                            self.faults_fired.append("cut")
                            _kill(client)
                            _kill(upstream)
                            return
                        self.cut_after_bytes -= len(data)
                upstream.sendall(data)
        except OSError:
            pass
        _kill(upstream)

    def _server_to_client(self, client, upstream, state) -> None:
        try:
            while data := upstream.recv(65536):
                if state["swallow"]:
                    # The server has acted and answered; the client never hears of it.
                    with self._lock:
                        self.faults_fired.append("answer_lost")
                    break
                if b"\r\nIdempotent-Replayed: true\r\n" in data:
                    with self._lock:
                        self.replayed += 1
                client.sendall(data)
        except OSError:
            pass
        _kill(client)
        _kill(upstream)


# --- Fixtures and helpers -------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _request_threads_close_their_connections(monkeypatch):
    # The live server answers each request in a new thread; with persistent connections
    # (CONN_MAX_AGE) a finished thread's connection stays open and blocks dropping the test
    # database at the end of the run.
    from django.db import connections

    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 0)


@pytest.fixture
def robot(transactional_db):
    """Team a's world, with an operator pseudonym the robot can record with."""
    world = factories.build_world()
    operators.create_operator(actor=world.a.admin, team=world.a.team, code=OPERATOR)
    return world.a


@pytest.fixture
def proxy(live_server):
    flaky = FlakyProxy(live_server.url)
    yield flaky
    flaky.close()


def make_client(url: str, key: str, **kwargs) -> api.ProvingGroundClient:
    # Short waits: the faults below are single hiccups, and tests should stay quick.
    kwargs.setdefault("backoff_base_s", 0.05)
    kwargs.setdefault("backoff_max_s", 0.5)
    kwargs.setdefault("chunk_bytes", CHUNK)
    kwargs.setdefault("timeout_s", 20)
    return api.ProvingGroundClient(url, key, **kwargs)


@pytest.fixture
def client(live_server, robot):
    return make_client(live_server.url, robot.robot_key)


@pytest.fixture
def session(client, robot):
    return client.open_session(robot.task.versions.get().pk, OPERATOR)


@pytest.fixture
def episode_file(tmp_path, robot):
    return record_episode(tmp_path / "episode.hdf5", seconds=1.0, robot=str(robot.robot.pk))


def sha256_hex(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def staged_bytes(episode_id: str) -> bytes:
    """What the server holds of an episode's completed upload."""
    upload = Upload.objects.get(episode_id=episode_id, state=Upload.State.COMPLETE)
    return stored_upload_bytes(upload)


def run_worker() -> None:
    """Run every queued background job in this process, as `manage.py db_worker` does."""
    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)


def run_worker_until(finished, timeout_s: float = 120) -> None:
    """Be the job worker (it must run in the main thread) while a robot runs elsewhere."""
    deadline = time.monotonic() + timeout_s
    while not finished():
        assert time.monotonic() < deadline, "the robot did not finish"
        run_worker()
        time.sleep(0.1)


def tus_patch(url: str, key: str, data: bytes, offset: int) -> requests.Response:
    """A chunk sent by hand (no checksum), as another or an older client would."""
    return requests.patch(
        url,
        data=data,
        headers={
            "Authorization": f"Api-Key {key}",
            "Tus-Resumable": "1.0.0",
            "Content-Type": "application/offset+octet-stream",
            "Upload-Offset": str(offset),
        },
        timeout=20,
    )


# --- Handshake ------------------------------------------------------------------------------


def test_client_version_is_checked_against_the_server_minimum(client):
    answer = client.check_version()
    assert answer["min_client_version"] == "0.1.0"
    assert transfer.version_tuple(api.CLIENT_VERSION) >= transfer.version_tuple(
        answer["min_client_version"]
    )


def test_a_client_older_than_the_server_minimum_is_refused_before_it_opens_anything(
    client, robot, monkeypatch
):
    monkeypatch.setattr(api, "CLIENT_VERSION", "0.0.9")
    with pytest.raises(errors.ClientTooOldError, match=r"0\.0\.9 .* at least 0\.1\.0"):
        client.open_session(robot.task.versions.get().pk, OPERATOR)
    assert not Session.objects.exists()


def test_versions_compare_number_by_number():
    assert transfer.version_tuple("0.10.0") > transfer.version_tuple("0.9.3")
    assert transfer.version_tuple("1.0") == transfer.version_tuple("1.0.0")
    assert transfer.version_tuple("2.1rc1") == (2, 1)


def test_whoami_names_the_robot_and_heartbeat_records_its_software(client, robot):
    assert client.whoami()["kind"] == "robot"
    assert client.robot_id == str(robot.robot.pk)
    client.heartbeat(software_version="arm 2.0")
    robot.robot.refresh_from_db()
    assert robot.robot.software_version == "arm 2.0"
    assert robot.robot.last_seen_at is not None


def test_base_url_may_be_the_server_or_its_api_root(live_server, robot):
    for base in (live_server.url, live_server.url + "/", live_server.url + "/api/v1"):
        assert api.ProvingGroundClient(base, robot.robot_key).version()["api_version"] == "1"


# --- Retries --------------------------------------------------------------------------------


def test_a_post_whose_answer_was_lost_is_retried_with_the_same_key_and_acts_once(proxy, robot):
    client = make_client(proxy.url, robot.robot_key)
    client.check_version()
    proxy.drop_answer_to = "POST /api/v1/sessions/"
    session = client.open_session(robot.task.versions.get().pk, OPERATOR)
    assert proxy.faults_fired == ["answer_lost"]
    assert proxy.requests.count("POST /api/v1/sessions/") == 2
    assert proxy.replayed == 1  # the second try got the stored answer
    assert list(Session.objects.values_list("pk", flat=True)) == [uuid.UUID(session["id"])]


def test_the_same_idempotency_key_sent_twice_has_one_effect(live_server, robot):
    key = str(uuid.uuid4())
    body = {
        "robot": str(robot.robot.pk),
        "task_version": str(robot.task.versions.get().pk),
        "operator": OPERATOR,
        "kind": "teleop",
    }
    headers = {"Authorization": f"Api-Key {robot.robot_key}", "Idempotency-Key": key}
    url = f"{live_server.url}/api/v1/sessions/"
    first = requests.post(url, json=body, headers=headers, timeout=20)
    second = requests.post(url, json=body, headers=headers, timeout=20)
    assert first.status_code == second.status_code == 201
    assert second.headers["Idempotent-Replayed"] == "true"
    assert first.json() == second.json()
    assert Session.objects.count() == 1


def test_gateway_errors_are_retried_after_their_retry_after(proxy, robot):
    client = make_client(proxy.url, robot.robot_key)
    proxy.gateway_errors = 1
    started = time.monotonic()
    assert client.whoami()["kind"] == "robot"
    assert time.monotonic() - started >= 1.0  # Retry-After: 1 was honoured
    assert proxy.requests == ["GET /api/v1/whoami", "GET /api/v1/whoami"]


def test_a_refusal_is_raised_at_once_with_the_server_error_code_and_detail(proxy, robot):
    client = make_client(proxy.url, robot.robot_key)
    client.check_version()
    with pytest.raises(errors.ProvingGroundError) as caught:
        client.open_session(robot.task.versions.get().pk, "OP-NOBODY")
    error = caught.value
    assert (error.status, error.error) == (400, "invalid")
    assert "OP-NOBODY" in error.detail and "operator" in error.fields
    assert proxy.requests.count("POST /api/v1/sessions/") == 1  # a 4xx is never retried


def test_an_unreachable_server_is_reported_after_the_retries(robot):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = make_client(f"http://127.0.0.1:{port}", robot.robot_key, retries=2)
    with pytest.raises(errors.ProvingGroundError) as caught:
        client.version()
    assert caught.value.status is None and caught.value.error == "unreachable"
    assert "3 tries" in caught.value.detail


def test_backoff_grows_is_capped_jittered_and_yields_to_retry_after():
    client = api.ProvingGroundClient(
        "http://pg.invalid", "k", backoff_base_s=1.0, backoff_max_s=8.0, retry_after_max_s=60
    )
    waits = [[client._backoff_s(attempt) for _ in range(200)] for attempt in range(6)]
    for attempt, samples in enumerate(waits):
        ceiling = min(8.0, 2.0**attempt)
        assert all(ceiling / 2 <= w <= ceiling for w in samples)
        assert len(set(samples)) > 100  # jittered
    assert client._backoff_s(0, retry_after_s=7) >= 7
    assert client._backoff_s(0, retry_after_s=10_000) <= 60


class _Outage:
    """A server behind a fake clock, for the retry budget: connection refused while the
    database restarts and gunicorn with it (0-10 s), then 503 + Retry-After from the
    database check (10-32 s), then 409 in flight while the dead request's key lease runs out
    (32-40 s), then the answer. `sleep` moves the clock instead of waiting."""

    def __init__(self, back_at_s: float = 40.0):
        self.now = 0.0
        self.back_at_s = back_at_s
        self.tries = 0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds

    def request(self, method, url, **kwargs):
        self.tries += 1
        self.now += 0.01
        if self.now < 10:
            raise requests.ConnectionError("[Errno 111] Connection refused")
        response = requests.Response()
        response.request = requests.Request(method, url).prepare()
        if self.now < 32 and self.now < self.back_at_s:
            response.status_code, response.headers["Retry-After"] = 503, "5"
            body = {"error": "database_unavailable", "detail": "", "fields": {}}
        elif self.now < self.back_at_s:
            response.status_code, response.headers["Retry-After"] = 409, "1"
            body = {"error": "idempotency_key_in_flight", "detail": "", "fields": {}}
        else:
            response.status_code, body = 201, {"id": "s-1"}
        response._content = json.dumps(body).encode()
        return response


@pytest.mark.parametrize("back_at_s", [40.0, 100.0])
def test_the_default_retry_budget_outlasts_a_30_s_database_restart(monkeypatch, back_at_s):
    outage = _Outage(back_at_s)
    monkeypatch.setattr(api, "time", outage)  # the client's clock and sleep; nothing else's
    client = api.ProvingGroundClient("http://pg.invalid", "k", session=outage)
    response = client._request("POST", "sessions/", json_body={})
    assert response.status_code == 201
    assert outage.tries > 5  # a count of five retries gave up within 16 s


def test_the_retry_budget_is_time_and_a_longer_outage_is_reported(monkeypatch):
    outage = _Outage(back_at_s=10_000)
    monkeypatch.setattr(api, "time", outage)
    client = api.ProvingGroundClient("http://pg.invalid", "k", session=outage, retry_for_s=120)
    with pytest.raises(errors.ProvingGroundError) as caught:
        client._request("POST", "sessions/", json_body={})
    assert caught.value.error == "idempotency_key_in_flight"
    assert 120 <= outage.now < 125  # the last wait ends with the budget


def test_a_retry_outlasts_the_lease_of_a_request_that_died_holding_its_key(
    live_server, robot, settings
):
    from core.api.idempotency import fingerprint

    settings.IDEMPOTENCY_IN_FLIGHT_LEASE_S = 2
    body = {
        "robot": str(robot.robot.pk),
        "task_version": str(robot.task.versions.get().pk),
        "operator": OPERATOR,
        "kind": "teleop",
        "protocol": None,
    }
    key = str(uuid.uuid4())
    # The first try of this POST claimed the key, then its worker died with the database.
    idempotency.begin_idempotent_request(
        principal=f"robot:{robot.robot.pk}",
        key=key,
        fingerprint=fingerprint("POST", "/api/v1/sessions/", body),
        method="POST",
        path="/api/v1/sessions/",
    )
    client = make_client(live_server.url, robot.robot_key)
    started = time.monotonic()
    response = client._request("POST", "sessions/", json_body=body, idempotency_key=key)
    assert response.status_code == 201
    assert time.monotonic() - started >= 1.0  # it waited out the 409s' Retry-After
    assert Session.objects.count() == 1


def test_a_retry_after_of_other_digits_is_ignored_not_a_crash():
    response = requests.Response()
    for value, seconds in (("7", 7.0), ("\u00b2", None), ("\u0663", None), ("-1", None)):
        response.headers["Retry-After"] = value
        assert transfer.retry_after_s(response) == seconds


# --- Sessions -------------------------------------------------------------------------------


def test_a_session_opens_gives_no_condition_without_a_protocol_and_closes(
    client, session, episode_file
):
    assert session["status"] == "open" and session["operator"] == OPERATOR
    assert client.next_condition(session["id"]) is None
    assert client.close_session(session["id"])["status"] == "closed"
    with pytest.raises(errors.ProvingGroundError) as caught:
        client.create_episode(episode_file, session["id"])
    assert (caught.value.status, caught.value.error) == (409, "session_closed")


# --- Episodes and uploads -------------------------------------------------------------------


def test_create_episode_takes_the_id_from_the_file_and_is_harmless_to_repeat(
    client, session, episode_file
):
    with h5py.File(episode_file, "r") as f:
        file_id = f.attrs["episode_id"]
    file_id = file_id.decode() if isinstance(file_id, bytes) else file_id
    first = client.create_episode(episode_file, session["id"])
    again = client.create_episode(episode_file, session["id"])
    assert first["id"] == again["id"] == file_id
    assert first["declared_sha256"] == sha256_hex(episode_file)
    assert first["declared_size_bytes"] == episode_file.stat().st_size
    assert first["upload_url"] == again["upload_url"]
    assert Episode.objects.count() == 1


def test_upload_resumes_from_a_random_offset_left_by_an_interrupted_upload(
    live_server, robot, session, episode_file
):
    data = episode_file.read_bytes()
    seed = random.randrange(2**32)
    offset = random.Random(seed).randrange(1, len(data) - 1)
    first = make_client(live_server.url, robot.robot_key)
    episode = first.create_episode(episode_file, session["id"])
    # The first attempt got `offset` bytes across before it died (no checksum, so the server
    # kept them all).
    assert tus_patch(episode["upload_url"], robot.robot_key, data[:offset], 0).status_code == 204

    # A new client instance (a restarted robot) knows nothing but the episode.
    seen: list[tuple[int, int]] = []
    resumed = make_client(live_server.url, robot.robot_key)
    after = resumed.upload(
        episode_file, episode, on_progress=lambda sent, total: seen.append((sent, total))
    )
    assert seen[0] == (offset, len(data)), f"seed {seed}"
    assert seen[-1] == (len(data), len(data))
    assert after["state"] == "processing"
    assert staged_bytes(episode["id"]) == data, f"seed {seed}"
    assert Episode.objects.get(pk=episode["id"]).sha256 == sha256_hex(episode_file)


def test_a_new_client_finishes_the_upload_of_a_robot_that_died_mid_upload(
    live_server, robot, session, episode_file
):
    class RobotDied(Exception):
        pass

    def die_after_two_chunks(sent: int, total: int) -> None:
        if sent >= 2 * CHUNK:
            raise RobotDied

    episode = make_client(live_server.url, robot.robot_key).create_episode(
        episode_file, session["id"]
    )
    with pytest.raises(RobotDied):
        make_client(live_server.url, robot.robot_key).upload(
            episode_file, episode, on_progress=die_after_two_chunks
        )
    assert Upload.objects.get(episode_id=episode["id"]).offset == 2 * CHUNK

    restarted = make_client(live_server.url, robot.robot_key)
    again = restarted.create_episode(episode_file, session["id"])  # same id, same upload
    assert again["upload_url"] == episode["upload_url"]
    seen: list[int] = []
    restarted.upload(episode_file, again, on_progress=lambda sent, total: seen.append(sent))
    assert seen[0] == 2 * CHUNK
    assert staged_bytes(episode["id"]) == episode_file.read_bytes()


@pytest.mark.parametrize("fault", ["cut_mid_chunk", "answer_lost", "chunk_corrupted"])
def test_upload_survives_a_network_fault_and_stores_the_file_byte_for_byte(
    proxy, robot, episode_file, fault, caplog
):
    caplog.set_level(logging.INFO, logger="proving_ground.client.api")
    client = make_client(proxy.url, robot.robot_key)
    session = client.open_session(robot.task.versions.get().pk, OPERATOR)
    episode = client.create_episode(episode_file, session["id"])
    size = episode_file.stat().st_size
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    if fault == "cut_mid_chunk":
        proxy.cut_after_bytes = rng.randrange(CHUNK // 2, size - CHUNK // 2)
    elif fault == "answer_lost":
        proxy.drop_answer_to = "PATCH"
    else:
        proxy.corrupt_patch_body_at = rng.randrange(0, CHUNK)

    after = client.upload(episode_file, episode)

    expected = {"cut_mid_chunk": "cut", "answer_lost": "answer_lost"}.get(fault, "corrupted")
    assert proxy.faults_fired == [expected], f"seed {seed}"
    assert after["state"] == "processing", f"seed {seed}"
    assert staged_bytes(episode["id"]) == episode_file.read_bytes(), f"seed {seed}"
    if fault == "chunk_corrupted":
        assert "checksum mismatch at the server; resending" in caplog.text
    if fault == "answer_lost":
        # The lost chunk had landed: the client learns so from HEAD and does not resend it.
        assert proxy.requests.count("PATCH " + urlsplit(episode["upload_url"]).path) == -(
            -size // CHUNK
        )


def test_a_stale_offset_gets_409_and_the_client_goes_on_from_the_server_offset(
    live_server, robot, session, episode_file, caplog
):
    caplog.set_level(logging.INFO, logger="proving_ground.client.api")
    data = episode_file.read_bytes()
    client = make_client(live_server.url, robot.robot_key)
    episode = client.create_episode(episode_file, session["id"])
    jumped: list[int] = []

    def another_sender_gets_ahead(sent: int, total: int) -> None:
        # After the first chunk, someone else (a second process of this robot) sends the
        # next bytes: the client's idea of the offset is now stale.
        if sent == CHUNK and not jumped:
            extra = 12345
            response = tus_patch(
                episode["upload_url"], robot.robot_key, data[sent : sent + extra], sent
            )
            assert response.status_code == 204
            jumped.append(sent + extra)

    client.upload(episode_file, episode, on_progress=another_sender_gets_ahead)
    assert jumped == [CHUNK + 12345]
    assert "upload_offset_mismatch; asking the server's offset" in caplog.text
    assert staged_bytes(episode["id"]) == data


def test_an_upload_whose_file_changed_size_is_refused_before_sending(client, session, episode_file):
    episode = client.create_episode(episode_file, session["id"])
    with open(episode_file, "ab") as f:
        f.write(b"more")
    with pytest.raises(errors.ProvingGroundError) as caught:
        client.upload(episode_file, episode)
    assert caught.value.error == "file_changed"
    assert Upload.objects.get(episode_id=episode["id"]).offset == 0


# --- Processing -----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_recorded_episode_uploads_and_becomes_ready_with_its_stats(
    client, robot, session, tmp_path
):
    path = record_episode(tmp_path / "ten-seconds.hdf5", seconds=10.0, robot=str(robot.robot.pk))
    episode = client.create_episode(path, session["id"])
    assert client.upload(path, episode)["state"] == "processing"
    run_worker()
    done = client.wait_until_processed(episode["id"], timeout_s=30)
    assert done["state"] == "ready", done["validation_report"]
    assert done["num_steps"] == 2000 and not done["truncated"]
    assert done["duration_s"] == pytest.approx(10.0, abs=0.01)
    assert done["measured_hz"] == pytest.approx(200, rel=0.01)
    assert done["camera_frame_counts"] == {"cam_high": 300, "cam_wrist": 300}
    assert done["sha256"] == sha256_hex(path)


def test_waiting_for_processing_times_out_with_the_last_state(client, session, episode_file):
    episode = client.create_episode(episode_file, session["id"])
    with pytest.raises(errors.ProcessingTimeout) as caught:
        client.wait_until_processed(episode["id"], timeout_s=0.2, poll_s=0.05)
    assert caught.value.state == "created"


# --- The outbox -----------------------------------------------------------------------------

WRITER_PROCESS = r"""
import json, sys, time

import numpy as np

from proving_ground.client.outbox import Outbox
from proving_ground.episode.spec import encode_jpeg
from proving_ground.episode.writer import EpisodeWriter

directory, spec = sys.argv[1], json.loads(sys.argv[2])
gradient = np.linspace(0, 255, 640, dtype=np.uint8)[None, :, None]
frame = encode_jpeg(np.broadcast_to(gradient, (480, 640, 3)).copy())
with Outbox(directory).recording() as rec:
    with EpisodeWriter(rec.path, spec, episode_id=rec.episode_id, robot="r",
                       task_version="t", operator="OP-TEST", embodiment="arm") as writer:
        hz, next_frame = spec["control_hz"], 0.0
        for i in range(2 * hz):  # two seconds of a teleoperated episode
            t = i / hz
            q = np.full(7, np.sin(t), np.float32)
            writer.add_step(t, {"qpos": q, "qvel": q}, q)
            if t >= next_frame:
                for cam in spec["cameras"]:
                    writer.add_frame(cam["name"], t, frame)
                next_frame += 1 / 30
        writer.flush()
        print(rec.episode_id, flush=True)
        time.sleep(600)  # still recording when the robot is killed
"""


def _start_writer(directory: Path) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DJANGO_SETTINGS_MODULE", None)  # the robot side runs without Django
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER_PROCESS, str(directory), json.dumps(factories.ARM_SPEC)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    line = writer.stdout.readline().strip()
    assert line, writer.stderr.read()
    return writer, line


def test_outbox_recovers_a_partial_left_by_a_killed_writer_and_uploads_it(
    client, session, tmp_path
):
    outbox = Outbox(tmp_path / "outbox")
    writer, episode_id = _start_writer(outbox.directory)
    try:
        partial = outbox.directory / f"{episode_id}.hdf5.partial"
        assert partial.exists()
        assert outbox.pending() == []  # the writer is alive: its partial is left alone
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=10)

    # The robot restarts: a new Outbox over the same directory finds the crashed recording.
    restarted = Outbox(tmp_path / "outbox")
    recovered = outbox.directory / f"{episode_id}.hdf5"
    assert restarted.pending() == [recovered] and not partial.exists()
    (result,) = restarted.flush(client, session["id"])
    assert result.ok and result.episode_id == episode_id and result.state == "processing"
    assert restarted.pending() == []
    assert [p.name for p in restarted.sent()] == [recovered.name]
    assert restarted.state(recovered)["session_id"] == session["id"]

    run_worker()
    done = client.wait_until_processed(episode_id, timeout_s=30)
    assert done["state"] == "ready", done["validation_report"]
    assert done["truncated"] is True
    assert 0 < done["num_steps"] <= 400


def test_outbox_keeps_a_file_until_the_server_confirms_it_and_survives_a_restart(
    live_server, robot, client, session, tmp_path
):
    outbox = Outbox(tmp_path / "outbox")
    with outbox.recording() as rec:
        record_episode(rec.path, seconds=0.5, episode_id=rec.episode_id)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    offline = make_client(f"http://127.0.0.1:{dead_port}", robot.robot_key, retries=0)
    (failed,) = outbox.flush(offline, session["id"])
    assert failed.error is not None and failed.error.error == "unreachable"
    assert outbox.pending() == [rec.path]
    assert outbox.state(rec.path)["episode_id"] == rec.episode_id

    # The robot process restarts: fresh objects, same directory.
    (sent,) = Outbox(tmp_path / "outbox").flush(
        make_client(live_server.url, robot.robot_key), session["id"]
    )
    assert sent.ok and sent.episode_id == rec.episode_id
    assert Episode.objects.get(pk=rec.episode_id).state == "processing"
    assert outbox.pending() == [] and outbox.sent() == [outbox.directory / "sent" / rec.path.name]
    assert outbox.flush(client, session["id"]) == []  # nothing twice


def test_a_recording_goes_into_the_session_it_was_made_for_never_the_one_flush_names(
    live_server, robot, client, session, tmp_path
):
    outbox = Outbox(tmp_path / "outbox")
    with outbox.recording(session_id=session["id"]) as rec:
        record_episode(rec.path, seconds=0.3, episode_id=rec.episode_id)
    assert outbox.state(rec.path)["session_id"] == session["id"]  # bound before any upload
    later = client.open_session(robot.task.versions.get().pk, OPERATOR)

    (result,) = outbox.flush(client, later["id"])

    assert result.ok, result.error
    assert str(Episode.objects.get(pk=rec.episode_id).session_id) == session["id"]
    assert not Episode.objects.filter(session_id=later["id"]).exists()


def test_a_recording_refused_for_good_moves_to_refused_and_is_not_tried_again(
    live_server, robot, client, session, tmp_path
):
    outbox = Outbox(tmp_path / "outbox")
    with outbox.recording(session_id=session["id"]) as rec:
        record_episode(rec.path, seconds=0.3, episode_id=rec.episode_id)
    client.close_session(session["id"])
    later = client.open_session(robot.task.versions.get().pk, OPERATOR)

    (result,) = outbox.flush(client, later["id"])

    assert result.error is not None and result.error.error == "session_closed"
    assert result.state == "refused"
    assert outbox.pending() == []
    assert outbox.refused() == [outbox.directory / "refused" / rec.path.name]
    refused = outbox.state(rec.path)["refused"]
    assert refused["status"] == 409 and refused["error"] == "session_closed"
    assert outbox.flush(client, later["id"]) == []  # not retried at every flush
    assert not Episode.objects.exists()  # and never uploaded into the later session


def test_an_unbound_recording_waits_for_a_flush_that_names_a_session(
    live_server, robot, client, session, tmp_path
):
    outbox = Outbox(tmp_path / "outbox")
    path = record_episode(outbox.directory / f"{uuid.uuid4()}.hdf5", seconds=0.3)

    (waiting,) = outbox.flush(client)
    assert waiting.error is not None and waiting.error.error == "no_session"
    assert outbox.pending() == [path]

    (sent,) = outbox.flush(client, session["id"])
    assert sent.ok, sent.error
    assert outbox.state(path)["session_id"] == session["id"]


def test_outbox_resumes_an_upload_interrupted_by_a_crash_in_its_original_session(
    live_server, robot, client, session, tmp_path
):
    outbox = Outbox(tmp_path / "outbox")
    with outbox.recording() as rec:
        record_episode(rec.path, seconds=1.0, episode_id=rec.episode_id)

    class PowerCut(BaseException):
        pass

    def cut_power(path: Path, sent: int, total: int) -> None:
        if sent >= CHUNK:
            raise PowerCut

    with pytest.raises(PowerCut):
        outbox.flush(client, session["id"], on_progress=cut_power)
    assert outbox.pending() == [rec.path]

    # After the restart the robot opens a new session; the half-sent episode still belongs
    # to the first one, and goes on from where the server stopped.
    restarted = make_client(live_server.url, robot.robot_key)
    new_session = restarted.open_session(robot.task.versions.get().pk, OPERATOR)
    starts: list[int] = []

    def first_offset(path: Path, sent: int, total: int) -> None:
        starts.append(sent)

    (result,) = Outbox(tmp_path / "outbox").flush(
        restarted, new_session["id"], on_progress=first_offset
    )
    assert result.ok, result.error
    assert starts[0] == CHUNK
    row = Episode.objects.get(pk=rec.episode_id)
    assert str(row.session_id) == session["id"] and row.state == "processing"
    assert staged_bytes(rec.episode_id) == (outbox.directory / "sent" / rec.path.name).read_bytes()


def test_outbox_file_is_kept_in_sent_or_deleted_as_asked(client, session, tmp_path):
    outbox = Outbox(tmp_path / "outbox")
    with outbox.recording() as rec:
        record_episode(rec.path, seconds=0.3, episode_id=rec.episode_id)
    (result,) = outbox.flush(client, session["id"], keep_sent=False)
    assert result.ok
    assert outbox.pending() == [] and outbox.sent() == []
    assert outbox.state(rec.path)["server_state"] == "processing"


def test_the_chunk_checksum_header_is_the_base64_sha256_of_the_chunk(tmp_path):
    path = tmp_path / "bytes"
    path.write_bytes(os.urandom(3000))
    with open(path, "rb") as f:
        digest = transfer.range_digest(f, 1000, 1500)
        body = transfer.FileSlice(f, 1000, 1500)
        assert len(body) == 1500
        sent = b"".join(iter(lambda: body.read(512), b""))
    assert sent == path.read_bytes()[1000:2500]
    assert base64.b64encode(digest) == base64.b64encode(hashlib.sha256(sent).digest())


def test_outbox_moves_a_file_whose_upload_completed_before_a_crash_without_resending_it(
    client, session, tmp_path, proxy, robot
):
    outbox = Outbox(tmp_path / "outbox")
    with outbox.recording() as rec:
        record_episode(rec.path, seconds=0.3, episode_id=rec.episode_id)
    client.upload_episode(rec.path, session["id"])  # then the robot died before moving it

    (result,) = outbox.flush(make_client(proxy.url, robot.robot_key), session["id"])
    assert result.ok and result.state == "processing"
    assert not [r for r in proxy.requests if r.startswith("PATCH")]
    assert outbox.pending() == [] and len(outbox.sent()) == 1


# --- The quickstart -------------------------------------------------------------------------


@pytest.fixture
def demo(transactional_db):
    """`make run`'s demo data, and a key for its robot."""
    call_command("seed_demo", stdout=io.StringIO())
    out = io.StringIO()
    call_command("create_robot_key", "demo-arm-1", stdout=out)
    return out.getvalue().strip()


def test_the_quickstart_robot_script_in_the_docs_runs_against_a_live_server(
    live_server, demo, tmp_path, monkeypatch, capsys
):
    (block,) = re.findall(
        r"```python\n(.*?)```", (ROOT / "docs/robot-quickstart.md").read_text(), re.S
    )
    monkeypatch.chdir(tmp_path)  # the block's outbox is relative: var/robot-outbox

    def record(path, spec, episode_id):
        record_episode(path, spec=spec, seconds=1.0, episode_id=episode_id)

    failures: list[BaseException] = []

    def robot_process() -> None:
        try:
            namespace = {"URL": live_server.url, "KEY": demo, "record": record}
            exec(compile(block, "docs/robot-quickstart.md", "exec"), namespace)  # our own doc
        except BaseException as exc:  # re-raised below, in the test's thread
            failures.append(exc)

    robot_thread = threading.Thread(target=robot_process)
    robot_thread.start()
    run_worker_until(lambda: not robot_thread.is_alive())
    robot_thread.join()
    if failures:
        raise failures[0]
    assert capsys.readouterr().out.startswith("ready 200.0")
    assert len(list((tmp_path / "var/robot-outbox/sent").iterdir())) == 1


@pytest.mark.slow
def test_the_example_robot_script_records_uploads_and_gets_a_ready_episode(
    live_server, demo, tmp_path, sdk_python
):
    """The README's robot quickstart, run as on a robot: from a virtual environment holding
    `pip install ./sdk` alone (no Django, no server code), in a directory outside the
    checkout."""
    robot_process = subprocess.Popen(
        [
            str(sdk_python),
            str(ROOT / "examples/robot_quickstart.py"),
            "--url",
            live_server.url,
            "--key",
            demo,
            "--outbox",
            str(tmp_path / "outbox"),
            "--timeout-s",
            "60",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
        env={
            k: v
            for k, v in os.environ.items()
            if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH", "VIRTUAL_ENV")
        },
    )
    run_worker_until(lambda: robot_process.poll() is not None)
    output = robot_process.stdout.read()
    assert robot_process.returncode == 0, output
    assert re.search(r"episode \S+: ready\n  600 steps, 3.00 s at 200.0 Hz", output), output
    assert "check control-rate: passed" in output
    episode = Episode.objects.get()
    assert episode.state == "ready"
    (sent,) = (tmp_path / "outbox" / "sent").iterdir()
    with h5py.File(sent, "r") as f:  # the file names what it was recorded for
        assert f.attrs["embodiment"] == episode.robot.embodiment.name != ""


# --- Recording into the console's session by its code ---------------------------------------


def _console_session(robot_name: str = "demo-arm-1", operator_code: str = "OP-DEMO1"):
    """The session an operator opens in the console for the demo robot."""
    from django.contrib.auth import get_user_model

    from core.models import Robot, Task
    from teleop.services import sessions

    robot = Robot.objects.get(name=robot_name)
    task = Task.objects.get(team=robot.team, slug="pick-cube")
    return sessions.open_session(
        actor=get_user_model().objects.get(username="olga"),
        robot=robot,
        task_version=task.versions.order_by("-number").first(),
        operator_code=operator_code,
    )


@pytest.mark.slow
def test_the_quickstart_records_into_the_consoles_session_given_its_code(
    live_server, demo, tmp_path
):
    session = _console_session()
    robot_process = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "examples/robot_quickstart.py"),
            *("--url", live_server.url, "--key", demo, "--session", session.code.lower()),
            # The robot's patience is a safety net, not the test's clock: processing runs
            # here, between polls, and a loaded CI machine once took over 60 s.
            *("--outbox", str(tmp_path / "outbox"), "--duration-s", "1", "--timeout-s", "600"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
    )
    run_worker_until(lambda: robot_process.poll() is not None, timeout_s=900)
    output = robot_process.stdout.read()
    assert robot_process.returncode == 0, output
    assert f"session {session.code} ({session.pk}): operator OP-DEMO1" in output
    episode = Episode.objects.get()
    assert episode.session_id == session.pk and episode.state == "ready"
    assert Session.objects.get(pk=session.pk).status == "open"  # the console's to close
    assert Session.objects.count() == 1  # the script opened none of its own


def test_the_cli_uploads_into_a_session_given_by_code_and_refuses_a_closed_one(
    live_server, robot, episode_file, capsys
):
    from proving_ground.client import cli
    from teleop.services import sessions

    session = sessions.open_session(
        actor=robot.operator,
        robot=robot.robot,
        task_version=robot.task.versions.get(),
        operator_code=OPERATOR,
    )
    args = ["--url", live_server.url, "--key", robot.robot_key, "upload", str(episode_file)]
    assert cli.main([*args, "--session", session.code]) == 0
    assert Episode.objects.get().session_id == session.pk

    sessions.close_session(actor=robot.operator, session=session)
    capsys.readouterr()
    assert cli.main([*args, "--session", session.code]) == 2
    assert f"Session {session.code} was closed" in capsys.readouterr().err
