"""The "pg-episode/1" HDF5 episode format: spec, writer, reader (validator in `hdf5_validate`).

One HDF5 file holds one teleoperation or evaluation episode. Robots record with
`EpisodeWriter`, anyone reads with `EpisodeReader` (or plain h5py, see
``docs/hdf5-format.md``), and the server checks uploads with `validate` /
`validate_isolated` (defined in `teleop.hdf5_validate`, re-exported here). The module imports
numpy, h5py, Pillow and the standard library only: it runs on robots, so it must never pull
in Django.

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
  ``tests/teleop/test_hdf5.py``) leaves a file that opens with everything up to its last
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
- **Validation reads structure before data** (see `teleop.hdf5_validate`): uploads are
  untrusted, and h5py follows external links, external raw storage and virtual datasets on
  an ordinary read.

Time: every timestamp in a file (steps, frames, events) is float64 seconds on one clock,
measured by the robot and strictly increasing per stream. The origin is the writer's choice
(``time.monotonic()`` or seconds since the episode started); only differences are meaningful.
"""

from __future__ import annotations

import io
import json
import math
import os
import platform
import re
import time
import uuid
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np

SCHEMA = "pg-episode/1"

# Event kinds stored in /events/kind. Interventions are pairs of start and end events.
EVENT_STAGE = "stage"
EVENT_INTERVENTION_START = "intervention_start"
EVENT_INTERVENTION_END = "intervention_end"
EVENT_KINDS = (EVENT_STAGE, EVENT_INTERVENTION_START, EVENT_INTERVENTION_END)

ENCODINGS = ("jpeg", "png")
_MAGIC = {"jpeg": b"\xff\xd8\xff", "png": b"\x89PNG\r\n\x1a\n"}

ALLOWED_DTYPES = (
    "float16",
    "float32",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "bool",
)
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
RESERVED_OBSERVATION_KEYS = ("images",)  # /observations/images holds the cameras

# Chunking. Joints: a few thousand rows (at most ~1 MiB a chunk), so an hour at 200 Hz is
# ~180 chunks per dataset. Camera streams: 256 KiB (64 KiB to 1 MiB measured alike; larger
# chunks bypass nothing more and make the rewritten last chunk costlier).
STEP_CHUNK_ROWS = 4096
STEP_CHUNK_MAX_BYTES = 1 << 20
FRAME_STREAM_CHUNK_BYTES = 256 * 1024
FRAME_INDEX_CHUNK_ROWS = 1024
EVENT_CHUNK_ROWS = 64
EVENT_KIND_BYTES = 32
EVENT_NAME_BYTES = 64
MAX_FRAME_BYTES = 16 * 1024 * 1024
# Fixed-length UTF-8: SWMR appends need fixed-size rows (variable-length strings live in a
# global heap that SWMR does not cover).
_EVENT_KIND_DTYPE = h5py.string_dtype("utf-8", EVENT_KIND_BYTES)
_EVENT_NAME_DTYPE = h5py.string_dtype("utf-8", EVENT_NAME_BYTES)

# Root attributes every pg-episode/1 file carries (end_time only after a clean close).
REQUIRED_ROOT_ATTRS = (
    "schema",
    "episode_id",
    "embodiment",
    "robot",
    "task_version",
    "operator",
    "nominal_hz",
    "start_time",
    "software",
)


# --------------------------------------------------------------------------------------------
# Embodiment spec
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArraySpec:
    """One per-step array: `shape` excludes the time axis (``(7,)`` for 7 joints)."""

    shape: tuple[int, ...]
    dtype: str

    @property
    def numpy_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)


@dataclass(frozen=True)
class CameraSpec:
    """A camera: frame size in pixels and nominal rate in frames per second."""

    name: str
    width: int
    height: int
    fps: float


