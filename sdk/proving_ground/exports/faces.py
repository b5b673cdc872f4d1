"""Faces blurred in camera frames, offline, for exports that must not show who was recorded.

Camera frames can show the operator, or anyone passing behind the robot. An export can blur
the faces it finds (``frame_filter=FaceBlur()`` for `export_robomimic` and `export_lerobot`;
the server's ``blur_faces``); docs/privacy.md ("Faces and voices") says what it catches and
what it misses.

**The detector** is OpenCV's Haar cascades (Viola and Jones, CVPR 2001, with the extended
features of Lienhart and Maydt, ICIP 2002), whose trained models ship inside the
``opencv-python-headless`` wheel (``cv2.data.haarcascades``): nothing is downloaded, no model
file is kept here, and the version that ran is the wheel's. Two cascades run on each frame:
``haarcascade_frontalface_default.xml`` for faces turned towards the camera, and
``haarcascade_profileface.xml`` on the frame and on its mirror image (the cascade was trained
on faces looking one way) for faces in profile. OpenCV 5's wheels no longer carry the
cascades (5.1.0.95 has an empty ``cv2/data``), so the SDK's ``privacy`` extra asks for 4.x.

**What it misses**, by construction: faces smaller than the cascades' windows (24 x 24
pixels frontal, 20 x 20 profile), faces turned away, tilted past about 15 degrees, or covered
(a mask, a hand, a visor, motion blur), and, per frame, a face it happens not to find: each
frame is judged on its own, so a face found in one frame may be missed in the next. Dim,
low-contrast frames are equalized first (`cv2.equalizeHist`), which helps but does not make
up for it. Recall is favoured over precision (``minNeighbors`` 3, OpenCV's default): a
false find only blurs a patch of the scene.

**The blur**: each box is padded by `PADDING` of its size on every side (a Haar box spans
brows to mouth; the padding takes the forehead, chin and ears), then reduced to
`BLUR_CELLS` x `BLUR_CELLS` averages (area interpolation) and enlarged back smoothly
(bilinear). What is left of a face is 36 colours: no sharpening brings back detail that is
not there, where a Gaussian blur keeps faint high frequencies that deconvolution can lift.
Pixels outside the padded boxes are unchanged.

Cost: detection is the expensive part. On a 640x480 frame, one core of this 2-core machine
spent 0.14 s on the frontal cascade and 0.25 s on each profile pass, 0.65 s a frame in all;
OpenCV spreads each pass over the cores it has. Each distinct camera frame a row uses is
judged once. ``FaceBlur(profiles=False)`` runs the frontal cascade alone, four times faster,
and misses faces in profile. A frame that is later resized (robomimic's 84 x 84) is searched
at the camera's full size, before the resize.

Imports OpenCV on first use only: ``pip install "proving-ground-sdk[privacy]"`` (or the
server's requirements) brings it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Padding around each detected box, as a fraction of its width (height) on each side.
PADDING = 0.25
#: A blurred face keeps this many averages along each side.
BLUR_CELLS = 6
#: detectMultiScale's settings: a 10 % step between scales (OpenCV's default and the usual
#: choice; 1.2 was faster and missed more), 3 neighbours (OpenCV's default; higher values
#: drop weak faces, which is recall lost).
SCALE_FACTOR = 1.1
MIN_NEIGHBORS = 3
FRONTAL_CASCADE = "haarcascade_frontalface_default.xml"
PROFILE_CASCADE = "haarcascade_profileface.xml"

_INSTALL_HINT = (
    "face blurring needs OpenCV with its Haar cascades: "
    'pip install "proving-ground-sdk[privacy]" (opencv-python-headless 4.x)'
)


@dataclass(frozen=True, order=True)
class FaceBox:
    """A detected face, in pixels of the frame: top-left corner, width and height."""

    x: int
    y: int
    width: int
    height: int


def _cv2() -> Any:
    try:
        import cv2
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(_INSTALL_HINT, name=exc.name) from exc
    return cv2


def opencv_available() -> bool:
    """True when OpenCV and its frontal-face cascade are installed (checked without loading
    the cascade)."""
    try:
        cv2 = _cv2()
    except ModuleNotFoundError:
        return False
    from pathlib import Path

    return (Path(cv2.data.haarcascades) / FRONTAL_CASCADE).is_file()


def detector_name() -> str:
    """The detector that runs, with its version, e.g. ``"OpenCV 4.14.0 Haar cascades
    (frontal face; profile face, both ways)"``. Raises ModuleNotFoundError without OpenCV."""
    return f"OpenCV {_cv2().__version__} Haar cascades (frontal face; profile face, both ways)"


