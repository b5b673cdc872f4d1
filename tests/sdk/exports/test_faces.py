"""Faces blurred on export: the detector finds a real face (NASA's astronaut portrait, from
scikit-image's wheel), the blur wipes it out and leaves every other pixel as it was, and
both exporters write the blurred frames and say so."""

from __future__ import annotations

import io
import json

import av
import h5py
import numpy as np
import pytest
from PIL import Image

from proving_ground.episode.spec import encode_jpeg
from proving_ground.exports.common import (
    ExportEpisode,
    filtered_frame,
    frame_filter_description,
)
from proving_ground.exports.faces import (
    BLUR_CELLS,
    FaceBlur,
    FaceBox,
    blur_boxes,
    blur_faces,
    detector_name,
    padded,
)
from proving_ground.exports.lerobot import export_lerobot
from proving_ground.exports.robomimic import export_robomimic
from tests.sdk.exports.face_images import face_box, face_frame, overlap
from tests.teleop.hostile_files import write_episode

# One 640x480 camera at 10 fps, so that an episode holds a few frames: detection costs
# about half a second a frame.
FACE_SPEC = {
    "name": "face-arm",
    "joint_names": [f"joint_{i}" for i in range(7)],
    "observations": {"qpos": {"shape": [7], "dtype": "float32"}},
    "action": {"shape": [7], "dtype": "float32"},
    "cameras": [{"name": "cam_high", "width": 640, "height": 480, "fps": 10}],
    "control_hz": 50,
}
OFFSETS = (64, 0, 128, 64)  # the face moves between frames


@pytest.fixture(scope="module")
def blur() -> FaceBlur:
    return FaceBlur()


def _detail(region: np.ndarray) -> float:
    """Mean absolute difference between neighbouring pixels: edges, texture, features."""
    region = region.astype(np.float64)
    return float(np.abs(np.diff(region, axis=0)).mean() + np.abs(np.diff(region, axis=1)).mean())


def _outside(frame: np.ndarray, boxes: list[FaceBox]) -> np.ndarray:
    """A mask of the pixels outside every padded box."""
    mask = np.ones(frame.shape[:2], dtype=bool)
    for box in boxes:
        x0, y0, x1, y1 = padded(box, frame.shape[1], frame.shape[0])
        mask[y0:y1, x0:x1] = False
    return mask


def _crop(frame: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x, y, w, h = box
    return frame[y : y + h, x : x + w]


def test_the_detector_finds_the_face_and_the_blur_wipes_it_out(blur):
    frame = face_frame()
    boxes = blur.detect(frame)
    assert max(overlap(face_box(), (b.x, b.y, b.width, b.height)) for b in boxes) > 0.8
    blurred = blur(frame)
    assert blurred is not frame and blurred.shape == frame.shape and blurred.dtype == np.uint8
    # The face: strongly changed, its detail gone, and no longer a face to the detector.
    before, after = _crop(frame, face_box()), _crop(blurred, face_box())
    assert np.abs(before.astype(int) - after.astype(int)).mean() > 15
    assert _detail(after) < 0.15 * _detail(before)
    assert not any(
        overlap(face_box(), (b.x, b.y, b.width, b.height)) > 0.3 for b in blur.detect(blurred)
    )
    # Everything else: the very same pixels.
    outside = _outside(frame, boxes)
    assert outside.mean() > 0.9
    assert np.array_equal(blurred[outside], frame[outside])
    assert np.array_equal(frame, face_frame())  # the input is never modified


def test_a_blurred_face_keeps_nothing_but_its_cell_averages():
    import cv2

    frame = face_frame()
    box = FaceBox(*face_box())
    x0, y0, x1, y1 = padded(box, frame.shape[1], frame.shape[0])
    assert ((x1 - x0) % BLUR_CELLS, (y1 - y0) % BLUR_CELLS) == (0, 0)  # 144 px: cells align
    out = blur_boxes(frame, [box])
    assert np.allclose(
        out[y0:y1, x0:x1].mean(axis=(0, 1)), frame[y0:y1, x0:x1].mean(axis=(0, 1)), atol=2
    )
    # Another picture with the same cell averages (each cell one flat colour) blurs to the
    # very same pixels: the face's features are not in the result, only its averages.
    cells = cv2.resize(frame[y0:y1, x0:x1], (BLUR_CELLS, BLUR_CELLS), interpolation=cv2.INTER_AREA)
    flat = frame.copy()
    flat[y0:y1, x0:x1] = cv2.resize(cells, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
    assert not np.array_equal(flat, frame)
    assert np.array_equal(blur_boxes(flat, [box]), out)


def test_a_frame_without_a_face_comes_back_as_it_was(blur):
    gradient = np.linspace(0, 255, 640, dtype=np.float32).astype(np.uint8)
    frame = np.ascontiguousarray(np.broadcast_to(gradient[None, :, None], (480, 640, 3)))
    assert blur.detect(frame) == []
    assert blur(frame) is frame


def test_the_description_names_the_detector_and_its_version(blur):
    import cv2

    assert blur.description == f"faces blurred with {detector_name()}"
    assert f"OpenCV {cv2.__version__} Haar cascades" in blur.description
    assert frame_filter_description(blur) == blur.description
    assert frame_filter_description(None) is None
    assert frame_filter_description(blur_faces).endswith("proving_ground.exports.faces.blur_faces")


def test_a_frame_filter_must_keep_the_shape_and_dtype():
    frame = face_frame()
    with pytest.raises(ValueError, match="camera cam_high"):
        filtered_frame(lambda f: f[::2], frame, "cam_high")
    with pytest.raises(ValueError, match="RGB array"):
        blur_faces(frame[:, :, 0])


@pytest.fixture(scope="module")
def face_episode(tmp_path_factory) -> ExportEpisode:
    frames = [encode_jpeg(face_frame(offset), quality=95) for offset in OFFSETS]
    path = write_episode(
        tmp_path_factory.mktemp("faces") / "e.h5",
        FACE_SPEC,
        seconds=len(OFFSETS) / 10,
        frames={"cam_high": frames},
    )
    return ExportEpisode(path=path, episode_id="00000000-0000-0000-0000-00000000face", task="t")


def _decoded(offset: int) -> np.ndarray:
    """A frame as the exporters see it: the JPEG the robot stored, decoded by Pillow."""
    jpeg = encode_jpeg(face_frame(offset), quality=95)
    return np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))


