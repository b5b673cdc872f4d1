"""Exports to LeRobot v3.0 and robomimic, read back with pyarrow, h5py and PyAV.

Three real episodes (our writer, two 640x480 cameras at 30 fps, joints at 200 Hz) with
different labels, one trimmed, are exported once per module to each format; each test reads
one property back. The expected rows are computed here from the recording's own clock
(steps at i / 200 s, frames at j / 30 s), not by the exporter's code. The ``lerobot``
package cannot be installed here (it needs PyTorch), so the LeRobot tests check every file,
field, column and dtype its v3.0 loader reads, with the line of LeRobot's source that reads
it (huggingface/lerobot at 7427f318, package 0.6.2).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import av
import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from proving_ground.episode.reader import EpisodeReader
from proving_ground.exports.common import EXPORTER_VERSION, ExportEpisode, align_episode
from proving_ground.exports.lerobot import export_lerobot
from proving_ground.exports.robomimic import export_robomimic
from tests.core.factories import ARM_SPEC
from tests.teleop.recordings import distinct_frames, record_episode

PROJECT_ROOT = Path(__file__).resolve().parents[3]
FPS = 30
CONTROL_HZ = ARM_SPEC["control_hz"]
JOINTS = ARM_SPEC["joint_names"]
CAMERAS = [c["name"] for c in ARM_SPEC["cameras"]]
VIDEO_KEYS = [f"observation.images.{c}" for c in CAMERAS]


@dataclass(frozen=True)
class Source:
    """One recorded episode and what the export must make of it."""

    episode: ExportEpisode
    seconds: float

    def row_times(self, fps: float, cameras: bool = True) -> np.ndarray:
        """Row instants: from the trim start (or 0) every 1/fps up to the last instant at
        which joints (last at (n-1)/200) and cameras (last at (m-1)/30) both have data."""
        end = (int(self.seconds * CONTROL_HZ) - 1) / CONTROL_HZ
        if cameras:
            end = min(end, (int(self.seconds * FPS) - 1) / FPS)
        if self.episode.end_s is not None:
            end = min(end, self.episode.end_s)
        start = self.episode.start_s or 0.0
        count = math.floor((end - start) * fps + 1e-6) + 1
        return start + np.arange(count) / fps

    def steps(self, fps: float, cameras: bool = True) -> np.ndarray:
        return np.floor(self.row_times(fps, cameras) * CONTROL_HZ + 1e-6).astype(int)

    def frames(self, fps: float) -> np.ndarray:
        return np.floor(self.row_times(fps) * FPS + 1e-6).astype(int)


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> list[Source]:
    folder = tmp_path_factory.mktemp("episodes")
    specs = [
        (
            2.0,
            dict(
                task="Pick up the cube.",
                label={
                    "outcome": "success",
                    "stages_reached": ["reach", "grasp"],
                    "failure_codes": [],
                    "stage_score": 1.0,
                },
                metadata={"lighting": "dim", "attempt": 1},
                split="train",
            ),
        ),
        (
            1.5,
            dict(
                task="Pick up the cube.",
                start_s=0.25,
                end_s=1.25,
                label={
                    "outcome": "failure",
                    "stages_reached": ["reach"],
                    "failure_codes": ["dropped"],
                    "stage_score": 0.5,
                },
                metadata={"lighting": "bright", "attempt": 2},
                split="train",
            ),
        ),
        (2.0, dict(task="Place the cube.", label=None, metadata={"attempt": 3}, split="valid")),
    ]
    out = []
    for i, (seconds, fields) in enumerate(specs):
        episode_id = f"00000000-0000-0000-0000-00000000000{i}"
        path = record_episode(folder / f"{i}.hdf5", seconds=seconds, episode_id=episode_id)
        out.append(Source(ExportEpisode(path=path, episode_id=episode_id, **fields), seconds))
    return out


@pytest.fixture(scope="module")
def lerobot(sources, tmp_path_factory):
    root = tmp_path_factory.mktemp("lerobot") / "dataset"
    result = export_lerobot(
        [s.episode for s in sources], root, fps=FPS, robot_type="aloha-arm", joint_names=JOINTS
    )
    return root, result


@pytest.fixture(scope="module")
def robomimic(sources, tmp_path_factory):
    path = tmp_path_factory.mktemp("robomimic") / "dataset.hdf5"
    return path, export_robomimic([s.episode for s in sources], path)


def _info(root: Path) -> dict:
    return json.loads((root / "meta/info.json").read_text())


def _episodes(root: Path) -> pa.Table:
    return pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet")


def _data(root: Path) -> pa.Table:
    return pq.read_table(root / "data/chunk-000/file-000.parquet")


def _source_rows(
    source: Source, key: str | None, fps: float = FPS, cameras: bool = True
) -> np.ndarray:
    with EpisodeReader(source.episode.path) as reader:
        values = reader.action() if key is None else reader.observation(key)
    return values[source.steps(fps, cameras)]


def _rgb(encoded: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(encoded)).convert("RGB"))


# --------------------------------------------------------------------------------------------
# LeRobot: rows, indices, labels, videos
# --------------------------------------------------------------------------------------------


def test_lerobot_export_lists_every_episode_with_its_length_after_trim_and_resampling(
    lerobot, sources
):
    root, result = lerobot
    episodes = _episodes(root).to_pylist()
    lengths = [len(s.row_times(FPS)) for s in sources]
    assert lengths == [60, 31, 60]  # 2 s, 1.5 s trimmed to [0.25, 1.25], 2 s at 30 fps
    assert [e["episode_index"] for e in episodes] == [0, 1, 2]
    assert [e["pg/episode_id"] for e in episodes] == [s.episode.episode_id for s in sources]
    assert [e["length"] for e in episodes] == lengths
    assert result.num_episodes == 3 and result.num_frames == sum(lengths)
    assert _data(root).num_rows == sum(lengths)
    assert [e["pg/source_from_s"] for e in episodes] == pytest.approx([0.0, 0.25, 0.0])
    assert [e["pg/source_to_s"] for e in episodes] == pytest.approx([59 / 30, 1.25, 59 / 30])


def test_lerobot_index_is_global_and_contiguous_and_frame_index_restarts_per_episode(
    lerobot, sources
):
    root, _ = lerobot
    data = _data(root).to_pydict()
    episodes = _episodes(root).to_pylist()
    total = len(data["index"])
    assert data["index"] == list(range(total))
    for ep in episodes:
        lo, hi = ep["dataset_from_index"], ep["dataset_to_index"]
        assert hi - lo == ep["length"]
        assert data["episode_index"][lo:hi] == [ep["episode_index"]] * ep["length"]
        assert data["frame_index"][lo:hi] == list(range(ep["length"]))
        expected = (np.arange(ep["length"]) / FPS).astype(np.float32)
        assert np.array_equal(np.array(data["timestamp"][lo:hi], dtype=np.float32), expected)
    assert episodes[0]["dataset_from_index"] == 0
    assert episodes[-1]["dataset_to_index"] == total
    assert [e["dataset_from_index"] for e in episodes[1:]] == [
        e["dataset_to_index"] for e in episodes[:-1]
    ]


def test_lerobot_task_index_names_each_episodes_task(lerobot, sources):
    root, _ = lerobot
    tasks = pq.read_table(root / "meta/tasks.parquet").to_pydict()
    by_index = dict(zip(tasks["task_index"], tasks["task"], strict=True))
    data = _data(root).to_pydict()
    for ep, source in zip(_episodes(root).to_pylist(), sources, strict=True):
        assert ep["tasks"] == [source.episode.task]
        rows = data["task_index"][ep["dataset_from_index"] : ep["dataset_to_index"]]
        assert {by_index[i] for i in rows} == {source.episode.task}
    assert tasks["task"] == ["Pick up the cube.", "Place the cube."]


def test_lerobot_actions_and_observations_are_the_source_rows_at_or_before_each_row(
    lerobot, sources
):
    root, _ = lerobot
    data = _data(root)
    for ep, source in zip(_episodes(root).to_pylist(), sources, strict=True):
        rows = data.slice(ep["dataset_from_index"], ep["length"])
        for column, key in (("action", None), ("observation.state", "qpos")):
            exported = np.array(rows.column(column).to_pylist(), dtype=np.float32)
            assert np.array_equal(exported, _source_rows(source, key))
        qvel = np.array(rows.column("observation.qvel").to_pylist(), dtype=np.float32)
        assert np.array_equal(qvel, _source_rows(source, "qvel"))


def test_lerobot_labels_and_metadata_are_extra_episode_columns(lerobot, sources):
    root, _ = lerobot
    for ep, source in zip(_episodes(root).to_pylist(), sources, strict=True):
        label = source.episode.label or {}
        assert ep["pg/outcome"] == label.get("outcome")
        assert ep["pg/stage_score"] == label.get("stage_score")
        assert ep["pg/stages_reached"] == label.get("stages_reached", [])
        assert ep["pg/failure_codes"] == label.get("failure_codes", [])
        assert ep["pg/split"] == source.episode.split
        assert ep["pg/metadata/attempt"] == source.episode.metadata["attempt"]
        assert ep["pg/metadata/lighting"] == source.episode.metadata.get("lighting")
    schema = _episodes(root).schema
    assert schema.field("pg/metadata/attempt").type == pa.int64()
    assert schema.field("pg/metadata/lighting").type == pa.string()


def _decoded_frames(path: Path) -> list[tuple[float, av.VideoFrame]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [(float(f.pts * stream.time_base), f) for f in container.decode(stream)]


def test_lerobot_videos_hold_one_frame_per_row_at_its_timestamp(lerobot):
    root, _ = lerobot
    episodes = _episodes(root).to_pylist()
    total = sum(e["length"] for e in episodes)
    for key in VIDEO_KEYS:
        frames = _decoded_frames(root / f"videos/{key}/chunk-000/file-000.mp4")
        assert len(frames) == total
        times = np.array([t for t, _ in frames])
        for ep in episodes:
            start = ep[f"videos/{key}/from_timestamp"]
            assert ep[f"videos/{key}/to_timestamp"] == pytest.approx(start + ep["length"] / FPS)
            # dataset_reader._query_videos asks for from_timestamp + timestamp, and
            # video_utils.decode_video_frames_pyav accepts the nearest frame within 1e-4 s.
            queries = start + np.arange(ep["length"], dtype=np.float32) / np.float32(FPS)
            nearest = np.abs(times[None, :] - queries[:, None]).min(axis=1)
            assert nearest.max() <= 1e-4


def test_lerobot_video_frames_show_the_camera_frame_latest_at_or_before_their_row(lerobot, sources):
    # The recording cycles through 6 noise images (frame j shows image j % 6); after AV1
    # each decoded row must still be closest to the image its row should hold.
    root, _ = lerobot
    references = np.stack([_rgb(f)[::8, ::8].astype(np.float32) for f in distinct_frames()])
    frames = _decoded_frames(root / f"videos/{VIDEO_KEYS[0]}/chunk-000/file-000.mp4")
    expected = np.concatenate([s.frames(FPS) % len(references) for s in sources])
    for row in range(0, len(frames), 7):
        image = frames[row][1].to_ndarray(format="rgb24")[::8, ::8].astype(np.float32)
        errors = ((references - image) ** 2).mean(axis=(1, 2, 3))
        assert int(np.argmin(errors)) == expected[row]


def test_lerobot_export_is_reproducible_to_the_byte(lerobot, sources, tmp_path):
    root, first = lerobot
    again = export_lerobot(
        [s.episode for s in sources],
        tmp_path / "again",
        fps=FPS,
        robot_type="aloha-arm",
        joint_names=JOINTS,
    )
    assert again.sha256 == first.sha256
    assert again.files == first.files
    # The checksum is sha256sum's manifest of the sorted files, hashed.
    manifest = "".join(
        f"{hashlib.sha256((root / f).read_bytes()).hexdigest()}  {f}\n" for f in sorted(first.files)
    )
    assert first.sha256 == hashlib.sha256(manifest.encode()).hexdigest()
    assert first.exporter_version == EXPORTER_VERSION == "pg-export/1"
    assert first.size_bytes == sum((root / f).stat().st_size for f in first.files)


@pytest.mark.slow
def test_lerobot_starts_a_new_video_file_once_the_size_limit_would_be_passed(sources, tmp_path):
    root = tmp_path / "small-files"
    export_lerobot(
        [s.episode for s in sources],
        root,
        fps=FPS,
        robot_type="aloha-arm",
        joint_names=JOINTS,
        vcodec="h264",
        video_files_size_in_mb=1,
    )
    info = _info(root)
    assert info["video_files_size_in_mb"] == 1
    assert info["features"][VIDEO_KEYS[0]]["info"]["video.codec"] == "h264"
    key = VIDEO_KEYS[0]
    files: dict[tuple[int, int], list[dict]] = {}
    for ep in _episodes(root).to_pylist():
        files.setdefault(
            (ep[f"videos/{key}/chunk_index"], ep[f"videos/{key}/file_index"]), []
        ).append(ep)
    assert len(files) > 1  # ~0.6 MB an episode here: two fit under 1 MB, three do not
    assert [ep["episode_index"] for eps in files.values() for ep in eps] == [0, 1, 2]
    for (chunk, file), eps in files.items():
        # Episodes chain inside a file; each file starts at time 0.
        assert eps[0][f"videos/{key}/from_timestamp"] == 0.0
        for before, after in zip(eps, eps[1:], strict=False):
            assert after[f"videos/{key}/from_timestamp"] == before[f"videos/{key}/to_timestamp"]
        path = root / info["video_path"].format(video_key=key, chunk_index=chunk, file_index=file)
        assert len(_decoded_frames(path)) == sum(ep["length"] for ep in eps)
        assert path.stat().st_size < 1024 * 1024 or len(eps) == 1


# --------------------------------------------------------------------------------------------
# LeRobot: what its v3.0 loader reads (field, expected, where LeRobot reads it)
# --------------------------------------------------------------------------------------------

INFO_FIELDS = [
    ("codebase_version", "v3.0",
     "dataset_metadata.py:216 check_version_compatibility(repo_id, _version, CODEBASE_VERSION)"),
    ("fps", 30, "utils.py:167 DatasetInfo.fps: int (> 0 at :198); delta timestamps, video rate"),
    ("robot_type", "aloha-arm", "utils.py:185 DatasetInfo.robot_type"),
    ("total_episodes", 3, "dataset_metadata.py:218 load_episodes only if total_episodes > 0"),
    ("total_frames", 151, "utils.py:172; dataset_reader.num_frames falls back to it"),
    ("total_tasks", 2, "dataset_metadata.py:217 load_tasks only if total_tasks > 0"),
    ("chunks_size", 1000, "utils.py:89,176 DEFAULT_CHUNK_SIZE"),
    ("data_files_size_in_mb", 100, "utils.py:90,177 DEFAULT_DATA_FILE_SIZE_IN_MB"),
    ("video_files_size_in_mb", 200, "utils.py:91,178 DEFAULT_VIDEO_FILE_SIZE_IN_MB"),
    ("data_path", "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
     "utils.py:146 DEFAULT_DATA_PATH; dataset_metadata.py:331 get_data_file_path"),
    ("video_path", "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
     "utils.py:147 DEFAULT_VIDEO_PATH; dataset_metadata.py:357 get_video_file_path"),
    ("splits", {"train": "0:2", "valid": "2:3"},
     "utils.py DatasetInfo.splits: split -> 'from:to' episode indices"),
]  # fmt: skip


@pytest.mark.parametrize(("field", "expected", "lerobot_source"), INFO_FIELDS)
def test_lerobot_info_json_field(lerobot, field, expected, lerobot_source):
    assert _info(lerobot[0])[field] == expected, lerobot_source


def test_lerobot_info_json_has_no_field_lerobot_does_not_know(lerobot):
    # utils.py:231 DatasetInfo.from_dict warns on (and drops) unknown fields.
    known = {"features", "tools"} | {field for field, _, _ in INFO_FIELDS}
    assert set(_info(lerobot[0])) <= known


FEATURES = [
    ("timestamp", {"dtype": "float32", "shape": [1], "names": None}),
    ("frame_index", {"dtype": "int64", "shape": [1], "names": None}),
    ("episode_index", {"dtype": "int64", "shape": [1], "names": None}),
    ("index", {"dtype": "int64", "shape": [1], "names": None}),
    ("task_index", {"dtype": "int64", "shape": [1], "names": None}),
    ("action", {"dtype": "float32", "shape": [7], "names": JOINTS}),
    ("observation.state", {"dtype": "float32", "shape": [7], "names": JOINTS}),
    ("observation.qvel", {"dtype": "float32", "shape": [7], "names": JOINTS}),
]


@pytest.mark.parametrize(("name", "expected"), FEATURES)
def test_lerobot_feature_in_info_json(lerobot, name, expected):
    # utils/constants.py:90 DEFAULT_FEATURES; feature_utils.py:68-70 maps dtype and shape.
    assert _info(lerobot[0])["features"][name] == expected


@pytest.mark.parametrize("key", VIDEO_KEYS)
def test_lerobot_camera_feature_in_info_json(lerobot, key):
    feature = _info(lerobot[0])["features"][key]
    # dataset_metadata.video_keys: dtype == "video"; feature_utils.py:64 skips it in parquet.
    assert feature["dtype"] == "video"
    assert feature["shape"] == [480, 640, 3]
    assert feature["names"] == ["height", "width", "channels"]
    # video_utils.py:1201-1208 get_video_info, compared on concatenation at :690-694.
    info = feature["info"]
    assert info["video.height"] == 480 and info["video.width"] == 640
    assert info["video.codec"] == "av1" and info["video.pix_fmt"] == "yuv420p"
    assert info["video.fps"] == FPS and info["video.channels"] == 3
    assert info["has_audio"] is False and info["is_depth_map"] is False
    # configs/video.py:89-92 VideoEncoderConfig defaults; preset 11, what SVT-AV1 4.1 runs
    # for LeRobot's 12 (see the next tests).
    assert (info["video.g"], info["video.crf"], info["video.preset"]) == (2, 30, 11)


# A fresh process: SVT-AV1 reads SVT_LOG once, when the process's first encoder opens.
_EXPORT_ONE = """
import sys
from proving_ground.exports.common import ExportEpisode
from proving_ground.exports.lerobot import export_lerobot
episode = ExportEpisode(path=sys.argv[1], episode_id="e", task="t", end_s=0.2)
export_lerobot([episode], sys.argv[2], fps=30, robot_type="r", joint_names=[])
print("exported")
"""


def _fresh_python(code: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "SVT_LOG"}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**environ, **env},
        check=True,
    )


def test_lerobot_export_prints_nothing_to_stderr(sources, tmp_path, capfd):
    run = _fresh_python(_EXPORT_ONE, str(sources[0].episode.path), str(tmp_path / "quiet"))
    assert run.stdout.strip() == "exported"
    assert run.stderr == ""  # no "Svt[info]: SVT [version]..." banner
    # And in this process, at the file-descriptor level.
    export_lerobot(
        [dataclasses.replace(sources[0].episode, end_s=0.2)],
        tmp_path / "quiet-here",
        fps=FPS,
        robot_type="r",
        joint_names=JOINTS,
    )
    assert "Svt[" not in capfd.readouterr().err


def test_lerobot_info_json_preset_is_the_one_the_encoder_ran(lerobot, sources, tmp_path):
    # SVT_LOG=3 (info) makes SVT-AV1 print the configuration it runs; the export keeps a
    # caller's SVT_LOG.
    run = _fresh_python(
        _EXPORT_ONE, str(sources[0].episode.path), str(tmp_path / "loud"), SVT_LOG="3"
    )
    ran = re.search(r"preset / tune / pred struct\s*:\s*(\d+)", run.stderr)
    assert ran, run.stderr
    info = _info(lerobot[0])["features"][VIDEO_KEYS[0]]["info"]
    assert info["video.preset"] == int(ran.group(1))
    assert json.loads((tmp_path / "loud/meta/info.json").read_text())["features"]


DATA_COLUMNS = [
    ("action", pa.list_(pa.float32(), 7), "feature_utils.py:70 Sequence(length=7, float32)"),
    ("observation.state", pa.list_(pa.float32(), 7), "feature_utils.py:70"),
    ("observation.qvel", pa.list_(pa.float32(), 7), "feature_utils.py:70"),
    ("timestamp", pa.float32(), "feature_utils.py:68 Value; dataset_reader.py:357"),
    ("frame_index", pa.int64(), "feature_utils.py:68 Value"),
    ("episode_index", pa.int64(), "io_utils.load_nested_dataset filter; dataset_reader.py:345"),
    ("index", pa.int64(), "dataset_reader.py:149 column('index')"),
    ("task_index", pa.int64(), "dataset_reader.py:376-377 tasks.iloc[task_index].name"),
]


def test_lerobot_data_parquet_has_exactly_the_declared_columns_in_order(lerobot):
    # feature_utils.get_hf_features_from_features: every non-video feature is a column.
    names = [name for name, _, _ in DATA_COLUMNS]
    assert _data(lerobot[0]).schema.names == names


@pytest.mark.parametrize(("column", "arrow_type", "lerobot_source"), DATA_COLUMNS)
def test_lerobot_data_column_type(lerobot, column, arrow_type, lerobot_source):
    assert _data(lerobot[0]).schema.field(column).type == arrow_type, lerobot_source


EPISODE_COLUMNS = [
    ("episode_index", pa.int64(), "dataset_metadata.py filter_episodes; dataset_reader"),
    ("tasks", pa.list_(pa.string()), "dataset_writer.save_episode: episode_tasks"),
    ("length", pa.int64(), "dataset_metadata.save_episode"),
    ("data/chunk_index", pa.int64(), "dataset_metadata.py:329 get_data_file_path"),
    ("data/file_index", pa.int64(), "dataset_metadata.py:330 get_data_file_path"),
    ("dataset_from_index", pa.int64(), "dataset_reader.py:245 _get_query_indices"),
    ("dataset_to_index", pa.int64(), "dataset_reader.py:246 _get_query_indices"),
    ("meta/episodes/chunk_index", pa.int64(), "dataset_metadata.py:583 (resuming)"),
    ("meta/episodes/file_index", pa.int64(), "dataset_metadata.py:584 (resuming)"),
] + [
    column
    for key in VIDEO_KEYS
    for column in (
        (f"videos/{key}/chunk_index", pa.int64(), "dataset_metadata.py:355 get_video_file_path"),
        (f"videos/{key}/file_index", pa.int64(), "dataset_metadata.py:356 get_video_file_path"),
        (f"videos/{key}/from_timestamp", pa.float64(), "dataset_reader.py:303 _query_videos"),
        (f"videos/{key}/to_timestamp", pa.float64(), "dataset_writer.py _save_episode_video"),
    )
]


@pytest.mark.parametrize(("column", "arrow_type", "lerobot_source"), EPISODE_COLUMNS)
def test_lerobot_episodes_column_type(lerobot, column, arrow_type, lerobot_source):
    assert _episodes(lerobot[0]).schema.field(column).type == arrow_type, lerobot_source


def test_lerobot_every_file_the_episodes_name_exists(lerobot):
    # dataset_reader._check_cached_episodes_sufficient: each episode's data and videos.
    root, _ = lerobot
    info = _info(root)
    for ep in _episodes(root).to_pylist():
        data = info["data_path"].format(
            chunk_index=ep["data/chunk_index"], file_index=ep["data/file_index"]
        )
        assert (root / data).is_file()
        for key in VIDEO_KEYS:
            video = info["video_path"].format(
                video_key=key,
                chunk_index=ep[f"videos/{key}/chunk_index"],
                file_index=ep[f"videos/{key}/file_index"],
            )
            assert (root / video).is_file()


def test_lerobot_tasks_parquet_reads_back_indexed_by_task_text(lerobot):
    # io_utils.py:186 load_tasks: pandas.read_parquet, index named "task" (from pandas
    # metadata, as DataFrame.to_parquet writes it); dataset_reader.py:377 .iloc[i].name.
    table = pq.read_table(lerobot[0] / "meta/tasks.parquet")
    assert table.schema.names == ["task_index", "task"]
    assert table.schema.field("task_index").type == pa.int64()
    assert table.schema.field("task").type == pa.string()
    pandas_meta = json.loads(table.schema.metadata[b"pandas"])
    assert pandas_meta["index_columns"] == ["task"]
    assert table.column("task_index").to_pylist() == [0, 1]


def test_lerobot_stats_cover_every_feature_per_episode_and_overall(lerobot):
    # compute_stats.py: min, max, mean, std, count and q01..q99 (DEFAULT_QUANTILES, :28);
    # io_utils.py:217 load_episodes drops stats/ columns; meta/stats.json feeds normalization.
    root, _ = lerobot
    info, stats = _info(root), json.loads((root / "meta/stats.json").read_text())
    keys = {"min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"}
    assert set(stats) == set(info["features"])
    assert all(set(s) == keys for s in stats.values())
    assert stats["index"]["count"] == [info["total_frames"]]
    image = {k: np.array(v) for k, v in stats[VIDEO_KEYS[0]].items()}
    assert image["mean"].shape == (3, 1, 1)
    assert 0.0 <= image["min"].min() <= image["mean"].min() <= image["max"].max() <= 1.0
    episodes, data = _episodes(root).to_pylist(), _data(root)
    for ep in episodes:
        rows = data.slice(ep["dataset_from_index"], ep["length"])
        actions = np.array(rows.column("action").to_pylist(), dtype=np.float64)
        assert np.allclose(ep["stats/action/mean"], actions.mean(axis=0))
        assert ep["stats/action/count"] == [ep["length"]]
        assert np.array(ep[f"stats/{VIDEO_KEYS[0]}/std"]).shape == (3, 1, 1)
    overall = np.array([ep["stats/action/mean"] for ep in episodes])
    weights = np.array([ep["length"] for ep in episodes])[:, None]
    assert np.allclose(stats["action"]["mean"], (overall * weights).sum(0) / weights.sum())


def test_lerobot_groups_episodes_by_split_so_each_split_is_one_range_in_info_json(
    sources, tmp_path
):
    # Short trims keep the encode quick; input order interleaves the splits.
    splits = ["val", "train", None, "val", "train"]
    episodes = [
        dataclasses.replace(
            sources[i % 2].episode, episode_id=f"ep-{i}", split=split, start_s=None, end_s=0.2
        )
        for i, split in enumerate(splits)
    ]
    root = tmp_path / "split"
    export_lerobot(episodes, root, fps=FPS, robot_type="r", joint_names=JOINTS)
    assert _info(root)["splits"] == {"val": "0:2", "train": "2:4"}
    table = _episodes(root)
    assert table.column("pg/episode_id").to_pylist() == ["ep-0", "ep-3", "ep-1", "ep-4", "ep-2"]
    assert table.column("pg/split").to_pylist() == ["val", "val", "train", "train", None]
    assert table.column("episode_index").to_pylist() == [0, 1, 2, 3, 4]
    # The data rows follow the same order: episode 1 is ep-3's rows.
    data = _data(root)
    assert sorted(set(data.column("episode_index").to_pylist())) == [0, 1, 2, 3, 4]
    provenance = json.loads((root / "meta/pg_export.json").read_text())
    assert provenance["episode_ids"] == ["ep-0", "ep-3", "ep-1", "ep-4", "ep-2"]


def test_lerobot_export_refuses_fps_that_is_not_a_whole_number(sources, tmp_path):
    with pytest.raises(ValueError, match="whole number"):
        export_lerobot(
            [sources[0].episode], tmp_path / "x", fps=29.97, robot_type="r", joint_names=JOINTS
        )


# --------------------------------------------------------------------------------------------
# Both: never a half export, never an overwrite
# --------------------------------------------------------------------------------------------


def test_a_failed_export_leaves_no_dataset_and_no_partial_files(sources, tmp_path):
    broken = ExportEpisode(path=tmp_path / "missing.hdf5", episode_id="gone", task="t")
    with pytest.raises(OSError):
        export_lerobot(
            [sources[0].episode, broken],
            tmp_path / "lerobot",
            fps=FPS,
            robot_type="r",
            joint_names=JOINTS,
        )
    with pytest.raises(OSError):
        export_robomimic([sources[0].episode, broken], tmp_path / "robomimic.hdf5")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_an_export_never_overwrites_an_existing_destination(sources, lerobot, robomimic):
    with pytest.raises(FileExistsError):
        export_lerobot(
            [sources[0].episode], lerobot[0], fps=FPS, robot_type="r", joint_names=JOINTS
        )
    with pytest.raises(FileExistsError):
        export_robomimic([sources[0].episode], robomimic[0])


def test_a_trim_outside_the_recording_is_refused(sources, tmp_path):
    outside = ExportEpisode(
        path=sources[0].episode.path, episode_id="x", task="t", start_s=5.0, end_s=6.0
    )
    with pytest.raises(ValueError, match="nothing to export"):
        export_robomimic([outside], tmp_path / "x.hdf5", include_images=False)
    assert not (tmp_path / "x.hdf5").exists()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"label": {"outcome": "won"}}, "unknown outcome"),
        ({"label": {"failure_codes": "dropped"}}, "list of strings"),
        ({"split": "a/b"}, "split must match"),
        ({"start_s": 2.0, "end_s": 1.0}, "after start_s"),
    ],
)
def test_export_episode_refuses_malformed_input(fields, message):
    with pytest.raises(ValueError, match=message):
        ExportEpisode(path="x.hdf5", episode_id="e", task="t", **fields)


# --------------------------------------------------------------------------------------------
# robomimic
# --------------------------------------------------------------------------------------------


def test_robomimic_holds_every_episode_as_a_demo_with_consistent_counts(robomimic, sources):
    path, result = robomimic
    with h5py.File(path, "r") as f:
        demos = sorted(f["data"], key=lambda name: int(name[5:]))
        assert demos == ["demo_0", "demo_1", "demo_2"]
        counts = [int(f[f"data/{d}"].attrs["num_samples"]) for d in demos]
        assert counts == [len(s.row_times(FPS)) for s in sources] == [60, 31, 60]
        assert int(f["data"].attrs["total"]) == sum(counts) == result.num_frames
        for demo, n in zip(demos, counts, strict=True):
            group = f[f"data/{demo}"]
            for name in ("actions", "rewards", "dones"):
                assert group[name].shape[0] == n
            for key in group["obs"]:
                assert group["obs"][key].shape[0] == n == group["next_obs"][key].shape[0]
        ids = [f[f"data/{d}"].attrs["pg_episode_id"] for d in demos]
        assert ids == [s.episode.episode_id for s in sources]


def test_robomimic_actions_and_observations_are_the_source_rows(robomimic, sources):
    with h5py.File(robomimic[0], "r") as f:
        for i, source in enumerate(sources):
            demo = f[f"data/demo_{i}"]
            assert demo["actions_raw"].shape == (len(source.row_times(FPS)), 7)
            assert np.array_equal(demo["actions_raw"][()], _source_rows(source, None))
            for key in ("qpos", "qvel"):
                obs = demo[f"obs/{key}"][()]
                assert np.array_equal(obs, _source_rows(source, key))
                assert np.array_equal(demo[f"next_obs/{key}"][:-1], obs[1:])
                assert np.array_equal(demo[f"next_obs/{key}"][-1], obs[-1])


def test_robomimic_actions_are_in_minus_one_one_and_the_stored_scale_gives_them_back(
    robomimic, sources
):
    with h5py.File(robomimic[0], "r") as f:
        norm = json.loads(f["data"].attrs["action_normalization"])
        offset, scale = np.array(norm["offset"]), np.array(norm["scale"])
        every = np.concatenate([f[f"data/demo_{i}/actions"][()] for i in range(len(sources))])
        # get_dataset_info.py's check, and each dimension reaches both ends.
        assert every.dtype == np.float32 and np.abs(every).max() <= 1.0
        moving = scale != 1.0
        assert np.allclose(every.min(axis=0)[moving], -1) and np.allclose(
            every.max(axis=0)[moving], 1
        )
        for i, source in enumerate(sources):
            raw = _source_rows(source, None)
            back = f[f"data/demo_{i}/actions"][()] * scale + offset  # as docs/exports.md says
            assert np.allclose(back, raw, atol=1e-5 * np.maximum(1, np.abs(raw)).max())
        assert np.allclose(np.array(norm["min"])[moving], (offset - scale)[moving])


def test_robomimic_can_keep_the_recorded_actions_unnormalized(sources, tmp_path):
    path = tmp_path / "raw.hdf5"
    export_robomimic(
        [sources[0].episode], path, include_images=False, normalize_actions=False, fps=FPS
    )
    with h5py.File(path, "r") as f:
        assert "action_normalization" not in f["data"].attrs
        assert "actions_raw" not in f["data/demo_0"]
        assert np.array_equal(
            f["data/demo_0/actions"][()], _source_rows(sources[0], None, FPS, cameras=False)
        )


def test_robomimic_images_are_the_decoded_camera_frame_of_each_row(robomimic, sources):
    references = [_rgb(f) for f in distinct_frames()]
    with h5py.File(robomimic[0], "r") as f:
        for i, source in enumerate(sources):
            frames = source.frames(FPS) % len(references)
            for cam in CAMERAS:
                images = f[f"data/demo_{i}/obs/{cam}_image"]
                assert images.dtype == np.uint8 and images.shape[1:] == (480, 640, 3)
                for row in (0, 1, len(frames) // 2, len(frames) - 1):
                    assert np.array_equal(images[row], references[frames[row]])
                shifted = f[f"data/demo_{i}/next_obs/{cam}_image"]
                assert np.array_equal(shifted[0], images[1])
                assert np.array_equal(shifted[-1], images[-1])


def test_robomimic_reward_marks_the_end_of_a_success_and_done_the_end_of_every_demo(
    robomimic, sources
):
    with h5py.File(robomimic[0], "r") as f:
        for i, source in enumerate(sources):
            rewards, dones = f[f"data/demo_{i}/rewards"][()], f[f"data/demo_{i}/dones"][()]
            success = (source.episode.label or {}).get("outcome") == "success"
            assert rewards[-1] == (1.0 if success else 0.0) and not rewards[:-1].any()
            assert dones[-1] == 1 and not dones[:-1].any()


def test_robomimic_masks_list_the_demos_of_each_outcome_and_split(robomimic):
    with h5py.File(robomimic[0], "r") as f:
        # file_utils.get_demos_for_filter_key / SequenceDataset.load_demo_info read it so.
        masks = {k: [e.decode("utf-8") for e in np.array(f["mask"][k][:])] for k in f["mask"]}
        assert all(f["mask"][k].dtype.kind == "S" for k in f["mask"])
    assert masks == {
        "success": ["demo_0"],
        "failure": ["demo_1"],
        "partial": [],
        "train": ["demo_0", "demo_1"],
        "valid": ["demo_2"],
    }


def test_robomimic_env_args_and_labels_are_attributes(robomimic, sources):
    with h5py.File(robomimic[0], "r") as f:
        env_args = json.loads(f["data"].attrs["env_args"])
        assert env_args == {"env_name": "proving-ground", "type": 2, "env_kwargs": {}}
        assert f["data"].attrs["pg_exporter_version"] == EXPORTER_VERSION
        for i, source in enumerate(sources):
            attrs = f[f"data/demo_{i}"].attrs
            label = source.episode.label or {}
            assert attrs.get("pg_outcome") == label.get("outcome")
            assert attrs.get("pg_stage_score") == label.get("stage_score")
            stages = [s.decode() if isinstance(s, bytes) else s for s in attrs["pg_stages_reached"]]
            assert stages == label.get("stages_reached", [])
            assert list(attrs["pg_failure_codes"]) == label.get("failure_codes", [])
            assert attrs["pg_split"] == source.episode.split
            assert json.loads(attrs["pg_metadata"]) == source.episode.metadata
            assert attrs["pg_task"] == source.episode.task


def test_robomimic_opens_the_way_robomimic_does(robomimic):
    # robomimic's config defaults to hdf5_use_swmr=True: h5py.File(path, "r", swmr=True).
    with h5py.File(robomimic[0], "r", swmr=True, libver="latest") as f:
        assert f["data/demo_0"].attrs["num_samples"] == 60


def test_robomimic_export_is_reproducible_to_the_byte(robomimic, sources, tmp_path):
    path, first = robomimic
    again = export_robomimic([s.episode for s in sources], tmp_path / path.name)
    assert again.sha256 == first.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert first.files == (path.name,)


def test_robomimic_without_images_keeps_every_control_step(sources, tmp_path):
    path = tmp_path / "low_dim.hdf5"
    result = export_robomimic([s.episode for s in sources], path, include_images=False)
    expected = [len(s.row_times(CONTROL_HZ, cameras=False)) for s in sources]
    assert expected == [400, 201, 400]
    with h5py.File(path, "r") as f:
        assert [f[f"data/demo_{i}"].attrs["num_samples"] for i in range(3)] == expected
        assert sorted(f["data/demo_0/obs"]) == ["qpos", "qvel"]
        assert f["data"].attrs["pg_fps"] == CONTROL_HZ
        for i, source in enumerate(sources):
            actions = f[f"data/demo_{i}/actions_raw"][()]
            assert np.array_equal(actions, _source_rows(source, None, CONTROL_HZ, cameras=False))
    assert result.num_frames == sum(expected)


def test_robomimic_compressed_images_read_back_the_same(robomimic, sources, tmp_path):
    path = tmp_path / "lzf.hdf5"
    export_robomimic([sources[1].episode], path, include_next_obs=False, image_compression="lzf")
    with h5py.File(path, "r") as compressed, h5py.File(robomimic[0], "r") as plain:
        images = compressed[f"data/demo_0/obs/{CAMERAS[0]}_image"]
        assert images.compression == "lzf" and images.chunks == (1, 480, 640, 3)
        assert np.array_equal(images[()], plain[f"data/demo_1/obs/{CAMERAS[0]}_image"][()])
        assert "next_obs" not in compressed["data/demo_0"]


# --------------------------------------------------------------------------------------------
# Alignment on clocks that jitter and streams that start late
# --------------------------------------------------------------------------------------------


class _Clock:
    """A stand-in reader: only the timestamps align_episode reads."""

    def __init__(self, steps: np.ndarray, frames: dict[str, np.ndarray]):
        self._steps, self._frames = steps, frames
        self.num_steps = len(steps)

    def timestamps(self) -> np.ndarray:
        return self._steps

    def frame_count(self, cam: str) -> int:
        return len(self._frames[cam])

    def frame_timestamps(self, cam: str) -> np.ndarray:
        return self._frames[cam]


def test_each_row_takes_the_latest_sample_at_or_before_its_instant_on_a_jittery_clock():
    rng = np.random.default_rng(3)
    steps = 100.0 + np.cumsum(rng.uniform(0.003, 0.007, 2000))  # ~200 Hz with jitter
    frames = 100.0 + np.cumsum(rng.uniform(0.025, 0.04, 300))  # ~30 fps with jitter
    aligned = align_episode(_Clock(steps, {"cam": frames}), 30, cameras=["cam"])
    assert aligned.times_s[0] == max(steps[0], frames[0])
    assert np.allclose(np.diff(aligned.times_s), 1 / 30)
    for t, s, j in zip(aligned.times_s, aligned.steps, aligned.frames["cam"], strict=True):
        assert steps[s] <= t + 1e-6 and (s + 1 == len(steps) or steps[s + 1] > t)
        assert frames[j] <= t + 1e-6 and (j + 1 == len(frames) or frames[j + 1] > t)
    assert aligned.times_s[-1] <= min(steps[-1], frames[-1]) + 1e-6


def test_rows_start_once_every_exported_stream_has_a_sample():
    steps = np.arange(0, 400) / 200
    late = 0.5 + np.arange(0, 30) / 30  # the camera starts half a second in
    aligned = align_episode(_Clock(steps, {"cam": late}), 30, cameras=["cam"])
    assert aligned.source_from_s == pytest.approx(0.5)
    assert aligned.frames["cam"][0] == 0
    assert len(align_episode(_Clock(steps, {"cam": late}), 30, cameras=[])) == 60


def test_a_frame_stamped_on_a_grid_instant_belongs_to_that_row():
    # 0.1 + k / 30 is not exactly representable: a grid instant computed from the first
    # sample may land a few ulps before the frame stamped "at the same time".
    frames = np.array([0.1 + k / 30 for k in range(90)]) + 1e-12
    steps = np.arange(0, 600) / 200 + 0.1
    aligned = align_episode(_Clock(steps, {"cam": frames}), 30, cameras=["cam"])
    assert np.array_equal(aligned.frames["cam"], np.arange(len(aligned)))


# --------------------------------------------------------------------------------------------
# The module and its documentation
# --------------------------------------------------------------------------------------------


def test_the_loading_snippets_in_the_docs_run_on_real_exports(lerobot, robomimic):
    text = (PROJECT_ROOT / "docs/exports.md").read_text()
    snippets = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert len(snippets) >= 2
    for snippet in snippets:
        namespace = {"dataset_dir": str(lerobot[0]), "hdf5_path": str(robomimic[0])}
        exec(compile(snippet, "docs/exports.md", "exec"), namespace)
