"""An episode's HDF5 file ("pg-episode/1") as a Rerun recording (``.rrd``) for the web viewer.

About 600 lines: one builder whose design notes below explain each choice; the byte-level
determinism work lives in `proving_ground.replay_ids`.

`build_recording` reads an episode with `proving_ground.episode.reader.EpisodeReader` and writes one
``.rrd`` that the episode page opens in Rerun's web viewer. The module imports rerun, numpy and
`proving_ground.episode` only: it never pulls in Django, so it runs in a worker, a notebook or on a
robot (``python -m proving_ground.replay episode.h5 out.rrd``).

Design choices:

- **Columns, not one ``log`` call per row.** Joints, velocities, actions and every other
  per-step signal go in with `rr.send_columns`: one call per signal per block of
  `STEP_ROWS_PER_CHUNK` rows, each a ready-made Arrow chunk. A ``log`` call per row (what
  LeRobot's ``lerobot_dataset_viz.py`` does) costs tens of microseconds of Python and
  batching per row, which is most of the build time of a long episode; the design measured
  columns 100-300x faster on scalars (``bench/bench_rerun.py`` measures a whole episode).
  Each block of a signal is one chunk on disk (~20 s at 200 Hz), so the viewer indexes a
  few chunks instead of thousands of one-row ones (Rerun cuts big image blocks smaller).
- **Encoded images, never pixels.** Camera frames are already JPEG (or PNG) in the HDF5;
  they are copied into `rr.EncodedImage` blobs byte for byte, with the media type from the
  camera's ``encoding`` attribute, and decoded by the browser. Decoding to pixels would make
  a 640x480 frame ~900 KB instead of ~40 KB: LeRobot's viewer reaches 2.4 GB an episode that
  way, past the browser viewer's ~2 GB memory ceiling. So the ``.rrd`` stays about the size of
  the HDF5 file and raw frames are never put in it.
- **Bounded memory.** Steps are read `STEP_ROWS_PER_CHUNK` rows at a time and frames
  `FRAMES_PER_CHUNK` at a time, and the build waits for the stream to reach the file every
  `FRAME_BLOCKS_IN_FLIGHT` camera blocks, so a long episode holds a few blocks (~20 MB) in
  memory, not the episode. Waiting after every block was measured slower (0.56 s against
  0.36 s for a 60 s, 150 MB episode): reading the next block then overlaps Rerun's writing.
- **Its own stream.** A private `rr.RecordingStream` writes to a file sink; the process-wide
  global recording is never touched, so builds can run side by side in one worker. Rerun
  API misuse raises (strict mode, thread-local) instead of becoming a warning and a quietly
  incomplete recording.
- **Time.** Timeline ``time`` is a duration in seconds since the episode's first step (the
  HDF5 clock's origin is the robot's choice, often ``time.monotonic()``; the offset is kept
  as ``time_origin_s`` in the properties). Timeline ``step`` is the control step index; a
  frame or event gets the index of the last step at or before it, so both timelines line up.
- **Events.** Stages reached and interventions (from ``/events``) are `rr.TextLog` rows at
  their time; the platform's labels at the episode's end (the verdict on the whole episode)
  and quality flags at its start (they qualify the recording, and are in view as it opens).
- **Blueprint.** Cameras on the left; on the right one plot per signal family (joint
  positions, velocities, actions, then other observations), every joint in one plot, series
  named from the embodiment spec stored in the file; the events and a summary below.
- **Versions.** A viewer reads only its own and the previous minor version's files, so the
  Rerun version and ours (`EXPORTER_VERSION`) are stored in each recording (recording
  properties and the ``/meta`` document) and recordings are rebuilt on an upgrade; the HDF5
  file stays the source of truth.
- **Deterministic and atomic.** Two builds of an episode are the same bytes (tested, with
  ``rerun rrd verify``): the recording id is the episode id, no wall-clock timeline is
  logged, chunks are made by our code (never cut by the batcher's timers) and their chunk and
  row ids count up from the episode's start time, and the values Rerun's writer draws at
  random are fixed once the file is closed (`proving_ground.replay_ids` says which). The file
  is written under a temporary name in the target directory, fsynced (unless
  ``durable=False``) and renamed into place: a reader sees the old file or the new one.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import rerun as rr
import rerun.blueprint as rrb
import rerun_bindings as bindings
from rerun.error_utils import catch_and_log_exceptions

from proving_ground.episode.reader import EpisodeReader, Event
from proving_ground.episode.spec import (
    EVENT_INTERVENTION_END,
    EVENT_INTERVENTION_START,
    EVENT_STAGE,
)
from proving_ground.files import fsync_path
from proving_ground.replay_ids import (
    ChunkSender,
    TuidCounter,
    blueprint_storage,
    fix_store_identity,
    fixed_ids,
)

RERUN_VERSION: str = rr.__version__
# Ours: bump when the layout of a recording changes, so recordings can be told apart and rebuilt.
EXPORTER_VERSION = "pg-rrd/1"
APPLICATION_ID = "proving-ground"

# Rows per scalar chunk: ~20 s at 200 Hz, ~230 KB for 7 float64 joints. The HDF5 chunks hold
# up to 4096 rows, so a block reads whole chunks.
STEP_ROWS_PER_CHUNK = 4096
# Frames per image chunk: ~4 s at 30 fps, ~5 MB of 40 KB JPEGs; the unit of memory held while
# converting, and of what the viewer loads to show one frame.
FRAMES_PER_CHUNK = 128
# Camera blocks sent before waiting for them to reach the file: bounds what Rerun buffers.
FRAME_BLOCKS_IN_FLIGHT = 4

TIMELINE = "time"
STEP_TIMELINE = "step"
PROPERTY_NAME = "proving_ground"

MEDIA_TYPES = {"jpeg": "image/jpeg", "png": "image/png"}

# Entity paths. Cameras, then one entity per signal family (every joint in one multi-series
# entity), then the timeline events and the summary.
CAMERAS_ENTITY = "/cameras"
OBSERVATIONS_ENTITY = "/observations"
ACTION_ENTITY = "/action"
EVENTS_ENTITY = "/events"
STAGES_ENTITY = "/events/stages"
INTERVENTIONS_ENTITY = "/events/interventions"
LABELS_ENTITY = "/events/labels"
QUALITY_ENTITY = "/events/quality"
META_ENTITY = "/meta"

# Plot titles for the families everyone records (ALOHA names); others use their key.
_FAMILY_TITLES = {"qpos": "joint positions", "qvel": "joint velocities", "action": "actions"}
_FAMILY_ORDER = ("qpos", "qvel")


@dataclass(frozen=True)
class RecordingStats:
    """What a build produced.

    ``seconds``: wall-clock build time in seconds. ``size_bytes``: size of the ``.rrd``.
    ``frames_logged``: frames per camera name. ``scalars_logged``: scalar values logged,
    one per series per step (7 joints x 3 families x 400 steps = 8400).
    """

    seconds: float
    size_bytes: int
    rerun_version: str
    frames_logged: dict[str, int] = field(default_factory=dict)
    scalars_logged: int = 0
    exporter_version: str = EXPORTER_VERSION


def entity_for_camera(camera: str) -> str:
    return f"{CAMERAS_ENTITY}/{camera}"


def entity_for_observation(key: str) -> str:
    return f"{OBSERVATIONS_ENTITY}/{key}"


def build_recording(
    episode_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    labels: Sequence[Mapping[str, Any]] = (),
    quality_flags: Sequence[str] = (),
    application_id: str = APPLICATION_ID,
    durable: bool = True,
) -> RecordingStats:
    """Write the ``.rrd`` recording of the episode at ``episode_path`` to ``out_path``.

    ``labels`` are the episode's current labels as the platform stores them (keys
    ``outcome``, ``stages_reached``, ``failure_codes``, ``notes``, ``labeler``,
    ``created_at``; unknown keys are shown too, missing ones skipped); ``quality_flags`` are
    flag codes. ``out_path`` is replaced atomically (its directory must exist); nothing is
    left behind on failure. The episode file is only read. ``durable`` fsyncs the file
    before the rename and the directory after it (about 0.1-0.3 s for 150 MB here); a caller
    that copies the file elsewhere at once may pass False.

    Raises OSError if the episode cannot be opened or the output written, ValueError for a
    camera encoding Rerun cannot show, and Rerun's own errors for malformed data.
    """
    started = time.perf_counter()
    out_path = Path(out_path)
    partial = out_path.with_name(f".{out_path.name}.{uuid.uuid4().hex}.partial")
    with EpisodeReader(episode_path) as reader:
        episode_id = str(reader.attrs.get("episode_id") or "")
        recording_id = _recording_id(episode_id, reader.path)
        rec = rr.RecordingStream(
            application_id,
            recording_id=recording_id,
            # The automatic properties carry the wall-clock start of *this build*; ours carry
            # the episode's, so rebuilding gives the same recording.
            send_properties=False,
        )
        # Chunk and row ids count from the episode's start, never from the clock.
        ids = TuidCounter(iso_to_ns(reader.attrs.get("start_time")) or 0)
        try:
            # Thread-local strictness: a malformed column raises here instead of a warning.
            with catch_and_log_exceptions(context="build_recording", strict=True):
                namespace = uuid.UUID(recording_id)
                blueprint = blueprint_storage(
                    fixed_ids(_blueprint(reader), namespace), application_id, ids
                )
                bindings.save(str(partial), default_blueprint=blueprint, recording=rec.to_native())
                frames_logged, scalars_logged = _log_episode(
                    ChunkSender(rec, ids), reader, labels=labels, quality_flags=quality_flags
                )
                rec.flush()
        except BaseException:
            rec.disconnect()
            partial.unlink(missing_ok=True)
            raise
        # Closing the file sink writes the footer (the chunk manifest the viewer seeks with).
        rec.disconnect()
    try:
        fix_store_identity(partial, f"rec_{uuid.uuid5(namespace, 'blueprint').hex}")
        if durable:
            fsync_path(partial)
        os.replace(partial, out_path)
        if durable:
            fsync_path(out_path.parent, directory=True)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return RecordingStats(
        seconds=time.perf_counter() - started,
        size_bytes=out_path.stat().st_size,
        rerun_version=RERUN_VERSION,
        frames_logged=frames_logged,
        scalars_logged=scalars_logged,
    )


# --------------------------------------------------------------------------------------------
# Logging
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Clock:
    """Maps the file's clock to the recording's timelines: ``time`` in seconds since
    ``origin_s`` and ``step`` as the index of the last step at or before a time."""

    origin_s: float
    step_times: np.ndarray  # every step time, float64 seconds (8 bytes a step)
    end_s: float  # the latest time in the episode, seconds on the file's clock

    def steps_at(self, times_s: np.ndarray) -> np.ndarray:
        index = np.searchsorted(self.step_times, times_s, side="right") - 1
        return np.maximum(index, 0).astype(np.int64)

    def columns(self, times_s: np.ndarray, steps: np.ndarray | None = None) -> list[rr.TimeColumn]:
        times_s = np.asarray(times_s, dtype=np.float64)
        steps = self.steps_at(times_s) if steps is None else steps
        return [
            rr.TimeColumn(TIMELINE, duration=times_s - self.origin_s),
            rr.TimeColumn(STEP_TIMELINE, sequence=steps),
        ]


def _clock(reader: EpisodeReader, events: Sequence[Event]) -> _Clock:
    step_times = reader.timestamps()
    starts, ends = [], []
    if len(step_times):
        starts.append(float(step_times[0]))
        ends.append(float(step_times[-1]))
    for cam in reader.cameras:
        n = reader.frame_count(cam)
        if n:
            starts.append(float(reader.frame_timestamps(cam, 0, 1)[0]))
            ends.append(float(reader.frame_timestamps(cam, n - 1, n)[0]))
    ends += [e.t for e in events]
    # The first step is time zero; a file without steps starts at its first frame.
    origin = starts[0] if starts else 0.0
    if not len(step_times) and starts:
        origin = min(starts)
    return _Clock(origin, step_times, max(ends, default=origin))


def _log_episode(
    rec: ChunkSender,
    reader: EpisodeReader,
    *,
    labels: Sequence[Mapping[str, Any]],
    quality_flags: Sequence[str],
) -> tuple[dict[str, int], int]:
    events = reader.events()
    clock = _clock(reader, events)
    _log_static(rec, reader, clock)
    scalars_logged = _log_steps(rec, reader, clock)
    frames_logged = {cam: _log_camera(rec, reader, cam, clock) for cam in reader.cameras}
    _log_events(rec, clock, events, labels=labels, quality_flags=quality_flags)
    return frames_logged, scalars_logged


def _log_static(rec: ChunkSender, reader: EpisodeReader, clock: _Clock) -> None:
    """Properties, the ``/meta`` summary, and each family's series names."""
    attrs = reader.attrs
    episode_id = str(attrs.get("episode_id", ""))
    rec.send_recording_info(
        name=f"episode {episode_id}" if episode_id else reader.path.name,
        start_time_ns=iso_to_ns(attrs.get("start_time")),
    )
    rec.send_property(
        PROPERTY_NAME,
        rr.AnyValues(
            rerun_version=RERUN_VERSION,
            exporter_version=EXPORTER_VERSION,
            episode_id=episode_id,
            schema=str(attrs.get("schema", "")),
            time_origin_s=clock.origin_s,
        ),
    )
    rec.log(
        META_ENTITY,
        rr.TextDocument(_meta_markdown(reader, clock), media_type="text/markdown"),
        static=True,
    )
    for entity, names in _series_names(reader).items():
        rec.log(entity, rr.SeriesLines(names=names), static=True)


