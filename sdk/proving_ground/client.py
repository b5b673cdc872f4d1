"""The robot-side client of Proving Ground: sessions, episodes and resumable uploads.

A robot's network is flaky and its process may die at any moment (a crash, a power cut, an
operator's Ctrl-C). The client is built so that neither loses an episode nor duplicates one:

- **Idempotent retries.** Every POST carries an ``Idempotency-Key`` (a uuid4 per logical
  operation, reused by each of its retries). When an answer is lost after the server acted,
  the retry gets the stored answer back (``Idempotent-Replayed: true``) instead of acting
  twice. Episodes are also idempotent by construction: their id is generated here (or read
  from the file) and the server refuses a second row with the same id. Retried: connection
  errors and timeouts, 429 and 502/503/504 (waiting ``Retry-After`` when the server says so),
  and ``409 idempotency_key_in_flight`` (the first attempt is still running); the waits grow
  exponentially, are capped, and carry jitter so that a fleet of robots coming back after an
  outage does not hammer the server in step. The budget is time, not a count: a request is
  retried for ``retry_for_s`` (2 minutes by default), which outlasts a database restart, a
  server's 30 s idempotency lease and a deploy. Any other 4xx is an answer, not a hiccup: it is
  raised at once as a `ProvingGroundError` with the server's ``error`` code and ``detail``.
- **Resumable uploads (tus 1.0.0).** A file goes up in chunks (8 MiB by default; the server
  takes up to 16 MiB) streamed from disk, each with its SHA-256 (``Upload-Checksum``), so
  memory stays flat whatever the file size and a corrupted chunk is refused (460) and resent.
  After a dropped connection, a 409 (stale offset, or the server still busy with a chunk) or
  a restart of the robot, the client asks the server for its offset (``HEAD``) and goes on
  from there: the server is the only source of truth about what arrived.
- **An outbox on disk.** `Outbox` is a directory the robot records into. Finished files wait
  there until the server confirms it has them whole; ``.partial`` files left by a crashed
  writer are recovered as truncated episodes (the server flags them, it does not reject
  them). All bookkeeping is files (the recording itself, a small JSON state file, the
  ``sent/`` folder), so it survives a restart: the robot just calls `Outbox.flush` again.

Free of Django: it needs ``requests`` and the standard library; reading an episode's id from
an HDF5 file imports `proving_ground.episode` (h5py, numpy) lazily. See ``docs/robot-quickstart.md``
and ``docs/api.md`` ("Recording: sessions, episodes and resumable uploads").

Command line: ``python -m proving_ground.client --url URL --key KEY
{version,pending,flush,upload}``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import email.utils
import fcntl
import hashlib
import json
import logging
import os
import random
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urljoin

import requests

from proving_ground import __version__
from proving_ground.files import file_digest, fsync_directory_if_supported

log = logging.getLogger(__name__)

#: This client's version; the server's ``min_client_version`` must not be above it.
CLIENT_VERSION = __version__
#: The API major version this client speaks (``api_version`` from ``/api/v1/version``).
API_VERSION = "1"
TUS_VERSION = "1.0.0"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
MiB = 1024 * 1024
DEFAULT_CHUNK_BYTES = 8 * MiB
#: The server refuses larger chunks (413); see docs/api.md.
MAX_CHUNK_BYTES = 16 * MiB
#: Reads while hashing stay this small, so memory does not grow with the chunk size.
HASH_PIECE_BYTES = 1 * MiB
#: Statuses that mean "not now" rather than "no": a gateway or the database is away, or the
#: caller is over its rate.
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
#: Episode states after which the server holds the file whole.
UPLOADED_STATES = frozenset({"processing", "ready", "rejected"})
FINAL_STATES = frozenset({"ready", "rejected"})

ProgressCallback = Callable[[int, int], None]
_NO_BODY = object()


# --- Errors ---------------------------------------------------------------------------------


class ProvingGroundError(Exception):
    """A request failed for good. ``status`` is the HTTP status (None when no answer came
    back at all), ``error`` the server's machine-readable code (``invalid``, ``not_found``,
    ``session_closed``, ...; ``unreachable`` when the server never answered), ``detail`` its
    human-readable message and ``fields`` its per-field messages."""

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        error: str = "error",
        fields: Mapping[str, Any] | None = None,
        request: str = "",
    ):
        self.status = status
        self.error = error
        self.detail = detail
        self.fields = dict(fields or {})
        self.request = request
        where = f"{request}: " if request else ""
        code = f"{status} {error}" if status is not None else error
        super().__init__(f"{where}{code}: {detail}")

    @classmethod
    def from_response(cls, response: requests.Response) -> ProvingGroundError:
        """Build from the server's error body ``{"error", "detail", "fields"}``; a body that
        is not ours (a gateway's HTML page) becomes ``http_<status>`` with its first line."""
        request = f"{response.request.method} {response.request.path_url}"
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and "error" in body:
            return cls(
                str(body.get("detail", "")),
                status=response.status_code,
                error=str(body["error"]),
                fields=body.get("fields") if isinstance(body.get("fields"), dict) else None,
                request=request,
            )
        text = (response.text or response.reason or "").strip().splitlines()
        return cls(
            text[0][:200] if text else "",
            status=response.status_code,
            error=f"http_{response.status_code}",
            request=request,
        )


class ClientTooOldError(ProvingGroundError):
    """The server no longer supports this client version: upgrade the client."""


class ProcessingTimeout(ProvingGroundError, TimeoutError):
    """`ProvingGroundClient.wait_until_processed` gave up; ``state`` is the last one seen."""

    def __init__(self, detail: str, *, state: str | None):
        super().__init__(detail, error="timeout")
        self.state = state


# --- Small pure helpers ---------------------------------------------------------------------


def version_tuple(version: str) -> tuple[int, ...]:
    """``"1.10.2"`` -> ``(1, 10, 2)``, compared number by number (so 1.10 > 1.9). A part's
    trailing non-digits are ignored (``"2rc1"`` counts as 2); missing parts count as 0."""
    parts = []
    for part in version.strip().split("."):
        digits = re.match(r"\d*", part).group()
        parts.append(int(digits) if digits else 0)
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()  # 1.0 == 1.0.0
    return tuple(parts)


def _range_digest(f: BinaryIO, offset: int, length: int) -> bytes:
    """SHA-256 of ``length`` bytes of ``f`` from ``offset``, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    f.seek(offset)
    left = length
    while left:
        piece = f.read(min(HASH_PIECE_BYTES, left))
        if not piece:
            raise ProvingGroundError(
                f"{getattr(f, 'name', 'file')} shrank while uploading", error="file_changed"
            )
        digest.update(piece)
        left -= len(piece)
    return digest.digest()


def read_episode_id(path: str | os.PathLike[str]) -> str | None:
    """The ``episode_id`` root attribute of a pg-episode file, or None when the file is not
    one (or h5py is not installed). Opens crashed (SWMR-flagged) files too."""
    try:
        from proving_ground.episode.reader import attr_value, open_episode_file
        from proving_ground.episode.spec import SCHEMA
    except ImportError:
        return None
    try:
        with open_episode_file(path) as f:
            if attr_value(f.attrs.get("schema")) != SCHEMA:
                return None
            return str(uuid.UUID(str(attr_value(f.attrs.get("episode_id")))))
    except (OSError, ValueError, TypeError):
        return None


def _retry_after_s(response: requests.Response) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), or None."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"[0-9]{1,9}", value):  # not isdigit(): it takes "²", which float() refuses
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class _FileSlice:
    """``length`` bytes of an open file from ``offset``, read on demand as a request body.

    ``__len__`` lets requests send a Content-Length (never ``Transfer-Encoding: chunked``,
    which the server answers 411), and urllib3 pulls the bytes through ``read`` in small
    blocks, so a chunk is never held in memory whole."""

    def __init__(self, f: BinaryIO, offset: int, length: int):
        self._f = f
        self._length = length
        self._left = length
        f.seek(offset)

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        size = self._left if size is None or size < 0 else min(size, self._left)
        data = self._f.read(size)
        self._left -= len(data)
        return data


# Errors after which the request may or may not have reached the server: retry (POSTs are
# idempotent by key, PATCH by offset). An SSL error is a configuration problem, not a hiccup.
def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, requests.exceptions.SSLError):
        return False
    return isinstance(
        exc,
        requests.ConnectionError
        | requests.Timeout
        | requests.exceptions.ChunkedEncodingError
        | requests.exceptions.ContentDecodingError,
    )


# --- The client -----------------------------------------------------------------------------


class ProvingGroundClient:
    """A robot's connection to Proving Ground, authenticated by its API key.

    ``base_url`` is the server (``http://127.0.0.1:8000``) or its API root
    (``.../api/v1``). ``timeout_s`` bounds connecting and each wait for an answer, in
    seconds. ``retry_for_s`` is how long one request keeps being tried again after transient
    failures (counted from its first try); during an upload, how long chunk attempts may go
    on failing without the server's offset moving. It is time rather than a count so that it
    outlasts an outage of known length (a 30 s database restart) whatever the waits were.
    ``retries``, when given, also caps the number of retries (0: never retry). Waits between
    tries start at ``backoff_base_s`` and double up to ``backoff_max_s``, with jitter; a
    server's ``Retry-After`` is honoured up to ``retry_after_max_s``; the last wait is cut
    short to end with the budget. ``chunk_bytes`` is the upload
    chunk size (at most 16 MiB). ``session`` is an optional `requests.Session` to reuse
    (proxies, certificates); the key is sent per request, never stored on it.

    Not thread-safe: give each thread its own client.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float = 30.0,
        retry_for_s: float = 120.0,
        retries: int | None = None,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        session: requests.Session | None = None,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        retry_after_max_s: float = 300.0,
    ):
        if not 1 <= chunk_bytes <= MAX_CHUNK_BYTES:
            raise ValueError(f"chunk_bytes must be between 1 and {MAX_CHUNK_BYTES}")
        if retries is not None and retries < 0:
            raise ValueError("retries must be >= 0")
        if retry_for_s < 0:
            raise ValueError("retry_for_s must be >= 0")
        root = base_url.rstrip("/")
        if not root.endswith("/api/v1"):
            root += "/api/v1"
        self.api_root = root + "/"
        self.timeout_s = float(timeout_s)
        self.retry_for_s = float(retry_for_s)
        self.retries = None if retries is None else int(retries)
        self.chunk_bytes = int(chunk_bytes)
        self.backoff_base_s = float(backoff_base_s)
        self.backoff_max_s = float(backoff_max_s)
        self.retry_after_max_s = float(retry_after_max_s)
        self._http = session or requests.Session()
        self._headers = {
            "Authorization": f"Api-Key {api_key}",
            "User-Agent": f"proving-ground-client/{CLIENT_VERSION} "
            f"python-requests/{requests.__version__}",
            "Accept": "application/json",
        }
        self._rng = random.Random()
        self._me: dict[str, Any] | None = None
        self._compatible = False

    # -- plumbing ---------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return urljoin(self.api_root, path.lstrip("/"))

    def _backoff_s(self, attempt: int, retry_after_s: float | None = None) -> float:
        """Seconds to wait before try ``attempt + 1``: exponential, capped, with "equal
        jitter" (half fixed, half random, so waits never collapse to zero), and never less
        than the server's Retry-After (itself capped, so a bad header cannot park a robot)."""
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2**attempt)
        wait = ceiling / 2 + self._rng.uniform(0, ceiling / 2)
        if retry_after_s is not None:
            wait = max(wait, min(retry_after_s, self.retry_after_max_s))
        return wait

    def _retry_or_give_up(
        self, attempt: int, since: float, why: str, retry_after_s: float | None = None
    ) -> bool:
        """After failed try ``attempt`` (0 for the first) of something failing since
        ``since`` (`time.monotonic`): wait and return True to try again, or return False
        when the budget (``retry_for_s``, and ``retries`` if set) is spent."""
        if self.retries is not None and attempt >= self.retries:
            return False
        left_s = self.retry_for_s - (time.monotonic() - since)
        if left_s <= 0:
            return False
        wait = min(self._backoff_s(attempt, retry_after_s), left_s)
        log.info("%s; retrying in %.1f s (%.0f s of retrying left)", why, wait, left_s)
        time.sleep(wait)
        return True

    @staticmethod
    def _retryable(response: requests.Response) -> bool:
        if response.status_code in RETRYABLE_STATUSES:
            return True
        if response.status_code == 409:
            # The first attempt under this Idempotency-Key is still running on the server:
            # asking again shortly gets its answer. Other 409s are real conflicts.
            try:
                return response.json().get("error") == "idempotency_key_in_flight"
            except (ValueError, AttributeError):
                return False
        return False

    def _request(
        self,
        method: str,
        path_or_url: str,
        *,
        json_body: Any = _NO_BODY,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> requests.Response:
        """Send one logical request, retrying transient failures; return the 2xx/3xx answer
        or raise `ProvingGroundError`. Every POST gets an Idempotency-Key (the same for all
        its tries), which is what makes retrying a POST safe."""
        url = path_or_url if "://" in path_or_url else self._url(path_or_url)
        all_headers = {**self._headers, **(headers or {})}
        if method == "POST":
            all_headers["Idempotency-Key"] = idempotency_key or str(uuid.uuid4())
        kwargs: dict[str, Any] = {"params": params, "headers": all_headers}
        if json_body is not _NO_BODY:
            kwargs["json"] = json_body
        label = f"{method} {url}"
        attempt = 0
        since = time.monotonic()
        while True:
            try:
                response = self._http.request(method, url, timeout=self.timeout_s, **kwargs)
            except requests.RequestException as exc:
                if not _is_transient(exc):
                    raise ProvingGroundError(
                        str(exc), error="request_failed", request=label
                    ) from exc
                if not self._retry_or_give_up(attempt, since, f"{label}: {type(exc).__name__}"):
                    raise ProvingGroundError(
                        f"no answer after {attempt + 1} tries in "
                        f"{time.monotonic() - since:.0f} s: {exc}",
                        error="unreachable",
                        request=label,
                    ) from exc
                attempt += 1
                continue
            if response.status_code < 400:
                return response
            if self._retryable(response) and self._retry_or_give_up(
                attempt, since, f"{label}: {response.status_code}", _retry_after_s(response)
            ):
                attempt += 1
                continue
            raise ProvingGroundError.from_response(response)

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        return response.json() if response.content else None

    # -- handshake --------------------------------------------------------------------------

    def version(self) -> dict[str, Any]:
        """``{"server_version", "api_version", "min_client_version"}`` (no key needed)."""
        return self._json("GET", "version")

    def check_version(self) -> dict[str, Any]:
        """Compare this client with the server; return the server's version answer.

        Raises `ClientTooOldError` when ``CLIENT_VERSION`` is below the server's
        ``min_client_version``, and `ProvingGroundError` (``api_version_unsupported``) when
        the server speaks another API major version. Called once, automatically, before the
        first session is opened."""
        answer = self.version()
        minimum = str(answer.get("min_client_version", "0"))
        if version_tuple(CLIENT_VERSION) < version_tuple(minimum):
            raise ClientTooOldError(
                f"this client is {CLIENT_VERSION} but the server at {self.api_root} needs at "
                f"least {minimum}; upgrade sdk/proving_ground/client.py",
                error="client_too_old",
            )
        if str(answer.get("api_version", API_VERSION)).split(".")[0] != API_VERSION:
            raise ProvingGroundError(
                f"the server speaks API {answer.get('api_version')}, this client {API_VERSION}",
                error="api_version_unsupported",
            )
        self._compatible = True
        return answer

    def _ensure_compatible(self) -> None:
        if not self._compatible:
            self.check_version()

    def whoami(self) -> dict[str, Any]:
        """Who the key belongs to: ``{"kind": "robot", "id", "name", "robot", "teams", ...}``.
        Cached after the first call (the key cannot change identity)."""
        if self._me is None:
            self._me = self._json("GET", "whoami")
        return self._me

    @property
    def robot_id(self) -> str:
        """This robot's id. Raises `ProvingGroundError` (``not_a_robot``) for a person's
        credentials."""
        me = self.whoami()
        if me.get("kind") != "robot":
            raise ProvingGroundError("these credentials are not a robot's", error="not_a_robot")
        return str(me["id"])

    def heartbeat(self, software_version: str | None = None) -> dict[str, Any]:
        """Tell the server this robot is alive (records ``last_seen_at``, and the software
        version when given; a change of version is audited). Returns the robot."""
        body = {} if software_version is None else {"software_version": software_version}
        return self._json("POST", f"robots/{self.robot_id}/heartbeat", json_body=body)

    # -- catalog ----------------------------------------------------------------------------

    def embodiment(self) -> dict[str, Any]:
        """This robot's embodiment, whose ``spec`` (joints, observation and action keys,
        cameras, ``control_hz``) is what `EpisodeWriter` records against."""
        name = self.whoami()["robot"]["embodiment"]
        url: str | None = "embodiments/"
        params: dict[str, Any] | None = {"limit": 1000}
        while url:
            page = self._json("GET", url, params=params)
            for embodiment in page["results"]:
                if embodiment["name"] == name:
                    return embodiment
            url, params = page.get("next"), None
        raise ProvingGroundError(f"embodiment {name!r} is not visible", error="not_found")

    def tasks(self, *, team: str | None = None) -> list[dict[str, Any]]:
        """Tasks this robot may see (each with ``latest_version``), every page."""
        params: dict[str, Any] = {"limit": 1000}
        if team is not None:
            params["team"] = team
        tasks: list[dict[str, Any]] = []
        url: str | None = "tasks/"
        while url:
            page = self._json("GET", url, params=params)
            tasks.extend(page["results"])
            url, params = page.get("next"), None  # `next` carries the query already
        return tasks

    # -- sessions ---------------------------------------------------------------------------

    def open_session(
        self,
        task_version: str | uuid.UUID,
        operator: str,
        kind: str = "teleop",
        protocol: str | uuid.UUID | None = None,
    ) -> dict[str, Any]:
        """Open a session on this robot for a task version (id) with an operator (pseudonym
        code such as ``"OP-DEMO1"``); ``kind`` is ``"teleop"`` or ``"evaluation"``. Checks
        version compatibility first (once per client). Returns the session."""
        self._ensure_compatible()
        body = {
            "robot": self.robot_id,
            "task_version": str(task_version),
            "operator": operator,
            "kind": kind,
            "protocol": None if protocol is None else str(protocol),
        }
        return self._json("POST", "sessions/", json_body=body)

    def close_session(self, session_id: str | uuid.UUID) -> dict[str, Any]:
        """Close a session (no new episodes; uploads under way may finish). Idempotent."""
        return self._json("POST", f"sessions/{session_id}/close", json_body={})

    def next_condition(self, session_id: str | uuid.UUID) -> dict[str, Any] | None:
        """The condition to set up next (``factor``, ``level``, ``reset_instructions``, ...),
        or None when the session has no protocol or every target is met."""
        body = self._json("GET", f"sessions/{session_id}/next-condition")
        if isinstance(body, dict) and set(body) == {"condition"}:
            body = body["condition"]
        return body or None

    # -- episodes ---------------------------------------------------------------------------

    def create_episode(
        self,
        path: str | os.PathLike[str],
        session_id: str | uuid.UUID,
        condition: str | uuid.UUID | None = None,
        episode_id: str | uuid.UUID | None = None,
    ) -> dict[str, Any]:
        """Register the file at ``path`` as an episode of a session; returns the episode with
        its ``upload_url``.

        The SHA-256 and size are computed by streaming the file. The episode id is
        ``episode_id`` if given, else the file's own ``episode_id`` attribute (pg-episode
        files carry one, so the file and the row agree), else a new uuid4 (then keep it: a
        later call without it would register the file twice). Creating the same id with the
        same content again is harmless (the server answers the existing episode)."""
        sha256, size = file_digest(path)
        if episode_id is None:
            episode_id = read_episode_id(path) or uuid.uuid4()
        body = {
            "id": str(episode_id),
            "session": str(session_id),
            "condition": None if condition is None else str(condition),
            "size_bytes": size,
            "sha256": sha256,
        }
        return self._json("POST", "episodes/", json_body=body)

    def episode(self, episode_id: str | uuid.UUID) -> dict[str, Any]:
        """An episode: ``state`` (created, uploading, processing, ready, rejected), measured
        stats, quality flags, check results and the validation report."""
        return self._json("GET", f"episodes/{episode_id}/")

    def wait_until_processed(
        self, episode_id: str | uuid.UUID, timeout_s: float = 600.0, *, poll_s: float = 1.0
    ) -> dict[str, Any]:
        """Poll the episode every ``poll_s`` seconds until it is ``ready`` or ``rejected``
        and return it (a rejection is an answer, not an exception: read
        ``rejection_code`` and ``validation_report``). Raises `ProcessingTimeout` after
        ``timeout_s`` seconds."""
        deadline = time.monotonic() + timeout_s
        while True:
            episode = self.episode(episode_id)
            if episode["state"] in FINAL_STATES:
                return episode
            if time.monotonic() >= deadline:
                raise ProcessingTimeout(
                    f"episode {episode_id} still {episode['state']} after {timeout_s} s",
                    state=episode["state"],
                )
            time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))

    # -- uploads (tus 1.0.0) ----------------------------------------------------------------

    def _tus_headers(self, **extra: str) -> dict[str, str]:
        return {"Tus-Resumable": TUS_VERSION, **extra}

    def upload_offset(self, upload_url: str) -> tuple[int, int]:
        """(bytes the server holds, declared length) of an upload: tus ``HEAD``."""
        response = self._request("HEAD", upload_url, headers=self._tus_headers())
        try:
            return int(response.headers["Upload-Offset"]), int(response.headers["Upload-Length"])
        except (KeyError, ValueError) as exc:
            raise ProvingGroundError(
                "HEAD answered without a valid Upload-Offset / Upload-Length",
                status=response.status_code,
                error="bad_tus_answer",
                request=f"HEAD {upload_url}",
            ) from exc

    def upload(
        self,
        path: str | os.PathLike[str],
        episode: Mapping[str, Any],
        *,
        on_progress: ProgressCallback | None = None,
    ) -> dict[str, Any]:
        """Upload the file of an episode created with `create_episode` (tus 1.0.0), resuming
        wherever the server's offset is: call it again after any failure, even from a new
        process. Returns the episode afterwards (state ``processing``, or ``rejected`` if the
        whole file's checksum did not match).

        The file is streamed chunk by chunk (``chunk_bytes``), each with its SHA-256. After
        a dropped connection, a 409 or a 429/5xx the server's offset is asked again (HEAD)
        and the upload goes on from there; a 460 (chunk corrupted on the way) resends the
        chunk. ``on_progress(sent_bytes, total_bytes)`` is called with the server's offset
        when the upload starts or resumes and after every chunk. Raises
        `ProvingGroundError` on a refusal (other 4xx), or when chunk attempts have failed for
        ``retry_for_s`` (or ``retries`` of them, if set) without the offset moving."""
        upload_url = episode.get("upload_url")
        if not upload_url and episode.get("id"):
            # The server gives no upload once it holds the file: nothing left to send.
            current = self.episode(episode["id"])
            if current["state"] in UPLOADED_STATES:
                return current
        if not upload_url:
            raise ProvingGroundError(
                f"episode {episode.get('id')} has no upload_url; create it first",
                error="no_upload_url",
            )
        upload_url = upload_url if "://" in upload_url else self._url(upload_url)
        total = os.path.getsize(path)
        declared = episode.get("declared_size_bytes")
        if declared is not None and int(declared) != total:
            raise ProvingGroundError(
                f"{path} is {total} bytes but the episode was declared with {declared}",
                error="file_changed",
            )

        def progress(sent: int) -> None:
            if on_progress is not None:
                on_progress(sent, total)

        def server_offset() -> int:
            offset, length = self.upload_offset(upload_url)
            if length != total:
                raise ProvingGroundError(
                    f"the server expects {length} bytes, the file has {total}",
                    error="file_changed",
                )
            return offset

        with open(path, "rb") as f:
            offset = server_offset()
            best = offset  # the furthest the server has been seen to hold
            stalls = 0  # failed attempts since the offset last moved forward
            stalled_since = time.monotonic()
            progress(offset)
            while offset < total:
                length = min(self.chunk_bytes, total - offset)
                digest = _range_digest(f, offset, length)
                label = f"PATCH {upload_url} @{offset}+{length}"
                try:
                    response = self._patch_chunk(upload_url, f, offset, length, digest)
                except requests.RequestException as exc:
                    if not _is_transient(exc):
                        raise ProvingGroundError(
                            str(exc), error="request_failed", request=label
                        ) from exc
                    # Some of the chunk may have landed (the server keeps what arrived when
                    # it can): only the server knows the offset now.
                    stalls = self._upload_stall(stalls, stalled_since, label, type(exc).__name__)
                    offset = server_offset()
                else:
                    offset, stalls = self._after_chunk(
                        response, offset, label, stalls, stalled_since, server_offset
                    )
                if offset > best:
                    best, stalls, stalled_since = offset, 0, time.monotonic()
                    progress(offset)
        return self.episode(episode["id"])

    def _after_chunk(
        self,
        response: requests.Response,
        offset: int,
        label: str,
        stalls: int,
        stalled_since: float,
        server_offset: Callable[[], int],
    ) -> tuple[int, int]:
        """Act on a PATCH answer: (where to go on from, failed attempts in a row)."""
        if response.status_code == 204:
            try:
                return int(response.headers["Upload-Offset"]), stalls
            except (KeyError, ValueError):
                # Accepted, but where are we? Only the server knows: ask it.
                return server_offset(), stalls
        if response.status_code == 460:
            # Corrupted on the way; the server kept none of it. Same chunk again.
            log.warning("%s: checksum mismatch at the server; resending", label)
            return offset, self._upload_stall(stalls, stalled_since, label, "460", pause=False)
        if response.status_code == 409:
            error = ProvingGroundError.from_response(response)
            # upload_offset_mismatch: our offset is stale (a lost answer, another process);
            # upload_busy: the server is still taking an earlier chunk of ours. Either way
            # the server's offset decides; wait first only when it is busy.
            log.info("%s: %s; asking the server's offset", label, error.error)
            stalls = self._upload_stall(
                stalls,
                stalled_since,
                label,
                error.error,
                pause=error.error != "upload_offset_mismatch",
            )
            return server_offset(), stalls
        if response.status_code in RETRYABLE_STATUSES:
            stalls = self._upload_stall(
                stalls, stalled_since, label, str(response.status_code), _retry_after_s(response)
            )
            return server_offset(), stalls
        raise ProvingGroundError.from_response(response)

    def _patch_chunk(
        self, upload_url: str, f: BinaryIO, offset: int, length: int, digest: bytes
    ) -> requests.Response:
        """One tus PATCH of ``length`` bytes from ``offset``, streamed from ``f``."""
        return self._http.request(
            "PATCH",
            upload_url,
            data=_FileSlice(f, offset, length),
            headers={
                **self._headers,
                **self._tus_headers(),
                "Content-Type": OFFSET_CONTENT_TYPE,
                "Content-Length": str(length),
                "Upload-Offset": str(offset),
                "Upload-Checksum": "sha256 " + base64.b64encode(digest).decode(),
            },
            timeout=self.timeout_s,
        )

    def _upload_stall(
        self,
        stalls: int,
        stalled_since: float,
        label: str,
        why: str,
        retry_after_s: float | None = None,
        *,
        pause: bool = True,
    ) -> int:
        """Count one failed chunk attempt and wait before the next; give up once attempts
        have failed for ``retry_for_s`` (or ``retries`` of them) without progress. An
        attempt that needs no wait (a 460, a stale offset) goes again at once the first
        times, then it too waits: a failure that repeats is not a hiccup."""
        spent = (self.retries is not None and stalls >= self.retries) or (
            time.monotonic() - stalled_since >= self.retry_for_s
        )
        if spent or (
            (pause or stalls >= 2)
            and not self._retry_or_give_up(stalls, stalled_since, f"{label}: {why}", retry_after_s)
        ):
            raise ProvingGroundError(
                f"no progress after {stalls + 1} attempts in "
                f"{time.monotonic() - stalled_since:.0f} s (last: {why})",
                error="upload_stalled",
                request=label,
            )
        return stalls + 1

    def upload_episode(
        self,
        path: str | os.PathLike[str],
        session_id: str | uuid.UUID,
        *,
        condition: str | uuid.UUID | None = None,
        episode_id: str | uuid.UUID | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> dict[str, Any]:
        """`create_episode` then `upload`: the usual one-liner. Returns the episode."""
        episode = self.create_episode(path, session_id, condition=condition, episode_id=episode_id)
        return self.upload(path, episode, on_progress=on_progress)


# --- The outbox -----------------------------------------------------------------------------


@dataclass(frozen=True)
class OutboxRecording:
    """Where to write one episode: pass ``path`` and ``episode_id`` to `EpisodeWriter`."""

    path: Path
    episode_id: str


@dataclass
class FlushResult:
    """What `Outbox.flush` did with one file: ``state`` is the episode's state on the
    server afterwards (None if it never got there) and ``error`` why not, if it failed."""

    path: Path
    episode_id: str
    state: str | None = None
    error: ProvingGroundError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Outbox:
    """A directory of recordings waiting to be uploaded, safe across crashes and restarts.

    Layout (all bookkeeping is on disk; nothing lives only in memory)::

        <directory>/<episode id>.hdf5            finished, not uploaded yet ("pending")
        <directory>/<episode id>.hdf5.partial    being written, or left by a crash
        <directory>/.state/<name>.json           episode id, condition, session once created
        <directory>/.state/<name>.lock           held (flock) while a recording is written
        <directory>/sent/<name>                  uploaded; the server confirmed it whole
        <directory>/rejected/<name>              uploaded, but the server refused it

    Record with `recording` (it picks the episode id and holds a lock while the writer runs,
    so a live recording is never mistaken for a crashed one). `pending` lists the files to
    upload, first recovering ``.partial`` files whose writer is gone: they are renamed to their
    final name and go up as truncated episodes. `flush` uploads each and moves it to ``sent/``
    only once the server confirms it holds the whole file (state processing, ready or
    rejected); uploaded files are kept, not deleted, until the robot's owner prunes ``sent/``
    (`flush` with ``keep_sent=False`` deletes them instead). A file the server rejected goes
    to ``rejected/`` with its report in the state file, so nothing is silently lost.

    After a crash, the robot just calls ``outbox.flush(client, session_id)`` again: files
    half-uploaded resume where the server stopped.
    """

    STATE_DIR = ".state"
    SENT_DIR = "sent"
    REJECTED_DIR = "rejected"
    PARTIAL_SUFFIX = ".partial"

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        suffix: str = ".hdf5",
        stale_after_s: float = 10.0,
    ):
        """``suffix`` names finished recordings. ``stale_after_s``: a ``.partial`` without
        an outbox lock (written by a writer not started through `recording`) counts as
        abandoned once unmodified for this many seconds; the writer flushes about every
        second while it records."""
        self.directory = Path(directory)
        self.suffix = suffix
        self.stale_after_s = float(stale_after_s)
        for sub in (self.STATE_DIR, self.SENT_DIR, self.REJECTED_DIR):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)

    # -- bookkeeping files ------------------------------------------------------------------

    def _state_path(self, name: str) -> Path:
        return self.directory / self.STATE_DIR / f"{name}.json"

    def _lock_path(self, name: str) -> Path:
        return self.directory / self.STATE_DIR / f"{name}.lock"

    def state(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """The bookkeeping of one recording (by its final name), ``{}`` if none."""
        try:
            return json.loads(self._state_path(Path(path).name).read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def _save_state(self, name: str, state: Mapping[str, Any]) -> None:
        # Temp file, fsync, rename: a crash leaves the old state or the new, never half.
        final = self._state_path(name)
        tmp = final.with_name(final.name + ".tmp")
        with open(tmp, "w") as f:
            json.dump(state, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)

    # -- recording --------------------------------------------------------------------------

    @contextlib.contextmanager
    def recording(
        self, *, episode_id: str | uuid.UUID | None = None, condition: str | uuid.UUID | None = None
    ) -> Iterator[OutboxRecording]:
        """Reserve a place for one episode and hold its lock while the block runs::

            with outbox.recording(condition=cond_id) as rec:
                with EpisodeWriter(rec.path, spec, episode_id=rec.episode_id, ...) as w:
                    ...

        The lock (an flock, released by the kernel if the process dies) tells `pending`
        that the ``.partial`` is alive; the state file remembers the id and condition across
        a restart."""
        episode_id = str(uuid.UUID(str(episode_id))) if episode_id else str(uuid.uuid4())
        name = f"{episode_id}{self.suffix}"
        path = self.directory / name
        if path.exists() or self._state_path(name).exists():
            raise FileExistsError(f"{path} is already in the outbox")
        state = {
            "episode_id": episode_id,
            "condition": None if condition is None else str(condition),
            "recorded_at": datetime.now(UTC).isoformat(),
        }
        with open(self._lock_path(name), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._save_state(name, state)
            try:
                yield OutboxRecording(path=path, episode_id=episode_id)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _writer_alive(self, partial: Path, final_name: str) -> bool:
        lock_path = self._lock_path(final_name)
        if lock_path.exists():
            with open(lock_path, "a") as lock:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return True
                fcntl.flock(lock, fcntl.LOCK_UN)
                return False
        # Not started through `recording`: judge by age (the writer flushes every second).
        try:
            return time.time() - partial.stat().st_mtime < self.stale_after_s
        except FileNotFoundError:
            return True  # renamed by its writer just now

    def recover(self) -> list[Path]:
        """Rename each ``.partial`` whose writer is gone (killed, crashed) to its final name,
        so it uploads as a truncated episode. Returns the recovered paths. A partial whose
        writer still runs is left alone."""
        recovered = []
        for partial in sorted(self.directory.glob(f"*{self.suffix}{self.PARTIAL_SUFFIX}")):
            final = partial.with_name(partial.name[: -len(self.PARTIAL_SUFFIX)])
            if self._writer_alive(partial, final.name):
                continue
            if final.exists():
                log.warning("%s and %s both exist; leaving the partial alone", final, partial)
                continue
            os.replace(partial, final)
            fsync_directory_if_supported(self.directory)
            log.warning("recovered %s from a crashed recording (truncated episode)", final)
            recovered.append(final)
        return recovered

    def pending(self, *, recover: bool = True) -> list[Path]:
        """Recordings not uploaded yet, oldest first; with ``recover`` (the default), first
        recover the ``.partial`` files left by crashed writers (see `recover`)."""
        if recover:
            self.recover()
        files = [p for p in self.directory.glob(f"*{self.suffix}") if p.is_file()]
        return sorted(files, key=lambda p: (p.stat().st_mtime, p.name))

    def sent(self) -> list[Path]:
        """Files uploaded and confirmed by the server, oldest first."""
        files = [p for p in (self.directory / self.SENT_DIR).iterdir() if p.is_file()]
        return sorted(files, key=lambda p: (p.stat().st_mtime, p.name))

    # -- uploading --------------------------------------------------------------------------

    def flush(
        self,
        client: ProvingGroundClient,
        session_id: str | uuid.UUID,
        *,
        condition: str | uuid.UUID | None = None,
        keep_sent: bool = True,
        on_progress: Callable[[Path, int, int], None] | None = None,
    ) -> list[FlushResult]:
        """Upload every pending file (recovering crashed partials first) and return what
        happened to each. A file goes to ``sent/`` (or is deleted, with ``keep_sent=False``)
        only after the server says it holds the whole file; to ``rejected/`` if the server
        refused it. A failure (network down, session closed...) is reported in its
        `FlushResult` and the file stays pending for the next flush; the other files are
        still tried.

        A file registered before a crash stays in the session it was registered in; a new
        one joins ``session_id``, with the condition given to `recording`, else
        ``condition``. ``on_progress(path, sent_bytes, total_bytes)`` follows each upload."""
        results = []
        for path in self.pending():
            name = path.name
            state = self.state(path)
            episode_id = state.get("episode_id") or read_episode_id(path) or str(uuid.uuid4())
            if state.get("episode_id") != episode_id:
                # Persist the id before anything reaches the server, so a crash right after
                # cannot register the same file twice under two ids.
                state = {**state, "episode_id": episode_id}
                self._save_state(name, state)
            result = FlushResult(path=path, episode_id=episode_id)
            results.append(result)
            try:
                if state.get("session_id"):
                    target_session = state["session_id"]
                else:
                    target_session = str(session_id)
                chosen_condition = state.get("condition") or (
                    None if condition is None else str(condition)
                )
                episode = client.create_episode(
                    path, target_session, condition=chosen_condition, episode_id=episode_id
                )
                if not state.get("session_id"):
                    state = {**state, "session_id": target_session}
                    self._save_state(name, state)
                progress = None
                if on_progress is not None:

                    def progress(sent: int, total: int, _path: Path = path) -> None:
                        on_progress(_path, sent, total)

                detail = client.upload(path, episode, on_progress=progress)
            except ProvingGroundError as exc:
                log.warning("outbox: %s not uploaded: %s", name, exc)
                result.error = exc
                continue
            result.state = detail["state"]
            if detail["state"] not in UPLOADED_STATES:
                result.error = ProvingGroundError(
                    f"the server reports {detail['state']} after the upload",
                    error="not_confirmed",
                )
                continue
            state = {**state, "server_state": detail["state"]}
            if detail["state"] == "rejected":
                state["rejection_code"] = detail.get("rejection_code")
                state["validation_report"] = detail.get("validation_report")
                self._save_state(name, state)
                os.replace(path, self.directory / self.REJECTED_DIR / name)
            elif keep_sent:
                self._save_state(name, state)
                os.replace(path, self.directory / self.SENT_DIR / name)
            else:
                self._save_state(name, state)
                path.unlink()
            fsync_directory_if_supported(self.directory)
            self._lock_path(name).unlink(missing_ok=True)
        return results


# --- Progress on a terminal -----------------------------------------------------------------


class TerminalProgress:
    """An ``on_progress`` callback drawing a one-line bar on stderr when it is a terminal,
    and printing nothing otherwise (logs and cron mails stay clean)."""

    def __init__(self, label: str = "upload", stream: Any = None):
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())

    def __call__(self, sent_bytes: int, total_bytes: int) -> None:
        if not self.enabled:
            return
        fraction = sent_bytes / total_bytes if total_bytes else 1.0
        bar = "#" * int(fraction * 30)
        end = "\n" if sent_bytes >= total_bytes else ""
        self.stream.write(
            f"\r{self.label} [{bar:<30}] {sent_bytes / MiB:8.1f}/{total_bytes / MiB:.1f} MiB"
            f" {fraction:4.0%}{end}"
        )
        self.stream.flush()


# --- Command line ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m proving_ground.client", description="Proving Ground robot client."
    )
    parser.add_argument("--url", default=os.environ.get("PG_URL", "http://127.0.0.1:8000"))
    parser.add_argument(
        "--key", default=os.environ.get("PG_API_KEY"), help="robot API key (or PG_API_KEY)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("version", help="check this client against the server")
    pending = commands.add_parser("pending", help="list what an outbox has not uploaded yet")
    pending.add_argument("outbox")
    flush = commands.add_parser("flush", help="upload an outbox's pending recordings")
    flush.add_argument("outbox")
    flush.add_argument("--session", required=True)
    upload = commands.add_parser("upload", help="create and upload one episode file")
    upload.add_argument("file")
    upload.add_argument("--session", required=True)
    upload.add_argument("--condition")
    upload.add_argument("--wait", action="store_true", help="wait until processed")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")

    if args.command == "pending":
        for path in Outbox(args.outbox).pending():
            print(path)
        return 0
    if not args.key:
        parser.error("--key (or PG_API_KEY) is required")
    client = ProvingGroundClient(args.url, args.key)
    try:
        if args.command == "version":
            print(json.dumps(client.check_version(), indent=1))
        elif args.command == "flush":
            failed = 0
            for result in Outbox(args.outbox).flush(
                client,
                args.session,
                on_progress=lambda path, sent, total: TerminalProgress(path.name)(sent, total),
            ):
                failed += not result.ok
                print(f"{result.path.name}\t{result.state or '-'}\t{result.error or ''}")
            return 1 if failed else 0
        elif args.command == "upload":
            episode = client.upload_episode(
                args.file,
                args.session,
                condition=args.condition,
                on_progress=TerminalProgress(Path(args.file).name),
            )
            if args.wait:
                episode = client.wait_until_processed(episode["id"])
            print(json.dumps(episode, indent=1))
    except (ProvingGroundError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
