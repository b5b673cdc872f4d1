"""The files of a LeRobot v3.0 dataset: where each lives, how parquet and MP4 files are cut
into chunks, how camera frames become video.

Facts from LeRobot's source (``huggingface/lerobot`` at commit 7427f318, package 0.6.2), each
cited where it is used: path templates and size defaults (``src/lerobot/datasets/utils.py``),
``DEFAULT_FEATURES`` (``src/lerobot/utils/constants.py``), encoder defaults
(``src/lerobot/configs/video.py``), the roll-over rule of ``dataset_writer.py``, the video
info of ``video_utils.get_video_info`` and the tasks file of ``io_utils.write_tasks``.

Video: our stored frames are decoded by FFmpeg through PyAV (2-3x faster here than Pillow
for 640x480 JPEG) and encoded with LeRobot's default encoder, SVT-AV1 (``libsvtav1``,
yuv420p, GOP 2, CRF 30, preset 11: see `VIDEO_ENCODERS`), or H.264 (``libx264``) on
request. One MP4 per camera holds consecutive episodes, as LeRobot's writer concatenates
them; each frame's presentation time is its position in the file over ``fps``.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from av.video.reformatter import VideoReformatter

from proving_ground.episode.reader import EpisodeReader
from proving_ground.exports.common import FrameFilter, filtered_frame, sample_rows
from proving_ground.exports.lerobot_stats import stats_image_size

# src/lerobot/datasets/dataset_metadata.py: CODEBASE_VERSION
CODEBASE_VERSION = "v3.0"
# src/lerobot/datasets/utils.py: DEFAULT_CHUNK_SIZE, DEFAULT_*_FILE_SIZE_IN_MB, *_PATH
DEFAULT_CHUNK_SIZE = 1000
DEFAULT_DATA_FILE_SIZE_IN_MB = 100
DEFAULT_VIDEO_FILE_SIZE_IN_MB = 200
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
CHUNK_FILE_PATTERN = "chunk-{chunk_index:03d}/file-{file_index:03d}"
EPISODES_PATH = "meta/episodes/" + CHUNK_FILE_PATTERN + ".parquet"
DATA_PATH = "data/" + CHUNK_FILE_PATTERN + ".parquet"
VIDEO_PATH = "videos/{video_key}/" + CHUNK_FILE_PATTERN + ".mp4"
# Ours, beside LeRobot's files (its loader reads only the paths above): how this was made.
PROVENANCE_PATH = "meta/pg_export.json"

# src/lerobot/utils/constants.py: DEFAULT_FEATURES (every frame carries them)
DEFAULT_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
# src/lerobot/configs/video.py: VideoEncoderConfig defaults (g=2, crf=30, pix_fmt yuv420p,
# libsvtav1 preset 12, fast_decode 0) and get_codec_options' mapping to codec options.
# Preset 11, not LeRobot's 12: the SVT-AV1 4.1 in PyAV 18.1's wheel has presets up to 11 and
# maps 12 to 11 ("Preset M12 is mapped to M11" in its log; the bytes are the same), so we
# ask for what runs and info.json states it (tests read the encoder's own log).
VIDEO_ENCODERS: dict[str, dict[str, Any]] = {
    "libsvtav1": {"g": 2, "crf": 30, "preset": 11, "fast_decode": 0},
    "h264": {"g": 2, "crf": 30, "preset": None, "fast_decode": 0},
}
PIX_FMT = "yuv420p"
# LeRobot's writers use snappy with dictionary encoding; pinned so bytes are reproducible.
PARQUET_OPTIONS: dict[str, Any] = {"compression": "snappy", "use_dictionary": True}
_MB = 1024 * 1024


def arrow_type(shape: tuple[int, ...], dtype: str) -> pa.DataType:
    """How LeRobot's features become arrow columns (feature_utils.get_hf_features_from_
    features): shape (1,) is a scalar column, shape (n,) a fixed-size list of n, higher ranks
    nest fixed-size lists."""
    value_type = pa.from_numpy_dtype(np.dtype(dtype))
    if shape == (1,):
        return value_type
    for n in reversed(shape):
        value_type = pa.list_(value_type, n)
    return value_type


def arrow_column(values: np.ndarray, shape: tuple[int, ...]) -> pa.Array:
    """(rows, *shape) numpy -> an arrow array of `arrow_type` (no per-row Python objects)."""
    rows = values.shape[0]
    if shape == (1,):
        return pa.array(values.reshape(rows))
    array: pa.Array = pa.array(np.ascontiguousarray(values).reshape(-1))
    for n in reversed(shape):
        array = pa.FixedSizeListArray.from_arrays(array, n)
    return array


class _Shards:
    """Chunk/file numbering and LeRobot's roll-over rule, shared by data and video files."""

    def __init__(self, chunks_size: int, limit_mb: int):
        self.chunks_size, self.limit_bytes = chunks_size, limit_mb * _MB
        self.chunk = self.file = 0
        self.rows_in_file = 0
        self.open = False

    def roll_needed(self, path: Path, rows: int) -> bool:
        """True if the open file, plus `rows` more at its average row size, would reach the
        limit (dataset_writer._save_episode_data's rule)."""
        if not self.open or self.rows_in_file == 0:
            return False
        size = path.stat().st_size if path.exists() else 0
        return size + size / self.rows_in_file * rows >= self.limit_bytes

    def advance(self) -> None:
        # utils.update_chunk_file_indices
        if self.file == self.chunks_size - 1:
            self.chunk, self.file = self.chunk + 1, 0
        else:
            self.file += 1
        self.rows_in_file = 0


