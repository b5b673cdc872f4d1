"""proving_ground.replay and scripts/install_rerun_viewer.py, checked with Rerun's own reader.

Every recording is built from a real episode written by our writer, then read back with
`rerun.chunk.RrdReader` (the chunk store of the ``.rrd`` as the viewer loads it) and compared
with the HDF5 file row by row.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import subprocess
import sys
import uuid
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import rerun as rr
from rerun.chunk import RrdReader

from proving_ground import replay as rerun_export
from proving_ground.episode.reader import EpisodeReader
from proving_ground.episode.writer import EpisodeWriter
from tests.core.factories import ARM_SPEC
from tests.teleop.recordings import record_episode

REPO_ROOT = Path(__file__).resolve().parents[2]
ROW_ID = "rerun.controls.RowId"
NS = 1e-9

LABELS = (
    {
        "outcome": "success",
        "stages_reached": ["reach", "grasp"],
        "failure_codes": [],
        "notes": "clean grasp",
        "labeler": "OP-7",
        "created_at": "2026-01-02T03:04:05+00:00",
    },
)
FLAGS = ("low_control_rate", "check_failed:lifted")


# --------------------------------------------------------------------------------------------
# Reading a .rrd back
# --------------------------------------------------------------------------------------------


class Recording:
    """The chunks of one ``.rrd``'s recording store, grouped by entity path."""

    def __init__(self, path: Path):
        reader = RrdReader(path)
        (self.store,) = reader.recordings()
        self.blueprints = reader.blueprints()
        self.temporal: dict[str, list[pa.RecordBatch]] = defaultdict(list)
        self.static: dict[str, list[pa.RecordBatch]] = defaultdict(list)
        for chunk in reader.stream(store=self.store):
            target = self.static if chunk.is_static else self.temporal
            target[chunk.entity_path].append(chunk.to_record_batch())
        self.blueprint_rows = [
            chunk.to_record_batch() for chunk in reader.stream(store=self.blueprints[0])
        ]

    def table(self, entity: str) -> pa.Table:
        """Every temporal row of ``entity``, sorted by time."""
        table = pa.Table.from_batches(self.temporal[entity])
        return table.sort_by("time")

    def seconds(self, entity: str) -> np.ndarray:
        return self.table(entity).column("time").cast(pa.int64()).to_numpy() * NS

    def static_value(self, entity: str, column: str):
        for batch in self.static[entity]:
            if column in batch.schema.names:
                return batch.column(column).to_pylist()[0]
        raise KeyError(f"{entity}:{column}")

    def texts(self, entity: str) -> list[str]:
        return [row[0] for row in self.table(entity).column("TextLog:text").to_pylist()]

    def blobs(self, entity: str) -> list[bytes]:
        column = self.table(entity).column("EncodedImage:blob").combine_chunks()
        # One blob per row: list<list<uint8>>.
        return [column[i].values[0].values.to_numpy().tobytes() for i in range(len(column))]

    def fingerprint(self) -> list[str]:
        """All content except Rerun's own row ids (new for every build), one string per row,
        sorted, so that how rows are cut into chunks does not matter. Blobs are hashed."""
        rows = []
        for kind, groups in (("static", self.static), ("temporal", self.temporal)):
            for entity, batches in groups.items():
                for batch in batches:
                    columns = {
                        name: _plain(batch.column(name))
                        for name in batch.schema.names
                        if name != ROW_ID
                    }
                    for i in range(batch.num_rows):
                        row = {name: values[i] for name, values in columns.items()}
                        rows.append(json.dumps([kind, entity, row], sort_keys=True))
        return sorted(rows)


def _plain(column: pa.Array) -> list:
    """A column as JSON-able values: durations as integer nanoseconds, blobs as SHA-256."""
    if pa.types.is_duration(column.type):
        return column.cast(pa.int64()).to_pylist()
    if column.type == pa.list_(pa.list_(pa.field("item", pa.uint8(), nullable=False))):
        blobs = column.flatten()
        data = blobs.flatten().to_numpy()
        offsets = blobs.offsets.to_numpy()
        offsets = offsets - offsets[0]  # offsets of a sliced array start past zero
        return [
            hashlib.sha256(data[a:b].tobytes()).hexdigest()
            for a, b in zip(offsets[:-1], offsets[1:], strict=True)
        ]
    return column.to_pylist()


