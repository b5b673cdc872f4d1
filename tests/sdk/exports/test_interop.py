"""Our exports read by the real third-party tools, each in its own virtual environment.

robomimic and LeRobot pull in PyTorch (LeRobot 0.6 also needs Python 3.12), so they are not in
the project's venv: ``scripts/make_interop_venvs.sh`` creates their venvs with pinned versions
and prints the variables these tests read. A test whose venv is not given is skipped, saying
which variable to set.

- ``PG_ROBOMIMIC_PYTHON``: a Python with robomimic 0.3.0 (and, for the loader test, torch).
- ``PG_LEROBOT_PYTHON``: a Python 3.12 with lerobot 0.6.1.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest

from proving_ground.episode.writer import EpisodeWriter
from proving_ground.exports.common import ExportEpisode
from proving_ground.exports.robomimic import export_robomimic
from tests.core.factories import ARM_SPEC

pytestmark = pytest.mark.slow


def _venv_python(variable: str, tool: str) -> Path:
    value = os.environ.get(variable)
    if not value:
        pytest.skip(f"{variable} is not set: scripts/make_interop_venvs.sh makes a {tool} venv")
    path = Path(value)
    if not path.exists():
        pytest.skip(f"{variable}={value} does not exist: run scripts/make_interop_venvs.sh")
    return path


def _run(python: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(python), *args], capture_output=True, text=True, timeout=600, check=False
    )


@pytest.fixture(scope="module")
def episodes(tmp_path_factory) -> list[ExportEpisode]:
    """Two episodes of joint targets in radians, up to +-2.5: outside robomimic's [-1, 1]."""
    folder = tmp_path_factory.mktemp("interop")
    spec = {**ARM_SPEC, "name": "aloha-arm", "cameras": []}
    out = []
    for i, split in enumerate(("train", "valid")):
        path = folder / f"{i}.h5"
        with EpisodeWriter(
            path, spec, episode_id=str(uuid.uuid4()), robot="r", task_version="t", operator="OP"
        ) as writer:
            for step in range(200):
                q = (2.5 * np.sin(np.arange(7) + step / 40 + i)).astype(np.float32)
                writer.add_step(step / 200, {"qpos": q, "qvel": np.cos(q)}, q)
        label = {"outcome": "success" if i == 0 else "failure"}
        out.append(
            ExportEpisode(path=path, episode_id=f"ep-{i}", task="t", split=split, label=label)
        )
    return out


def _get_dataset_info(python: Path) -> str:
    found = _run(python, "-c", "import robomimic, os; print(os.path.dirname(robomimic.__file__))")
    assert found.returncode == 0, found.stderr
    # Run as a file, as robomimic's docs do: it imports only h5py and numpy (no torch).
    return str(Path(found.stdout.strip()) / "scripts" / "get_dataset_info.py")


def test_robomimic_get_dataset_info_accepts_our_export(episodes, tmp_path):
    python = _venv_python("PG_ROBOMIMIC_PYTHON", "robomimic")
    path = tmp_path / "normalized.hdf5"
    export_robomimic(episodes, path)
    script = _get_dataset_info(python)
    run = _run(python, script, "--dataset", str(path), "--verbose")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "total trajectories: 2" in run.stdout
    assert "action min: -1.0" in run.stdout and "action max: 1.0" in run.stdout
    for key in ("success", "failure", "partial", "train", "valid"):
        assert f"filter key {key} with" in run.stdout
    valid = _run(python, script, "--dataset", str(path), "--filter_key", "valid")
    assert valid.returncode == 0 and "total trajectories: 1" in valid.stdout, valid.stderr


def test_robomimic_get_dataset_info_refuses_unnormalized_actions(episodes, tmp_path):
    # What the reviewer saw before normalization existed: the check is live in this venv.
    python = _venv_python("PG_ROBOMIMIC_PYTHON", "robomimic")
    path = tmp_path / "raw.hdf5"
    export_robomimic(episodes, path, normalize_actions=False)
    run = _run(python, _get_dataset_info(python), "--dataset", str(path))
    assert run.returncode != 0
    assert "Dataset should have actions in [-1., 1.]" in run.stderr


_SEQUENCE_DATASET = """
import json, sys
import robomimic.utils.obs_utils as ObsUtils
from robomimic.utils.dataset import SequenceDataset
ObsUtils.initialize_obs_modality_mapping_from_dict({"low_dim": ["qpos", "qvel"]})
dataset = SequenceDataset(
    hdf5_path=sys.argv[1], obs_keys=("qpos", "qvel"), dataset_keys=("actions", "rewards", "dones"),
    load_next_obs=True, frame_stack=1, seq_length=10, pad_seq_length=True,
    hdf5_cache_mode="low_dim", filter_by_attribute="train",
)
item = dataset[0]
print(json.dumps({
    "len": len(dataset), "actions": list(item["actions"].shape),
    "qpos": list(item["obs"]["qpos"].shape), "max": float(abs(item["actions"]).max()),
}))
"""


def test_robomimic_sequence_dataset_loads_our_export_for_training(episodes, tmp_path):
    python = _venv_python("PG_ROBOMIMIC_PYTHON", "robomimic")
    if _run(python, "-c", "import torch").returncode != 0:
        pytest.skip("the robomimic venv has no torch: scripts/make_interop_venvs.sh --with-torch")
    path = tmp_path / "train.hdf5"
    export_robomimic(episodes, path)
    run = _run(python, "-c", _SEQUENCE_DATASET, str(path))
    assert run.returncode == 0, run.stderr
    loaded = json.loads(run.stdout.strip().splitlines()[-1])
    # The train mask holds demo_0 (200 rows): one sample per row, windows of 10.
    assert loaded == {"len": 200, "actions": [10, 7], "qpos": [10, 7], "max": loaded["max"]}
    assert loaded["max"] <= 1.0


_LEROBOT_LOAD = """
import json, sys
from lerobot.datasets.lerobot_dataset import LeRobotDataset
ds = LeRobotDataset("local/pg-export", root=sys.argv[1])
item = ds[0]
print(json.dumps({"episodes": ds.num_episodes, "frames": ds.num_frames,
                  "splits": ds.meta.info["splits"], "keys": sorted(item)}))
"""


def test_lerobot_loads_our_export(tmp_path):
    python = _venv_python("PG_LEROBOT_PYTHON", "LeRobot")
    from proving_ground.exports.lerobot import export_lerobot
    from tests.teleop.recordings import record_episode

    episodes = [
        ExportEpisode(
            path=record_episode(tmp_path / f"{i}.h5", seconds=1.0, episode_id=str(uuid.uuid4())),
            episode_id=f"ep-{i}",
            task="t",
            split=split,
        )
        for i, split in enumerate(("valid", "train", "train"))
    ]
    root = tmp_path / "dataset"
    export_lerobot(episodes, root, fps=30, robot_type="r", joint_names=ARM_SPEC["joint_names"])
    run = _run(python, "-c", _LEROBOT_LOAD, str(root))
    assert run.returncode == 0, run.stderr
    loaded = json.loads(run.stdout.strip().splitlines()[-1])
    assert loaded["episodes"] == 3 and loaded["splits"] == {"valid": "0:1", "train": "1:3"}
    assert "action" in loaded["keys"] and "observation.images.cam_high" in loaded["keys"]
