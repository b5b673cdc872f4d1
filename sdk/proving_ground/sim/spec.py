"""An embodiment spec derived from a Gymnasium environment's spaces and camera renders.

The spec is the JSON the server's embodiment API takes (docs/api.md): vector observations
of rank 1 become observations (``agent_pos`` is named ``qpos``, as a robot's joint state),
``uint8`` image observations (H x W x 3) become cameras (``pixels`` is named ``top``), the
action box is the action, and the environment's ``render_fps`` is both the control rate and
every camera's frame rate.
"""

from __future__ import annotations

from typing import Any

import numpy as np

OBSERVATION_NAMES = {"agent_pos": "qpos"}
CAMERA_NAMES = {"pixels": "top"}
PUSHT_JOINTS = ["agent_x", "agent_y"]


def _is_image(space) -> bool:
    shape = tuple(space.shape or ())
    return np.dtype(space.dtype) == np.uint8 and len(shape) == 3 and shape[2] in (1, 3)


def derive_spec(env, *, name: str = "", joint_names: list[str] | None = None) -> dict[str, Any]:
    """The embodiment spec for ``env`` (a Gymnasium env whose observation space is a Box or a
    Dict of Boxes and whose action space is a Box)."""
    from gymnasium import spaces

    fps = float(env.metadata.get("render_fps") or 10)
    obs_space = env.observation_space
    items = obs_space.spaces.items() if isinstance(obs_space, spaces.Dict) else [("obs", obs_space)]
    observations: dict[str, Any] = {}
    cameras: list[dict[str, Any]] = []
    for key, space in items:
        if _is_image(space):
            height, width = int(space.shape[0]), int(space.shape[1])
            cameras.append(
                {"name": CAMERA_NAMES.get(key, key), "width": width, "height": height, "fps": fps}
            )
        else:
            observations[OBSERVATION_NAMES.get(key, key)] = {
                "shape": [int(n) for n in space.shape],
                "dtype": str(np.dtype(space.dtype)),
            }
    action = env.action_space
    qpos = observations.get("qpos")
    if joint_names is None:
        size = qpos["shape"][0] if qpos else int(np.prod(action.shape))
        joint_names = PUSHT_JOINTS if size == 2 else [f"joint_{i}" for i in range(size)]
    spec: dict[str, Any] = {
        "joint_names": list(joint_names),
        "observations": observations,
        "action": {"shape": [int(n) for n in action.shape], "dtype": str(np.dtype(action.dtype))},
        "cameras": cameras,
        "control_hz": fps,
    }
    if name:
        spec["name"] = name
    return spec