def _log_steps(rec: ChunkSender, reader: EpisodeReader, clock: _Clock) -> int:
    """Every per-step signal as Scalars columns, one chunk per block of rows; returns the
    number of scalar values logged."""
    logged = 0
    families = _scalar_families(reader)
    for start in range(0, reader.num_steps, STEP_ROWS_PER_CHUNK):
        stop = min(start + STEP_ROWS_PER_CHUNK, reader.num_steps)
        times = clock.columns(clock.step_times[start:stop], np.arange(start, stop, dtype=np.int64))
        for entity, read in families.items():
            values = read(start, stop)
            # Multi-dimensional observations plot as one series per element.
            values = np.asarray(values, dtype=np.float64).reshape(stop - start, -1)
            rec.send_columns(entity, indexes=times, columns=rr.Scalars.columns(scalars=values))
            logged += values.size
    return logged


def _log_camera(rec: ChunkSender, reader: EpisodeReader, cam: str, clock: _Clock) -> int:
    """One camera's encoded frames as EncodedImage columns, `FRAMES_PER_CHUNK` at a time."""
    encoding = reader.camera_info(cam).encoding
    media_type = MEDIA_TYPES.get(encoding)
    if media_type is None:
        raise ValueError(f"camera {cam!r}: encoding {encoding!r} is not one of {list(MEDIA_TYPES)}")
    entity = entity_for_camera(cam)
    n = reader.frame_count(cam)
    for block, start in enumerate(range(0, n, FRAMES_PER_CHUNK), start=1):
        stop = min(start + FRAMES_PER_CHUNK, n)
        blobs = list(reader.frames(cam, start, stop))
        rec.send_columns(
            entity,
            indexes=clock.columns(reader.frame_timestamps(cam, start, stop)),
            columns=rr.EncodedImage.columns(blob=blobs, media_type=[media_type] * len(blobs)),
        )
        if block % FRAME_BLOCKS_IN_FLIGHT == 0:
            # Wait for the blocks to reach the file: memory holds a few, not the episode.
            rec.flush()
    return n


