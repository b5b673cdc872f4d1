"""`ProvingGroundClient`: a robot's connection to Proving Ground (see the package docstring)."""

from __future__ import annotations

import base64
import logging
import os
import random
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO
from urllib.parse import quote, urljoin

import requests

from proving_ground import __version__
from proving_ground.client.errors import ClientTooOldError, ProcessingTimeout, ProvingGroundError
from proving_ground.client.transfer import (
    DEFAULT_CHUNK_BYTES,
    FINAL_STATES,
    MAX_CHUNK_BYTES,
    OFFSET_CONTENT_TYPE,
    RETRYABLE_STATUSES,
    TUS_VERSION,
    UPLOADED_STATES,
    FileSlice,
    ProgressCallback,
    is_transient,
    range_digest,
    read_episode_id,
    retry_after_s,
    version_tuple,
)
from proving_ground.files import file_digest

log = logging.getLogger(__name__)

#: This client's version; the server's ``min_client_version`` must not be above it.
CLIENT_VERSION = __version__
#: The API major version this client speaks (``api_version`` from ``/api/v1/version``).
API_VERSION = "1"
_NO_BODY = object()

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
                if not is_transient(exc):
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
                attempt, since, f"{label}: {response.status_code}", retry_after_s(response)
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
        cameras, ``control_hz``, and the embodiment's ``name``) is what `EpisodeWriter`
        records against: the file names its embodiment, and the server refuses a file
        recorded for another."""
        name = self.whoami()["robot"]["embodiment"]
        url: str | None = "embodiments/"
        params: dict[str, Any] | None = {"limit": 1000}
        while url:
            page = self._json("GET", url, params=params)
            for embodiment in page["results"]:
                if embodiment["name"] == name:
                    return {**embodiment, "spec": {**embodiment["spec"], "name": name}}
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

    def session_by_code(self, code: str) -> dict[str, Any]:
        """The open session with this short code (as its console shows it, such as
        ``"K7M3QX"``; any case), to record into it instead of opening one. Raises
        `ProvingGroundError`: ``not_found`` (no such code in this robot's team),
        ``session_closed``, ``permission_denied`` (the session records on another robot)."""
        self._ensure_compatible()
        return self._json("GET", f"sessions/by-code/{quote(code.strip(), safe='')}")

    def session_id(self, session: str | uuid.UUID) -> str:
        """The id of a session given by id or by short code (`session_by_code`)."""
        try:
            return str(uuid.UUID(str(session)))
        except ValueError:
            return str(self.session_by_code(str(session))["id"])

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

    # -- evaluation trials ------------------------------------------------------------------

    def next_trial(self, campaign_id: str | uuid.UUID) -> dict[str, Any] | None:
        """The trial this robot holds in the campaign, or its next one (``load``: what to
        run, ``task_version``, ``condition``, ``alias``, ``report_url``), or None when none
        is left. Asking again returns the held trial (docs/evaluation.md)."""
        body = self._json("POST", f"campaigns/{campaign_id}/next-trial", json_body={})
        return (body or {}).get("trial")

    def report_trial(self, trial_id: str | uuid.UUID, result: Mapping[str, Any]) -> dict:
        """Report a held trial's result once (``outcome``, ``stages_reached``,
        ``failure_codes``, ``episode``, ``notes``...). The Idempotency-Key is derived from the
        trial, so a retry, even from a restarted process, replays the stored answer instead
        of reporting twice."""
        return self._json(
            "POST",
            f"trials/{trial_id}/result",
            json_body=dict(result),
            idempotency_key=f"result-{trial_id}",
        )

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
                digest = range_digest(f, offset, length)
                label = f"PATCH {upload_url} @{offset}+{length}"
                try:
                    response = self._patch_chunk(upload_url, f, offset, length, digest)
                except requests.RequestException as exc:
                    if not is_transient(exc):
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
                stalls, stalled_since, label, str(response.status_code), retry_after_s(response)
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
            data=FileSlice(f, offset, length),
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