def _load_script():
    path = REPO_ROOT / "scripts" / "install_rerun_viewer.py"
    spec = importlib.util.spec_from_file_location("install_rerun_viewer", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def episode(tmp_path_factory) -> Path:
    """2.5 s of the 7-joint arm at 200 Hz and two 640x480 JPEG cameras at 30 fps."""
    return record_episode(tmp_path_factory.mktemp("episode") / "episode.h5", seconds=2.5)


@pytest.fixture(scope="module")
def built(episode, tmp_path_factory):
    out = tmp_path_factory.mktemp("rrd") / "episode.rrd"
    stats = rerun_export.build_recording(episode, out, labels=LABELS, quality_flags=FLAGS)
    return out, stats, Recording(out)


# --------------------------------------------------------------------------------------------
# Content
# --------------------------------------------------------------------------------------------


def test_every_joint_family_is_one_series_per_joint_with_the_files_values_and_times(episode, built):
    _, _, rec = built
    with EpisodeReader(episode) as reader:
        step_times = reader.timestamps()
        expected = {
            "/observations/qpos": reader.observation("qpos"),
            "/observations/qvel": reader.observation("qvel"),
            "/action": reader.action(),
        }
    for entity, values in expected.items():
        table = rec.table(entity)
        assert table.num_rows == len(step_times) == 500
        scalars = np.array(table.column("Scalars:scalars").to_pylist())
        assert scalars.shape == (500, 7)
        np.testing.assert_array_equal(scalars, values.astype(np.float64))
        np.testing.assert_allclose(rec.seconds(entity), step_times - step_times[0], atol=1e-9)
        assert table.column("step").to_pylist() == list(range(500))
        assert rec.static_value(entity, "SeriesLines:names") == ARM_SPEC["joint_names"]


def test_time_runs_from_zero_to_the_episode_end(episode, built):
    _, _, rec = built
    with EpisodeReader(episode) as reader:
        duration = reader.duration_s
    for entity in ("/observations/qpos", "/cameras/cam_high", "/cameras/cam_wrist"):
        seconds = rec.seconds(entity)
        assert seconds[0] == pytest.approx(0.0, abs=1e-9)
        assert seconds[-1] <= duration + 1e-9
    assert rec.seconds("/observations/qpos")[-1] == pytest.approx(duration, abs=1e-9)


def test_camera_frames_are_the_same_jpeg_bytes_at_their_times(episode, built):
    _, stats, rec = built
    with EpisodeReader(episode) as reader:
        for cam in ("cam_high", "cam_wrist"):
            entity = f"/cameras/{cam}"
            frames = list(reader.frames(cam))
            assert len(frames) == 75
            assert rec.blobs(entity) == frames  # byte for byte: never re-encoded
            media = rec.table(entity).column("EncodedImage:media_type").to_pylist()
            assert media == [["image/jpeg"]] * 75
            times = reader.frame_timestamps(cam)
            np.testing.assert_allclose(rec.seconds(entity), times - reader.timestamps(0, 1)[0])
            # A frame's step is the last control step at or before it.
            steps = rec.table(entity).column("step").to_numpy()
            assert (steps == np.floor(times * 200 + 1e-9).astype(int)).all()
    assert stats.frames_logged == {"cam_high": 75, "cam_wrist": 75}


def test_stages_labels_and_quality_flags_are_events_on_the_timeline(episode, built):
    _, _, rec = built
    with EpisodeReader(episode) as reader:
        duration = reader.duration_s
    assert rec.texts("/events/stages") == ["stage reached: reach", "stage reached: grasp"]
    np.testing.assert_allclose(rec.seconds("/events/stages"), [0.5, 1.0])
    assert rec.table("/events/stages").column("step").to_pylist() == [100, 200]

    (label,) = rec.texts("/events/labels")
    assert label.startswith("label: success; stages reached: reach, grasp")
    assert "notes: clean grasp" in label and "OP-7" in label
    np.testing.assert_allclose(rec.seconds("/events/labels"), [duration])

    assert rec.texts("/events/quality") == [f"quality flag: {flag}" for flag in FLAGS]
    np.testing.assert_allclose(rec.seconds("/events/quality"), [0.0, 0.0])
    levels = rec.table("/events/quality").column("TextLog:level").to_pylist()
    assert levels == [["WARN"], ["WARN"]]


def test_interventions_are_events_and_png_cameras_keep_their_media_type(tmp_path):
    from PIL import Image

    spec = {
        **ARM_SPEC,
        "name": "aloha-arm",
        "cameras": [{"name": "cam_top", "width": 64, "height": 48, "fps": 10}],
    }
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(buffer, format="PNG")
    png = buffer.getvalue()
    path = tmp_path / "png.h5"
    with EpisodeWriter(
        path,
        spec,
        episode_id=str(uuid.uuid4()),
        robot="r",
        task_version="t",
        operator="OP-1",
        camera_encoding="png",
    ) as writer:
        for i in range(200):
            q = np.zeros(7, np.float32)
            writer.add_step(10.0 + i / 200, {"qpos": q, "qvel": q}, q)
        for j in range(10):
            writer.add_frame("cam_top", 10.0 + j / 10, png)
        writer.add_event("intervention_start", "slipped", 10.25)
        writer.add_event("intervention_end", "", 10.75)
    out = tmp_path / "png.rrd"
    rerun_export.build_recording(path, out)

    rec = Recording(out)
    assert rec.texts("/events/interventions") == [
        "intervention started: slipped",
        "intervention ended",
    ]
    np.testing.assert_allclose(rec.seconds("/events/interventions"), [0.25, 0.75])
    assert rec.blobs("/cameras/cam_top") == [png] * 10
    media = rec.table("/cameras/cam_top").column("EncodedImage:media_type").to_pylist()
    assert media == [["image/png"]] * 10
    assert "/events/labels" not in rec.temporal and "/events/quality" not in rec.temporal


def test_versions_are_stored_in_the_recording(episode, built):
    _, stats, rec = built
    props = "/__properties/proving_ground"
    assert rec.static_value(props, "rerun_version") == [rr.__version__]
    assert rec.static_value(props, "exporter_version") == [rerun_export.EXPORTER_VERSION]
    meta = rec.static_value("/meta", "TextDocument:text")[0]
    assert f"| rerun | {rr.__version__} |" in meta
    assert f"| exporter | {rerun_export.EXPORTER_VERSION} |" in meta
    assert stats.rerun_version == rerun_export.RERUN_VERSION == rr.__version__
    with EpisodeReader(episode) as reader:
        episode_id = reader.attrs["episode_id"]
    assert rec.store.recording_id == episode_id
    assert rec.store.application_id == "proving-ground"


def test_blueprint_puts_cameras_left_and_one_plot_per_family_right(built):
    _, _, rec = built
    fields: dict[str, dict] = defaultdict(dict)
    for batch in rec.blueprint_rows:
        entity = batch.schema.metadata[b"rerun:entity_path"].decode()
        for name in batch.schema.names:
            if ":" in name and not pa.types.is_timestamp(batch.schema.field(name).type):
                fields[entity.lstrip("/")][name] = batch.column(name).to_pylist()[0]
    views = {
        path: (f["ViewBlueprint:class_identifier"][0], f["ViewBlueprint:space_origin"][0])
        for path, f in fields.items()
        if "ViewBlueprint:class_identifier" in f
    }
    (root,) = [
        f["ContainerBlueprint:contents"]
        for f in fields.values()
        if f.get("ContainerBlueprint:col_shares")
    ]
    left, right = (fields[child]["ContainerBlueprint:contents"] for child in root)
    assert [views[v] for v in left] == [
        ("2D", "/cameras/cam_high"),
        ("2D", "/cameras/cam_wrist"),
    ]
    assert [views[v] for v in right if v in views] == [
        ("TimeSeries", "/observations/qpos"),
        ("TimeSeries", "/observations/qvel"),
        ("TimeSeries", "/action"),
    ]
    titles = [fields[v]["ViewBlueprint:display_name"][0] for v in right if v in views]
    assert titles == ["joint positions", "joint velocities", "actions"]
    assert fields["time_panel"]["TimePanelBlueprint:timeline"] == ["time"]


# --------------------------------------------------------------------------------------------
# Size, stats, idempotence, files
# --------------------------------------------------------------------------------------------


def test_recording_is_smaller_than_1_2x_the_episode_and_stats_match(episode, built):
    out, stats, _ = built
    assert stats.size_bytes == out.stat().st_size
    assert stats.size_bytes < 1.2 * episode.stat().st_size
    assert stats.scalars_logged == 500 * 7 * 3
    assert stats.seconds > 0


def test_building_twice_gives_the_same_recording(episode, built, tmp_path):
    _, _, first = built
    out = tmp_path / "again.rrd"
    rerun_export.build_recording(episode, out, labels=LABELS, quality_flags=FLAGS)
    second = Recording(out)
    assert second.store == first.store
    assert second.fingerprint() == first.fingerprint()


def test_building_twice_gives_the_same_bytes_and_rerun_verifies_the_file(episode, built, tmp_path):
    # Rerun draws chunk ids, row ids, the blueprint's ids and the footer's column order at
    # random; replay_ids fixes them, so the whole file is the same, footer included.
    out = tmp_path / "again.rrd"
    rerun_export.build_recording(episode, out, labels=LABELS, quality_flags=FLAGS)
    assert out.read_bytes() == built[0].read_bytes()
    # Rerun's own CLI loads every chunk and checks the footer (its manifest and checksum).
    verified = subprocess.run(
        [sys.executable, "-m", "rerun", "rrd", "verify", "--check-footers=true", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verified.returncode == 0, verified.stderr
    assert "1 file verified without error" in verified.stdout + verified.stderr


def test_row_ids_count_from_the_episode_start_not_the_clock(episode, built):
    with EpisodeReader(episode) as reader:
        start_ns = rerun_export.iso_to_ns(reader.attrs.get("start_time"))
    assert start_ns
    chunk = next(iter(RrdReader(built[0]).stream(store=built[2].store)))
    rows = chunk.to_record_batch().column(ROW_ID).to_pylist()
    assert [int.from_bytes(r[:8], "big") for r in rows] == [start_ns] * len(rows)
    increments = [int.from_bytes(r[8:], "big") for r in rows]
    assert increments == sorted(increments) and len(set(increments)) == len(increments)


def test_block_sizes_do_not_change_the_recording(episode, built, tmp_path, monkeypatch):
    # Small blocks exercise every block boundary the long episodes hit.
    monkeypatch.setattr(rerun_export, "STEP_ROWS_PER_CHUNK", 64)
    monkeypatch.setattr(rerun_export, "FRAMES_PER_CHUNK", 7)
    out = tmp_path / "blocks.rrd"
    rerun_export.build_recording(episode, out, labels=LABELS, quality_flags=FLAGS)
    assert Recording(out).fingerprint() == built[2].fingerprint()


def test_rebuild_replaces_the_file_and_leaves_no_temporary_files(episode, tmp_path):
    out = tmp_path / "episode.rrd"
    out.write_bytes(b"an older recording")
    rerun_export.build_recording(episode, out)
    assert Recording(out).texts("/events/stages")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["episode.rrd"]


def test_a_failed_build_writes_nothing(tmp_path):
    with pytest.raises(OSError):
        rerun_export.build_recording(tmp_path / "missing.h5", tmp_path / "out.rrd")
    assert list(tmp_path.iterdir()) == []


def test_the_global_recording_is_never_touched(episode, tmp_path):
    rerun_export.build_recording(episode, tmp_path / "episode.rrd")
    assert rr.get_global_data_recording() is None
    assert rr.get_thread_local_data_recording() is None


def test_command_line_builds_and_prints_the_stats(episode, tmp_path):
    out = tmp_path / "cli.rrd"
    result = subprocess.run(
        [sys.executable, "-m", "proving_ground.replay", str(episode), str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    stats = json.loads(result.stdout)
    assert stats["size_bytes"] == out.stat().st_size
    assert stats["frames_logged"] == {"cam_high": 75, "cam_wrist": 75}
    assert stats["rerun_version"] == rr.__version__


# --------------------------------------------------------------------------------------------
# The web viewer's static files
# --------------------------------------------------------------------------------------------


def test_install_script_extracts_the_viewer_with_no_outside_references(tmp_path):
    out = tmp_path / "viewer" / f"rerun-{rr.__version__}"
    command = [sys.executable, str(REPO_ROOT / "scripts" / "install_rerun_viewer.py")]
    first = subprocess.run(
        [*command, "--out", str(out)], capture_output=True, text=True, timeout=120
    )
    assert first.returncode == 0, first.stderr
    assert "installed in" in first.stdout and "already" not in first.stdout

    script = _load_script()
    for name in script.VIEWER_FILES:
        assert (out / name).stat().st_size > 0, name
    assert (out / "re_viewer_bg.wasm").read_bytes()[:4] == b"\0asm"
    for name in script.TEXT_FILES:
        text = (out / name).read_text(encoding="utf-8")
        assert script.outside_references(text) == [], name
        assert "http://" not in text and "https://" not in text, name
        for quote in ('"//', "'//", "=//", "(//"):
            assert quote not in text, (name, quote)
    index = (out / "index.html").read_text(encoding="utf-8")
    assert 'src="re_viewer.js"' in index and '"./re_viewer_bg.wasm"' in index
    assert 'query.getAll("url")' in index  # the viewer takes the .rrd from ?url=
    assert "fonts.googleapis" not in index and "fifteen-thirtyeight" not in index
    marker = json.loads((out / "VERSION").read_text())
    assert marker["rerun_version"] == rr.__version__
    assert set(marker["files"]) == set(script.VIEWER_FILES)

    # Idempotent: a second run sees the marker and touches nothing.
    mtime = (out / "re_viewer_bg.wasm").stat().st_mtime_ns
    second = subprocess.run(
        [*command, "--out", str(out)], capture_output=True, text=True, timeout=120
    )
    assert second.returncode == 0 and "already installed" in second.stdout
    assert (out / "re_viewer_bg.wasm").stat().st_mtime_ns == mtime


def test_a_damaged_viewer_copy_is_not_taken_as_installed(tmp_path):
    script = _load_script()
    out = tmp_path / "viewer"
    out.mkdir()
    files = {name: b"x" for name in script.VIEWER_FILES}
    for name, data in files.items():
        (out / name).write_bytes(data)
    (out / "VERSION").write_text(json.dumps(script._marker(script.rerun_version(), files)))
    assert script.is_installed(out, script.rerun_version())
    (out / "re_viewer.js").write_bytes(b"")
    assert not script.is_installed(out, script.rerun_version())
    assert not script.is_installed(out, "0.0.1")


def test_cleaning_refuses_an_index_html_with_an_unknown_outside_reference():
    script = _load_script()
    html = (
        "<html><head><link rel='preconnect' href='https://fonts.googleapis.com' /></head>"
        "<body><script src='re_viewer.js'></script>"
        "<img src='//cdn.example.com/pixel.gif'></body></html>"
    )
    with pytest.raises(script.InstallError, match="cdn.example.com"):
        script.clean_index_html(html)
    cleaned = script.clean_index_html(html.replace("//cdn.example.com/pixel.gif", "logo.png"))
    assert "googleapis" not in cleaned and "re_viewer.js" in cleaned
