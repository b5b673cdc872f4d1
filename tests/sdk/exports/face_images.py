"""A real face for the face-blurring tests, from an installed package, nothing downloaded.

NASA's portrait of astronaut Eileen Collins (public domain) ships inside scikit-image's wheel
as ``skimage/data/astronaut.png`` (``skimage.data.astronaut()``, 512 x 512 RGB); scikit-image
is a test requirement (requirements-dev.txt). A drawn face would not do: a Haar cascade finds
real faces, not cartoons. The frames here place the portrait on a 640 x 480 camera frame,
as a robot's camera would show an operator.
"""

from __future__ import annotations

import functools

import numpy as np

#: Where the face is in the portrait (x, y, width, height in pixels): brows to chin, ear to
#: ear, as OpenCV's frontal cascade boxes it.
FACE_IN_PORTRAIT = (176, 66, 96, 96)
FRAME_WIDTH, FRAME_HEIGHT = 640, 480
#: The grey of the frame around the portrait.
BACKGROUND = 90


@functools.cache
def portrait() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def face_frame(offset_x: int = 64) -> np.ndarray:
    """A 640 x 480 RGB uint8 frame: grey, with the portrait's top 480 rows at `offset_x`
    (0 to 128 keeps it whole)."""
    frame = np.full((FRAME_HEIGHT, FRAME_WIDTH, 3), BACKGROUND, dtype=np.uint8)
    frame[:, offset_x : offset_x + 512] = portrait()[:FRAME_HEIGHT]
    return frame


def face_box(offset_x: int = 64) -> tuple[int, int, int, int]:
    """Where the face is in `face_frame(offset_x)`: (x, y, width, height)."""
    x, y, w, h = FACE_IN_PORTRAIT
    return x + offset_x, y, w, h


def overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over union of two (x, y, width, height) boxes, 0 to 1."""
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    width = max(0, min(ax1, bx1) - max(a[0], b[0]))
    height = max(0, min(ay1, by1) - max(a[1], b[1]))
    inter = width * height
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)
