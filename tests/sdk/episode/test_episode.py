"""The pg-episode/1 format: writer, reader, validator. All files are made by our own writer
(damaged by `hostile_files` where needed); nothing binary is checked in."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from proving_ground.episode.reader import EpisodeReader, Event
from proving_ground.episode.spec import SCHEMA, EmbodimentSpec, encode_jpeg
from proving_ground.episode.validate import validate, validate_isolated
from proving_ground.episode.validate_report import ValidationLimits, ValidationReport
from proving_ground.episode.writer import EpisodeWriter
from tests.teleop import hostile_files
from tests.teleop.hostile_files import HOSTILE_KINDS, SMALL_SPEC, FifoTrap, write_episode

PROJECT_ROOT = Path(__file__).resolve().parents[3]

ALOHA_SPEC: dict[str, Any] = {
    "name": "aloha-arm",
    "joint_names": ["waist", "shoulder", "elbow", "forearm", "wrist_a", "wrist_r", "gripper"],
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


@pytest.fixture(scope="module")
def vga_frames() -> list[bytes]:
    """Four distinct 640x480 JPEGs (gradients plus noise), encoded once for the module."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:480, 0:640]
    frames = []
    for k in range(4):
        image = np.stack([(x + 40 * k) % 256, (y + 25 * k) % 256, (x + y) // 5 % 256], axis=-1)
        image = image + rng.normal(0, 6, image.shape)
        frames.append(encode_jpeg(np.clip(image, 0, 255).astype(np.uint8), quality=90))
    return frames


def _writer(path: Path, spec: dict[str, Any] = SMALL_SPEC, **kwargs: Any) -> EpisodeWriter:
    return EpisodeWriter(
        path,
        spec,
        episode_id=kwargs.pop("episode_id", str(uuid.uuid4())),
        robot="robot-1",
        task_version="task-v1",
        operator="op-7f3a",
        **kwargs,
    )


def _step(i: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    return (
        {"qpos": np.full(7, i, np.float32), "qvel": np.full(7, -i, np.float32)},
        np.full(7, i / 10, np.float32),
    )


@contextlib.contextmanager
def _reads_recorded(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Record every dataset slice and attribute value read through h5py's high-level API."""
    reads: list[tuple[str, Any]] = []
    dataset_getitem = h5py.Dataset.__getitem__
    attribute_getitem = h5py.AttributeManager.__getitem__

    def dataset_spy(self: h5py.Dataset, key: Any, *args: Any, **kwargs: Any) -> Any:
        reads.append((self.name, key))
        return dataset_getitem(self, key, *args, **kwargs)

    def attribute_spy(self: h5py.AttributeManager, name: str) -> Any:
        reads.append(("@" + name, None))
        return attribute_getitem(self, name)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", dataset_spy)
    monkeypatch.setattr(h5py.AttributeManager, "__getitem__", attribute_spy)
    yield reads


# -- round trip ---------------------------------------------------------------------------------


def test_round_trip_reads_back_every_step_frame_and_attribute(tmp_path, vga_frames):
    path = tmp_path / "episode.h5"
    episode_id = str(uuid.uuid4())
    steps, seconds = 400, 2.0
    times = np.cumsum(np.full(steps, 0.005)) + 100.0  # a monotonic clock's origin is arbitrary
    rng = np.random.default_rng(1)
    qpos = rng.normal(size=(steps, 7)).astype(np.float32)
    qvel = rng.normal(size=(steps, 7)).astype(np.float32)
    action = rng.normal(size=(steps, 7)).astype(np.float32)
    with _writer(
        path, ALOHA_SPEC, episode_id=episode_id, software={"teleop_stack": "1.2.3"}
    ) as writer:
        for i in range(steps):
            writer.add_step(times[i], {"qpos": qpos[i], "qvel": qvel[i]}, action[i])
        for c, cam in enumerate(("cam_high", "cam_wrist")):
            for k in range(int(seconds * 30)):
                writer.add_frame(cam, 100.0 + k / 30, vga_frames[(k + c) % len(vga_frames)])

    with EpisodeReader(path) as reader:
        assert reader.num_steps == steps
        assert not reader.truncated
        assert reader.duration_s == pytest.approx(times[-1] - times[0])
        np.testing.assert_array_equal(reader.timestamps(), times)
        np.testing.assert_array_equal(reader.observation("qpos", 0, None), qpos)
        np.testing.assert_array_equal(reader.observation("qvel", 10, 20), qvel[10:20])
        np.testing.assert_array_equal(reader.action(), action)
        assert reader.observation_keys == ["qpos", "qvel"]
        assert reader.cameras == ["cam_high", "cam_wrist"]
        for c, cam in enumerate(reader.cameras):
            assert reader.frame_count(cam) == 60
            expected = [vga_frames[(k + c) % len(vga_frames)] for k in range(60)]
            assert list(reader.frames(cam)) == expected
            assert reader.frame(cam, -1) == expected[-1]
            np.testing.assert_array_equal(reader.frame_timestamps(cam), 100.0 + np.arange(60) / 30)
            info = reader.camera_info(cam)
            assert (info.encoding, info.width, info.height, info.fps) == ("jpeg", 640, 480, 30.0)
        attrs = reader.attrs
        assert attrs["schema"] == SCHEMA
        assert attrs["episode_id"] == episode_id
        assert (attrs["embodiment"], attrs["robot"], attrs["task_version"]) == (
            "aloha-arm",
            "robot-1",
            "task-v1",
        )
        assert attrs["operator"] == "op-7f3a"
        assert attrs["nominal_hz"] == 200.0
        assert attrs["start_time"].endswith("Z") and attrs["end_time"] >= attrs["start_time"]
        software = json.loads(attrs["software"])
        assert software["teleop_stack"] == "1.2.3" and software["h5py"] == h5py.__version__
        assert reader.spec == EmbodimentSpec.from_dict(ALOHA_SPEC)


def test_events_round_trip_in_recording_order(tmp_path):
    path = tmp_path / "episode.h5"
    with _writer(path) as writer:
        writer.add_event("stage", "grasp", 0.8)
        writer.add_event("intervention_start", "", 1.1)
        writer.add_event("intervention_end", "", 1.4)
        writer.add_event("stage", "lift — ünïcode", 2.0)
    with EpisodeReader(path) as reader:
        assert reader.events() == [
            Event("stage", "grasp", 0.8),
            Event("intervention_start", "", 1.1),
            Event("intervention_end", "", 1.4),
            Event("stage", "lift — ünïcode", 2.0),
        ]


def test_reading_a_frame_range_reads_only_the_bytes_of_those_frames(tmp_path, monkeypatch):
    path = write_episode(tmp_path / "episode.h5", seconds=2.0)
    with EpisodeReader(path) as reader:
        index = reader._file["observations/images/cam_high/index"][:]
        with _reads_recorded(monkeypatch) as reads:
            frames = list(reader.frames("cam_high", 20, 25))
            qpos = reader.observation("qpos", 100, 110)
    assert len(frames) == 5 and qpos.shape == (10, 7)
    data_reads = [key for name, key in reads if name.endswith("cam_high/data")]
    first, last = index[20], index[24]
    assert data_reads, "frames come from slices of the stream"
    for key in data_reads:
        assert isinstance(key, slice)
        assert first[0] <= key.start and key.stop <= last[0] + last[1]
    assert all(isinstance(key, slice) for _, key in reads)
    assert ("/observations/qpos", slice(100, 110)) in reads


def test_steps_are_readable_from_the_partial_while_recording(tmp_path):
    path = tmp_path / "episode.h5"
    with _writer(path, flush_interval_s=1e-3) as writer:
        for i in range(50):
            writer.add_step(i / 200, *_step(i))
        writer.flush()
        with EpisodeReader(writer.partial_path) as live:
            assert live.num_steps == 50 and live.truncated
            np.testing.assert_array_equal(live.observation("qpos")[:, 0], np.arange(50))


def test_writer_refuses_bad_input_and_records_nothing_of_it(tmp_path):
    path = tmp_path / "episode.h5"
    with _writer(path) as writer:
        writer.add_step(0.0, *_step(0))
        obs, action = _step(1)
        with pytest.raises(ValueError, match="keys"):
            writer.add_step(0.1, {"qpos": obs["qpos"]}, action)
        with pytest.raises(ValueError, match="shape"):
            writer.add_step(0.1, {**obs, "qvel": np.zeros(6)}, action)
        with pytest.raises(ValueError, match="not after"):
            writer.add_step(0.0, obs, action)
        with pytest.raises(ValueError, match="not jpeg"):
            writer.add_frame("cam_high", 0.0, b"\x89PNG\r\n\x1a\n....")
        with pytest.raises(KeyError):
            writer.add_frame("cam_nope", 0.0, hostile_files.small_frames()[0])
        with pytest.raises(ValueError, match="kind"):
            writer.add_event("teleport", "x", 0.1)
        writer.add_step(0.1, obs, action)
    with EpisodeReader(path) as reader:
        assert reader.num_steps == 2
        assert reader.frame_count("cam_high") == 0


def test_spec_from_dict_round_trips_and_names_what_is_wrong():
    spec = EmbodimentSpec.from_dict(ALOHA_SPEC)
    assert EmbodimentSpec.from_dict(spec.to_dict()) == spec
    assert spec.observations["qpos"].shape == (7,) and spec.camera("cam_wrist").width == 640
    broken = {**ALOHA_SPEC, "observations": {"images": {"shape": [1], "dtype": "float32"}}}
    with pytest.raises(ValueError, match="reserved"):
        EmbodimentSpec.from_dict(broken)
    with pytest.raises(ValueError, match="dtype"):
        EmbodimentSpec.from_dict({**ALOHA_SPEC, "action": {"shape": [7], "dtype": "object"}})
    with pytest.raises(ValueError, match="control_hz"):
        EmbodimentSpec.from_dict({k: v for k, v in ALOHA_SPEC.items() if k != "control_hz"})


def test_encode_jpeg_gives_a_jpeg_of_the_frame_size():
    from PIL import Image

    encoded = encode_jpeg(np.zeros((48, 64, 3), np.uint8), quality=80)
    import io

    with Image.open(io.BytesIO(encoded)) as image:
        assert (image.format, image.size) == ("JPEG", (64, 48))
    with pytest.raises(ValueError):
        encode_jpeg(np.zeros((48, 64, 4), np.uint8))


# -- crash and atomic close ---------------------------------------------------------------------

_RECORDER = """
import sys, time, uuid
import numpy as np
from proving_ground.episode.writer import EpisodeWriter
from tests.teleop.hostile_files import SMALL_SPEC, small_frames

frames = small_frames()
writer = EpisodeWriter(sys.argv[1], SMALL_SPEC, episode_id=str(uuid.uuid4()), robot="r",
                       task_version="t", operator="op", flush_interval_s=1.0)
start = time.monotonic()
for i in range(200 * 30):
    deadline = start + i / 200
    time.sleep(max(0.0, deadline - time.monotonic()))
    t = time.monotonic() - start
    writer.add_step(t, {"qpos": np.full(7, i), "qvel": np.zeros(7)}, np.zeros(7))
    if i % 7 == 0:
        writer.add_frame("cam_high", t, frames[(i // 7) % len(frames)])
    print(i + 1, repr(t), flush=True)
"""


def test_a_writer_killed_mid_episode_leaves_a_partial_that_reads_and_validates_as_truncated(
    tmp_path,
):
    path = tmp_path / "episode.h5"
    child = subprocess.Popen(
        [sys.executable, "-c", _RECORDER, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )
    # (steps added, time of the last one), one line per step, as the recorder prints them.
    progress: list[tuple[int, float]] = []
    try:
        for line in child.stdout:
            count, t = line.split()
            progress.append((int(count), float(t)))
            if progress[-1][0] >= 500:  # 2.5 s of steps, so at least two flushes happened
                break
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    # Whatever it printed whole before it died counts as recorded too.
    for line in child.stdout.read().split("\n")[:-1]:
        count, t = line.split()
        progress.append((int(count), float(t)))
    recorded, last_t = progress[-1]
    assert recorded >= 500, "the recorder did not get going"

    partial = tmp_path / "episode.h5.partial"
    assert partial.exists() and not path.exists()
    with EpisodeReader(partial) as reader:
        assert reader.truncated
        kept = reader.num_steps
        assert kept <= recorded + 1  # the step being added may be on disk, unprinted
        np.testing.assert_array_equal(reader.observation("qpos")[:, 0], np.arange(kept))
        # "A crash loses at most the last second", in time, not steps: a loaded machine may
        # add steps in a burst to catch up. The writer flushes in the first step after a
        # second has passed, so what is lost spans at most that second plus the longest
        # wait between two steps.
        last_step_t = reader.timestamps(-1)[0]
        longest_gap = max(b[1] - a[1] for a, b in zip(progress, progress[1:], strict=False))
        assert last_t - last_step_t <= 1.0 + longest_gap + 1e-6, (last_t, last_step_t)
        # Frames are flushed with the steps, so they too lose at most that second (a kill in
        # the middle of a flush may land between the joints' datasets and the camera's).
        last_frame_t = reader.frame_timestamps("cam_high")[-1]
        assert last_t - last_frame_t <= 1.0 + longest_gap + 7 / 200, (last_t, last_frame_t)
        assert reader.frame("cam_high", -1) in hostile_files.small_frames()
    report = validate(partial, SMALL_SPEC)
    assert report.ok, report.problems
    assert report.truncated and "truncated" in {p.code for p in report.warnings}
    assert report.num_steps == kept


def test_only_the_partial_exists_before_close_and_only_the_episode_after(tmp_path):
    path = tmp_path / "episode.h5"
    writer = _writer(path)
    writer.add_step(0.0, *_step(0))
    assert os.listdir(tmp_path) == ["episode.h5.partial"]
    assert writer.close() == path
    assert os.listdir(tmp_path) == ["episode.h5"]
    with h5py.File(path, "r") as f:  # a cleanly closed file needs no SWMR to open
        assert "end_time" in f.attrs


def test_abort_removes_the_partial(tmp_path):
    writer = _writer(tmp_path / "episode.h5")
    writer.add_step(0.0, *_step(0))
    writer.abort()
    writer.abort()
    assert os.listdir(tmp_path) == []
    with pytest.raises(RuntimeError):
        writer.add_step(1.0, *_step(1))


def test_an_exception_in_the_block_keeps_what_was_recorded_as_a_truncated_partial(tmp_path):
    path = tmp_path / "episode.h5"
    with pytest.raises(ConnectionError), _writer(path) as writer:
        for i in range(30):
            writer.add_step(i / 200, *_step(i))
        raise ConnectionError("the arm's USB link dropped")
    assert os.listdir(tmp_path) == ["episode.h5.partial"]
    with EpisodeReader(writer.partial_path) as reader:
        assert reader.truncated and reader.num_steps == 30


def test_an_episode_is_never_overwritten(tmp_path):
    path = write_episode(tmp_path / "episode.h5")
    with pytest.raises(FileExistsError):
        _writer(path)


# -- validation -----------------------------------------------------------------------------


def test_a_valid_episode_validates_with_the_summary_the_server_stores(tmp_path):
    path = write_episode(tmp_path / "episode.h5", seconds=2.0)
    report = validate(path, SMALL_SPEC)
    assert report.ok and report.problems == []
    assert not report.truncated
    assert report.num_steps == 400
    assert report.duration_s == pytest.approx(399 / 200)
    assert report.measured_hz == pytest.approx(200, rel=1e-4)
    assert report.frame_counts == {"cam_high": 60}
    assert report.size_bytes == path.stat().st_size
    assert report.attrs["schema"] == SCHEMA and "embodiment_spec" not in report.attrs
    stored = json.loads(json.dumps(report.to_dict()))
    assert stored["ok"] is True
    assert ValidationReport.from_dict(stored) == report


def test_limits_on_rows_count_steps_and_frames_not_stream_bytes(tmp_path):
    path = write_episode(tmp_path / "episode.h5")
    limits = ValidationLimits(max_steps=200)  # the stream holds ~70,000 bytes
    assert validate(path, SMALL_SPEC, limits).ok
    report = validate(path, SMALL_SPEC, ValidationLimits(max_steps=199))
    assert report.codes == {"too_many_steps"}


def test_without_a_spec_every_check_that_needs_none_still_runs(tmp_path):
    assert validate(write_episode(tmp_path / "ok.h5")).ok
    report = validate(hostile_files.nan_in_qpos(tmp_path))
    assert not report.ok and "non_finite" in report.codes


@pytest.mark.parametrize("hostile", HOSTILE_KINDS, ids=[h.kind for h in HOSTILE_KINDS])
def test_a_hostile_file_is_refused_with_its_code(tmp_path, monkeypatch, hostile):
    path = hostile.make(tmp_path)
    limits = ValidationLimits(**hostile.limits)
    with _reads_recorded(monkeypatch) as reads:
        report = validate(path, SMALL_SPEC, limits)
    assert not report.ok
    assert hostile.code in {p.code for p in report.errors}, report.problems
    if hostile.structural:
        assert reads == [], "structure is judged before any data or attribute value is read"


def test_the_hostile_table_covers_every_required_kind():
    assert len(HOSTILE_KINDS) >= 15
    required = {
        "external_link",
        "soft_link",
        "external_storage",
        "virtual_dataset",
        "compression_ratio_too_high",
        "declared_size_too_large",
        "rank_too_high",
        "object_dtype",
        "wrong_dtype",
        "non_finite",
        "non_monotonic_timestamps",
        "missing_dataset",
        "corrupt_file",
        "not_hdf5",
        "empty_file",
    }
    assert required <= {h.code for h in HOSTILE_KINDS}


@pytest.mark.parametrize(
    "make, reach",
    [
        (hostile_files.external_link, lambda f: f["leak"]),
        (hostile_files.external_storage, lambda f: f["observations/leak"][:]),
        (lambda d, t: hostile_files.virtual_dataset(d, source=t), lambda f: f["observations/v"][:]),
    ],
    ids=["external link", "external storage", "virtual dataset"],
)
def test_a_structural_refusal_never_opens_the_file_it_points_to(tmp_path, make, reach):
    watched, control = tmp_path / "watched", tmp_path / "control"
    watched.mkdir()
    control.mkdir()
    trap = FifoTrap(watched / "target")
    report = validate(make(watched, watched / "target"), SMALL_SPEC)
    assert not report.ok
    assert trap.close() == 0
    # The trap works: plain h5py reading the same kind of file does open the target.
    control_trap = FifoTrap(control / "target")
    with h5py.File(make(control, control / "target"), "r") as f, contextlib.suppress(Exception):
        reach(f)
    assert control_trap.close() >= 1


def test_external_storage_at_etc_passwd_is_refused_without_reading_it(tmp_path):
    path = hostile_files.external_storage(tmp_path, "/etc/passwd")
    report = validate(path, SMALL_SPEC)
    assert report.codes == {"external_storage"}
    assert "root:" not in json.dumps(report.to_dict())


def test_a_file_a_writer_left_open_reads_without_swmr_and_without_changing_it(tmp_path):
    path = write_episode(tmp_path / "episode.h5")
    with h5py.File(path, "r+") as f:
        del f.attrs["end_time"]
    hostile_files.mark_left_open(path)
    before = path.read_bytes()
    with pytest.raises(OSError, match="already open for write"):
        h5py.File(path, "r")
    with EpisodeReader(path) as reader:
        assert reader.truncated and reader.num_steps == 200
    assert validate(path, SMALL_SPEC).ok
    assert path.read_bytes() == before


def test_a_crashed_prefix_with_unequal_lengths_is_judged_on_the_shortest(tmp_path):
    path = write_episode(tmp_path / "episode.h5")
    with h5py.File(path, "r+") as f:
        del f.attrs["end_time"]
        f["action"].resize(190, axis=0)
    with EpisodeReader(path) as reader:
        assert reader.truncated and reader.num_steps == 190
    report = validate(path, SMALL_SPEC)
    assert report.ok and report.num_steps == 190
    assert {p.code for p in report.warnings} == {"truncated", "length_mismatch"}


def test_a_slow_control_loop_is_a_warning(tmp_path):
    path = write_episode(tmp_path / "episode.h5", step_hz=150)
    report = validate(path, SMALL_SPEC)
    assert report.ok and report.measured_hz == pytest.approx(150, rel=1e-4)
    assert "control_rate_low" in {p.code for p in report.warnings}


def test_a_frozen_camera_is_a_warning(tmp_path):
    frame = hostile_files.small_frames()[0]
    path = write_episode(tmp_path / "episode.h5", frames={"cam_high": [frame] * 45}, seconds=1.5)
    report = validate(path, SMALL_SPEC)
    assert report.ok
    assert "camera_frozen" in {p.code for p in report.warnings}


def test_an_episode_of_another_embodiment_is_refused(tmp_path):
    path = write_episode(tmp_path / "episode.h5")
    report = validate(path, {**SMALL_SPEC, "name": "other-arm"})
    assert "embodiment_mismatch" in report.codes and not report.ok


def test_validate_isolated_gives_the_same_report_as_validate(tmp_path):
    path = write_episode(tmp_path / "episode.h5")
    assert validate_isolated(path, SMALL_SPEC) == validate(path, SMALL_SPEC)
    hostile = hostile_files.gzip_bomb(tmp_path)
    assert validate_isolated(hostile, SMALL_SPEC).codes == {"compression_ratio_too_high"}


def test_validate_isolated_reports_a_tiny_memory_limit_and_never_raises(tmp_path):
    path = write_episode(tmp_path / "episode.h5")
    report = validate_isolated(path, SMALL_SPEC, memory_mb=16)
    assert not report.ok and report.codes == {"validator_resource_limit"}


def test_validate_isolated_reports_a_timeout_as_a_resource_limit(tmp_path):
    path = write_episode(tmp_path / "episode.h5")
    report = validate_isolated(path, SMALL_SPEC, timeout_s=0.001)
    assert report.codes == {"validator_resource_limit"}


def test_reports_never_name_where_the_file_lives_on_the_server(tmp_path, monkeypatch):
    hostile = hostile_files.cut_short(tmp_path)
    isolated = validate_isolated(hostile, SMALL_SPEC)
    assert not isolated.ok and str(tmp_path) not in json.dumps(isolated.to_dict())

    # HDF5's own errors quote the file they failed on; the report says "the file" instead.
    def open_fails(path, *args, **kwargs):
        raise OSError(f"Unable to synchronously open file (name = '{Path(path).resolve()}')")

    monkeypatch.setattr("proving_ground.episode.validate.open_episode_file", open_fails)
    report = validate(write_episode(tmp_path / "episode.h5"), SMALL_SPEC)
    assert report.codes == {"corrupt_file"}
    assert str(tmp_path.resolve()) not in json.dumps(report.to_dict())
    assert "name = 'the file'" in report.problems[0].message


def test_the_h5py_example_in_the_format_spec_runs_on_a_file_we_wrote(tmp_path, monkeypatch, capsys):
    doc = (PROJECT_ROOT / "docs" / "hdf5-format.md").read_text()
    start = doc.index("```python\n", doc.index("<!-- example: h5py-read -->")) + len("```python\n")
    example = doc[start : doc.index("```", start)]
    assert len(example.strip().splitlines()) <= 16
    write_episode(tmp_path / "episode.h5")
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "docs/hdf5-format.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "pg-episode/1" in printed and "(200, 7) (200, 7) (64, 48)" in printed
    assert "b'grasp'" in printed


def test_add_steps_records_the_same_file_as_add_step(tmp_path):
    rng = np.random.default_rng(3)
    t = np.arange(50) / 200
    qpos, qvel, action = (rng.normal(size=(50, 7)).astype(np.float32) for _ in range(3))
    with _writer(tmp_path / "one.h5") as writer:
        for i in range(50):
            writer.add_step(t[i], {"qpos": qpos[i], "qvel": qvel[i]}, action[i])
    with _writer(tmp_path / "batch.h5") as writer:
        writer.add_steps(t[:20], {"qpos": qpos[:20], "qvel": qvel[:20]}, action[:20])
        writer.add_steps(t[20:], {"qpos": qpos[20:], "qvel": qvel[20:]}, action[20:])
        with pytest.raises(ValueError, match="increasing"):
            writer.add_steps(t[:5], {"qpos": qpos[:5], "qvel": qvel[:5]}, action[:5])
        with pytest.raises(ValueError, match="shape"):
            writer.add_steps(t[:5] + 20, {"qpos": qpos[:5], "qvel": qvel[:4]}, action[:5])
    with EpisodeReader(tmp_path / "one.h5") as one, EpisodeReader(tmp_path / "batch.h5") as batch:
        assert batch.num_steps == 50
        for key in ("qpos", "qvel"):
            np.testing.assert_array_equal(one.observation(key), batch.observation(key))
        np.testing.assert_array_equal(one.action(), batch.action())
        np.testing.assert_array_equal(one.timestamps(), batch.timestamps())
