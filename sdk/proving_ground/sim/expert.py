"""Scripted PushT policies: an expert that pushes the T toward its goal, and a random one.

A policy is a callable ``policy(observation, step) -> actions``: ``observation`` is the
runner's dict (``agent_pos``, ``block_pose`` ``[x, y, angle]``, ``goal_pose``, ``pixels``),
``actions`` an array of one or more ``[x, y]`` targets (a chunk, executed in order). Each
factory here takes keyword parameters, so ``checkpoint_uri``
``pg-policy:proving_ground.sim.expert:expert_policy?noise=0.1`` names one (docs/simulation.md).

The expert uses the block's pose (privileged state, as a scripted operator would see the
scene); it pushes the block's centre toward the goal's and ignores the angle, so it reaches
partial coverage often and full coverage rarely: a policy with room above it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

TABLE = (20.0, 492.0)  # targets kept inside the walls


class ExpertPolicy:
    """Go behind the block (seen from the goal), then push through it toward the goal;
    detour around the block when it is in the way. ``noise`` is the standard deviation of
    Gaussian noise added to each target, in pixels divided by 100 (``noise=0.1``: 10 px);
    ``seed`` makes the noise reproducible."""

    def __init__(
        self, noise: float = 0.0, seed: int = 0, standoff: float = 75.0, push_step: float = 12.0
    ):
        self.noise = float(noise)
        self.push_step = float(push_step)
        self.standoff = float(standoff)
        self._seed = int(seed)
        self._rng = np.random.default_rng(self._seed)

    def reset(self, seed: int | None = None) -> None:
        self._rng = np.random.default_rng(self._seed if seed is None else seed)

    def __call__(self, observation: dict[str, Any], step: int) -> np.ndarray:
        agent = np.asarray(observation["agent_pos"], dtype=np.float64)
        block = centre_of_mass(observation["block_pose"])
        goal = centre_of_mass(observation["goal_pose"])
        to_goal = goal - block
        distance = float(np.linalg.norm(to_goal))
        if distance < 4.0:
            target = agent  # close enough: hold still
        else:
            direction = to_goal / distance
            behind = block - direction * self.standoff
            if np.linalg.norm(agent - behind) > 18.0:
                target = _around(agent, block, behind, self.standoff)
            else:
                target = agent + direction * min(distance, self.push_step)
        if self.noise > 0:
            target = target + self._rng.normal(0.0, 100.0 * self.noise, size=2)
        return np.clip(target, *TABLE)[None, :].astype(np.float32)


def centre_of_mass(pose) -> np.ndarray:
    """The T's centre of mass on the table for its pose ``[x, y, angle]``: gym-pusht's T has
    it 45 px from the body's origin along the stem."""
    x, y, angle = (float(v) for v in np.asarray(pose, dtype=np.float64)[:3])
    return np.array([x - 45.0 * np.sin(angle), y + 45.0 * np.cos(angle)])


def _around(agent: np.ndarray, block: np.ndarray, goal_point: np.ndarray, radius: float):
    """The next waypoint from ``agent`` to ``goal_point`` that keeps off the block: straight
    if the way is clear, else sideways around it."""
    way = goal_point - agent
    length = float(np.linalg.norm(way))
    if length < 1e-6:
        return goal_point
    along = float(np.clip(np.dot(block - agent, way) / length**2, 0.0, 1.0))
    closest = agent + along * way
    if np.linalg.norm(closest - block) >= 0.8 * radius:
        return goal_point
    side = agent - block
    side /= max(float(np.linalg.norm(side)), 1e-6)
    tangent = np.array([-side[1], side[0]])
    if np.dot(tangent, goal_point - block) < 0:
        tangent = -tangent
    return block + (side + tangent) / np.sqrt(2) * (radius + 10.0)


class RandomPolicy:
    """Uniform random targets on the table (reproducible with ``seed``)."""

    def __init__(self, seed: int = 0):
        self._seed = int(seed)
        self._rng = np.random.default_rng(self._seed)

    def reset(self, seed: int | None = None) -> None:
        self._rng = np.random.default_rng(self._seed if seed is None else seed)

    def __call__(self, observation: dict[str, Any], step: int) -> np.ndarray:
        return self._rng.uniform(*TABLE, size=(1, 2)).astype(np.float32)


def expert_policy(noise: float = 0.0, seed: int = 0) -> ExpertPolicy:
    """The scripted expert (``noise`` as in `ExpertPolicy`)."""
    return ExpertPolicy(noise=float(noise), seed=int(seed))


def random_policy(seed: int = 0) -> RandomPolicy:
    """The random policy."""
    return RandomPolicy(seed=int(seed))