class FaceBlur:
    """A frame filter for the exporters: ``FaceBlur()(frame)`` is `frame` (an RGB ``(H, W,
    3)`` uint8 array) with every face found blurred; `description` says so in the export
    (``"faces blurred with OpenCV 4.14.0 Haar cascades (...)"``).

    Loads the cascades on the first frame. Not for concurrent use from several
    threads (OpenCV's classifiers keep scratch state): one instance per thread. Raises
    ModuleNotFoundError, naming the extra to install, when OpenCV is missing.
    """

    def __init__(self, *, profiles: bool = True) -> None:
        self.profiles = profiles
        self._frontal: Any = None
        self._profile: Any = None

    @functools.cached_property
    def description(self) -> str:
        return f"faces blurred with {detector_name()}"

    def _classifiers(self) -> tuple[Any, Any]:
        if self._frontal is None:
            cv2 = _cv2()
            self._frontal = _load(cv2, FRONTAL_CASCADE)
            self._profile = _load(cv2, PROFILE_CASCADE) if self.profiles else None
        return self._frontal, self._profile

    def detect(self, frame: np.ndarray) -> list[FaceBox]:
        """The faces found in `frame` (RGB ``(H, W, 3)`` uint8), as boxes sorted by position;
        overlapping finds of the two cascades are all kept."""
        _check_frame(frame)
        cv2 = _cv2()
        frontal, profile = self._classifiers()
        grey = cv2.equalizeHist(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY))
        boxes = [FaceBox(*map(int, b)) for b in _find(frontal, grey)]
        if profile is not None:
            boxes += [FaceBox(*map(int, b)) for b in _find(profile, grey)]
            width = grey.shape[1]
            for x, y, w, h in _find(profile, np.ascontiguousarray(grey[:, ::-1])):
                boxes.append(FaceBox(int(width - x - w), int(y), int(w), int(h)))
        # Sorted: the set of finds is deterministic, their order need not be, and the blur
        # of overlapping boxes depends on it.
        return sorted(set(boxes))

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """`frame` with every face `detect` finds blurred (`blur_boxes`): a new array when a
        face was found, `frame` itself otherwise; the input is never modified."""
        boxes = self.detect(frame)
        return blur_boxes(frame, boxes) if boxes else frame


def blur_boxes(frame: np.ndarray, boxes: Sequence[FaceBox]) -> np.ndarray:
    """A copy of `frame` (``(H, W, 3)`` uint8) with each box, padded by `PADDING` on every
    side and clipped to the frame, reduced to `BLUR_CELLS` x `BLUR_CELLS` averages and
    enlarged back (bilinear). Pixels outside the padded boxes are copied unchanged."""
    _check_frame(frame)
    cv2 = _cv2()
    out = frame.copy()
    height, width = frame.shape[:2]
    for box in boxes:
        x0, y0, x1, y1 = padded(box, width, height)
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        cells = cv2.resize(
            out[y0:y1, x0:x1], (BLUR_CELLS, BLUR_CELLS), interpolation=cv2.INTER_AREA
        )
        out[y0:y1, x0:x1] = cv2.resize(cells, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    return out


def padded(box: FaceBox, width: int, height: int) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)``: `box` grown by `PADDING` on each side, clipped to a `width` x
    `height` frame (half-open, in pixels)."""
    pad_x, pad_y = round(box.width * PADDING), round(box.height * PADDING)
    return (
        max(0, box.x - pad_x),
        max(0, box.y - pad_y),
        min(width, box.x + box.width + pad_x),
        min(height, box.y + box.height + pad_y),
    )


@functools.cache
def _default() -> FaceBlur:
    return FaceBlur()


def blur_faces(frame: np.ndarray) -> np.ndarray:
    """`frame` (RGB ``(H, W, 3)`` uint8) with the faces found blurred, by one `FaceBlur`
    shared per process (not for concurrent threads). See `FaceBlur`."""
    return _default()(frame)


def _load(cv2: Any, name: str) -> Any:
    from pathlib import Path

    path = Path(cv2.data.haarcascades) / name
    classifier = cv2.CascadeClassifier(str(path))
    if classifier.empty():
        raise ModuleNotFoundError(f"{_INSTALL_HINT}; {name} is not in {path.parent}")
    return classifier


def _find(classifier: Any, grey: np.ndarray) -> np.ndarray:
    found = classifier.detectMultiScale(grey, scaleFactor=SCALE_FACTOR, minNeighbors=MIN_NEIGHBORS)
    return np.asarray(found, dtype=np.int64).reshape(-1, 4)


def _check_frame(frame: np.ndarray) -> None:
    if not (
        isinstance(frame, np.ndarray)
        and frame.dtype == np.uint8
        and frame.ndim == 3
        and frame.shape[2] == 3
    ):
        raise ValueError("a frame is an RGB array of shape (H, W, 3) and dtype uint8")