class DataFiles(_Shards):
    def __init__(self, root: Path, schema: pa.Schema, chunks_size: int, limit_mb: int):
        super().__init__(chunks_size, limit_mb)
        self.root, self.schema = root, schema
        self.writer: pq.ParquetWriter | None = None

    def path(self) -> Path:
        return self.root / DATA_PATH.format(chunk_index=self.chunk, file_index=self.file)

    def write_episode(self, table: pa.Table) -> tuple[int, int]:
        if self.roll_needed(self.path(), table.num_rows):
            self.close()
            self.advance()
        if self.writer is None:
            self.path().parent.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(self.path(), self.schema, **PARQUET_OPTIONS)
            self.open = True
        # One row group per episode, as io_utils.write_table_one_row_group_per_episode.
        self.writer.write_table(table, row_group_size=max(1, table.num_rows))
        self.rows_in_file += table.num_rows
        return self.chunk, self.file

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer, self.open = None, False


class VideoFiles(_Shards):
    """One camera's MP4 files: frames get pts = their position in the file (time base
    1/fps), so an episode's frames sit at ``from_timestamp + frame_index / fps``."""

    def __init__(
        self, root: Path, key: str, fps: int, size: tuple[int, int], vcodec: str,
        chunks_size: int, limit_mb: int,
    ):  # fmt: skip
        super().__init__(chunks_size, limit_mb)
        self.root, self.key, self.fps, self.size, self.vcodec = root, key, fps, size, vcodec
        self.container: Any = None
        self.stream: Any = None
        # Bytes and frames the encoder has handed out so far in this file. The encoder holds
        # back its lookahead (tens of frames), so the file on disk lags the frames sent.
        self.encoded_bytes = self.encoded_frames = 0

    def path(self) -> Path:
        return self.root / VIDEO_PATH.format(
            video_key=self.key, chunk_index=self.chunk, file_index=self.file
        )

    def begin_episode(self, rows: int) -> tuple[int, int, float]:
        """Open or roll the file for an episode of `rows` frames: (chunk, file, from_s)."""
        if self.roll_needed(self.path(), rows):
            self.close()
            self.advance()
        if self.container is None:
            self._open()
        return self.chunk, self.file, self.rows_in_file / self.fps

    def roll_needed(self, path: Path, rows: int) -> bool:
        """LeRobot's rule on the encoded size: the frames sent so far and `rows` more, at the
        average size of the frames encoded so far, would reach the limit."""
        if not self.open or self.encoded_frames == 0:
            return False
        per_frame = self.encoded_bytes / self.encoded_frames
        return per_frame * (self.rows_in_file + rows) >= self.limit_bytes

    def _open(self) -> None:
        self.encoded_bytes = self.encoded_frames = 0
        self.path().parent.mkdir(parents=True, exist_ok=True)
        self.container = av.open(str(self.path()), "w", format="mp4")
        self.stream = self.container.add_stream(
            self.vcodec, rate=self.fps, options=encoder_options(self.vcodec)
        )
        self.stream.width, self.stream.height = self.size
        self.stream.pix_fmt = PIX_FMT
        self.stream.time_base = Fraction(1, self.fps)
        with quiet_svt_log():
            self.stream.codec_context.open()
        self.open = True

    def add(self, frame: av.VideoFrame) -> None:
        frame.pts = self.rows_in_file
        frame.time_base = Fraction(1, self.fps)
        for packet in self.stream.encode(frame):
            self.encoded_bytes += packet.size
            self.encoded_frames += 1
            self.container.mux(packet)
        self.rows_in_file += 1

    def close(self) -> None:
        if self.container is not None:
            for packet in self.stream.encode(None):
                self.container.mux(packet)
            self.container.close()
            self.container = self.stream = None
            self.open = False


