"""Automatic checks of a task's success criteria, run on a validated episode file.

Free of Django. Reads the file with `proving_ground.episode.reader.EpisodeReader`: joint signals
whole (they are small: 60 s at 200 Hz of 7 float32 joints is 336 KB), camera frames lazily and only
for cameras a check names, so memory stays flat on long episodes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from proving_ground.criteria.automatic_checks import EpisodeSignals
from proving_ground.criteria.parsing import parse_criteria
from proving_ground.criteria.spec import evaluate_checks
from proving_ground.episode.reader import EpisodeReader
from proving_ground.episode.spec import EVENT_STAGE


class _LazyFrames:
    """A camera's encoded frames, read from the file in order as they are iterated."""

    def __init__(self, reader: EpisodeReader, camera: str):
        self._reader = reader
        self._camera = camera

    def __len__(self) -> int:
        return self._reader.frame_count(self._camera)

    def __iter__(self) -> Iterator[bytes]:
        return self._reader.frames(self._camera)


def episode_signals(reader: EpisodeReader, cameras: set[str], nominal_hz: float | None):
    """The `EpisodeSignals` of an open episode. Stage times are made relative to the first
    step, as the criteria expect."""
    timestamps = reader.timestamps()
    start = float(timestamps[0]) if len(timestamps) else 0.0
    signals = {"action": reader.action()}
    signals |= {f"observations/{key}": reader.observation(key) for key in reader.observation_keys}
    stage_events = [(e.name, e.t - start) for e in reader.events() if e.kind == EVENT_STAGE]
    camera_frames = {
        cam: (_LazyFrames(reader, cam), reader.frame_timestamps(cam))
        for cam in reader.cameras
        if cam in cameras
    }
    return EpisodeSignals(
        timestamps=timestamps,
        signals=signals,
        stage_events=stage_events,
        camera_frames=camera_frames,
        nominal_hz=nominal_hz,
    )


def evaluate_episode_checks(
    path: str | Path, criteria_spec: Mapping[str, Any], *, nominal_hz: float | None = None
) -> list[dict[str, Any]]:
    """Run every automatic check of `criteria_spec` on the episode at `path` (which must have
    passed validation); one JSON-ready result per check, in the spec's order."""
    criteria = parse_criteria(criteria_spec)
    if not criteria.checks:
        return []
    cameras = {check.camera for check in criteria.checks if hasattr(check, "camera")}
    with EpisodeReader(path) as reader:
        signals = episode_signals(reader, cameras, nominal_hz)
        return [result.to_dict() for result in evaluate_checks(criteria, signals)]
