"""Exports of curated episodes to the formats training code reads: LeRobot v3.0 and robomimic.

This module holds what both exporters share; the writers are
`proving_ground.exports.lerobot.export_lerobot` and
`proving_ground.exports.robomimic.export_robomimic`. Everything is free of Django (numpy,
h5py, pyarrow, PyAV, `proving_ground.episode`): the export
job calls it with plain inputs (`ExportEpisode`), and so can a script on any machine. The
full field-by-field description is ``docs/exports.md``.

Why the choices below:

- **One clock, one grid.** Our episodes hold joints at the control rate (e.g. 200 Hz) and each
  camera at its own rate, every stream with its own measured timestamps. LeRobot assumes one
  row per frame at a fixed ``fps`` and robomimic one row per sample, so both exports put rows
  on a fixed grid, ``t_k = t_first + k / fps``, and give each row, from every stream, its
  *latest sample at or before* ``t_k`` (zero-order hold). That rule is causal: a row never
  shows a joint value or a camera frame from its future, which is what a policy sees when it
  runs. ``t_first`` is the first instant at which every exported stream has a sample (and
  not before the trim start); the last row is the last grid time at which no stream has
  ended (and not after the trim end). See `align_episode`.
- **Never a half dataset.** Writers build into a hidden sibling of the destination and
  rename it into place only after every byte is written and fsynced; on any error the
  sibling is removed. An existing destination is refused, never overwritten (LeRobot's
  in-place dataset tools once deleted a whole dataset on a wrong index, their #2712).
- **Reproducible bytes.** Fixed parquet writer settings, no wall-clock time in any file,
  episodes in input order, a checksum (`ExportResult.sha256`) over the whole export. The same
  inputs and library versions give the same checksum (tested, video included).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from proving_ground.episode.reader import EpisodeReader
from proving_ground.files import file_sha256, fsync_path, fsync_tree

EXPORTER_VERSION = "pg-export/1"
OUTCOMES = ("success", "failure", "partial")

# Two instants closer than this are the same instant. Timestamps are float64 seconds; a grid
# time computed as t0 + k / fps can land a few ulps before a frame stamped at that very
# instant, and "latest sample at or before" must still pick that frame.
TIME_EPSILON_S = 1e-6

_HASH_BLOCK_BYTES = 1 << 20
# Split names become HDF5 dataset names (robomimic's mask/<split>) and column values.
_SPLIT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class ExportEpisode:
    """One episode of a dataset view, as an exporter receives it.

    `start_s` / `end_s` trim the episode, in seconds from its first step timestamp (None:
    from the start / to the end); rows outside are dropped. `label` is the current label
    (None when unlabeled): ``{"outcome": "success" | "failure" | "partial" | None,
    "stages_reached": [str], "failure_codes": [str], "stage_score": float | None}``.
    `metadata` holds extra per-episode values (str, numbers, bools; anything else is written
    as canonical JSON text). `split` names the episode's split ("train", "valid", ...).
    """

    path: Path | str
    episode_id: str
    task: str
    start_s: float | None = None
    end_s: float | None = None
    label: Mapping[str, Any] | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    split: str | None = None

    def __post_init__(self) -> None:
        if self.start_s is not None and not (math.isfinite(self.start_s) and self.start_s >= 0):
            raise ValueError(f"episode {self.episode_id}: start_s must be a number >= 0")
        if self.end_s is not None and not math.isfinite(self.end_s):
            raise ValueError(f"episode {self.episode_id}: end_s must be a finite number")
        if self.end_s is not None and self.end_s <= (self.start_s or 0.0):
            raise ValueError(f"episode {self.episode_id}: end_s must be after start_s")
        if self.split is not None and not _SPLIT_NAME.match(self.split):
            raise ValueError(
                f"episode {self.episode_id}: split must match {_SPLIT_NAME.pattern} "
                "(it names a robomimic mask)"
            )
        normalized_label(self)  # raises ValueError on an unknown outcome or a malformed label


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote.

    `files` are paths relative to the export root (the LeRobot directory; for robomimic, the
    file's own name), sorted. `sha256` identifies the whole export: for a directory, the
    SHA-256 of its manifest (one ``"<file sha256>  <relative path>\\n"`` line per file, in
    sorted path order, i.e. ``sha256sum`` output of the sorted file list); for a single
    file, that file's SHA-256. `size_bytes` sums the files; `seconds` is wall time.
    `frame_filter` is what was done to camera frames, as the export records it (e.g.
    ``"faces blurred with OpenCV 4.14.0 Haar cascades (...)"``), None for frames as recorded.
    """

    files: tuple[str, ...]
    num_episodes: int
    num_frames: int
    sha256: str
    exporter_version: str
    seconds: float
    size_bytes: int
    frame_filter: str | None = None