def encoder_options(vcodec: str) -> dict[str, str]:
    """The codec options an export opens `vcodec` with (`VIDEO_ENCODERS`' settings)."""
    settings = VIDEO_ENCODERS[vcodec]
    options = {"g": str(settings["g"]), "crf": str(settings["crf"])}
    if vcodec == "libsvtav1":
        options["preset"] = str(settings["preset"])
        # lp=1: one encoder thread. SVT-AV1's thread pool was seen to hang in the final
        # flush on this loaded 2-core machine (an export that never finished); one thread
        # cannot, and keeps the output deterministic.
        options["svtav1-params"] = f"fast-decode={settings['fast_decode']}:lp=1"
    return options


@contextlib.contextmanager
def quiet_svt_log() -> Iterator[None]:
    """SVT-AV1 prints a banner and its configuration to the process's stderr from C
    (``Svt[info]: ...``) when an encoder opens, past PyAV's and FFmpeg's logging. Its only
    switch is the ``SVT_LOG`` variable (0 fatal ... 4 debug), read once, when the first
    encoder of the process opens: open encoders inside this block, which sets ``SVT_LOG=1``
    (errors only) unless the caller set it, and puts the environment back afterwards."""
    if "SVT_LOG" in os.environ:
        yield
        return
    os.environ["SVT_LOG"] = "1"
    try:
        yield
    finally:
        os.environ.pop("SVT_LOG", None)


def encode_camera(
    reader: EpisodeReader,
    cam: str,
    encoding: str,
    frame_rows: np.ndarray,
    video: VideoFiles,
    frame_filter: FrameFilter | None = None,
) -> list[np.ndarray]:
    """Decode the camera frames the rows use, in order, and encode one video frame per row.
    Frames no row uses are skipped undecoded; each one used is filtered by `frame_filter`
    (as RGB, once) when given. Returns small RGB samples (h, w, 3) uint8 of up to 100 rows
    for stats, taken from the filtered frames."""
    decoder = av.CodecContext.create("mjpeg" if encoding == "jpeg" else "png", "r")
    sample_width, sample_height = stats_image_size(*video.size)
    # A reformatter keeps its swscale context between frames of the same size and format;
    # one thread each, since the encoder's threads already take every core.
    to_video, to_sample = VideoReformatter(), VideoReformatter()
    sampled = set(sample_rows(len(frame_rows)).tolist())
    samples: list[np.ndarray] = []
    first, last = int(frame_rows[0]), int(frame_rows[-1])
    encoded = reader.frames(cam, first, last + 1)
    current, current_index = None, first - 1
    for row, wanted in enumerate(frame_rows.tolist()):
        while current_index < wanted:
            data = next(encoded)
            current_index += 1
            if current_index == wanted:
                current = _decode(decoder, data, video.size, cam)
                if frame_filter is not None:
                    current = _filtered(current, frame_filter, cam)
        assert current is not None
        # Limited-range yuv420p, as LeRobot's RGB -> yuv420p conversion produces (JPEG is
        # full range). A new frame per row, so a repeated camera frame is never a frame
        # object the encoder may still hold.
        video.add(
            to_video.reformat(
                current,
                format=PIX_FMT,
                src_color_range=current.color_range or None,
                dst_color_range="MPEG",
                threads=1,
            )
        )
        if row in sampled:
            # Scaled by swscale straight from YUV: a tenth of the cost of full-size RGB.
            small = to_sample.reformat(
                current,
                width=sample_width,
                height=sample_height,
                format="rgb24",
                src_color_range=current.color_range or None,
                threads=1,
            )
            samples.append(small.to_ndarray())
    return samples


