"""Export episodes as a LeRobot dataset, codebase version v3.0.

The layout, field names, dtypes and defaults follow LeRobot's own writer and loader
(``huggingface/lerobot``, read at commit 7427f318, package 0.6.2): the path templates and
size defaults of ``src/lerobot/datasets/utils.py``, the ``DatasetInfo`` fields of the same
file, ``DEFAULT_FEATURES`` of ``src/lerobot/utils/constants.py``, the episode columns written
by ``dataset_writer.py`` / ``dataset_metadata.py``, the statistics of ``compute_stats.py`` and
the encoder defaults of ``src/lerobot/configs/video.py``. ``docs/exports.md`` lists every
field with the line it comes from. The ``lerobot`` package itself needs PyTorch and is not
imported: the tests check the files against the loader's reads instead.

Rows follow the grid of `proving_ground.exports.common.align_episode` at the dataset's ``fps``: one
parquet row and one video frame per row, so a row's ``timestamp`` (``frame_index / fps``) is also
its video frame's presentation time within the episode, which is how LeRobot's loader finds the
frame (``from_timestamp + timestamp``, within 1e-4 s).

This module writes the episode rows, the episode and task tables, ``info.json`` and
``stats.json``; `proving_ground.exports.lerobot_files` knows where files go, how they are cut into
chunks and how camera frames become AV1 (or H.264) video; `proving_ground.exports.lerobot_stats`
computes statistics.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from proving_ground.episode.reader import EpisodeReader
from proving_ground.exports.common import (
    EXPORTER_VERSION,
    ExportEpisode,
    ExportResult,
    FrameFilter,
    Layout,
    align_episode,
    check_episodes,
    frame_filter_description,
    manifest_sha256,
    metadata_columns,
    normalized_label,
    relative_files,
    rows_of,
    staged_directory,
)
from proving_ground.exports.lerobot_files import (
    CODEBASE_VERSION,
    DATA_PATH,
    DEFAULT_CHUNK_SIZE,
    DEFAULT_DATA_FILE_SIZE_IN_MB,
    DEFAULT_FEATURES,
    DEFAULT_VIDEO_FILE_SIZE_IN_MB,
    EPISODES_PATH,
    INFO_PATH,
    PARQUET_OPTIONS,
    PROVENANCE_PATH,
    STATS_PATH,
    TASKS_PATH,
    VIDEO_ENCODERS,
    VIDEO_PATH,
    DataFiles,
    VideoFiles,
    arrow_column,
    arrow_type,
    encode_camera,
    video_info,
    write_json,
    write_tasks,
)
from proving_ground.exports.lerobot_stats import aggregate_stats, image_stats, numeric_stats


def export_lerobot(
    episodes: Sequence[ExportEpisode],
    out_dir: Path | str,
    *,
    fps: float,
    robot_type: str,
    joint_names: Sequence[str],
    vcodec: str = "libsvtav1",
    chunks_size: int = DEFAULT_CHUNK_SIZE,
    data_files_size_in_mb: int = DEFAULT_DATA_FILE_SIZE_IN_MB,
    video_files_size_in_mb: int = DEFAULT_VIDEO_FILE_SIZE_IN_MB,
    frame_filter: FrameFilter | None = None,
) -> ExportResult:
    """Write `episodes` as a LeRobot v3.0 dataset directory at `out_dir`, in input order
    grouped by split (`split_order`), so that info.json's ``splits`` are index ranges.

    `fps` (rows per second, a whole number: LeRobot stores it as an int) sets the grid; pass
    the cameras' rate so that each video frame is a distinct camera frame. `joint_names`
    name the dimensions of every 1-D feature of that length (state, velocities, action).
    `vcodec` is ``"libsvtav1"`` (AV1, LeRobot's default) or ``"h264"``. The other keywords
    are LeRobot's file-size policy. Every episode must have the same observation keys,
    shapes, dtypes and cameras as the first. `frame_filter` is applied to every camera frame
    before it is encoded (`proving_ground.exports.faces.FaceBlur` blurs faces); its
    description is recorded as ``frame_filter`` in ``meta/pg_export.json``.

    Side effects: creates `out_dir` atomically (see
    `proving_ground.exports.common.staged_directory`). Raises FileExistsError if it exists,
    ValueError for inputs that cannot be exported.
    """
    started = time.perf_counter()
    check_episodes(episodes)
    episodes = split_order(episodes)
    fps_int = round(fps)
    if not (fps_int >= 1 and abs(fps - fps_int) < 1e-9):
        raise ValueError(f"fps must be a whole number of frames per second for LeRobot, not {fps}")
    if vcodec not in VIDEO_ENCODERS:
        raise ValueError(f"vcodec must be one of {', '.join(VIDEO_ENCODERS)}")
    if min(chunks_size, data_files_size_in_mb, video_files_size_in_mb) < 1:
        raise ValueError("chunks_size and file sizes must be positive")
    out_dir = Path(out_dir)
    with staged_directory(out_dir) as root:
        writer = _DatasetWriter(
            root, episodes, fps_int, robot_type, tuple(joint_names), vcodec,
            chunks_size, data_files_size_in_mb, video_files_size_in_mb, frame_filter,
        )  # fmt: skip
        total_frames = writer.write()
        files = relative_files(root)
        sha256 = manifest_sha256(root, files)
        size = sum((root / f).stat().st_size for f in files)
    return ExportResult(
        files=files,
        num_episodes=len(episodes),
        num_frames=total_frames,
        sha256=sha256,
        exporter_version=EXPORTER_VERSION,
        seconds=time.perf_counter() - started,
        size_bytes=size,
        frame_filter=writer.frame_filter_note,
    )


def split_order(episodes: Sequence[ExportEpisode]) -> list[ExportEpisode]:
    """`episodes` grouped by split, so that every split is one range of episode indices:
    splits in the order they first appear, episodes keeping their order within a split,
    episodes without a split last. Input already grouped comes back unchanged."""
    names: dict[str | None, int] = {}
    for ep in episodes:
        if ep.split is not None:
            names.setdefault(ep.split, len(names))
    return sorted(episodes, key=lambda ep: names.get(ep.split, len(names)))  # stable


def lerobot_splits(episodes: Sequence[ExportEpisode]) -> dict[str, str]:
    """info.json ``splits`` of episodes in `split_order`: ``{"train": "0:40", "val":
    "40:50"}``, half-open ranges of episode indices. No split anywhere: ``{"train": "0:N"}``
    as LeRobot writes it; episodes without a split, when others have one, are in no range."""
    if all(ep.split is None for ep in episodes):
        return {"train": f"0:{len(episodes)}"}
    ranges: dict[str, list[int]] = {}
    for index, ep in enumerate(episodes):
        if ep.split is not None:
            ranges.setdefault(ep.split, [index, index + 1])[1] = index + 1
    return {name: f"{start}:{stop}" for name, (start, stop) in ranges.items()}


def _feature_name(observation_key: str) -> str:
    return "observation.state" if observation_key == "qpos" else f"observation.{observation_key}"


def _video_key(camera: str) -> str:
    return f"observation.images.{camera}"


class _DatasetWriter:
    def __init__(
        self, root: Path, episodes: Sequence[ExportEpisode], fps: int, robot_type: str,
        joint_names: tuple[str, ...], vcodec: str, chunks_size: int, data_mb: int, video_mb: int,
        frame_filter: FrameFilter | None = None,
    ):  # fmt: skip
        self.root, self.episodes, self.fps = root, episodes, fps
        self.robot_type, self.joint_names, self.vcodec = robot_type, joint_names, vcodec
        self.chunks_size, self.data_mb, self.video_mb = chunks_size, data_mb, video_mb
        self.frame_filter = frame_filter
        self.frame_filter_note: str | None = None  # set by write() when cameras were filtered
        self.tasks: dict[str, int] = {}

    def _names(self, shape: tuple[int, ...]) -> list[str] | None:
        if len(shape) == 1 and shape[0] == len(self.joint_names) and shape != (1,):
            return list(self.joint_names)
        return None

    def _features(self, layout: Layout) -> dict[str, dict[str, Any]]:
        shape, dtype = layout.action
        features = {"action": {"dtype": dtype, "shape": list(shape), "names": self._names(shape)}}
        for key, shape, dtype in layout.observations:
            features[_feature_name(key)] = {
                "dtype": dtype,
                "shape": list(shape),
                "names": self._names(shape),
            }
        for cam, width, height, _encoding in layout.cameras:
            features[_video_key(cam)] = {
                "dtype": "video",
                "shape": [height, width, 3],
                "names": ["height", "width", "channels"],
                "info": None,  # filled from the written file, as LeRobot's update_video_info
            }
        features.update(json.loads(json.dumps(DEFAULT_FEATURES)))
        return features

    def write(self) -> int:
        with EpisodeReader(self.episodes[0].path) as first:
            layout = Layout.of(first)
        if layout.cameras:
            self.frame_filter_note = frame_filter_description(self.frame_filter)
        features = self._features(layout)
        data_features = {k: f for k, f in features.items() if f["dtype"] != "video"}
        schema = pa.schema(
            [(k, arrow_type(tuple(f["shape"]), f["dtype"])) for k, f in data_features.items()]
        )
        data = DataFiles(self.root, schema, self.chunks_size, self.data_mb)
        videos = {
            cam: VideoFiles(
                self.root, _video_key(cam), self.fps, (w, h), self.vcodec,
                self.chunks_size, self.video_mb,
            )
            for cam, w, h, _enc in layout.cameras
        }  # fmt: skip
        rows: list[dict[str, Any]] = []
        stats: list[dict[str, dict[str, np.ndarray]]] = []
        try:
            total = 0
            for index, episode in enumerate(self.episodes):
                row, episode_stats = self._episode(
                    index, episode, layout, data_features, total, data, videos
                )
                rows.append(row)
                stats.append(episode_stats)
                total += row["length"]
        finally:
            data.close()
            for video in videos.values():
                video.close()
        for cam, video in videos.items():
            features[_video_key(cam)]["info"] = video_info(
                self.root / VIDEO_PATH.format(video_key=video.key, chunk_index=0, file_index=0),
                self.vcodec,
            )
        self._write_meta(features, rows, stats, total, bool(videos))
        return total

    def _episode(
        self,
        index: int,
        episode: ExportEpisode,
        layout: Layout,
        data_features: dict[str, dict[str, Any]],
        first_row: int,
        data: DataFiles,
        videos: dict[str, VideoFiles],
    ) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
        task_index = self.tasks.setdefault(episode.task, len(self.tasks))
        with EpisodeReader(episode.path) as reader:
            layout.check(reader, episode.episode_id)
            aligned = align_episode(
                reader,
                self.fps,
                cameras=[c[0] for c in layout.cameras],
                start_s=episode.start_s,
                end_s=episode.end_s,
                episode_id=episode.episode_id,
            )
            n = len(aligned)
            frame_index = np.arange(n, dtype=np.int64)
            values: dict[str, np.ndarray] = {"action": rows_of(reader, None, aligned.steps)}
            for key, _shape, _dtype in layout.observations:
                values[_feature_name(key)] = rows_of(reader, key, aligned.steps)
            values["timestamp"] = (frame_index / self.fps).astype(np.float32)
            values["frame_index"] = frame_index
            values["episode_index"] = np.full(n, index, dtype=np.int64)
            values["index"] = first_row + frame_index
            values["task_index"] = np.full(n, task_index, dtype=np.int64)
            table = pa.table(
                {k: arrow_column(values[k], tuple(f["shape"])) for k, f in data_features.items()},
                schema=data.schema,
            )
            chunk, file = data.write_episode(table)
            row: dict[str, Any] = {
                "episode_index": index,
                "tasks": [episode.task],
                "length": n,
                "data/chunk_index": chunk,
                "data/file_index": file,
                "dataset_from_index": first_row,
                "dataset_to_index": first_row + n,
            }
            stats = {k: numeric_stats(values[k]) for k in data_features}
            for cam, _w, _h, encoding in layout.cameras:
                video = videos[cam]
                v_chunk, v_file, from_s = video.begin_episode(n)
                samples = encode_camera(
                    reader, cam, encoding, aligned.frames[cam], video, self.frame_filter
                )
                key = _video_key(cam)
                row[f"videos/{key}/chunk_index"] = v_chunk
                row[f"videos/{key}/file_index"] = v_file
                row[f"videos/{key}/from_timestamp"] = from_s
                row[f"videos/{key}/to_timestamp"] = from_s + n / self.fps
                stats[key] = image_stats(samples)
        row["meta/episodes/chunk_index"] = 0
        row["meta/episodes/file_index"] = 0
        row["pg/source_from_s"] = aligned.source_from_s
        row["pg/source_to_s"] = aligned.source_to_s
        return row, stats

    def _write_meta(
        self,
        features: dict[str, dict[str, Any]],
        rows: list[dict[str, Any]],
        stats: list[dict[str, dict[str, np.ndarray]]],
        total_frames: int,
        has_video: bool,
    ) -> None:
        meta = self.root / "meta"
        (meta / "episodes" / "chunk-000").mkdir(parents=True, exist_ok=True)
        write_tasks(self.root / TASKS_PATH, list(self.tasks))
        columns = {key: [row[key] for row in rows] for key in rows[0]}
        for feature in features:
            for stat in stats[0][feature]:
                columns[f"stats/{feature}/{stat}"] = [s[feature][stat].tolist() for s in stats]
        columns.update(_platform_columns(self.episodes))
        for key in ("pg/source_from_s", "pg/source_to_s"):  # after the labels, for reading
            columns[key] = columns.pop(key)
        table = pa.table({k: _episode_column(k, v) for k, v in columns.items()})
        pq.write_table(
            table, self.root / EPISODES_PATH.format(chunk_index=0, file_index=0), **PARQUET_OPTIONS
        )
        info = {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": self.robot_type,
            "total_episodes": len(rows),
            "total_frames": total_frames,
            "total_tasks": len(self.tasks),
            "chunks_size": self.chunks_size,
            "data_files_size_in_mb": self.data_mb,
            "video_files_size_in_mb": self.video_mb,
            "fps": self.fps,
            # DatasetInfo.splits: split name -> "from:to" episode indices (LeRobot's own
            # writer always says {"train": "0:N"}); ours from the episodes' splits.
            "splits": lerobot_splits(self.episodes),
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if has_video else None,
            "features": features,
        }
        write_json(self.root / INFO_PATH, info)
        aggregated = {
            feature: {
                k: v.tolist() for k, v in aggregate_stats([s[feature] for s in stats]).items()
            }
            for feature in features
        }
        write_json(self.root / STATS_PATH, aggregated)
        write_json(
            self.root / PROVENANCE_PATH,
            {
                "exporter_version": EXPORTER_VERSION,
                "alignment": (
                    f"rows every 1/{self.fps} s from the first instant every stream has a "
                    "sample; each row holds the latest control step and camera frame at or "
                    "before its instant"
                ),
                "episode_ids": [ep.episode_id for ep in self.episodes],
                # What was done to camera frames ("faces blurred with ..."); null: as recorded.
                "frame_filter": self.frame_filter_note,
            },
        )


def _platform_columns(episodes: Sequence[ExportEpisode]) -> dict[str, list[Any]]:
    labels = [normalized_label(ep) for ep in episodes]
    columns: dict[str, list[Any]] = {
        "pg/episode_id": [ep.episode_id for ep in episodes],
        "pg/outcome": [label.outcome for label in labels],
        "pg/stage_score": [label.stage_score for label in labels],
        "pg/stages_reached": [list(label.stages_reached) for label in labels],
        "pg/failure_codes": [list(label.failure_codes) for label in labels],
        "pg/split": [ep.split for ep in episodes],
    }
    for key, values in metadata_columns(episodes).items():
        columns[f"pg/metadata/{key}"] = values
    return columns


_EPISODE_TYPES: dict[str, pa.DataType] = {
    "tasks": pa.list_(pa.string()),
    "pg/episode_id": pa.string(),
    "pg/outcome": pa.string(),
    "pg/stage_score": pa.float64(),
    "pg/stages_reached": pa.list_(pa.string()),
    "pg/failure_codes": pa.list_(pa.string()),
    "pg/split": pa.string(),
    "pg/source_from_s": pa.float64(),
    "pg/source_to_s": pa.float64(),
}


def _episode_column(name: str, values: list[Any]) -> pa.Array:
    """Episode columns with fixed types where values could be all-null or ambiguous; index
    columns int64 and timestamps float64 as LeRobot's writer makes them."""
    if name in _EPISODE_TYPES:
        return pa.array(values, type=_EPISODE_TYPES[name])
    if name.endswith("_index") or name == "length":
        return pa.array(values, type=pa.int64())
    if name.endswith("_timestamp"):
        return pa.array(values, type=pa.float64())
    if name.startswith("stats/"):
        return pa.array(values)  # nested lists of float64 (count: int64)
    present = [v for v in values if v is not None]
    if all(isinstance(v, bool) for v in present):
        return pa.array(values, type=pa.bool_())
    if all(isinstance(v, int) for v in present):
        return pa.array(values, type=pa.int64())
    if all(isinstance(v, float) for v in present):
        return pa.array(values, type=pa.float64())
    return pa.array(values, type=pa.string())