class FrameFilter(Protocol):
    """Something done to every camera frame an export writes, before any resize or encoding:
    called with an RGB ``(H, W, 3)`` uint8 array, it returns one of the same shape and dtype
    and must not modify its input. `description` says what it does, in the export's own
    words (`proving_ground.exports.faces.FaceBlur`: ``"faces blurred with ..."``); the
    exports record it. A plain function without one is described by its qualified name."""

    def __call__(self, frame: np.ndarray) -> np.ndarray: ...


def frame_filter_description(frame_filter: FrameFilter | None) -> str | None:
    """What the export records of `frame_filter`: its ``description``, else its module and
    qualified name; None without a filter."""
    if frame_filter is None:
        return None
    description = getattr(frame_filter, "description", None)
    if description:
        return str(description)
    kind = frame_filter if hasattr(frame_filter, "__qualname__") else type(frame_filter)
    return f"frames filtered by {kind.__module__}.{kind.__qualname__}"


def filtered_frame(frame_filter: FrameFilter, frame: np.ndarray, camera: str) -> np.ndarray:
    """`frame_filter(frame)`, checked: the same shape, uint8. Raises ValueError naming
    `camera` otherwise."""
    out = np.asarray(frame_filter(frame))
    if out.shape != frame.shape or out.dtype != np.uint8:
        raise ValueError(
            f"camera {camera}: the frame filter returned {out.dtype} {out.shape}, "
            f"not uint8 {frame.shape}"
        )
    return out


@dataclass(frozen=True)
class Label:
    """A label in the shape both formats write (empty lists and None when unlabeled)."""

    outcome: str | None
    stage_score: float | None
    stages_reached: tuple[str, ...]
    failure_codes: tuple[str, ...]


def normalized_label(episode: ExportEpisode) -> Label:
    """The episode's label, checked: outcome in `OUTCOMES` or None, lists of strings, a
    finite stage score or None. Raises ValueError naming the episode."""
    raw = episode.label or {}
    outcome = raw.get("outcome")
    if outcome is not None and outcome not in OUTCOMES:
        raise ValueError(f"episode {episode.episode_id}: unknown outcome {outcome!r}")
    score = raw.get("stage_score")
    if score is not None:
        score = float(score)
        if not math.isfinite(score):
            raise ValueError(f"episode {episode.episode_id}: stage_score must be finite")
    lists = {}
    for key in ("stages_reached", "failure_codes"):
        values = raw.get(key) or ()
        if isinstance(values, str) or not all(isinstance(v, str) for v in values):
            raise ValueError(f"episode {episode.episode_id}: {key} must be a list of strings")
        lists[key] = tuple(values)
    return Label(outcome, score, lists["stages_reached"], lists["failure_codes"])