def _log_events(
    rec: ChunkSender,
    clock: _Clock,
    events: Sequence[Event],
    *,
    labels: Sequence[Mapping[str, Any]],
    quality_flags: Sequence[str],
) -> None:
    stages = [e for e in events if e.kind == EVENT_STAGE]
    _send_text_log(
        rec,
        STAGES_ENTITY,
        clock,
        [e.t for e in stages],
        [f"stage reached: {e.name}" for e in stages],
        "INFO",
    )
    interventions = [
        e for e in events if e.kind in (EVENT_INTERVENTION_START, EVENT_INTERVENTION_END)
    ]
    _send_text_log(
        rec,
        INTERVENTIONS_ENTITY,
        clock,
        [e.t for e in interventions],
        [_intervention_text(e) for e in interventions],
        "WARN",
    )
    _send_text_log(
        rec,
        LABELS_ENTITY,
        clock,
        [clock.end_s] * len(labels),
        [_label_text(label) for label in labels],
        "INFO",
    )
    flags = [str(flag) for flag in quality_flags]
    _send_text_log(
        rec,
        QUALITY_ENTITY,
        clock,
        [clock.origin_s] * len(flags),
        [f"quality flag: {flag}" for flag in flags],
        "WARN",
    )


def _send_text_log(
    rec: ChunkSender,
    entity: str,
    clock: _Clock,
    times_s: Sequence[float],
    texts: Sequence[str],
    level: str,
) -> None:
    if not texts:
        return
    rec.send_columns(
        entity,
        indexes=clock.columns(np.asarray(times_s, dtype=np.float64)),
        columns=rr.TextLog.columns(text=list(texts), level=[level] * len(texts)),
    )


