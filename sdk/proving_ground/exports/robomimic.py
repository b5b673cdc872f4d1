"""Export episodes as one robomimic HDF5 file.

The structure is robomimic's dataset format (``ARISE-Initiative/robomimic``,
``docs/datasets/overview.md``, read at commit d309eaec) as its loader reads it
(``robomimic/utils/dataset.py`` ``SequenceDataset``, ``robomimic/utils/file_utils.py``)::

    data                attrs: total (rows in all demos), env_args (JSON: env_name, type,
                        env_kwargs); ours: pg_frame_filter ("faces blurred with ...") when
                        a frame filter ran
      demo_<i>          attrs: num_samples; ours, beside them: pg_episode_id, pg_task,
                        pg_outcome, pg_stage_score, pg_stages_reached, pg_failure_codes,
                        pg_split, pg_metadata (JSON), pg_source_from_s, pg_source_to_s
        obs/<key>       (N, *shape) every observation, source dtype
        obs/<cam>_image (N, H, W, 3) uint8 RGB, channel-last (robomimic's image convention)
        next_obs/...    the same keys, row i holding row i + 1 (the last row repeats)
        actions         (N, A) float32 in [-1, 1] (normalize_actions, the default) or as
                        recorded (source dtype)
        actions_raw     (N, A) as recorded, source dtype (with normalize_actions)
        rewards         (N,) float64: 1.0 on the last row of a successful episode, else 0.0
        dones           (N,) int64: 1 on the last row
    mask/<filter key>   demo names as fixed-length bytes: success, failure, partial (always
                        present, possibly empty) and one per split present (train, valid...)

Rows follow the grid of `proving_ground.exports.common.align_episode`, like the LeRobot export.
robomimic has no frame rate; ``fps`` defaults to the lowest camera rate when images are written
(every image row a distinct camera frame) and to the control rate otherwise.

Sizes: images are stored decoded, as robomimic trains on them: 640x480 RGB is 921,600 bytes
a row per camera, about 27.6 MB a second at 30 fps, tens of times our JPEG frames, and
``next_obs`` doubles it. robomimic trains its image policies on small square images (its
image datasets are rendered at 84x84: ``robomimic/scripts/dataset_states_to_obs.py
--camera_height 84 --camera_width 84``): ``image_size=84``
resizes every frame to 84x84 (bilinear with antialiasing, aspect not kept, as a square render
would be), 21,168 bytes a row per camera, 43 times smaller than 640x480. The function keeps
each camera's size by default (``image_size=None``); the server's exports resize to 84 by
default. ``image_compression="gzip"`` (level 4) or ``"lzf"`` compresses each image (HDF5
chunks of one frame, so a training loader reads a frame without decompressing its
neighbours): gzip halved a 640x480 frame of the benchmark scene but ran at about 50 MB/s;
lzf is faster and larger. ``include_images=False`` or ``include_next_obs=False`` drop them
(robomimic's default config loads ``next_obs``; set ``train.hdf5_load_next_obs=False``).

robomimic expects actions normalized to [-1, 1] (``docs/datasets/overview.md``, "Storing
actions"; ``scripts/get_dataset_info.py`` stops on any other): by default ``actions`` are
scaled per dimension to [-1, 1] over the whole export, the recorded ones (joint targets, in
the robot's units) kept as ``actions_raw``, and the offset and scale stored as JSON in
``data.attrs["action_normalization"]`` (``actions_raw = actions * scale + offset``).
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from proving_ground.episode.reader import EpisodeReader
from proving_ground.exports.common import (
    EXPORTER_VERSION,
    OUTCOMES,
    Alignment,
    ExportEpisode,
    ExportResult,
    FrameFilter,
    Layout,
    align_episode,
    check_episodes,
    file_sha256,
    filtered_frame,
    frame_filter_description,
    normalized_label,
    rows_of,
    staged_file,
)

# robomimic/envs/env_base.py EnvType: 1 robosuite, 2 gym, 3 ig_momart. robomimic reads the
# type only to build a simulator for rollouts; a real robot has none, so we declare the
# generic gym type and training runs with experiment.rollout.enabled=False.
ENV_TYPE_GYM = 2
# Images are decoded and written this many rows at a time, to bound memory on long episodes.
_IMAGE_BLOCK_ROWS = 64
#: gzip level of compressed images: level 4 is close to level 9's size at a fraction of its
#: time (h5py's own default level is 4 too).
GZIP_LEVEL = 4
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 8, 1024


def export_robomimic(
    episodes: Sequence[ExportEpisode],
    out_path: Path | str,
    *,
    env_name: str = "proving-ground",
    fps: float | None = None,
    include_images: bool = True,
    include_next_obs: bool = True,
    image_compression: str | None = None,
    normalize_actions: bool = True,
    image_size: int | None = None,
    frame_filter: FrameFilter | None = None,
) -> ExportResult:
    """Write `episodes`, in order, as ``data/demo_0``, ``data/demo_1``, ... of one robomimic
    HDF5 file at `out_path`.

    `fps` (rows per second) sets the grid; None takes the lowest camera rate of the first
    episode when images are written and cameras exist, else its nominal control rate.
    Masks: ``success`` / ``failure`` / ``partial`` from the labels, and one per split.
    `image_compression` is None, ``"gzip"`` (level 4) or ``"lzf"`` (h5py filters, images
    only, chunks of one frame). `image_size` (pixels, 8 to 1024) resizes every camera's
    frames to `image_size` x `image_size`; None keeps each camera's own size.
    `normalize_actions` writes ``actions`` scaled per dimension to [-1, 1] over the whole
    export (robomimic trains on such actions), the recorded ones as ``actions_raw``, and the
    scale as ``data.attrs["action_normalization"]`` (`action_normalization`); False writes the
    recorded actions as ``actions``. `frame_filter` is applied to every camera frame written,
    at the camera's size before any resize (`proving_ground.exports.faces.FaceBlur` blurs
    faces); its description is recorded as ``data.attrs["pg_frame_filter"]``.

    Side effects: creates `out_path` atomically (see `proving_ground.exports.common.staged_file`).
    Raises FileExistsError if it exists, ValueError for inputs that cannot be exported.
    """
    started = time.perf_counter()
    check_episodes(episodes)
    if image_compression not in (None, "gzip", "lzf"):
        raise ValueError("image_compression must be None, 'gzip' or 'lzf'")
    if image_size is not None and not (
        isinstance(image_size, int) and MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE
    ):
        raise ValueError(f"image_size must be an integer from {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE}")
    if any(ep.split in OUTCOMES for ep in episodes):
        raise ValueError(f"a split may not be named like an outcome mask ({', '.join(OUTCOMES)})")
    out_path = Path(out_path)
    with EpisodeReader(episodes[0].path) as first:
        layout = Layout.of(first)
        if fps is None:
            camera_rates = [first.camera_info(c[0]).fps for c in layout.cameras]
            fps = (
                min(camera_rates)
                if include_images and camera_rates
                else first.attrs.get("nominal_hz")
            )
    if fps is None or not fps > 0:
        raise ValueError("fps must be positive (the first episode declares no rate)")
    cameras = [c[0] for c in layout.cameras] if include_images else []
    masks: dict[str, list[str]] = {outcome: [] for outcome in OUTCOMES}
    total = 0
    with staged_file(out_path) as staging:
        with h5py.File(staging, "w") as f:
            data = f.create_group("data")
            for index, episode in enumerate(episodes):
                demo = f"demo_{index}"
                with EpisodeReader(episode.path) as reader:
                    layout.check(reader, episode.episode_id)
                    aligned = align_episode(
                        reader,
                        fps,
                        cameras=cameras,
                        start_s=episode.start_s,
                        end_s=episode.end_s,
                        episode_id=episode.episode_id,
                    )
                    _write_demo(
                        data.create_group(demo),
                        "actions_raw" if normalize_actions else "actions",
                        reader,
                        episode,
                        aligned,
                        cameras,
                        include_next_obs,
                        image_compression,
                        image_size,
                        frame_filter,
                    )
                total += len(aligned)
                outcome = normalized_label(episode).outcome
                if outcome is not None:
                    masks[outcome].append(demo)
                if episode.split is not None:
                    masks.setdefault(episode.split, []).append(demo)
            data.attrs["total"] = total
            if normalize_actions:
                normalization = action_normalization(
                    [data[f"demo_{i}/actions_raw"][()] for i in range(len(episodes))]
                )
                for i in range(len(episodes)):
                    demo = data[f"demo_{i}"]
                    demo.create_dataset(
                        "actions", data=normalized_actions(demo["actions_raw"][()], normalization)
                    )
                data.attrs["action_normalization"] = json.dumps(normalization)
            data.attrs["env_args"] = json.dumps(
                {"env_name": env_name, "type": ENV_TYPE_GYM, "env_kwargs": {}}
            )
            data.attrs["pg_exporter_version"] = EXPORTER_VERSION
            data.attrs["pg_fps"] = float(fps)
            if cameras:
                data.attrs["pg_image_size"] = image_size or 0  # 0: each camera's own size
            filter_note = frame_filter_description(frame_filter) if cameras else None
            if filter_note:  # absent: frames as recorded
                data.attrs["pg_frame_filter"] = filter_note
            data.attrs["pg_alignment"] = (
                f"rows every 1/{fps:g} s from the first instant every stream has a sample; "
                "each row holds the latest control step and camera frame at or before it"
            )
            mask = f.create_group("mask")
            for name, demos in masks.items():
                # file_utils.create_hdf5_filter_key: np.array(demo_keys, dtype="S")
                mask.create_dataset(name, data=np.array(demos, dtype="S" if demos else "S1"))
        sha256 = file_sha256(staging)
        size = staging.stat().st_size
    return ExportResult(
        files=(out_path.name,),
        num_episodes=len(episodes),
        num_frames=total,
        sha256=sha256,
        exporter_version=EXPORTER_VERSION,
        seconds=time.perf_counter() - started,
        size_bytes=size,
        frame_filter=filter_note,
    )


def action_normalization(actions: Sequence[np.ndarray]) -> dict[str, Any]:
    """Per-dimension ``offset`` and ``scale`` that map every row of `actions` (arrays of
    shape (N, A)) into [-1, 1]: ``offset = (max + min) / 2``, ``scale = (max - min) / 2``
    (1 for a constant dimension, which maps to 0). Un-normalize with
    ``raw = normalized * scale + offset``."""
    rows = np.concatenate([np.asarray(a, dtype=np.float64) for a in actions])
    low, high = rows.min(axis=0), rows.max(axis=0)
    scale = (high - low) / 2
    scale[scale == 0] = 1.0
    return {
        "type": "min_max",
        "offset": ((high + low) / 2).tolist(),
        "scale": scale.tolist(),
        "min": low.tolist(),
        "max": high.tolist(),
        "formula": "actions_raw = actions * scale + offset",
    }


def normalized_actions(raw: np.ndarray, normalization: dict[str, Any]) -> np.ndarray:
    """`raw` (N, A) in [-1, 1] by `normalization`, float32 (what robomimic trains on),
    clipped against rounding at the ends."""
    offset = np.asarray(normalization["offset"], dtype=np.float64)
    scale = np.asarray(normalization["scale"], dtype=np.float64)
    values = (np.asarray(raw, dtype=np.float64) - offset) / scale
    return np.clip(values, -1.0, 1.0).astype(np.float32)


def _write_demo(
    group: h5py.Group,
    actions_name: str,
    reader: EpisodeReader,
    episode: ExportEpisode,
    aligned: Alignment,
    cameras: Sequence[str],
    include_next_obs: bool,
    image_compression: str | None,
    image_size: int | None = None,
    frame_filter: FrameFilter | None = None,
) -> None:
    """One episode as ``data/demo_<i>``: observations, images, actions, rewards, dones and
    the label and metadata as attributes."""
    n = len(aligned)
    label = normalized_label(episode)
    group.attrs["num_samples"] = n
    obs = group.create_group("obs")
    next_obs = group.create_group("next_obs") if include_next_obs else None
    for key in reader.observation_keys:
        values = rows_of(reader, key, aligned.steps)
        obs.create_dataset(key, data=values)
        if next_obs is not None:
            next_obs.create_dataset(key, data=np.concatenate([values[1:], values[-1:]]))
    for cam in cameras:
        _write_images(
            reader,
            cam,
            aligned.frames[cam],
            obs,
            next_obs,
            image_compression,
            image_size,
            frame_filter,
        )
    actions = rows_of(reader, None, aligned.steps)
    # SequenceDataset / get_shape_metadata_from_dataset expect actions of shape (N, A).
    group.create_dataset(actions_name, data=actions.reshape(n, -1))
    rewards = np.zeros(n, dtype=np.float64)
    rewards[-1] = 1.0 if label.outcome == "success" else 0.0
    group.create_dataset("rewards", data=rewards)
    dones = np.zeros(n, dtype=np.int64)
    dones[-1] = 1
    group.create_dataset("dones", data=dones)

    attrs: dict[str, Any] = {
        "pg_episode_id": episode.episode_id,
        "pg_task": episode.task,
        "pg_stages_reached": np.array(label.stages_reached, dtype=h5py.string_dtype()),
        "pg_failure_codes": np.array(label.failure_codes, dtype=h5py.string_dtype()),
        "pg_metadata": json.dumps(dict(episode.metadata), sort_keys=True, default=str),
        "pg_source_from_s": aligned.source_from_s,
        "pg_source_to_s": aligned.source_to_s,
    }
    # HDF5 attributes have no null: an absent attribute means "none".
    if label.outcome is not None:
        attrs["pg_outcome"] = label.outcome
    if label.stage_score is not None:
        attrs["pg_stage_score"] = label.stage_score
    if episode.split is not None:
        attrs["pg_split"] = episode.split
    group.attrs.update(attrs)


def _write_images(
    reader: EpisodeReader,
    cam: str,
    frame_rows: np.ndarray,
    obs: h5py.Group,
    next_obs: h5py.Group | None,
    compression: str | None,
    image_size: int | None = None,
    frame_filter: FrameFilter | None = None,
) -> None:
    """Decode the frames the rows use into ``obs/<cam>_image`` (and ``next_obs``), a block of
    rows at a time, filtered by `frame_filter` and then resized to `image_size` squared if
    given; each distinct frame is decoded (filtered, resized) once, frames no row uses not
    at all."""
    from PIL import Image  # Pillow decodes here, so a robomimic export needs no PyAV

    info = reader.camera_info(cam)
    n = len(frame_rows)
    source_shape = (info.height, info.width, 3)
    shape = (n, image_size, image_size, 3) if image_size else (n, *source_shape)
    name = f"{cam}_image"
    # Contiguous unless compressed (filters need chunks: one image each).
    layout: dict[str, Any] = {}
    if compression:
        layout = {"chunks": (1, *shape[1:]), "compression": compression}
        if compression == "gzip":
            layout["compression_opts"] = GZIP_LEVEL
    target = obs.create_dataset(name, shape=shape, dtype=np.uint8, **layout)
    shifted = (
        next_obs.create_dataset(name, shape=shape, dtype=np.uint8, **layout) if next_obs else None
    )
    first, last = int(frame_rows[0]), int(frame_rows[-1])
    encoded = reader.frames(cam, first, last + 1)
    current: np.ndarray | None = None
    current_index = first - 1
    block = np.empty((min(n, _IMAGE_BLOCK_ROWS), *shape[1:]), dtype=np.uint8)
    for block_start in range(0, n, _IMAGE_BLOCK_ROWS):
        rows = frame_rows[block_start : block_start + _IMAGE_BLOCK_ROWS].tolist()
        for i, wanted in enumerate(rows):
            while current_index < wanted:
                data = next(encoded)
                current_index += 1
                if current_index == wanted:
                    image = Image.open(io.BytesIO(data)).convert("RGB")
                    if (image.height, image.width, 3) != source_shape:
                        raise ValueError(
                            f"camera {cam}: a frame is {image.width}x{image.height}, "
                            f"the file says {info.width}x{info.height}"
                        )
                    if frame_filter is not None:
                        # At the camera's size: a face is found before the resize shrinks it.
                        image = Image.fromarray(
                            filtered_frame(frame_filter, np.asarray(image), cam)
                        )
                    if image_size:
                        # Pillow's bilinear filter widens with the scale: it antialiases.
                        image = image.resize((image_size, image_size), Image.Resampling.BILINEAR)
                    current = np.asarray(image)
            block[i] = current
        count = len(rows)
        target[block_start : block_start + count] = block[:count]
        if shifted is not None:
            # next_obs[i] = obs[i + 1]: this block's rows land one row earlier.
            if block_start == 0:
                shifted[0 : count - 1] = block[1:count]
            else:
                shifted[block_start - 1 : block_start + count - 1] = block[:count]
    if shifted is not None:
        shifted[n - 1] = block[(n - 1) % _IMAGE_BLOCK_ROWS]