def _filtered(frame: av.VideoFrame, frame_filter: FrameFilter, cam: str) -> av.VideoFrame:
    """`frame` as full-range RGB, through `frame_filter`, back as an RGB video frame (the
    encoder's conversion to limited-range yuv420p follows as for any frame)."""
    rgb = frame.reformat(
        format="rgb24", src_color_range=frame.color_range or None, threads=1
    ).to_ndarray()
    return av.VideoFrame.from_ndarray(filtered_frame(frame_filter, rgb, cam), format="rgb24")


def _decode(decoder: Any, data: bytes, size: tuple[int, int], cam: str) -> av.VideoFrame:
    frames = decoder.decode(av.Packet(data))
    if len(frames) != 1:
        raise ValueError(f"camera {cam}: a stored frame did not decode to one image")
    frame = frames[0]
    if (frame.width, frame.height) != size:
        raise ValueError(
            f"camera {cam}: a frame is {frame.width}x{frame.height}, "
            f"the file says {size[0]}x{size[1]}"
        )
    return frame


def video_info(path: Path, vcodec: str) -> dict[str, Any]:
    """video_utils.get_video_info: probed from the file, plus the encoder settings."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        info: dict[str, Any] = {
            "video.height": stream.height,
            "video.width": stream.width,
            "video.codec": stream.codec.canonical_name,
            "video.pix_fmt": stream.pix_fmt,
            "video.fps": int(stream.base_rate),
            "video.channels": 3,
            "has_audio": bool(container.streams.audio),
        }
    settings = VIDEO_ENCODERS[vcodec]
    info.update({f"video.{k}": v for k, v in settings.items() if v is not None})
    info["video.video_backend"] = "pyav"
    info["is_depth_map"] = False
    return info


def write_tasks(path: Path, tasks: list[str]) -> None:
    """meta/tasks.parquet as LeRobot writes it (``DataFrame.to_parquet`` of a frame indexed
    by task text): columns task_index (int64) and task (string), plus the pandas metadata
    that makes ``pandas.read_parquet`` restore ``task`` as the index, which
    ``io_utils.load_tasks`` and ``meta.tasks.iloc[i].name`` rely on."""
    pandas_metadata = {
        "index_columns": ["task"],
        "column_indexes": [
            {
                "name": None,
                "field_name": None,
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": {"encoding": "UTF-8"},
            }
        ],
        "columns": [
            {
                "name": "task_index",
                "field_name": "task_index",
                "pandas_type": "int64",
                "numpy_type": "int64",
                "metadata": None,
            },
            {
                "name": "task",
                "field_name": "task",
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": None,
            },
        ],
        "attributes": {},
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.3.3",  # the pandas whose to_parquet output this mirrors
    }
    schema = pa.schema(
        [("task_index", pa.int64()), ("task", pa.string())],
        metadata={b"pandas": json.dumps(pandas_metadata).encode()},
    )
    table = pa.table(
        {"task_index": pa.array(range(len(tasks)), pa.int64()), "task": tasks}, schema=schema
    )
    pq.write_table(table, path, **PARQUET_OPTIONS)


def write_json(path: Path, data: Any) -> None:
    # lerobot.utils.io_utils.write_json: indent=4, ensure_ascii=False
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=4, ensure_ascii=False)
        fh.write("\n")