@dataclass(frozen=True)
class EmbodimentSpec:
    """What a robot type records, as the server's Embodiment model stores it.

    ``from_dict`` accepts exactly this shape (``name`` optional, unknown keys ignored)::

        {"name": "aloha-left", "joint_names": ["waist", ...],
         "observations": {"qpos": {"shape": [7], "dtype": "float32"}, ...},
         "action": {"shape": [7], "dtype": "float32"},
         "cameras": [{"name": "cam_high", "width": 640, "height": 480, "fps": 30}],
         "control_hz": 200}

    Observation keys and camera names match ``[a-z][a-z0-9_]{0,63}``; ``images`` is reserved
    for the camera group. dtypes are numpy names from `ALLOWED_DTYPES`.
    """

    name: str
    joint_names: tuple[str, ...]
    observations: dict[str, ArraySpec]
    action: ArraySpec
    cameras: tuple[CameraSpec, ...]
    control_hz: float

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EmbodimentSpec:
        """Parse the dict form; raises ValueError naming the first problem."""
        if not isinstance(data, Mapping):
            raise ValueError("embodiment spec must be a JSON object")
        try:
            name = str(data.get("name", ""))
            joint_names = tuple(str(j) for j in data["joint_names"])
            observations = {
                _checked_name(str(key), "observation key"): _array_spec(
                    value, f"observations.{key}"
                )
                for key, value in dict(data["observations"]).items()
            }
            action = _array_spec(data["action"], "action")
            cameras = tuple(_camera_spec(c) for c in data["cameras"])
            control_hz = float(data["control_hz"])
        except KeyError as exc:
            raise ValueError(f"embodiment spec lacks {exc.args[0]!r}") from exc
        except TypeError as exc:
            raise ValueError(f"embodiment spec is malformed: {exc}") from exc
        if not observations:
            raise ValueError("embodiment spec has no observations")
        reserved = set(observations) & set(RESERVED_OBSERVATION_KEYS)
        if reserved:
            raise ValueError(f"observation key {sorted(reserved)[0]!r} is reserved")
        if len({c.name for c in cameras}) != len(cameras):
            raise ValueError("camera names must be unique")
        if not (control_hz > 0 and np.isfinite(control_hz)):
            raise ValueError("control_hz must be a positive number")
        return cls(name, joint_names, observations, action, cameras, control_hz)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "joint_names": list(self.joint_names),
            "observations": {
                key: {"shape": list(a.shape), "dtype": a.dtype}
                for key, a in self.observations.items()
            },
            "action": {"shape": list(self.action.shape), "dtype": self.action.dtype},
            "cameras": [
                {"name": c.name, "width": c.width, "height": c.height, "fps": c.fps}
                for c in self.cameras
            ],
            "control_hz": self.control_hz,
        }
        if self.name:
            out["name"] = self.name
        return out

    def camera(self, name: str) -> CameraSpec:
        for cam in self.cameras:
            if cam.name == name:
                return cam
        raise KeyError(name)


def _checked_name(name: str, what: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"{what} {name!r} must match [a-z][a-z0-9_]{{0,63}}")
    return name


def _array_spec(value: Any, where: str) -> ArraySpec:
    shape = tuple(int(n) for n in value["shape"])
    dtype = str(value["dtype"])
    if dtype not in ALLOWED_DTYPES:
        raise ValueError(f"{where}: dtype {dtype!r} is not one of {', '.join(ALLOWED_DTYPES)}")
    if len(shape) > 4 or any(n < 1 for n in shape):
        raise ValueError(f"{where}: shape must have at most 4 positive dimensions")
    return ArraySpec(shape, dtype)


def _camera_spec(value: Any) -> CameraSpec:
    cam = CameraSpec(
        _checked_name(str(value["name"]), "camera name"),
        int(value["width"]),
        int(value["height"]),
        float(value["fps"]),
    )
    if cam.width < 1 or cam.height < 1 or not cam.fps > 0:
        raise ValueError(f"camera {cam.name!r}: width, height and fps must be positive")
    return cam