def _intervention_text(event: Event) -> str:
    verb = "started" if event.kind == EVENT_INTERVENTION_START else "ended"
    return f"intervention {verb}" + (f": {event.name}" if event.name else "")


_LABEL_FIELDS = (
    ("stages_reached", "stages reached"),
    ("failure_codes", "failure codes"),
    ("notes", "notes"),
)
_LABEL_BY = ("labeler", "created_at")


def _label_text(label: Mapping[str, Any]) -> str:
    """One line, e.g. ``label: success; stages reached: reach, grasp (by OP-1, <time>)``."""

    def show(value: Any) -> str:
        if isinstance(value, list | tuple):
            return ", ".join(str(v) for v in value)
        return str(value)

    known = {"outcome", *(key for key, _ in _LABEL_FIELDS), *_LABEL_BY}
    parts = [show(label["outcome"])] if label.get("outcome") else []
    parts += [f"{title}: {show(label[key])}" for key, title in _LABEL_FIELDS if label.get(key)]
    parts += [f"{key}: {show(value)}" for key, value in label.items() if key not in known]
    text = "label: " + "; ".join(parts) if parts else "label"
    by = ", ".join(str(label[key]) for key in _LABEL_BY if label.get(key))
    return f"{text} (by {by})" if by else text


# --------------------------------------------------------------------------------------------
# Layout
# --------------------------------------------------------------------------------------------


