"""EpisodeWriter throughput against a plain ``numpy.tofile`` of the same bytes, side by side.

A 60 s episode: 7 joints at 200 Hz (float32 qpos, qvel, action; float64 timestamps) and two
640x480 cameras at 30 fps as JPEG. Frames are synthetic but not trivially compressible
(gradients, texture and noise, ~30-60 KB at quality 90), encoded once before timing; the JPEG
encoding cost is reported on its own. Then, three times, in alternating order:

- ``EpisodeWriter``: every step through ``add_step`` (as a control loop does), every frame
  through ``add_frame``, a ``flush()`` after each second of data (what the wall-clock
  trigger does while recording live; here the data comes faster than real time), then
  ``close()`` (end_time, fsync, rename, directory fsync);
- the same with steps appended a second at a time through ``add_steps``: the storage path
  without ~4 us of per-step Python work;
- baseline: the same payload bytes (joint rows, frame bytes, frame index and times) written
  second by second with ``numpy.tofile`` into one file, then fsync.

Medians of the three runs are printed. Run from the repository root:

    .venv/bin/python bench/bench_hdf5_writer.py [--seconds 60] [--dir /path/on/the/disk]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

if not __package__:
    # Run as a file from a checkout: make the repository's `teleop` package importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from proving_ground.episode.spec import encode_jpeg
from proving_ground.episode.writer import EpisodeWriter

CONTROL_HZ = 200
FPS = 30
WIDTH, HEIGHT = 640, 480
CAMERAS = ("cam_high", "cam_wrist")
DISTINCT_FRAMES = 24  # per camera; cycled through the episode
SPEC = {
    "name": "bench-arm",
    "joint_names": [f"joint_{i}" for i in range(7)],
    "observations": {
        "qpos": {"shape": [7], "dtype": "float32"},
        "qvel": {"shape": [7], "dtype": "float32"},
    },
    "action": {"shape": [7], "dtype": "float32"},
    "cameras": [{"name": c, "width": WIDTH, "height": HEIGHT, "fps": FPS} for c in CAMERAS],
    "control_hz": CONTROL_HZ,
}


def synthetic_frames(count: int, seed: int) -> list[np.ndarray]:
    """RGB scenes: a lit gradient, a few textured blobs that move, and sensor noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    base = np.stack([x / WIDTH * 160 + 40, y / HEIGHT * 120 + 60, (x + y) / 1120 * 100 + 50], -1)
    texture = 18 * np.sin(x / 7.0)[..., None] * np.cos(y / 11.0)[..., None]
    frames = []
    for k in range(count):
        image = base + texture
        for _ in range(6):
            cx, cy = rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT)
            radius = rng.uniform(30, 90)
            blob = ((x - cx - 4 * k) ** 2 + (y - cy) ** 2) < radius**2
            image[blob] = rng.uniform(0, 255, 3) + 25 * np.sin((x[blob] + y[blob]) / 3)[:, None]
        image += rng.normal(0, 2.5, image.shape)
        frames.append(np.clip(image, 0, 255).astype(np.uint8))
    return frames


def encode_all(raw: list[np.ndarray]) -> tuple[list[bytes], float]:
    """Encoded frames and the mean encoding time per frame in ms."""
    start = time.perf_counter()
    encoded = [encode_jpeg(frame, quality=90) for frame in raw]
    return encoded, (time.perf_counter() - start) / len(raw) * 1e3


def joint_data(seconds: int) -> dict[str, np.ndarray]:
    steps = seconds * CONTROL_HZ
    rng = np.random.default_rng(0)
    return {
        "t": np.arange(steps) / CONTROL_HZ,
        "qpos": rng.normal(size=(steps, 7)).astype(np.float32),
        "qvel": rng.normal(size=(steps, 7)).astype(np.float32),
        "action": rng.normal(size=(steps, 7)).astype(np.float32),
    }


def run_writer(
    path: Path, seconds: int, joints: dict, frames: dict[str, list[bytes]], *, batched: bool
) -> dict:
    flushes = []
    start = time.perf_counter()
    writer = EpisodeWriter(
        path,
        SPEC,
        episode_id=str(uuid.uuid4()),
        robot="bench",
        task_version="bench",
        operator="bench",
        flush_interval_s=3600,  # flushed explicitly, once per second of data
    )
    qpos, qvel, action, t = joints["qpos"], joints["qvel"], joints["action"], joints["t"]
    for second in range(seconds):
        rows = slice(second * CONTROL_HZ, (second + 1) * CONTROL_HZ)
        if batched:
            writer.add_steps(t[rows], {"qpos": qpos[rows], "qvel": qvel[rows]}, action[rows])
        else:
            for i in range(rows.start, rows.stop):
                writer.add_step(t[i], {"qpos": qpos[i], "qvel": qvel[i]}, action[i])
        for cam in CAMERAS:
            cycle = frames[cam]
            for k in range(second * FPS, (second + 1) * FPS):
                writer.add_frame(cam, k / FPS, cycle[k % len(cycle)])
        flush_start = time.perf_counter()
        writer.flush()
        flushes.append(time.perf_counter() - flush_start)
    close_start = time.perf_counter()
    writer.close()
    end = time.perf_counter()
    return {
        "total_s": end - start,
        "write_s": sum(flushes),
        "sync_s": end - close_start,
        "calls_s": close_start - start - sum(flushes),
        "flush_median_ms": statistics.median(flushes) * 1e3,
        "flush_max_ms": max(flushes) * 1e3,
        "size": path.stat().st_size,
    }