def as_embodiment_spec(spec: EmbodimentSpec | Mapping[str, Any]) -> EmbodimentSpec:
    """Accept our dataclass, the dict form, or any object with ``to_dict()`` (such as
    ``core.embodiment_spec.EmbodimentSpec``)."""
    if isinstance(spec, EmbodimentSpec):
        return spec
    if not isinstance(spec, Mapping) and hasattr(spec, "to_dict"):
        spec = spec.to_dict()
    return EmbodimentSpec.from_dict(spec)


# --------------------------------------------------------------------------------------------
# Frames
# --------------------------------------------------------------------------------------------


def encode_jpeg(frame: np.ndarray, quality: int = 90) -> bytes:
    """Encode an RGB ``(H, W, 3)`` or grey ``(H, W)`` uint8 frame as baseline JPEG.

    `quality` is Pillow's 1-95 scale; 90 keeps fine texture at ~40 KB for a 640x480 scene
    (about 2 ms a frame here). Chroma is subsampled 4:2:0, Pillow's default.
    """
    from PIL import Image  # lazy: the validator and reader need Pillow only for decoding

    array = np.asarray(frame)
    if (
        array.dtype != np.uint8
        or array.ndim not in (2, 3)
        or (array.ndim == 3 and array.shape[2] != 3)
    ):
        raise ValueError(f"expected uint8 (H, W, 3) or (H, W), got {array.dtype} {array.shape}")
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=int(quality))
    return buffer.getvalue()


def frame_encoding(encoded: bytes) -> str | None:
    """``"jpeg"`` or ``"png"`` from the first bytes, or None."""
    for name, magic in _MAGIC.items():
        if encoded[: len(magic)] == magic:
            return name
    return None


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