@dataclass(frozen=True)
class Layout:
    """What every episode of one export must share: observation keys with their row shape
    and dtype, the action's, and cameras with (width, height, encoding). Read from a file's
    first row; compare with ``==``."""

    observations: tuple[tuple[str, tuple[int, ...], str], ...]  # (source key, shape, dtype)
    action: tuple[tuple[int, ...], str]
    cameras: tuple[tuple[str, int, int, str], ...]  # (name, width, height, encoding)

    @classmethod
    def of(cls, reader: EpisodeReader) -> Layout:
        def described(values: np.ndarray) -> tuple[tuple[int, ...], str]:
            return tuple(int(n) for n in values.shape[1:]), values.dtype.name

        # qpos (joint positions) first: LeRobot's observation.state leads its features.
        keys = sorted(reader.observation_keys, key=lambda k: (k != "qpos", k))
        observations = tuple((k, *described(reader.observation(k, 0, 1))) for k in keys)
        cameras = []
        for cam in reader.cameras:
            info = reader.camera_info(cam)
            cameras.append((cam, info.width, info.height, info.encoding))
        return cls(observations, described(reader.action(0, 1)), tuple(cameras))

    def check(self, reader: EpisodeReader, episode_id: str) -> None:
        """Raise ValueError if `reader`'s episode differs from this layout."""
        if Layout.of(reader) != self:
            raise ValueError(
                f"episode {episode_id} has other observation keys, shapes, dtypes or cameras "
                "than the first episode"
            )


# --------------------------------------------------------------------------------------------
# Alignment
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Alignment:
    """Rows of one episode on the export grid.

    `times_s` (N,) float64 are the row instants on the source clock; `steps` (N,) int64 index
    the source's control steps and `frames[cam]` (N,) int64 that camera's frames, each the
    latest sample at or before the row instant (non-decreasing, possibly repeated when the
    stream is slower than the grid, skipping samples when it is faster). `source_from_s` and
    `source_to_s` are the first and last row instants in seconds from the episode's first
    step timestamp (the trim's coordinates).
    """

    times_s: np.ndarray
    steps: np.ndarray
    frames: dict[str, np.ndarray]
    source_from_s: float
    source_to_s: float

    def __len__(self) -> int:
        return int(self.times_s.shape[0])


def align_episode(
    reader: EpisodeReader,
    fps: float,
    *,
    cameras: Sequence[str],
    start_s: float | None = None,
    end_s: float | None = None,
    episode_id: str = "",
) -> Alignment:
    """Put an episode's rows on a grid at `fps` (rows per second).

    Rows start at ``t_first = max(trim start, first step, first frame of each camera in
    cameras)`` and step by exactly ``1 / fps``; the last row is the last grid instant
    ``<= min(trim end, last step, last frame of each camera)``. Each row takes the latest
    step and, per camera, the latest frame at or before its instant (ties within
    `TIME_EPSILON_S` count as "at"). Raises ValueError if no row fits.
    """
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError("fps must be a positive number")
    if reader.num_steps == 0:
        raise ValueError(f"episode {episode_id}: no control steps")
    step_times = reader.timestamps()
    origin = float(step_times[0])
    first = [origin + (start_s or 0.0), origin]
    last = [float(step_times[-1])]
    if end_s is not None:
        last.append(origin + end_s)
    frame_times = {}
    for cam in cameras:
        if reader.frame_count(cam) == 0:
            raise ValueError(f"episode {episode_id}: camera {cam} has no frames")
        frame_times[cam] = reader.frame_timestamps(cam)
        first.append(float(frame_times[cam][0]))
        last.append(float(frame_times[cam][-1]))
    t_first, t_last = max(first), min(last)
    if t_last < t_first - TIME_EPSILON_S:
        raise ValueError(
            f"episode {episode_id}: nothing to export between {t_first - origin:.3f} s and "
            f"{t_last - origin:.3f} s (trim outside the recording, or streams do not overlap)"
        )
    count = int(math.floor((t_last - t_first) * fps + TIME_EPSILON_S * fps)) + 1
    # k / fps, not a running sum, so rounding never accumulates along a long episode.
    times = t_first + np.arange(count, dtype=np.float64) / fps
    steps = _latest_at_or_before(step_times, times)
    frames = {cam: _latest_at_or_before(ts, times) for cam, ts in frame_times.items()}
    return Alignment(times, steps, frames, t_first - origin, float(times[-1]) - origin)


def _latest_at_or_before(sample_times: np.ndarray, instants: np.ndarray) -> np.ndarray:
    index = np.searchsorted(sample_times, instants + TIME_EPSILON_S, side="right") - 1
    return np.maximum(index, 0).astype(np.int64)


