"""Export throughput of a 50-episode view, to LeRobot v3.0 and to robomimic.

Generates the episodes with `proving_ground.episode.writer.EpisodeWriter` (each 5 s: 7 joints at 200
Hz, two 640x480 JPEG cameras at 30 fps; a moving shape over a gradient with light sensor noise),
then, in the same run:

1. baseline: a plain sequential read of the same files' bytes;
2. LeRobot v3.0 (AV1 video, LeRobot's default encoder) at 30 fps;
3. robomimic with decoded images and next_obs (the defaults) at 30 fps;
4. the same with gzip-compressed images (`image_compression="gzip"`);
5. robomimic without images, at the 200 Hz control rate.

Each line prints seconds, source MB/s and the ratio of the export's throughput to the
baseline's (export MB/s over read MB/s of the same source bytes).

    .venv/bin/python bench/bench_export.py [--episodes 50] [--seconds 5] [--keep]

Needs several GB free under the temporary directory for the robomimic file with images
(921,600 bytes a row per camera, twice with next_obs: about 28 GB at the defaults).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from proving_ground.episode.spec import encode_jpeg
from proving_ground.episode.writer import EpisodeWriter
from proving_ground.exports.common import ExportEpisode
from proving_ground.exports.lerobot import export_lerobot
from proving_ground.exports.robomimic import export_robomimic

JOINTS = ["waist", "shoulder", "elbow", "forearm", "wrist_angle", "wrist_rotate", "gripper"]
SPEC = {
    "joint_names": JOINTS,
    "observations": {
        "qpos": {"shape": [7], "dtype": "float32"},
        "qvel": {"shape": [7], "dtype": "float32"},
    },
    "action": {"shape": [7], "dtype": "float32"},
    "cameras": [
        {"name": "cam_high", "width": 640, "height": 480, "fps": 30},
        {"name": "cam_wrist", "width": 640, "height": 480, "fps": 30},
    ],
    "control_hz": 200,
}
DISTINCT_FRAMES = 90  # a 3 s cycle of encoded frames per camera, reused across episodes


def _scene(count: int, seed: int) -> list[bytes]:
    """JPEG frames of a square moving over a gradient, with sensor-like noise (sigma 3)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:480, 0:640]
    background = np.stack([x / 640 * 200 + 30, y / 480 * 160 + 40, 120 + 0 * x], axis=-1)
    frames = []
    for i in range(count):
        image = background.copy()
        cx, cy = 120 + 4 * i, 240 + 80 * np.sin(i / 15)
        inside = (np.abs(x - cx) < 50) & (np.abs(y - cy) < 50)
        image[inside] = (220, 60, 40)
        image += rng.normal(0, 3, image.shape)
        frames.append(encode_jpeg(np.clip(image, 0, 255).astype(np.uint8), quality=90))
    return frames


def _record(folder: Path, episodes: int, seconds: float) -> list[Path]:
    frames = {
        cam["name"]: _scene(DISTINCT_FRAMES, seed) for seed, cam in enumerate(SPEC["cameras"])
    }
    paths = []
    hz = SPEC["control_hz"]
    for e in range(episodes):
        path = folder / f"episode-{e:03d}.hdf5"
        with EpisodeWriter(
            path, SPEC, episode_id=str(uuid.uuid4()), robot="bench", task_version="v1",
            operator="OP-BENCH",
            embodiment="bench-arm",
        ) as writer:  # fmt: skip
            for i in range(int(seconds * hz)):
                t = i / hz
                q = np.sin(t + np.arange(7) + e).astype(np.float32)
                writer.add_step(t, {"qpos": q, "qvel": np.cos(q)}, q)
            for cam in SPEC["cameras"]:
                stream = frames[cam["name"]]
                for j in range(int(seconds * cam["fps"])):
                    writer.add_frame(cam["name"], j / cam["fps"], stream[j % len(stream)])
        paths.append(path)
    return paths


def _read_all(paths: list[Path]) -> int:
    total = 0
    for path in paths:
        with open(path, "rb") as fh:
            while block := fh.read(8 << 20):
                total += len(block)
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="pg-bench-export-"))
    try:
        started = time.perf_counter()
        (work / "episodes").mkdir()
        paths = _record(work / "episodes", args.episodes, args.seconds)
        source_bytes = sum(p.stat().st_size for p in paths)
        print(
            f"{args.episodes} episodes x {args.seconds:g} s (7 joints at 200 Hz, 2 x 640x480 "
            f"JPEG at 30 fps): {source_bytes / 1e6:.0f} MB, recorded in "
            f"{time.perf_counter() - started:.1f} s; {os.cpu_count()} CPUs"
        )
        labels = [{"outcome": ("success", "failure", "partial")[i % 3]} for i in range(len(paths))]
        episodes = [
            ExportEpisode(
                path=p, episode_id=f"ep-{i:03d}", task="Pick up the cube.", label=labels[i],
                split="valid" if i % 10 == 0 else "train",
            )
            for i, p in enumerate(paths)
        ]  # fmt: skip

        _read_all(paths)  # warm the page cache, as the exports will find it
        started = time.perf_counter()
        read = _read_all(paths)
        read_s = time.perf_counter() - started
        read_mb_s = read / 1e6 / read_s
        print(f"{'baseline: sequential read':40s} {read_s:8.2f} s {read_mb_s:9.0f} MB/s")

        runs = [
            ("LeRobot v3.0, AV1, 30 fps", lambda out: export_lerobot(
                episodes, out, fps=30, robot_type="bench-arm", joint_names=JOINTS)),
            ("robomimic, images + next_obs, 30 fps", lambda out: export_robomimic(
                episodes, out.with_suffix(".hdf5"))),
            ("robomimic, images gzip + next_obs, 30 fps", lambda out: export_robomimic(
                episodes, out.with_suffix(".hdf5"), image_compression="gzip")),
            ("robomimic, no images, 200 Hz", lambda out: export_robomimic(
                episodes, out.with_suffix(".hdf5"), include_images=False)),
        ]  # fmt: skip
        for i, (name, run) in enumerate(runs):
            out = work / f"export-{i}"
            result = run(out)
            mb_s = source_bytes / 1e6 / result.seconds
            print(
                f"{name:40s} {result.seconds:8.2f} s {mb_s:9.1f} MB/s  ratio {mb_s / read_mb_s:.4f}"
                f"  ({result.num_frames} rows, {result.size_bytes / 1e6:.0f} MB written, "
                f"{result.num_frames / result.seconds:.0f} rows/s)"
            )
            if not args.keep:
                shutil.rmtree(out, ignore_errors=True)
                out.with_suffix(".hdf5").unlink(missing_ok=True)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