def _fsync_path(path: Path, *, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
        self.magic = _MAGIC[encoding]
        self.new_frames: list[bytes] = []
        self.new_rows: list[tuple[int, int]] = []  # (offset, length) of each new frame
        self.new_times: list[float] = []
        self.tail = b""
        self.written = 0
        self.stream_end = 0  # offset after the last frame added
        self.last_t = -np.inf


class EpisodeWriter:
    """Record one episode to ``path`` (written at ``<path>.partial`` until `close`).

    ``spec`` is an `EmbodimentSpec` or its dict form. ``episode_id`` is a UUID string,
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
    ):
        self.spec = as_embodiment_spec(spec)
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
            growing("events/kind", (), _EVENT_KIND_DTYPE, EVENT_CHUNK_ROWS)
            growing("events/name", (), _EVENT_NAME_DTYPE, EVENT_CHUNK_ROWS)
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
            self._append("events/name", np.array([n.encode() for n in names], _EVENT_NAME_DTYPE))
            self._append("events/kind", np.array([k.encode() for k in kinds], _EVENT_KIND_DTYPE))
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
        _fsync_path(self.partial_path)
        os.replace(self.partial_path, self.path)
        _fsync_path(self.path.parent, directory=True)
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


# --------------------------------------------------------------------------------------------
# Reader
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """An event: `kind` from `EVENT_KINDS`, `name` (stage id or label), `t` in seconds."""

    kind: str
    name: str
    t: float


@dataclass(frozen=True)
class CameraInfo:
    encoding: str
    width: int
    height: int
    fps: float


_SWMR_WRITE_FLAGS = 0b101  # superblock v3 consistency flags: open for write, SWMR write


def lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 ``hashlittle``: the checksum HDF5 puts on its metadata
    (``H5_checksum_lookup3``), here for the 44-byte superblock only."""
    mask = 0xFFFFFFFF

    def rot(x: int, k: int) -> int:
        return ((x << k) | (x >> (32 - k))) & mask

    a = b = c = (0xDEADBEEF + len(data) + initval) & mask
    rest = data
    while len(rest) > 12:
        a = (a + int.from_bytes(rest[0:4], "little")) & mask
        b = (b + int.from_bytes(rest[4:8], "little")) & mask
        c = (c + int.from_bytes(rest[8:12], "little")) & mask
        a = (a - c) & mask ^ rot(c, 4)
        c = (c + b) & mask
        b = (b - a) & mask ^ rot(a, 6)
        a = (a + c) & mask
        c = (c - b) & mask ^ rot(b, 8)
        b = (b + a) & mask
        a = (a - c) & mask ^ rot(c, 16)
        c = (c + b) & mask
        b = (b - a) & mask ^ rot(a, 19)
        a = (a + c) & mask
        c = (c - b) & mask ^ rot(b, 4)
        b = (b + a) & mask
        rest = rest[12:]
    if not rest:
        return c
    rest = rest + bytes(12 - len(rest))
    a = (a + int.from_bytes(rest[0:4], "little")) & mask
    b = (b + int.from_bytes(rest[4:8], "little")) & mask
    c = (c + int.from_bytes(rest[8:12], "little")) & mask
    c = (c ^ b) - rot(b, 14) & mask
    a = (a ^ c) - rot(c, 11) & mask
    b = (b ^ a) - rot(a, 25) & mask
    c = (c ^ b) - rot(b, 16) & mask
    a = (a ^ c) - rot(c, 4) & mask
    b = (b ^ a) - rot(a, 14) & mask
    c = (c ^ b) - rot(b, 24) & mask
    return c


def superblock_left_open(path: str | os.PathLike[str]) -> bytes | None:
    """If a SWMR writer left the file open (it crashed), the superblock with its "open for
    write" flags cleared and its checksum redone; else None.

    Only for a version 3 superblock at offset 0 with a valid checksum, whose stored
    end-of-file address the file actually reaches (a file cut short is not a crash). Layout
    (HDF5 format spec, superblock v2/v3): signature (8), version (1), size of offsets O (1),
    size of lengths (1), consistency flags (1), base address, superblock extension address,
    end-of-file address, root object header address (O each), checksum (4).
    """
    with open(path, "rb") as fh:
        head = fh.read(12 + 4 * 8 + 4)
        size = os.fstat(fh.fileno()).st_size
    if len(head) < 12 or head[8] != 3 or head[11] & _SWMR_WRITE_FLAGS != _SWMR_WRITE_FLAGS:
        return None
    width = head[9]
    end = 12 + 4 * width
    if width not in (2, 4, 8) or len(head) < end + 4:
        return None
    base = int.from_bytes(head[12 : 12 + width], "little")
    eof = int.from_bytes(head[12 + 2 * width : 12 + 3 * width], "little")
    if (
        base != 0
        or eof > size
        or lookup3(head[:end]) != int.from_bytes(head[end : end + 4], "little")
    ):
        return None
    cleared = head[:11] + bytes([head[11] & ~_SWMR_WRITE_FLAGS]) + head[12:end]
    return cleared + lookup3(cleared).to_bytes(4, "little")


class _SuperblockOverlay(io.RawIOBase):
    """A read-only file whose first bytes read as `superblock` instead of what is on disk;
    h5py opens it through its file-object driver."""

    def __init__(self, path: str | os.PathLike[str], superblock: bytes):
        super().__init__()
        self._file = open(path, "rb")  # noqa: SIM115 - closed with this object
        self._superblock = superblock

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def readinto(self, buffer: Any) -> int:
        position = self._file.tell()
        count = self._file.readinto(buffer)
        if count and position < len(self._superblock):
            overlap = min(count, len(self._superblock) - position)
            memoryview(buffer).cast("B")[:overlap] = self._superblock[position : position + overlap]
        return count

    def close(self) -> None:
        self._file.close()
        super().close()


def open_episode_file(path: str | os.PathLike[str]) -> h5py.File:
    """Open read-only; raises OSError if HDF5 cannot.

    A file whose SWMR writer was killed is still flagged "open for write" in its superblock,
    and a plain open refuses it. h5py's ``swmr=True`` read mode would open it, but that mode
    skips HDF5's end-of-file check and retries metadata reads whose checksum fails, with
    back-off: on a damaged file it hangs for minutes (measured). So such a file is opened
    normally through an overlay that presents its superblock with the flags cleared; the file
    on disk is never modified. HDF5 then checks it like any closed file.
    """
    try:
        return h5py.File(path, "r")
    except OSError:
        superblock = superblock_left_open(path)
        if superblock is None:
            raise
    source = _SuperblockOverlay(path, superblock)
    try:
        f = h5py.File(source, "r")
    except BaseException:
        source.close()
        raise
    weakref.finalize(f, source.close)
    return f


def attr_value(value: Any) -> Any:
    """An HDF5 attribute as plain Python: bytes decoded, numpy scalars unwrapped."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return [attr_value(v) for v in value.tolist()]
    return value


def _bounds(start: int, stop: int | None, n: int) -> tuple[int, int]:
    begin, end, _ = slice(start, stop).indices(n)
    return begin, max(begin, end)


class EpisodeReader:
    """Read an episode lazily: nothing is loaded until asked for, and only the rows asked for.

    Meant for files we wrote or that passed `validate`; do not point it at an unvalidated
    upload (h5py would follow external links and external storage). A truncated file (no
    ``end_time``, or datasets of different lengths after a crash) reads as its shortest
    consistent prefix and has ``truncated`` set.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._file = open_episode_file(self.path)
        try:
            self.attrs: dict[str, Any] = {k: attr_value(v) for k, v in self._file.attrs.items()}
            observations = self._file.get("observations")
            self.observation_keys: list[str] = sorted(
                k
                for k, v in (observations.items() if observations else [])
                if isinstance(v, h5py.Dataset)
            )
            lengths = [self._file["timestamps"].shape[0], self._file["action"].shape[0]]
            lengths += [self._file[f"observations/{k}"].shape[0] for k in self.observation_keys]
            self.num_steps: int = min(lengths)
            images = self._file.get("observations/images")
            self.cameras: list[str] = sorted(images) if images is not None else []
            self._frame_counts = {cam: self._consistent_frames(cam) for cam in self.cameras}
            self.truncated: bool = "end_time" not in self.attrs or len(set(lengths)) > 1
        except BaseException:
            self._file.close()
            raise

    def _consistent_frames(self, cam: str) -> int:
        group = self._file[f"observations/images/{cam}"]
        n = min(group["index"].shape[0], group["timestamps"].shape[0])
        size = group["data"].shape[0]
        # After a crash the last index rows may point past the data; walk back to the last
        # frame whose bytes exist (offsets only grow, so this touches a few rows).
        while n > 0:
            offset, length = group["index"][n - 1]
            if offset + length <= size:
                break
            n -= 1
        return int(n)

    # -- steps ----------------------------------------------------------------------------

    @property
    def duration_s(self) -> float:
        """Last step time minus first, seconds (0.0 below two steps)."""
        if self.num_steps < 2:
            return 0.0
        ts = self._file["timestamps"]
        return float(ts[self.num_steps - 1] - ts[0])

    def timestamps(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Step times in seconds, float64 ``(stop - start,)``."""
        begin, end = _bounds(start, stop, self.num_steps)
        return self._file["timestamps"][begin:end]

    def observation(self, key: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows ``start:stop`` of ``/observations/<key>``, shape ``(rows, *spec shape)``."""
        if key not in self.observation_keys:
            raise KeyError(key)
        begin, end = _bounds(start, stop, self.num_steps)
        return self._file[f"observations/{key}"][begin:end]

    def action(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        begin, end = _bounds(start, stop, self.num_steps)
        return self._file["action"][begin:end]

    @property
    def spec(self) -> EmbodimentSpec | None:
        """The embodiment spec the writer recorded, if the file carries one."""
        raw = self.attrs.get("embodiment_spec")
        return EmbodimentSpec.from_dict(json.loads(raw)) if raw else None

    # -- cameras --------------------------------------------------------------------------

    def camera_info(self, cam: str) -> CameraInfo:
        attrs = self._file[f"observations/images/{cam}"].attrs
        return CameraInfo(
            str(attr_value(attrs["encoding"])),
            int(attrs["width"]),
            int(attrs["height"]),
            float(attrs["fps"]),
        )

    def frame_count(self, cam: str) -> int:
        return self._frame_counts[cam]

    def frame_timestamps(self, cam: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Frame times in seconds, float64."""
        begin, end = _bounds(start, stop, self.frame_count(cam))
        return self._file[f"observations/images/{cam}/timestamps"][begin:end]

    def frame(self, cam: str, i: int) -> bytes:
        """The encoded bytes of frame ``i`` (negative counts from the end)."""
        n = self.frame_count(cam)
        if not -n <= i < n:
            raise IndexError(f"frame {i} of {n} ({cam})")
        group = self._file[f"observations/images/{cam}"]
        offset, length = (int(v) for v in group["index"][i % n])
        return group["data"][offset : offset + length].tobytes()

    def frames(
        self, cam: str, start: int = 0, stop: int | None = None, *, batch_bytes: int = 8 << 20
    ) -> Iterator[bytes]:
        """Encoded frames ``start:stop`` in order. Reads one slice of the stream per batch of
        consecutive frames (up to ``batch_bytes``), never the frames outside the range."""
        begin, end = _bounds(start, stop, self.frame_count(cam))
        group = self._file[f"observations/images/{cam}"]
        index_ds, data = group["index"], group["data"]
        for block_start in range(begin, end, FRAME_INDEX_CHUNK_ROWS):
            index = index_ds[block_start : min(end, block_start + FRAME_INDEX_CHUNK_ROWS)]
            offsets, lengths = index[:, 0].tolist(), index[:, 1].tolist()
            i = 0
            while i < len(offsets):
                # One read for a run of frames that follow each other in the stream.
                lo = hi = offsets[i]
                j = i
                while (
                    j < len(offsets)
                    and offsets[j] == hi
                    and (j == i or hi + lengths[j] - lo <= batch_bytes)
                ):
                    hi += lengths[j]
                    j += 1
                block = data[lo:hi]
                for offset, length in zip(offsets[i:j], lengths[i:j], strict=True):
                    yield block[offset - lo : offset - lo + length].tobytes()
                i = j

    # -- events ---------------------------------------------------------------------------

    def events(self) -> list[Event]:
        """All events in recording order (small: one row per stage or intervention edge)."""
        group = self._file.get("events")
        if group is None:
            return []
        n = min(group[k].shape[0] for k in ("kind", "name", "t"))
        kinds, names, times = group["kind"][:n], group["name"][:n], group["t"][:n]
        return [
            Event(attr_value(k), attr_value(nm), float(t))
            for k, nm, t in zip(kinds, names, times, strict=True)
        ]

    # -- lifetime -------------------------------------------------------------------------

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> EpisodeReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------------------------
# The validator lives in teleop.hdf5_validate; its names are re-exported here lazily so that
# either module can be imported first.
# --------------------------------------------------------------------------------------------

_VALIDATOR_NAMES = (
    "Problem",
    "ValidationLimits",
    "ValidationReport",
    "validate",
    "validate_isolated",
)

__all__ = [
    "SCHEMA",
    "EVENT_KINDS",
    "EVENT_STAGE",
    "EVENT_INTERVENTION_START",
    "EVENT_INTERVENTION_END",
    "ArraySpec",
    "CameraSpec",
    "CameraInfo",
    "EmbodimentSpec",
    "EpisodeReader",
    "EpisodeWriter",
    "Event",
    "encode_jpeg",
    "open_episode_file",
    "attr_value",
    *_VALIDATOR_NAMES,
]


def __getattr__(name: str) -> Any:
    if name in _VALIDATOR_NAMES:
        from teleop import hdf5_validate

        return getattr(hdf5_validate, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _main(argv: Sequence[str] | None = None) -> int:
    from teleop import hdf5_validate

    return hdf5_validate.main(argv)


if __name__ == "__main__":
    raise SystemExit(_main())
