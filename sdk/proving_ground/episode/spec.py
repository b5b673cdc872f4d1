"""The "pg-episode/1" HDF5 episode format: names, limits, the embodiment spec and frame encodings.

One HDF5 file holds one teleoperation or evaluation episode. Robots record with
`proving_ground.episode.writer.EpisodeWriter`, anyone reads with
`proving_ground.episode.reader.EpisodeReader` (or plain h5py, see ``docs/hdf5-format.md``),
and the server checks uploads with `proving_ground.episode.validate`. This module holds what
all three share. Everything in `proving_ground.episode` imports numpy, h5py, Pillow and the
standard library only: it runs on robots, so it never pulls in Django.

Time: every timestamp in a file (steps, frames, events) is float64 seconds on one clock,
measured by the robot and strictly increasing per stream. The origin is the writer's choice
(``time.monotonic()`` or seconds since the episode started); only differences are meaningful.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

SCHEMA = "pg-episode/1"

# Event kinds stored in /events/kind. Interventions are pairs of start and end events.
EVENT_STAGE = "stage"
EVENT_INTERVENTION_START = "intervention_start"
EVENT_INTERVENTION_END = "intervention_end"
EVENT_KINDS = (EVENT_STAGE, EVENT_INTERVENTION_START, EVENT_INTERVENTION_END)

ENCODINGS = ("jpeg", "png")
FRAME_MAGIC = {"jpeg": b"\xff\xd8\xff", "png": b"\x89PNG\r\n\x1a\n"}

ALLOWED_DTYPES = (
    "float16",
    "float32",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "bool",
)
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
RESERVED_OBSERVATION_KEYS = ("images",)  # /observations/images holds the cameras

# Audio. The format has no audio stream of its own, and a microphone records voices, which
# are personal data (docs/privacy.md, "Faces and voices"). An embodiment declares audio by
# listing it as an observation whose key names it (e.g. "audio": {"shape": [160], "dtype":
# "int16"}, 160 samples a control step); the validator refuses any other group, dataset or
# attribute named like audio (`is_audio_name`), anywhere in a file: audio_not_declared.
AUDIO_NAME_WORDS = frozenset(
    {"audio", "microphone", "microphones", "mic", "mics", "sound", "voice", "voices", "speech"}
    | {"pcm", "wav"}
)

# Chunking. Joints: a few thousand rows (at most ~1 MiB a chunk), so an hour at 200 Hz is
# ~180 chunks per dataset. Camera streams: 256 KiB (64 KiB to 1 MiB measured alike; larger
# chunks bypass nothing more and make the rewritten last chunk costlier).
STEP_CHUNK_ROWS = 4096
STEP_CHUNK_MAX_BYTES = 1 << 20
FRAME_STREAM_CHUNK_BYTES = 256 * 1024
FRAME_INDEX_CHUNK_ROWS = 1024
EVENT_CHUNK_ROWS = 64
EVENT_KIND_BYTES = 32
EVENT_NAME_BYTES = 64
MAX_FRAME_BYTES = 16 * 1024 * 1024
# Fixed-length UTF-8: SWMR appends need fixed-size rows (variable-length strings live in a
# global heap that SWMR does not cover).
EVENT_KIND_DTYPE = h5py.string_dtype("utf-8", EVENT_KIND_BYTES)
EVENT_NAME_DTYPE = h5py.string_dtype("utf-8", EVENT_NAME_BYTES)

# Root attributes every pg-episode/1 file carries (end_time only after a clean close).
REQUIRED_ROOT_ATTRS = (
    "schema",
    "episode_id",
    "embodiment",
    "robot",
    "task_version",
    "operator",
    "nominal_hz",
    "start_time",
    "software",
)


# --------------------------------------------------------------------------------------------
# Embodiment spec
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArraySpec:
    """One per-step array: `shape` excludes the time axis (``(7,)`` for 7 joints)."""

    shape: tuple[int, ...]
    dtype: str

    @property
    def numpy_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)


@dataclass(frozen=True)
class CameraSpec:
    """A camera: frame size in pixels and nominal rate in frames per second."""

    name: str
    width: int
    height: int
    fps: float


@dataclass(frozen=True)
class EmbodimentSpec:
    """What a robot type records, as the server's Embodiment model stores it.

    ``from_dict`` accepts exactly this shape (``name`` optional, unknown keys ignored)::

        {"name": "aloha-left", "joint_names": ["waist", ...],
         "observations": {"qpos": {"shape": [7], "dtype": "float32"}, ...},
         "action": {"shape": [7], "dtype": "float32"},
         "cameras": [{"name": "cam_high", "width": 640, "height": 480, "fps": 30}],
         "control_hz": 200}

    Observation keys and camera names match ``[a-z][a-z0-9_]{0,63}``; ``images`` is reserved
    for the camera group. dtypes are numpy names from `ALLOWED_DTYPES`.
    """

    name: str
    joint_names: tuple[str, ...]
    observations: dict[str, ArraySpec]
    action: ArraySpec
    cameras: tuple[CameraSpec, ...]
    control_hz: float

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EmbodimentSpec:
        """Parse the dict form; raises ValueError naming the first problem."""
        if not isinstance(data, Mapping):
            raise ValueError("embodiment spec must be a JSON object")
        try:
            name = str(data.get("name", ""))
            joint_names = tuple(str(j) for j in data["joint_names"])
            observations = {
                _checked_name(str(key), "observation key"): _array_spec(
                    value, f"observations.{key}"
                )
                for key, value in dict(data["observations"]).items()
            }
            action = _array_spec(data["action"], "action")
            cameras = tuple(_camera_spec(c) for c in data["cameras"])
            control_hz = float(data["control_hz"])
        except KeyError as exc:
            raise ValueError(f"embodiment spec lacks {exc.args[0]!r}") from exc
        except TypeError as exc:
            raise ValueError(f"embodiment spec is malformed: {exc}") from exc
        if not observations:
            raise ValueError("embodiment spec has no observations")
        reserved = set(observations) & set(RESERVED_OBSERVATION_KEYS)
        if reserved:
            raise ValueError(f"observation key {sorted(reserved)[0]!r} is reserved")
        if len({c.name for c in cameras}) != len(cameras):
            raise ValueError("camera names must be unique")
        if not (control_hz > 0 and np.isfinite(control_hz)):
            raise ValueError("control_hz must be a positive number")
        return cls(name, joint_names, observations, action, cameras, control_hz)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "joint_names": list(self.joint_names),
            "observations": {
                key: {"shape": list(a.shape), "dtype": a.dtype}
                for key, a in self.observations.items()
            },
            "action": {"shape": list(self.action.shape), "dtype": self.action.dtype},
            "cameras": [
                {"name": c.name, "width": c.width, "height": c.height, "fps": c.fps}
                for c in self.cameras
            ],
            "control_hz": self.control_hz,
        }
        if self.name:
            out["name"] = self.name
        return out

    @property
    def audio_observations(self) -> tuple[str, ...]:
        """The observation keys that name audio (`is_audio_name`): the audio this embodiment
        declares, if any."""
        return tuple(key for key in self.observations if is_audio_name(key))

    def camera(self, name: str) -> CameraSpec:
        for cam in self.cameras:
            if cam.name == name:
                return cam
        raise KeyError(name)


def is_audio_name(name: str) -> bool:
    """True when `name` (one HDF5 link or attribute name) names audio: one of its words, split
    at anything but a letter and case-folded, is in `AUDIO_NAME_WORDS`. ``audio``,
    ``mic_left``, ``Microphone0`` and ``voice-pcm`` do; ``qpos``, ``microwave_door`` and
    ``waveform`` do not."""
    return any(word in AUDIO_NAME_WORDS for word in re.split(r"[^a-z]+", name.lower()))


def _checked_name(name: str, what: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"{what} {name!r} must match [a-z][a-z0-9_]{{0,63}}")
    return name


def _array_spec(value: Any, where: str) -> ArraySpec:
    shape = tuple(int(n) for n in value["shape"])
    dtype = str(value["dtype"])
    if dtype not in ALLOWED_DTYPES:
        raise ValueError(f"{where}: dtype {dtype!r} is not one of {', '.join(ALLOWED_DTYPES)}")
    if len(shape) > 4 or any(n < 1 for n in shape):
        raise ValueError(f"{where}: shape must have at most 4 positive dimensions")
    return ArraySpec(shape, dtype)


def _camera_spec(value: Any) -> CameraSpec:
    cam = CameraSpec(
        _checked_name(str(value["name"]), "camera name"),
        int(value["width"]),
        int(value["height"]),
        float(value["fps"]),
    )
    if cam.width < 1 or cam.height < 1 or not cam.fps > 0:
        raise ValueError(f"camera {cam.name!r}: width, height and fps must be positive")
    return cam


def as_embodiment_spec(spec: EmbodimentSpec | Mapping[str, Any]) -> EmbodimentSpec:
    """Accept our dataclass, the dict form, or any object with ``to_dict()`` (such as
    ``core.embodiment_spec.EmbodimentSpec``)."""
    if isinstance(spec, EmbodimentSpec):
        return spec
    if not isinstance(spec, Mapping) and hasattr(spec, "to_dict"):
        spec = spec.to_dict()
    return EmbodimentSpec.from_dict(spec)


# --------------------------------------------------------------------------------------------
# Frames
# --------------------------------------------------------------------------------------------


def encode_jpeg(frame: np.ndarray, quality: int = 90) -> bytes:
    """Encode an RGB ``(H, W, 3)`` or grey ``(H, W)`` uint8 frame as baseline JPEG.

    `quality` is Pillow's 1-95 scale; 90 keeps fine texture at ~40 KB for a 640x480 scene
    (about 2 ms a frame here). Chroma is subsampled 4:2:0, Pillow's default.
    """
    from PIL import Image  # lazy: the validator and reader need Pillow only for decoding

    array = np.asarray(frame)
    if (
        array.dtype != np.uint8
        or array.ndim not in (2, 3)
        or (array.ndim == 3 and array.shape[2] != 3)
    ):
        raise ValueError(f"expected uint8 (H, W, 3) or (H, W), got {array.dtype} {array.shape}")
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=int(quality))
    return buffer.getvalue()


def frame_encoding(encoded: bytes) -> str | None:
    """``"jpeg"`` or ``"png"`` from the first bytes, or None."""
    for name, magic in FRAME_MAGIC.items():
        if encoded[: len(magic)] == magic:
            return name
    return None
