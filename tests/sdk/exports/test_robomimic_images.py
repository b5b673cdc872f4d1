"""robomimic images at the size a training config asks for, compressed a frame at a time: the
export resizes every camera's frames, gzip (level 4) or lzf chunks hold one frame, and a
resized frame is the source frame resized (not another frame, not the raw pixels)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from PIL import Image

from proving_ground.exports.common import ExportEpisode
from proving_ground.exports.robomimic import GZIP_LEVEL, export_robomimic
from tests.core.factories import ARM_SPEC
from tests.teleop.recordings import record_episode

CAMERAS = [c["name"] for c in ARM_SPEC["cameras"]]


@pytest.fixture(scope="module")
def episode(tmp_path_factory) -> ExportEpisode:
    path = record_episode(tmp_path_factory.mktemp("episode") / "e.hdf5", seconds=1.0)
    return ExportEpisode(path=path, episode_id="00000000-0000-0000-0000-0000000000aa", task="t")


@pytest.mark.parametrize("compression", ["gzip", "lzf"])
def test_images_are_resized_and_compressed_one_frame_a_chunk(episode, tmp_path, compression):
    path = tmp_path / "small.hdf5"
    export_robomimic([episode], path, image_size=84, image_compression=compression)
    with h5py.File(path, "r") as f:
        assert f["data"].attrs["pg_image_size"] == 84
        for cam in CAMERAS:
            for group in ("obs", "next_obs"):
                images = f[f"data/demo_0/{group}/{cam}_image"]
                assert images.shape[1:] == (84, 84, 3) and images.dtype == np.uint8
                assert images.chunks == (1, 84, 84, 3)
                assert images.compression == compression
                if compression == "gzip":
                    assert images.compression_opts == GZIP_LEVEL


def test_a_resized_frame_is_its_source_frame_resized(episode, tmp_path):
    small, full = tmp_path / "small.hdf5", tmp_path / "full.hdf5"
    export_robomimic([episode], small, image_size=84, include_next_obs=False)
    export_robomimic([episode], full, include_next_obs=False)
    cam = CAMERAS[0]
    with h5py.File(small, "r") as s, h5py.File(full, "r") as f:
        resized = s[f"data/demo_0/obs/{cam}_image"][()]
        native = f[f"data/demo_0/obs/{cam}_image"][()]
    assert len(resized) == len(native)
    for row in (0, len(native) // 2, len(native) - 1):
        expected = np.asarray(
            Image.fromarray(native[row]).resize((84, 84), Image.Resampling.BILINEAR)
        )
        assert np.array_equal(resized[row], expected)


def test_the_default_a_training_script_would_pick_is_far_smaller(episode, tmp_path):
    small, full = tmp_path / "small.hdf5", tmp_path / "full.hdf5"
    small_bytes = export_robomimic(
        [episode], small, image_size=84, image_compression="gzip"
    ).size_bytes
    assert small_bytes < export_robomimic([episode], full).size_bytes / 10


@pytest.mark.parametrize("size", [0, 7, 1025, 84.0, "84"])
def test_an_image_size_out_of_range_is_refused(episode, tmp_path, size):
    with pytest.raises(ValueError, match="image_size"):
        export_robomimic([episode], tmp_path / "x.hdf5", image_size=size)