def _scalar_families(reader: EpisodeReader) -> dict[str, Callable[[int, int], np.ndarray]]:
    """Entity path -> reader of rows ``start:stop``, in plot order: joint positions and
    velocities, actions, then the other observations by name."""
    first = [k for k in _FAMILY_ORDER if k in reader.observation_keys]
    rest = [k for k in reader.observation_keys if k not in _FAMILY_ORDER]
    families: dict[str, Callable[[int, int], np.ndarray]] = {
        entity_for_observation(k): functools.partial(reader.observation, k) for k in first
    }
    families[ACTION_ENTITY] = reader.action
    for key in rest:
        families[entity_for_observation(key)] = functools.partial(reader.observation, key)
    return families


def _family_title(entity: str) -> str:
    key = entity.rsplit("/", 1)[-1]
    return _FAMILY_TITLES.get(key, key)


def _series_names(reader: EpisodeReader) -> dict[str, list[str]]:
    """Entity path -> one name per series: the spec's joint names when a family has one value
    per joint, else ``key[i]``."""
    spec = reader.spec
    joint_names = list(spec.joint_names) if spec else []
    names: dict[str, list[str]] = {}
    for entity, read in _scalar_families(reader).items():
        key = entity.rsplit("/", 1)[-1]
        if spec is not None:
            shape = spec.action.shape if entity == ACTION_ENTITY else spec.observations[key].shape
            width = int(np.prod(shape, dtype=np.int64))
        elif reader.num_steps:
            width = int(np.asarray(read(0, 1)).size)
        else:
            continue
        if joint_names and width == len(joint_names):
            names[entity] = joint_names
        else:
            names[entity] = [f"{key}[{i}]" for i in range(width)]
    return names


