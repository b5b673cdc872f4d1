"""`EpisodeWriter`: records one pg-episode/1 file, crash-safe (format in `episode.spec`).

Design choices. Figures marked (design.md) were measured before this module existed; the
others while writing it, on the same machine; bench/bench_hdf5_writer.py gives the end-to-end
one.

- **Cameras as one byte stream plus an (offset, length) table.** Frames arrive already
  encoded (JPEG, ~40 KB at 640x480). Each camera gets one growing ``uint8`` dataset holding
  the frames back to back, an ``int64`` ``(F, 2)`` index of (offset, length), and a
  ``float64`` timestamp per frame. Variable-length datasets reached 0.6-0.8 of a plain file
  write (design.md); this layout, written in whole chunks, keeps up with it (next point).
- **Direct chunk writes, no filters on camera streams.** JPEG does not compress further,
  so stream chunks are written with ``write_direct_chunk``: no chunk cache, no filter
  pipeline. Each flush writes the new whole 256 KiB chunks once, plus the partly filled last
  chunk zero-padded; the next flush rewrites that one chunk in place with more frames, so
  every frame added before a flush is on disk after it. Writing two camera streams alone,
  ordinary slice writes reached ~0.73 of ``numpy.tofile`` and direct chunks 0.95-0.98. End
  to end (bench/bench_hdf5_writer.py: joints, frame tables, close) the writer runs at ~0.7 of
  ``tofile``: fsync costs the same; the rest is per-flush HDF5 work on eight small datasets
  (~40 us each), the rewritten last chunk, and ~3 us of Python per `add_step`.
- **Buffered appends, flushed about once a second.** `add_step` / `add_frame` append to
  in-memory buffers; once `flush_interval_s` has passed (wall clock) the buffers go to
  chunked, resizable datasets in one resize and one write per dataset, then the file is
  flushed. A resize and write per frame reached only ~0.3 of plain write speed (design.md).
- **SWMR.** The file is created with ``libver="latest"``, every dataset is created up front
  and then ``swmr_mode`` is switched on. In SWMR mode HDF5 orders its metadata writes so the
  file on disk is consistent at every flush: a writer killed with SIGKILL (tested in
  ``tests/sdk/episode/test_episode.py``) leaves a file that opens with everything up to its last
  flush. Found here with HDF5 2.0: such a file is still marked "open for SWMR write", so
  ``h5py.File(path, "r")`` refuses it. ``h5py.File(path, "r", swmr=True)`` opens it, but
  that mode skips the end-of-file check and retries failing metadata checksums with back-off
  (a damaged file hung it for minutes), so `open_episode_file` instead presents the file to
  HDF5 with its superblock flags cleared, without modifying it. Without SWMR, a
  ``libver="latest"`` file killed mid-episode does not open at all (its status flags need
  ``h5clear``); a default-libver file happened to open in our trials, but HDF5 promises
  nothing about the order of its metadata writes. SWMR cannot create objects or (safely)
  attributes after it is switched on, so ``end_time`` is written by reopening the closed
  file without SWMR.
- **Atomic close.** The writer works on ``<name>.partial``; `EpisodeWriter.close` writes
  ``end_time``, closes, fsyncs the file, renames it into place and fsyncs the directory. A
  file without ``end_time`` is therefore a crashed or interrupted recording ("truncated"),
  which the reader and validator accept as a prefix rather than reject.
- **Single-threaded.** h5py serializes every call behind one global lock and holds the GIL
  while HDF5 runs, so a writer thread would not overlap the control loop with disk work; it
  would only add a queue. A flush of one second of two cameras takes a few milliseconds
  (see bench/bench_hdf5_writer.py); a robot that cannot afford that inside its control loop
  should record from a separate process.
- **Validation reads structure before data** (see `proving_ground.episode.validate`): uploads are
  untrusted, and h5py follows external links, external raw storage and virtual datasets on
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np

from proving_ground.episode.spec import (
    ENCODINGS,
    EVENT_CHUNK_ROWS,
    EVENT_KIND_DTYPE,
    EVENT_KINDS,
    EVENT_NAME_BYTES,
    EVENT_NAME_DTYPE,
    EVENT_STAGE,
    FRAME_INDEX_CHUNK_ROWS,
    FRAME_MAGIC,
    FRAME_STREAM_CHUNK_BYTES,
    MAX_FRAME_BYTES,
    SCHEMA,
    STEP_CHUNK_MAX_BYTES,
    STEP_CHUNK_ROWS,
    CameraSpec,
    EmbodimentSpec,
    as_embodiment_spec,
)
from proving_ground.files import fsync_path

# --------------------------------------------------------------------------------------------
# Writer
# --------------------------------------------------------------------------------------------


def _utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def default_software_versions() -> dict[str, str]:
    return {
        "format": SCHEMA,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "h5py": h5py.version.version,
        "hdf5": h5py.version.hdf5_version,
    }


def _step_chunk_rows(shape: tuple[int, ...], dtype: np.dtype) -> int:
    row_bytes = max(1, int(np.prod(shape, dtype=np.int64)) * dtype.itemsize)
    return int(max(1, min(STEP_CHUNK_ROWS, STEP_CHUNK_MAX_BYTES // row_bytes)))


def _shape_of(value: Any) -> tuple[int, ...]:
    # np.shape costs ~1.5 us through its dispatcher; a control loop calls this per key per step.
    return value.shape if type(value) is np.ndarray else np.shape(value)


class _StepBuffer:
    """Rows appended between flushes, in preallocated arrays that grow by doubling."""

    def __init__(self, spec: EmbodimentSpec, capacity: int):
        self.capacity = max(16, capacity)
        self.size = 0
        self.times = np.empty(self.capacity, np.float64)
        self.arrays = {
            key: np.empty((self.capacity, *a.shape), a.numpy_dtype)
            for key, a in spec.observations.items()
        }
        self.action = np.empty((self.capacity, *spec.action.shape), spec.action.numpy_dtype)

    def grow(self) -> None:
        self.capacity *= 2
        self.times = np.resize(self.times, self.capacity)
        self.action = np.resize(self.action, (self.capacity, *self.action.shape[1:]))
        for key, array in self.arrays.items():
            self.arrays[key] = np.resize(array, (self.capacity, *array.shape[1:]))


class _CameraBuffer:
    """Frames of one camera since the last flush, and the stream's partly filled last chunk.

    The stream on disk is ``written`` bytes of whole chunks followed by ``tail``, the bytes
    of the last, partly filled chunk, kept in memory because the next flush rewrites that
    chunk with more frames appended.
    """

    def __init__(self, spec: CameraSpec, encoding: str):
        self.spec = spec
        self.encoding = encoding
        self.magic = FRAME_MAGIC[encoding]
        self.new_frames: list[bytes] = []
        self.new_rows: list[tuple[int, int]] = []  # (offset, length) of each new frame
        self.new_times: list[float] = []
        self.tail = b""
        self.written = 0
        self.stream_end = 0  # offset after the last frame added
        self.last_t = -np.inf


class EpisodeWriter:
    """Record one episode to ``path`` (written at ``<path>.partial`` until `close`).

    ``spec`` is an `EmbodimentSpec` or its dict form; ``embodiment`` names it (the server's
    embodiment name, as `ProvingGroundClient.embodiment` returns it) when the spec carries no
    ``name``: every file records its embodiment's name, and the server refuses a file
    recorded for another embodiment. ``episode_id`` is a UUID string,
    ``robot`` / ``task_version`` / ``operator`` are the server's identifiers (operator is the
    pseudonym, never a name), ``software`` is a dict of version strings stored as JSON with
    the writer's own versions. ``camera_encoding`` is ``"jpeg"`` or ``"png"``, for all cameras
    or per camera name. Buffers are written to disk every ``flush_interval_s`` seconds of
    wall-clock time.

    Use as a context manager. Leaving the block normally calls `close`. Leaving it with an
    exception keeps what was recorded: buffers are flushed and the file stays at
    ``<path>.partial`` without ``end_time`` (a truncated episode, as after a crash); call
    `abort` to discard it instead. Raises FileExistsError if ``path`` or the partial exists.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        spec: EmbodimentSpec | Mapping[str, Any],
        *,
        episode_id: str,
        robot: str,
        task_version: str,
        operator: str,
        software: Mapping[str, str] | None = None,
        flush_interval_s: float = 1.0,
        camera_encoding: str | Mapping[str, str] = "jpeg",
        embodiment: str | None = None,
    ):
        self.spec = as_embodiment_spec(spec)
        if embodiment is not None and embodiment != self.spec.name:
            if self.spec.name:
                raise ValueError(
                    f"embodiment {embodiment!r} differs from the spec's name {self.spec.name!r}"
                )
            self.spec = dataclasses.replace(self.spec, name=str(embodiment))
        if not self.spec.name:
            raise ValueError(
                "the embodiment has no name: pass embodiment=<the server's embodiment name> "
                "or a spec with a 'name' (ProvingGroundClient.embodiment()['spec'] has one)"
            )
        self.path = Path(path)
        self.partial_path = self.path.with_name(self.path.name + ".partial")
        self.episode_id = str(uuid.UUID(str(episode_id)))
        if not flush_interval_s > 0:
            raise ValueError("flush_interval_s must be positive")
        self.flush_interval_s = float(flush_interval_s)
        for existing in (self.path, self.partial_path):
            if existing.exists():
                raise FileExistsError(f"{existing} exists; an episode is never overwritten")
        encodings = {
            cam.name: (
                camera_encoding
                if isinstance(camera_encoding, str)
                else camera_encoding.get(cam.name, "jpeg")
            )
            for cam in self.spec.cameras
        }
        for cam_name, encoding in encodings.items():
            if encoding not in ENCODINGS:
                raise ValueError(f"camera {cam_name!r}: encoding must be one of {ENCODINGS}")

        self._obs_keys = frozenset(self.spec.observations)
        self._steps = _StepBuffer(
            self.spec, int(self.spec.control_hz * self.flush_interval_s * 1.5) + 1
        )
        self._last_step_t = -np.inf
        self._num_steps = 0
        self._cameras = {
            cam.name: _CameraBuffer(cam, encodings[cam.name]) for cam in self.spec.cameras
        }
        self._events: list[tuple[str, str, float]] = []
        self._state = "open"
        self._file = self._create(
            robot=str(robot),
            task_version=str(task_version),
            operator=str(operator),
            software={**default_software_versions(), **dict(software or {})},
        )
        self._last_flush = time.monotonic()

    # -- creation -------------------------------------------------------------------------

    def _create(
        self, *, robot: str, task_version: str, operator: str, software: dict[str, str]
    ) -> h5py.File:
        f = h5py.File(self.partial_path, "x", libver="latest")
        try:
            attrs = f.attrs
            attrs["schema"] = SCHEMA
            attrs["episode_id"] = self.episode_id
            attrs["embodiment"] = self.spec.name
            attrs["robot"] = robot
            attrs["task_version"] = task_version
            attrs["operator"] = operator
            attrs["nominal_hz"] = float(self.spec.control_hz)
            attrs["start_time"] = _utc_now_iso()
            attrs["software"] = json.dumps(software, sort_keys=True)
            attrs["embodiment_spec"] = json.dumps(self.spec.to_dict(), sort_keys=True)
            attrs["flush_interval_s"] = self.flush_interval_s

            def growing(name: str, shape: tuple[int, ...], dtype: Any, rows: int) -> None:
                f.create_dataset(
                    name,
                    shape=(0, *shape),
                    maxshape=(None, *shape),
                    dtype=dtype,
                    chunks=(rows, *shape),
                    track_times=False,
                )

            growing("timestamps", (), np.float64, STEP_CHUNK_ROWS)
            for key, a in self.spec.observations.items():
                growing(
                    f"observations/{key}",
                    a.shape,
                    a.numpy_dtype,
                    _step_chunk_rows(a.shape, a.numpy_dtype),
                )
            act = self.spec.action
            growing(
                "action", act.shape, act.numpy_dtype, _step_chunk_rows(act.shape, act.numpy_dtype)
            )
            images = f.require_group("observations/images")
            for name, cam in self._cameras.items():
                group = images.create_group(name)
                group.attrs["encoding"] = cam.encoding
                group.attrs["width"] = cam.spec.width
                group.attrs["height"] = cam.spec.height
                group.attrs["fps"] = float(cam.spec.fps)
                growing(f"{group.name}/data", (), np.uint8, FRAME_STREAM_CHUNK_BYTES)
                growing(f"{group.name}/index", (2,), np.int64, FRAME_INDEX_CHUNK_ROWS)
                growing(f"{group.name}/timestamps", (), np.float64, FRAME_INDEX_CHUNK_ROWS)
            growing("events/kind", (), EVENT_KIND_DTYPE, EVENT_CHUNK_ROWS)
            growing("events/name", (), EVENT_NAME_DTYPE, EVENT_CHUNK_ROWS)
            growing("events/t", (), np.float64, EVENT_CHUNK_ROWS)
            # From here on no object may be created: SWMR keeps the file consistent at flushes.
            f.swmr_mode = True
            self._datasets: dict[str, h5py.Dataset] = {}

            def keep(name: str, obj: h5py.HLObject) -> None:
                if isinstance(obj, h5py.Dataset):
                    self._datasets[name] = obj

            f.visititems(keep)
        except BaseException:
            f.close()
            self.partial_path.unlink(missing_ok=True)
            raise
        return f

    # -- appending ------------------------------------------------------------------------

    def add_step(self, t: float, observations: Mapping[str, Any], action: Any) -> None:
        """Append one control step measured at ``t`` seconds (strictly increasing).

        ``observations`` maps every spec key to an array of the spec's shape; ``action``
        has the action's shape. Values are converted to the spec's dtype. Raises ValueError
        (and records nothing) on a missing or extra key, a wrong shape or a non-increasing t.
        """
        if self._state != "open":
            self._check_open()
        t = float(t)
        if not self._last_step_t < t < math.inf:
            raise ValueError(f"step time {t} is not after the previous {self._last_step_t}")
        if observations.keys() != self._obs_keys:
            raise ValueError(
                f"observations must have exactly the keys {sorted(self._obs_keys)}, "
                f"got {sorted(observations)}"
            )
        buf = self._steps
        if buf.size == buf.capacity:
            buf.grow()
        row = buf.size
        # Row `size` is scratch until the end: a bad value raises and records nothing.
        for key, value in observations.items():
            array = buf.arrays[key]
            if _shape_of(value) != array.shape[1:]:
                raise ValueError(
                    f"observation {key!r}: shape {np.shape(value)} != {array.shape[1:]}"
                )
            array[row] = value
        if _shape_of(action) != buf.action.shape[1:]:
            raise ValueError(f"action: shape {np.shape(action)} != {buf.action.shape[1:]}")
        buf.action[row] = action
        buf.times[row] = t
        buf.size += 1
        self._num_steps += 1
        self._last_step_t = t
        self._maybe_flush()

    def add_steps(
        self, t: np.ndarray, observations: Mapping[str, np.ndarray], action: np.ndarray
    ) -> None:
        """Append ``k`` steps at once: ``t`` of shape ``(k,)``, each observation and the action
        of shape ``(k, *spec shape)``. For recorders that batch (replays, converters from
        other formats); the same rules as `add_step`, and all or nothing."""
        self._check_open()
        times = np.asarray(t, np.float64)
        k = len(times)
        if times.ndim != 1 or k == 0:
            raise ValueError("t must be a non-empty 1-D array")
        # Strictly increasing with finite ends means every value is finite (NaN compares false).
        increasing = bool(np.all(np.diff(times) > 0))
        if not (self._last_step_t < times[0] and increasing and times[-1] < math.inf):
            raise ValueError("step times must be finite, strictly increasing and after the last")
        if observations.keys() != self._obs_keys:
            raise ValueError(f"observations must have exactly the keys {sorted(self._obs_keys)}")
        buf = self._steps
        columns = {key: np.asarray(value) for key, value in observations.items()}
        columns_action = np.asarray(action)
        for key, value in [*columns.items(), ("action", columns_action)]:
            wanted = (k, *(buf.action if key == "action" else buf.arrays[key]).shape[1:])
            if value.shape != wanted:
                raise ValueError(f"{key}: shape {value.shape} != {wanted}")
        while buf.size + k > buf.capacity:
            buf.grow()
        rows = slice(buf.size, buf.size + k)
        for key, value in columns.items():
            buf.arrays[key][rows] = value
        buf.action[rows] = columns_action
        buf.times[rows] = times
        buf.size += k
        self._num_steps += k
        self._last_step_t = float(times[-1])
        self._maybe_flush()

    def add_frame(self, camera: str, t: float, encoded: bytes) -> None:
        """Append one encoded frame (JPEG or PNG bytes, as declared) taken at ``t`` seconds.

        Raises KeyError for an unknown camera, ValueError for non-increasing t, empty or
        oversized bytes (> 16 MiB), or bytes that do not start like the declared encoding.
        """
        self._check_open()
        cam = self._cameras[camera]
        t = float(t)
        if not t > cam.last_t:
            raise ValueError(f"frame time {t} is not after the previous {cam.last_t} ({camera})")
        if not isinstance(encoded, bytes):
            encoded = bytes(encoded)  # callers may reuse their buffer
        if not 0 < len(encoded) <= MAX_FRAME_BYTES:
            raise ValueError(f"frame of {len(encoded)} bytes ({camera})")
        if encoded[: len(cam.magic)] != cam.magic:
            raise ValueError(f"frame is not {cam.encoding} ({camera})")
        cam.new_frames.append(encoded)
        cam.new_rows.append((cam.stream_end, len(encoded)))
        cam.new_times.append(t)
        cam.stream_end += len(encoded)
        cam.last_t = t
        self._maybe_flush()

    def add_event(self, kind: str, name: str, t: float) -> None:
        """Record an event: ``kind`` in `EVENT_KINDS`; ``name`` is the stage id for stages and
        a free label (may be empty) for interventions, at most 64 UTF-8 bytes."""
        self._check_open()
        if kind not in EVENT_KINDS:
            raise ValueError(f"event kind must be one of {EVENT_KINDS}")
        if len(name.encode()) > EVENT_NAME_BYTES:
            raise ValueError(f"event name longer than {EVENT_NAME_BYTES} bytes")
        if kind == EVENT_STAGE and not name:
            raise ValueError("a stage event needs the stage id as name")
        if not np.isfinite(t):
            raise ValueError("event time must be finite")
        self._events.append((kind, name, float(t)))
        self._maybe_flush()

    # -- flushing -------------------------------------------------------------------------

    def _maybe_flush(self) -> None:
        if time.monotonic() - self._last_flush >= self.flush_interval_s:
            self.flush()

    def flush(self) -> None:
        """Write every buffer to the file and flush it (a few ms for a second of data)."""
        self._check_open()
        self._write_buffers()
        self._file.flush()
        self._last_flush = time.monotonic()

    def _append(self, name: str, rows: np.ndarray) -> None:
        """Grow dataset `name` by ``len(rows)`` and write them: one extent change and one
        write, through h5py's low-level API (the high-level slicing costs ~0.2 ms a call)."""
        if not len(rows):
            return
        dsid = self._datasets[name].id
        n = dsid.shape[0]
        rows = np.ascontiguousarray(rows)
        dsid.set_extent((n + len(rows), *rows.shape[1:]))
        file_space = dsid.get_space()
        file_space.select_hyperslab((n, *(0 for _ in rows.shape[1:])), rows.shape)
        dsid.write(h5py.h5s.create_simple(rows.shape), file_space, rows)

    def _write_buffers(self) -> None:
        buf = self._steps
        k = buf.size
        if k:
            for key, array in buf.arrays.items():
                self._append(f"observations/{key}", array[:k])
            self._append("action", buf.action[:k])
            # Timestamps last: a reader trusts the shortest dataset, and this is the clock.
            self._append("timestamps", buf.times[:k])
            buf.size = 0
        for name, cam in self._cameras.items():
            self._write_camera(f"observations/images/{name}", cam)
        if self._events:
            kinds, names, times = zip(*self._events, strict=True)
            self._append("events/name", np.array([n.encode() for n in names], EVENT_NAME_DTYPE))
            self._append("events/kind", np.array([k.encode() for k in kinds], EVENT_KIND_DTYPE))
            self._append("events/t", np.array(times, np.float64))
            self._events.clear()

    def _write_camera(self, group: str, cam: _CameraBuffer) -> None:
        if not cam.new_frames:
            return
        data = self._datasets[f"{group}/data"]
        stream = b"".join([cam.tail, *cam.new_frames])
        view = memoryview(stream)
        chunk = FRAME_STREAM_CHUNK_BYTES
        whole = len(stream) // chunk * chunk
        data.id.set_extent((cam.written + len(stream),))
        # Whole chunks go straight to disk: no chunk cache, no filters, each written once.
        for start in range(0, whole, chunk):
            data.id.write_direct_chunk((cam.written + start,), view[start : start + chunk])
        if whole < len(stream):
            # The last chunk is stored full size, zero-padded, and rewritten in place by the
            # next flush; rewriting bytes already indexed with the same bytes is crash-safe.
            last = bytearray(chunk)
            last[: len(stream) - whole] = view[whole:]
            data.id.write_direct_chunk((cam.written + whole,), last)
        cam.written += whole
        cam.tail = bytes(view[whole:])
        # Times, then the index: an indexed frame always has its bytes and its time on disk.
        self._append(f"{group}/timestamps", np.array(cam.new_times, np.float64))
        self._append(f"{group}/index", np.array(cam.new_rows, np.int64))
        cam.new_frames.clear()
        cam.new_rows.clear()
        cam.new_times.clear()

    # -- ending ---------------------------------------------------------------------------

    def close(self) -> Path:
        """Finish the episode: write all buffers and ``end_time``, fsync, rename to ``path``
        and fsync the directory. Returns the final path. Calling it again does nothing."""
        if self._state == "closed":
            return self.path
        self._check_open()
        self._write_buffers()
        self._file.close()
        self._state = "finishing"
        # SWMR forbids changing attributes, so end_time goes in through a plain reopen.
        with h5py.File(self.partial_path, "r+", libver="latest") as f:
            f.attrs["end_time"] = _utc_now_iso()
        fsync_path(self.partial_path)
        os.replace(self.partial_path, self.path)
        fsync_path(self.path.parent, directory=True)
        self._state = "closed"
        return self.path

    def abort(self) -> None:
        """Discard the recording: close the file and delete the partial. Idempotent; does
        nothing after a successful `close`."""
        if self._state in ("closed", "aborted"):
            return
        if self._state in ("open", "interrupted"):
            try:
                self._file.close()
            except Exception:  # discarding anyway; the file may be broken
                pass
        self.partial_path.unlink(missing_ok=True)
        self._state = "aborted"

    def _close_truncated(self) -> None:
        """Flush what is buffered and leave ``<path>.partial`` without ``end_time``."""
        try:
            self._write_buffers()
        finally:
            self._file.close()
            self._state = "interrupted"

    def _check_open(self) -> None:
        if self._state != "open":
            raise RuntimeError(f"episode writer is {self._state}")

    @property
    def num_steps(self) -> int:
        """Steps added so far (on disk or buffered)."""
        return self._num_steps

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._state != "open":
            return
        if exc_type is None:
            self.close()
        else:
            try:
                self._close_truncated()
            except Exception:  # never mask the exception that ended the block
                pass
