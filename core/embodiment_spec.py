"""The embodiment spec: what a robot type records, as plain data. Free of Django, so the
episode writer on a robot and the validator on the server read the same definition.

A spec is a JSON object::

    {
      "joint_names": ["waist", "shoulder", ...],
      "observations": {"qpos": {"shape": [7], "dtype": "float32"}, ...},
      "action": {"shape": [7], "dtype": "float32"},
      "cameras": [{"name": "cam_high", "width": 640, "height": 480, "fps": 30}],
      "control_hz": 200
    }

Observation keys follow ALOHA's names where they apply (`qpos`, `qvel`, `effort`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jsonschema

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
RESERVED_OBSERVATION_KEYS = ("images",)  # an episode file keeps its cameras there
MAX_RANK = 4  # per-step rank; the file adds the time axis
MAX_DIM = 4096

_KEY = {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,63}$"}
_ARRAY = {
    "type": "object",
    "additionalProperties": False,
    "required": ["shape", "dtype"],
    "properties": {
        "shape": {
            "type": "array",
            "maxItems": MAX_RANK,
            "items": {"type": "integer", "minimum": 1, "maximum": MAX_DIM},
        },
        "dtype": {"enum": list(ALLOWED_DTYPES)},
    },
}
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["joint_names", "observations", "action", "cameras", "control_hz"],
    "properties": {
        "name": {"type": "string", "maxLength": 80},
        "joint_names": {
            "type": "array",
            "maxItems": 256,
            "uniqueItems": True,
            "items": {"type": "string", "minLength": 1, "maxLength": 64},
        },
        "observations": {
            "type": "object",
            "minProperties": 1,
            "maxProperties": 64,
            "propertyNames": _KEY,
            "additionalProperties": _ARRAY,
        },
        "action": _ARRAY,
        "cameras": {
            "type": "array",
            "maxItems": 16,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "width", "height", "fps"],
                "properties": {
                    "name": _KEY,
                    "width": {"type": "integer", "minimum": 1, "maximum": 16384},
                    "height": {"type": "integer", "minimum": 1, "maximum": 16384},
                    "fps": {"type": "number", "exclusiveMinimum": 0, "maximum": 1000},
                },
            },
        },
        "control_hz": {"type": "number", "exclusiveMinimum": 0, "maximum": 100000},
    },
}
_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


class EmbodimentSpecError(ValueError):
    """The spec is not valid; `messages` says each problem with its location."""

    def __init__(self, messages: list[str]):
        super().__init__("; ".join(messages))
        self.messages = messages


@dataclass(frozen=True)
class ArraySpec:
    shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class CameraSpec:
    name: str
    width: int
    height: int
    fps: float


@dataclass(frozen=True)
class EmbodimentSpec:
    joint_names: tuple[str, ...]
    observations: dict[str, ArraySpec]
    action: ArraySpec
    cameras: tuple[CameraSpec, ...]
    control_hz: float
    name: str = ""

    @classmethod
    def from_dict(cls, data: Any) -> EmbodimentSpec:
        return parse_embodiment_spec(data)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "joint_names": list(self.joint_names),
            "observations": {
                k: {"shape": list(v.shape), "dtype": v.dtype} for k, v in self.observations.items()
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


def parse_embodiment_spec(data: Any) -> EmbodimentSpec:
    """Validate `data` against the schema and return the typed spec.

    Raises EmbodimentSpecError listing every problem (never another exception type)."""
    try:
        errors = sorted(_VALIDATOR.iter_errors(data), key=lambda e: list(e.absolute_path))
    except RecursionError as exc:  # absurdly nested input
        raise EmbodimentSpecError(["spec is nested too deeply"]) from exc
    if errors:
        raise EmbodimentSpecError(
            [f"{'/' + '/'.join(str(p) for p in e.absolute_path)}: {e.message}" for e in errors]
        )
    names = [c["name"] for c in data["cameras"]]
    if len(set(names)) != len(names):
        raise EmbodimentSpecError(["/cameras: camera names must be unique"])
    reserved = sorted(set(data["observations"]) & set(RESERVED_OBSERVATION_KEYS))
    if reserved:
        raise EmbodimentSpecError(
            [f"/observations/{reserved[0]}: the key is reserved for the episode's cameras"]
        )
    return EmbodimentSpec(
        joint_names=tuple(data["joint_names"]),
        observations={
            k: ArraySpec(tuple(v["shape"]), v["dtype"]) for k, v in data["observations"].items()
        },
        action=ArraySpec(tuple(data["action"]["shape"]), data["action"]["dtype"]),
        cameras=tuple(
            CameraSpec(c["name"], c["width"], c["height"], float(c["fps"])) for c in data["cameras"]
        ),
        control_hz=float(data["control_hz"]),
        name=data.get("name", ""),
    )
