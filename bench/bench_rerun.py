"""Building an episode's ``.rrd``: ours (`proving_ground.replay`) against per-row ``log`` calls.

The episode: 60 s of a 7-joint arm at 200 Hz (``qpos``, ``qvel``, ``action``: 12,000 steps)
and two 640x480 JPEG cameras at 30 fps (1,800 frames each, ~42 KB a frame: a few noisy
gradient images encoded once by `proving_ground.episode.encode_jpeg` and reused cyclically), plus
stage and intervention events, written with `proving_ground.episode.writer.EpisodeWriter` into a
temporary directory. Everything below is built in the same run from the same file:

- **ours**: `proving_ground.replay.build_recording`: Scalars and EncodedImage columns via
  ``send_columns``, blueprint, events, atomic write. Median of ``--runs`` builds, with
  ``durable=False`` (no fsync, the same I/O as the baselines), and again with the default
  ``durable=True`` (fsync of the file and its directory) for the figure production sees.
- **baseline, encoded frames**: one ``rr.log`` call per step and signal and per frame, in
  time order, with ``set_time`` before each, as LeRobot's ``lerobot_dataset_viz.py`` logs a
  dataset. Kind to the baseline: each signal's 7 joints are one ``Scalars`` row (not one
  entity per joint) and the frames are the same JPEG bytes, so both ``.rrd`` files hold the
  same data and the ratio is columns against rows alone. Camera bytes are copied at memory
  and disk speed by both, which bounds the ratio on a camera-heavy episode.
- **baseline, LeRobot's frames** (skip with ``--skip-pixels``): the same, but each frame is
  decoded and logged as raw pixels (``rr.Image``), which is what LeRobot's script logs by
  default; this is where its multi-GB recordings come from. One run.

A second comparison uses the same 60 s of joints without cameras: the cost of the scalars
alone.

Prints build times, the ratios (target: at least 20x), and each ``.rrd``'s size against the
HDF5 file (target for ours: under 1.2x). Run from the repository root:

    .venv/bin/python -m bench.bench_rerun [--runs 3] [--baseline-runs 1] [--skip-pixels]
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import rerun as rr

from proving_ground import replay as rerun_export
from proving_ground.episode.reader import EpisodeReader
from proving_ground.episode.spec import encode_jpeg
from proving_ground.episode.writer import EpisodeWriter

SECONDS = 60.0
CONTROL_HZ = 200
CAMERA_FPS = 30
JOINTS = ("waist", "shoulder", "elbow", "forearm", "wrist_angle", "wrist_rotate", "gripper")
CAMERAS = ("cam_high", "cam_wrist")
DISTINCT_FRAMES = 4


def _spec(cameras: tuple[str, ...]) -> dict:
    joints = {"shape": [len(JOINTS)], "dtype": "float32"}
    return {
        "name": "bench-arm",
        "joint_names": list(JOINTS),
        "observations": {"qpos": joints, "qvel": joints},
        "action": joints,
        "cameras": [
            {"name": cam, "width": 640, "height": 480, "fps": CAMERA_FPS} for cam in cameras
        ],
        "control_hz": CONTROL_HZ,
    }


def _frames() -> list[bytes]:
    """A few 640x480 JPEGs (~42 KB each at quality 85): a gradient under sensor-like noise."""
    rng = np.random.default_rng(7)
    across = np.linspace(0, 150, 640, dtype=np.float32)[None, :, None]
    down = np.linspace(0, 100, 480, dtype=np.float32)[:, None, None]
    frames = []
    for _ in range(DISTINCT_FRAMES):
        image = np.clip(across + down + rng.normal(0, 6, (480, 640, 3)), 0, 255)
        frames.append(encode_jpeg(image.astype(np.uint8), quality=85))
    return frames


def write_episode(path: Path, *, cameras: tuple[str, ...]) -> Path:
    """60 s of joints (and cameras) through our writer, on a clock starting at 1000 s."""
    frames = _frames()
    rng = np.random.default_rng(11)
    steps = int(SECONDS * CONTROL_HZ)
    t0 = 1000.0
    phases = rng.uniform(0, 2 * np.pi, len(JOINTS))
    with EpisodeWriter(
        path,
        _spec(cameras),
        episode_id=str(uuid.uuid4()),
        robot="bench-robot",
        task_version="bench-task-v1",
        operator="OP-BENCH",
    ) as writer:
        next_frame = 0  # frames interleave with steps, as a robot records them
        for i in range(steps):
            t = t0 + i / CONTROL_HZ
            q = np.sin(0.5 * t + phases).astype(np.float32)
            writer.add_step(t, {"qpos": q, "qvel": np.cos(q)}, q + 0.01)
            # Integer test (frame j at j/30 s, step i at i/200 s): no rounding at equal times.
            while cameras and next_frame * CONTROL_HZ <= i * CAMERA_FPS:
                for cam in cameras:
                    frame = frames[next_frame % len(frames)]
                    writer.add_frame(cam, t0 + next_frame / CAMERA_FPS, frame)
                next_frame += 1
        for k, stage in enumerate(("reach", "grasp", "lift", "place")):
            writer.add_event("stage", stage, t0 + 10.0 + 12.0 * k)
        writer.add_event("intervention_start", "slip", t0 + 30.0)
        writer.add_event("intervention_end", "", t0 + 33.0)
    return path


def _decoded(jpeg: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))


def build_baseline(episode: Path, out: Path, *, pixels: bool = False) -> None:
    """One ``log`` call per step and signal and per frame, in time order (LeRobot's way);
    frames as their JPEG bytes, or decoded to raw pixels with ``pixels``."""
    rec = rr.RecordingStream("proving-ground-baseline", recording_id=str(uuid.uuid4()))
    rec.save(out)
    with EpisodeReader(episode) as reader:
        times = reader.timestamps()
        signals = {
            "/observations/qpos": reader.observation("qpos"),
            "/observations/qvel": reader.observation("qvel"),
            "/action": reader.action(),
        }
        frames = {cam: (reader.frame_timestamps(cam), reader.frames(cam)) for cam in reader.cameras}
        next_frame = dict.fromkeys(frames, 0)
        origin = float(times[0])
        for i, t in enumerate(times):
            for cam, (frame_times, stream) in frames.items():
                while next_frame[cam] < len(frame_times) and frame_times[next_frame[cam]] <= t:
                    rec.set_time("time", duration=float(frame_times[next_frame[cam]]) - origin)
                    frame = next(stream)
                    image = (
                        rr.Image(_decoded(frame))
                        if pixels
                        else rr.EncodedImage(contents=frame, media_type="image/jpeg")
                    )
                    rec.log(f"/cameras/{cam}", image)
                    next_frame[cam] += 1
            rec.set_time("step", sequence=i)
            rec.set_time("time", duration=float(t) - origin)
            for entity, values in signals.items():
                rec.log(entity, rr.Scalars(values[i]))
    rec.flush()
    rec.disconnect()


def _timed(function: Callable[[], object]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def _row(label: str, seconds: list[float], out: Path, h5_bytes: int) -> float:
    median = statistics.median(seconds)
    runs = ", ".join(f"{s:.3f}" for s in seconds)
    size = out.stat().st_size
    print(
        f"  {label:<34} {median:8.3f} s  [{runs}]  .rrd {size / 1e6:8.1f} MB "
        f"= {size / h5_bytes:6.3f}x the HDF5"
    )
    return median


def _compare(
    label: str, episode: Path, work: Path, args: argparse.Namespace, *, pixels: bool
) -> None:
    h5_bytes = episode.stat().st_size
    out = work / f"{episode.stem}.rrd"

    def ours(durable: bool) -> list[float]:
        def build() -> None:
            rerun_export.build_recording(episode, out, durable=durable)

        return [_timed(build) for _ in range(args.runs)]

    def baseline(as_pixels: bool, runs: int) -> list[float]:
        return [_timed(lambda: build_baseline(episode, out, pixels=as_pixels)) for _ in range(runs)]

    print(f"\n{label}: HDF5 {h5_bytes / 1e6:.1f} MB; median seconds [runs]")
    # One untimed build first: the first read of a fresh file and the first write of a new
    # .rrd otherwise land on whichever row comes first.
    rerun_export.build_recording(episode, out, durable=False)
    fast = _row("ours, durable=False", ours(False), out, h5_bytes)
    _row("ours, durable=True (default)", ours(True), out, h5_bytes)
    rows = _row("baseline: log per row", baseline(False, args.baseline_runs), out, h5_bytes)
    print(f"  {'ratio baseline / ours (same I/O)':<34} {rows / fast:8.1f}x")
    if pixels:
        raw = _row("baseline: log per row, raw pixels", baseline(True, 1), out, h5_bytes)
        print(f"  {'ratio LeRobot-style / ours':<34} {raw / fast:8.1f}x")
    out.unlink()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="builds of ours (median)")
    parser.add_argument("--baseline-runs", type=int, default=1, help="builds of the baseline")
    parser.add_argument(
        "--skip-pixels", action="store_true", help="skip the raw-pixel baseline (~3 GB, slow)"
    )
    args = parser.parse_args(argv)
    print(
        f"Rerun {rr.__version__}, exporter {rerun_export.EXPORTER_VERSION}; episode: "
        f"{SECONDS:.0f} s, {len(JOINTS)} joints at {CONTROL_HZ} Hz (qpos, qvel, action), "
        f"{len(CAMERAS)} x 640x480 JPEG at {CAMERA_FPS} fps"
    )
    with tempfile.TemporaryDirectory(prefix="bench-rerun-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        full = write_episode(work / "episode.h5", cameras=CAMERAS)
        joints_only = write_episode(work / "joints.h5", cameras=())
        print(f"(episodes written in {time.perf_counter() - started:.1f} s)")
        _compare(
            "Whole episode (joints + 2 cameras)", full, work, args, pixels=not args.skip_pixels
        )
        _compare("Joints only (no cameras)", joints_only, work, args, pixels=False)
    print("\ntargets: ratio >= 20x on the whole episode; .rrd < 1.2x the HDF5")


if __name__ == "__main__":
    main()
