"""`Outbox`: a crash-safe directory of recordings waiting to be uploaded."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from proving_ground.client.api import ProvingGroundClient
from proving_ground.client.errors import ProvingGroundError
from proving_ground.client.transfer import UPLOADED_STATES, read_episode_id
from proving_ground.files import fsync_directory_if_supported

log = logging.getLogger(__name__)

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
        <directory>/.state/<name>.json           episode id, session, condition
        <directory>/.state/<name>.lock           held (flock) while a recording is written
        <directory>/sent/<name>                  uploaded; the server confirmed it whole
        <directory>/rejected/<name>              uploaded, but the server refused the file
        <directory>/refused/<name>               never uploaded: the server refused to
                                                 register it (session closed, condition
                                                 not in the protocol...); reason in state

    Record with `recording` (it picks the episode id, binds the recording to the session and
    condition it is made for, and holds a lock while the writer runs, so a live recording is
    never mistaken for a crashed one). A recording goes up into its own session only, never
    into the session a later `flush` is given. `pending` lists the files to
    upload, first recovering ``.partial`` files whose writer is gone: they are renamed to their
    final name and go up as truncated episodes. `flush` uploads each and moves it to ``sent/``
    only once the server confirms it holds the whole file (state processing, ready or
    rejected); uploaded files are kept, not deleted, until the robot's owner prunes ``sent/``
    (`flush` with ``keep_sent=False`` deletes them instead). A file the server rejected goes
    to ``rejected/`` with its report in the state file, so nothing is silently lost.

    After a crash, the robot just calls ``outbox.flush(client)`` again: files half-uploaded
    resume where the server stopped.
    """

    STATE_DIR = ".state"
    SENT_DIR = "sent"
    REJECTED_DIR = "rejected"
    REFUSED_DIR = "refused"
    #: Answers to registering a recording that no retry can change: the recording goes to
    #: ``refused/`` instead of being tried again at every flush. (401 is the key, not the
    #: recording; 429 and 5xx are "not now".)
    PERMANENT_REFUSALS = frozenset({400, 403, 404, 409, 410, 422})
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
        for sub in (self.STATE_DIR, self.SENT_DIR, self.REJECTED_DIR, self.REFUSED_DIR):
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
        self,
        *,
        session_id: str | uuid.UUID | None = None,
        episode_id: str | uuid.UUID | None = None,
        condition: str | uuid.UUID | None = None,
    ) -> Iterator[OutboxRecording]:
        """Reserve a place for one episode of session ``session_id`` and hold its lock while
        the block runs::

            with outbox.recording(session_id=session["id"], condition=cond_id) as rec:
                with EpisodeWriter(rec.path, spec, episode_id=rec.episode_id, ...) as w:
                    ...

        The recording is bound to that session and condition: `flush` uploads it into that
        session and no other. (Without ``session_id`` it is bound by the first `flush` given
        one.) The lock (an flock, released by the kernel if the process dies) tells `pending`
        that the ``.partial`` is alive; the state file remembers the id, session and
        condition across a restart."""
        episode_id = str(uuid.UUID(str(episode_id))) if episode_id else str(uuid.uuid4())
        name = f"{episode_id}{self.suffix}"
        path = self.directory / name
        if path.exists() or self._state_path(name).exists():
            raise FileExistsError(f"{path} is already in the outbox")
        state = {
            "episode_id": episode_id,
            "session_id": None if session_id is None else str(session_id),
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

    def _refuse(self, name: str, state: Mapping[str, Any], exc: ProvingGroundError) -> None:
        """Move a recording the server will never register to ``refused/``, with why."""
        log.warning("outbox: %s refused for good (%s); moved to %s/", name, exc, self.REFUSED_DIR)
        self._save_state(
            name,
            {**state, "refused": {"status": exc.status, "error": exc.error, "detail": exc.detail}},
        )
        os.replace(self.directory / name, self.directory / self.REFUSED_DIR / name)
        fsync_directory_if_supported(self.directory)
        self._lock_path(name).unlink(missing_ok=True)

    def refused(self) -> list[Path]:
        """Recordings the server refused to register, oldest first (reasons: `state`)."""
        files = [p for p in (self.directory / self.REFUSED_DIR).iterdir() if p.is_file()]
        return sorted(files, key=lambda p: (p.stat().st_mtime, p.name))

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
        session_id: str | uuid.UUID | None = None,
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

        Each recording goes into the session it is bound to (by `recording`, or by the
        flush that first registered it), never into another: ``session_id`` and
        ``condition`` bind only recordings that are not bound yet (written without
        `recording`, e.g. recovered from another program); an unbound recording waits for a
        flush that names a session. When the server refuses for good to register a
        recording (its session is closed, its condition is not in the protocol, ... see
        `PERMANENT_REFUSALS`) it moves to ``refused/`` with the reason in its state, and is
        not tried again. ``on_progress(path, sent_bytes, total_bytes)`` follows each
        upload."""
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
            if not state.get("session_id"):
                if session_id is None:
                    result.error = ProvingGroundError(
                        f"{name} is bound to no session; flush with a session to send it",
                        error="no_session",
                    )
                    continue
                # Bind before anything reaches the server: after a crash this file goes on
                # into this session, whatever session a later flush names.
                state = {
                    **state,
                    "session_id": str(session_id),
                    "condition": state.get("condition")
                    or (None if condition is None else str(condition)),
                }
                self._save_state(name, state)
            try:
                try:
                    episode = client.create_episode(
                        path,
                        state["session_id"],
                        condition=state.get("condition"),
                        episode_id=episode_id,
                    )
                except ProvingGroundError as exc:
                    if exc.status in self.PERMANENT_REFUSALS:
                        self._refuse(name, state, exc)
                        result.state = "refused"
                    raise
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