def rows_of(reader: EpisodeReader, key: str | None, steps: np.ndarray) -> np.ndarray:
    """Values of observation `key` (or the action when None) at `steps`, shape
    ``(len(steps), *shape)``: one contiguous read of the covered range, then a gather."""
    lo, hi = int(steps[0]), int(steps[-1]) + 1
    block = reader.action(lo, hi) if key is None else reader.observation(key, lo, hi)
    return block[steps - lo]


def sample_rows(count: int, limit: int = 100) -> np.ndarray:
    """Up to `limit` row numbers spread evenly over ``range(count)`` (for image statistics)."""
    return np.unique(np.round(np.linspace(0, count - 1, min(count, limit))).astype(np.int64))


# --------------------------------------------------------------------------------------------
# Metadata columns
# --------------------------------------------------------------------------------------------


def metadata_columns(episodes: Sequence[ExportEpisode]) -> dict[str, list[Any]]:
    """Per-episode metadata as columns: key -> one value per episode (None where missing).

    A column is bool if every present value is a bool, int if every one is an int, float if
    every one is a number, and text otherwise (strings as they are, other values as
    canonical JSON), so a column has one type in both formats.
    """
    keys = sorted({str(k) for ep in episodes for k in ep.metadata})
    columns: dict[str, list[Any]] = {}
    for key in keys:
        values = [ep.metadata.get(key) for ep in episodes]
        present = [v for v in values if v is not None]
        if all(isinstance(v, bool) for v in present):
            columns[key] = values
        elif all(isinstance(v, int) and not isinstance(v, bool) for v in present):
            columns[key] = values
        elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
            columns[key] = [None if v is None else float(v) for v in values]
        else:
            columns[key] = [None if v is None else _as_text(v) for v in values]
    return columns


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# --------------------------------------------------------------------------------------------
# Writing: staged destinations, durability, checksums
# --------------------------------------------------------------------------------------------


def _staging_sibling(destination: Path) -> Path:
    return destination.with_name(f".{destination.name}.partial-{uuid.uuid4().hex[:12]}")


@contextlib.contextmanager
def staged_directory(out_dir: Path) -> Iterator[Path]:
    """Yield an empty hidden sibling of `out_dir` to write into; on success fsync it and
    rename it to `out_dir`, on error remove it. Raises FileExistsError if `out_dir` exists."""
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} exists; an export never overwrites")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = _staging_sibling(out_dir)
    staging.mkdir()
    try:
        yield staging
        fsync_tree(staging)
        os.rename(staging, out_dir)
        fsync_path(out_dir.parent, directory=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@contextlib.contextmanager
def staged_file(out_path: Path) -> Iterator[Path]:
    """Like `staged_directory`, for one file."""
    out_path = Path(out_path)
    if out_path.exists():
        raise FileExistsError(f"{out_path} exists; an export never overwrites")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    staging = _staging_sibling(out_path)
    try:
        yield staging
        fsync_path(staging)
        os.rename(staging, out_path)
        fsync_path(out_path.parent, directory=True)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise


def relative_files(root: Path) -> tuple[str, ...]:
    """Every file under `root`, as sorted POSIX paths relative to it."""
    return tuple(sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()))


def manifest_sha256(root: Path, files: Sequence[str]) -> str:
    """SHA-256 of ``sha256sum``-style lines over `files` (relative to `root`) in sorted order:
    the same as ``find . -type f -printf '%P\\n' | LC_ALL=C sort | xargs sha256sum |
    sha256sum`` run in `root`."""
    manifest = "".join(f"{file_sha256(root / rel)}  {rel}\n" for rel in sorted(files))
    return hashlib.sha256(manifest.encode("utf-8")).hexdigest()


def check_episodes(episodes: Sequence[ExportEpisode]) -> None:
    """Refuse an empty export or one that names an episode twice."""
    if not episodes:
        raise ValueError("nothing to export: no episodes")
    seen: set[str] = set()
    for ep in episodes:
        if ep.episode_id in seen:
            raise ValueError(f"episode {ep.episode_id} is listed twice")
        seen.add(ep.episode_id)