def run_tofile(path: Path, seconds: int, joints: dict, frames: dict[str, list[bytes]]) -> dict:
    start = time.perf_counter()
    offsets = dict.fromkeys(CAMERAS, 0)
    with open(path, "wb") as fh:
        for second in range(seconds):
            rows = slice(second * CONTROL_HZ, (second + 1) * CONTROL_HZ)
            for key in ("qpos", "qvel", "action", "t"):
                joints[key][rows].tofile(fh)
            for cam in CAMERAS:
                cycle = frames[cam]
                chosen = [cycle[k % len(cycle)] for k in range(second * FPS, (second + 1) * FPS)]
                np.frombuffer(b"".join(chosen), np.uint8).tofile(fh)
                lengths = np.array([len(b) for b in chosen], np.int64)
                index = np.stack([offsets[cam] + np.cumsum(lengths) - lengths, lengths], 1)
                offsets[cam] += int(lengths.sum())
                index.tofile(fh)
                (np.arange(second * FPS, (second + 1) * FPS) / FPS).tofile(fh)
        fh.flush()
        sync_start = time.perf_counter()
        os.fsync(fh.fileno())
    end = time.perf_counter()
    return {
        "total_s": end - start,
        "write_s": sync_start - start,
        "sync_s": end - sync_start,
        "calls_s": 0.0,
        "size": path.stat().st_size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: tmp)")
    args = parser.parse_args()

    print("Preparing frames ...", flush=True)
    raw = synthetic_frames(DISTINCT_FRAMES * len(CAMERAS), seed=1)
    encoded, encode_ms = encode_all(raw)
    frames = {
        cam: encoded[i * DISTINCT_FRAMES : (i + 1) * DISTINCT_FRAMES]
        for i, cam in enumerate(CAMERAS)
    }
    sizes = np.array([len(b) for b in encoded])
    joints = joint_data(args.seconds)

    writer_runs, batched_runs, tofile_runs = [], [], []
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        for run in range(args.runs):
            jobs = [
                (tofile_runs, lambda p: run_tofile(p, args.seconds, joints, frames)),
                (writer_runs, lambda p: run_writer(p, args.seconds, joints, frames, batched=False)),
                (batched_runs, lambda p: run_writer(p, args.seconds, joints, frames, batched=True)),
            ]
            # Rotate the order so no variant always meets a warm or a busy page cache.
            for k in range(len(jobs)):
                results, job = jobs[(run + k) % len(jobs)]
                path = Path(directory) / f"episode-{run}-{k}"
                results.append(job(path))
                path.unlink()

    def median(runs: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    payload = tofile_runs[0]["size"]
    tofile_s = median(tofile_runs, "total_s")
    print()
    print(
        f"{args.seconds} s episode: {args.seconds * CONTROL_HZ} steps x 7 joints at "
        f"{CONTROL_HZ} Hz, {len(CAMERAS)} cameras {WIDTH}x{HEIGHT} at {FPS} fps"
    )
    print(
        f"JPEG q90 (Pillow): {encode_ms:.2f} ms/frame to encode; frames "
        f"{sizes.mean() / 1e3:.1f} KB mean ({sizes.min() / 1e3:.1f}-{sizes.max() / 1e3:.1f} KB)"
    )
    print(f"payload {payload / 1e6:.1f} MB; median of {args.runs} runs")
    print()
    rows = [
        ("numpy.tofile + fsync", tofile_runs),
        ("EpisodeWriter, add_step per step", writer_runs),
        ("EpisodeWriter, add_steps per second", batched_runs),
    ]
    print(f"{'':<38}{'total s':>8}{'MB/s':>6}{'ratio':>7}{'write s':>9}{'sync s':>8}{'calls s':>9}")
    for label, runs in rows:
        total = median(runs, "total_s")
        print(
            f"{label:<38}{total:>8.3f}{payload / total / 1e6:>6.0f}{tofile_s / total:>7.2f}"
            f"{median(runs, 'write_s'):>9.3f}{median(runs, 'sync_s'):>8.3f}"
            f"{median(runs, 'calls_s'):>9.3f}"
        )
    print(
        "write: tofile calls, or the writer's 60 flushes; sync: fsync, or close (end_time, "
        "fsync, rename, directory fsync); calls: add_step/add_steps/add_frame"
    )
    print(
        f"one flush (a second of data): {median(writer_runs, 'flush_median_ms'):.1f} ms median, "
        f"{median(writer_runs, 'flush_max_ms'):.1f} ms max"
    )
    print(f"HDF5 file {writer_runs[0]['size'] / payload:.4f} x the payload size")


if __name__ == "__main__":
    main()
