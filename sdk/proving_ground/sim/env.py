"""PushT as the runner sees it: the environment, its observation dict and one rollout.

Imports gymnasium and gym-pusht (``pip install 'proving-ground-sdk[sim]'``, or
requirements-sim.txt) only when an environment is made.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from proving_ground.sim.conditions import InitialState

PUSHT_ID = "gym_pusht/PushT-v0"
# Coverage thresholds reported as the task's stages, in order (docs/simulation.md).
PUSHT_STAGES = (("cover_25", 0.25), ("cover_50", 0.5), ("cover_80", 0.8))
SUCCESS_COVERAGE = 0.5  # the PushT task's success: half the goal covered
DEFAULT_MAX_STEPS = 300  # gym-pusht's own limit: 30 s at 10 Hz


def make_pusht_env(image_size: int = 96):
    """A headless PushT environment with pixel observations (``image_size`` square) and the
    agent's position."""
    import gym_pusht  # noqa: F401  (registers the environment)
    import gymnasium as gym

    return gym.make(
        PUSHT_ID,
        obs_type="pixels_agent_pos",
        render_mode="rgb_array",
        observation_width=image_size,
        observation_height=image_size,
    )


def observation_dict(env_obs: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    """What a policy sees: ``agent_pos`` [x, y], ``block_pose`` [x, y, angle], ``goal_pose``
    [x, y, angle] (floats) and ``pixels`` (H x W x 3 uint8)."""
    return {
        "agent_pos": np.asarray(env_obs["agent_pos"], dtype=np.float64),
        "block_pose": np.asarray(info["block_pose"], dtype=np.float64),
        "goal_pose": np.asarray(info["goal_pose"], dtype=np.float64),
        "pixels": np.asarray(env_obs["pixels"], dtype=np.uint8),
    }


@dataclass
class StepRecord:
    t: float
    agent_pos: np.ndarray
    action: np.ndarray
    pixels: np.ndarray
    coverage: float


@dataclass
class Rollout:
    """One rollout's result: coverage, stages reached (with the time each was first
    reached), success, and whether it ran out of steps."""

    initial_state: InitialState
    steps: int = 0
    max_coverage: float = 0.0
    final_coverage: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)
    success: bool = False
    timed_out: bool = False
    off_table: bool = False

    @property
    def failure_codes(self) -> list[str]:
        codes = []
        if self.timed_out and not self.success:
            codes.append("timeout")
        if self.off_table:
            codes.append("block_off_table")
        return codes


def rollout(
    env,
    policy: Callable[[dict[str, Any], int], Any],
    initial: InitialState,
    *,
    control_hz: float = 10.0,
    max_steps: int = DEFAULT_MAX_STEPS,
    success_coverage: float = SUCCESS_COVERAGE,
    on_step: Callable[[StepRecord], None] | None = None,
) -> Rollout:
    """Run ``policy`` from ``initial`` until success (coverage >= ``success_coverage``) or
    ``max_steps``. Policies return chunks of actions; each is executed in order, and the
    policy is asked again when its chunk runs out. ``on_step`` gets every step (the
    observation before the action, the action and the coverage after it), for recording.
    Times are simulated time, ``step / control_hz``."""
    env_obs, info = env.reset(seed=initial.seed, options=initial.options or None)
    reset = getattr(policy, "reset", None)
    if callable(reset):
        reset(seed=initial.seed)
    result = Rollout(initial_state=initial)
    chunk: list[np.ndarray] = []
    for step in range(max_steps):
        obs = observation_dict(env_obs, info)
        if not chunk:
            actions = np.asarray(policy(obs, step), dtype=np.float32).reshape(-1, 2)
            if len(actions) == 0:
                raise ValueError("the policy returned no action")
            chunk = list(actions)
        action = chunk.pop(0)
        env_obs, _reward, _terminated, _truncated, info = env.step(action)
        coverage = float(info["coverage"])
        t = step / control_hz
        if on_step is not None:
            on_step(StepRecord(t, obs["agent_pos"], action, obs["pixels"], coverage))
        result.steps = step + 1
        result.final_coverage = coverage
        result.max_coverage = max(result.max_coverage, coverage)
        for name, threshold in PUSHT_STAGES:
            if coverage >= threshold and name not in result.stages:
                result.stages[name] = t
        x, y = np.asarray(info["block_pose"])[:2]
        if not (0.0 <= x <= 512.0 and 0.0 <= y <= 512.0):
            result.off_table = True
            break
        if coverage >= success_coverage:
            result.success = True
            break
    else:
        result.timed_out = True
    return result