@pytest.mark.slow  # three exports, each frame searched for faces: ~5 s
def test_a_robomimic_export_with_a_face_blur_writes_blurred_frames_and_says_so(
    face_episode, tmp_path, blur
):
    plain, blurred = tmp_path / "plain.hdf5", tmp_path / "blurred.hdf5"
    export_robomimic([face_episode], plain, include_next_obs=False)
    result = export_robomimic([face_episode], blurred, include_next_obs=False, frame_filter=blur)
    assert result.frame_filter == blur.description
    with h5py.File(plain, "r") as p, h5py.File(blurred, "r") as b:
        assert "pg_frame_filter" not in p["data"].attrs
        assert b["data"].attrs["pg_frame_filter"] == blur.description
        as_recorded = p["data/demo_0/obs/cam_high_image"][()]
        images = b["data/demo_0/obs/cam_high_image"][()]
    assert len(images) == len(OFFSETS)
    for row, offset in enumerate(OFFSETS):
        source = _decoded(offset)
        assert np.array_equal(as_recorded[row], source)
        face = face_box(offset)
        assert np.abs(_crop(images[row], face).astype(int) - _crop(source, face)).mean() > 15
        outside = _outside(source, blur.detect(source))
        assert np.array_equal(images[row][outside], source[outside])
    again = export_robomimic(
        [face_episode], tmp_path / "again.hdf5", include_next_obs=False, frame_filter=blur
    )
    assert again.sha256 == result.sha256  # the same frames, the same finds, the same bytes


@pytest.mark.slow
def test_a_lerobot_export_with_a_face_blur_encodes_blurred_frames_and_says_so(
    face_episode, tmp_path, blur
):
    plain, blurred = tmp_path / "plain", tmp_path / "blurred"
    options = {"fps": 10, "robot_type": "face-arm", "joint_names": FACE_SPEC["joint_names"]}
    export_lerobot([face_episode], plain, vcodec="h264", **options)
    result = export_lerobot([face_episode], blurred, vcodec="h264", frame_filter=blur, **options)
    assert result.frame_filter == blur.description
    assert json.loads((plain / "meta/pg_export.json").read_text())["frame_filter"] is None
    provenance = json.loads((blurred / "meta/pg_export.json").read_text())
    assert provenance["frame_filter"] == blur.description
    video = "videos/observation.images.cam_high/chunk-000/file-000.mp4"
    with av.open(str(plain / video)) as p, av.open(str(blurred / video)) as b:
        as_recorded = [f.to_ndarray(format="rgb24") for f in p.decode(video=0)]
        images = [f.to_ndarray(format="rgb24") for f in b.decode(video=0)]
    assert len(images) == len(as_recorded) == len(OFFSETS)
    for row, offset in enumerate(OFFSETS):
        face = face_box(offset)
        changed = np.abs(_crop(images[row], face).astype(int) - _crop(as_recorded[row], face))
        assert changed.mean() > 15
        # Elsewhere the same picture: as close to the recorded frame as the plain export is
        # (lossy video either way; the filtered frames go through RGB, the others not).
        source = _decoded(offset)
        outside = _outside(source, blur.detect(source))
        error = np.abs(images[row][outside].astype(int) - source[outside]).mean()
        plain_error = np.abs(as_recorded[row][outside].astype(int) - source[outside]).mean()
        assert error < plain_error + 1
