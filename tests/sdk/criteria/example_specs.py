"""The pick-and-place example spec and hypothesis strategies for specs, shared by the
criteria tests."""

from __future__ import annotations

import copy
import math
from typing import Any

from hypothesis import strategies as st

PICK_AND_PLACE: dict[str, Any] = {
    "schema": "pg-criteria/1",
    "success": {"description": "The cube rests inside the bin.", "check": "cube-lifted"},
    "stages": [
        {"id": "grasp", "description": "Gripper closed on the cube.", "weight": 0.25},
        {"id": "lift", "description": "Cube 5 cm above the table.", "weight": 0.25},
        {"id": "place", "description": "Cube inside the bin.", "weight": 0.5},
    ],
    "failure_codes": [
        {"code": "dropped", "description": "Cube fell during transport."},
        {"code": "missed_grasp", "description": "Gripper closed on nothing."},
    ],
    "checks": [
        {
            "id": "cube-lifted",
            "type": "final_value",
            "signal": "observations/qpos",
            "index": 2,
            "op": ">",
            "threshold": 0.05,
        },
        {"id": "grasp-in-time", "type": "stage_by_time", "stage": "grasp", "by_s": 10},
        {"id": "rate", "type": "control_rate", "min_hz": 45},
        {"id": "no-nan", "type": "finite", "signals": ["action", "observations/qpos"]},
        {
            "id": "wrist-live",
            "type": "camera_not_frozen",
            "camera": "cam_wrist",
            "max_frozen_s": 0.5,
        },
    ],
}


def spec(**top_level: Any) -> dict[str, Any]:
    """A fresh copy of the valid example, with top-level keys replaced."""
    out = copy.deepcopy(PICK_AND_PLACE)
    out.update(copy.deepcopy(top_level))
    return out


def check_spec(**fields: Any) -> dict[str, Any]:
    """A spec whose only check is the one given (and no success check)."""
    return spec(success={"description": "judged by the checks"}, checks=[fields])


def json_values_with(floats: st.SearchStrategy[float]) -> st.SearchStrategy[Any]:
    return st.recursive(
        st.none() | st.booleans() | st.integers() | floats | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=6)
            | st.dictionaries(st.text(max_size=12), children, max_size=6)
        ),
        max_leaves=40,
    )


json_values = json_values_with(st.floats())


finite_json_values = json_values_with(st.floats(allow_nan=False, allow_infinity=False))


slugs = st.from_regex(r"[a-z][a-z0-9_-]{0,12}", fullmatch=True)


descriptions = st.text(min_size=1, max_size=30)


signal_names = st.sampled_from(["action", "observations/qpos", "observations/qvel", "effort"])


def numbers(low: float, high: float) -> st.SearchStrategy[float | int]:
    return st.floats(low, high, allow_nan=False) | st.integers(math.ceil(low), math.floor(high))


@st.composite
def valid_specs(draw: st.DrawFn) -> dict[str, Any]:
    stage_ids = draw(st.lists(slugs, unique=True, max_size=6))
    parts = draw(st.lists(st.integers(0, 50), min_size=len(stage_ids), max_size=len(stage_ids)))
    if parts and sum(parts) == 0:
        parts[0] = 1
    stages = [
        {"id": stage_id, "description": draw(descriptions), "weight": part / sum(parts)}
        for stage_id, part in zip(stage_ids, parts, strict=True)
    ]
    check_ids = draw(st.lists(slugs, unique=True, max_size=8))
    kinds = ["final_value", "control_rate", "finite", "camera_not_frozen"]
    kinds += ["stage_by_time"] if stage_ids else []
    checks = []
    for check_id in check_ids:
        check: dict[str, Any] = {"id": check_id, "type": draw(st.sampled_from(kinds))}
        if draw(st.booleans()):
            check["description"] = draw(descriptions)
        match check["type"]:
            case "final_value":
                check |= {
                    "signal": draw(signal_names),
                    "op": draw(st.sampled_from([">", ">=", "<", "<="])),
                    "threshold": draw(numbers(-1e12, 1e12)),
                }
                if draw(st.booleans()):
                    check["index"] = draw(st.integers(0, 4095))
                if draw(st.booleans()):
                    check["window_s"] = draw(numbers(1e-3, 86400))
            case "stage_by_time":
                check |= {
                    "stage": draw(st.sampled_from(stage_ids)),
                    "by_s": draw(numbers(0, 86400)),
                }
            case "control_rate":
                check["min_hz"] = draw(numbers(1e-3, 100000))
            case "finite":
                if draw(st.booleans()):
                    check["signals"] = draw(st.lists(signal_names, min_size=1, unique=True))
            case "camera_not_frozen":
                check |= {"camera": draw(slugs.filter(lambda s: "-" not in s))}
                check["max_frozen_s"] = draw(numbers(0, 86400))
        checks.append(check)
    success: dict[str, Any] = {"description": draw(descriptions)}
    if check_ids and draw(st.booleans()):
        success["check"] = draw(st.sampled_from(check_ids))
    out: dict[str, Any] = {"schema": "pg-criteria/1", "success": success}
    # Optional lists are sometimes left out, to exercise normalization.
    for key, value in [("stages", stages), ("failure_codes", []), ("checks", checks)]:
        if value or draw(st.booleans()):
            out[key] = value
    if draw(st.booleans()):
        out["failure_codes"] = [
            {"code": code, "description": draw(descriptions)}
            for code in draw(st.lists(slugs, unique=True, max_size=4))
        ]
    return out


@st.composite
def damaged_specs(draw: st.DrawFn) -> object:
    """A valid spec with one value somewhere replaced by arbitrary JSON: near misses reach the
    cross-field rules, which read the raw spec."""
    damaged = draw(valid_specs())
    containers: list[Any] = []
    stack: list[Any] = [damaged]
    while stack:
        node = stack.pop()
        if isinstance(node, dict | list) and node:
            containers.append(node)
            stack.extend(node.values() if isinstance(node, dict) else node)
    target = draw(st.sampled_from(containers))
    key = draw(st.sampled_from(list(target) if isinstance(target, dict) else range(len(target))))
    target[key] = draw(json_values)
    return damaged