def _blueprint(reader: EpisodeReader) -> rrb.Blueprint:
    """Cameras stacked on the left; on the right one plot per signal family over the events
    (with the summary in a second tab). The time panel opens on the ``time`` timeline."""
    plots: list[rrb.View | rrb.Container] = [
        rrb.TimeSeriesView(origin=entity, name=_family_title(entity))
        for entity in _scalar_families(reader)
    ]
    plots.append(
        rrb.Tabs(
            rrb.TextLogView(origin=EVENTS_ENTITY, name="events"),
            rrb.TextDocumentView(origin=META_ENTITY, name="episode"),
        )
    )
    right = rrb.Vertical(*plots, name="signals")
    if reader.cameras:
        cameras = rrb.Vertical(
            *[rrb.Spatial2DView(origin=entity_for_camera(c), name=c) for c in reader.cameras],
            name="cameras",
        )
        layout: rrb.Container = rrb.Horizontal(cameras, right, column_shares=[2, 3])
    else:
        layout = rrb.Horizontal(right)
    return rrb.Blueprint(
        layout,
        rrb.TimePanel(timeline=TIMELINE, expanded=True),
        rrb.BlueprintPanel(expanded=False),
        rrb.SelectionPanel(expanded=False),
        auto_views=False,
    )


def _meta_markdown(reader: EpisodeReader, clock: _Clock) -> str:
    attrs = reader.attrs
    rows = [
        ("episode", attrs.get("episode_id", "")),
        ("embodiment", attrs.get("embodiment", "")),
        ("robot", attrs.get("robot", "")),
        ("task version", attrs.get("task_version", "")),
        ("operator", attrs.get("operator", "")),
        ("started", attrs.get("start_time", "")),
        ("ended", attrs.get("end_time", "(truncated)")),
        ("steps", f"{reader.num_steps} over {reader.duration_s:.3f} s"),
        ("truncated", "yes" if reader.truncated else "no"),
    ]
    rows += [(f"camera {c}", f"{reader.frame_count(c)} frames") for c in reader.cameras]
    rows += [
        ("format", attrs.get("schema", "")),
        ("time origin", f"{clock.origin_s:.6f} s on the file's clock"),
        ("exporter", EXPORTER_VERSION),
        ("rerun", RERUN_VERSION),
    ]
    table = "\n".join(f"| {name} | {_md_cell(value)} |" for name, value in rows)
    return f"# Episode\n\n| | |\n|---|---|\n{table}\n"


def _md_cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


# --------------------------------------------------------------------------------------------
# Files and identifiers
# --------------------------------------------------------------------------------------------


def _recording_id(episode_id: str, path: Path) -> str:
    """The episode id, so every build of an episode is the same recording to the viewer; a
    file without one gets an id derived from its name."""
    try:
        return str(uuid.UUID(episode_id))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"pg-episode:{path.name}"))


def iso_to_ns(value: Any) -> int | None:
    """An ISO 8601 time (``...Z``) as integer nanoseconds since the Unix epoch, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    seconds = int(moment.timestamp())
    return seconds * 1_000_000_000 + moment.microsecond * 1_000


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m proving_ground.replay EPISODE.h5 OUT.rrd``: build and print the stats as JSON."""
    parser = argparse.ArgumentParser(
        prog="python -m proving_ground.replay",
        description="Build the Rerun recording (.rrd) of a pg-episode/1 HDF5 file.",
    )
    parser.add_argument("episode", type=Path, help="the episode's HDF5 file")
    parser.add_argument("out", type=Path, help="the .rrd to write (replaced atomically)")
    parser.add_argument(
        "--quality-flag", action="append", default=[], help="a quality flag to show (repeatable)"
    )
    parser.add_argument("--application-id", default=APPLICATION_ID)
    args = parser.parse_args(argv)
    stats = build_recording(
        args.episode,
        args.out,
        quality_flags=args.quality_flag,
        application_id=args.application_id,
    )
    json.dump(dataclasses.asdict(stats), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
