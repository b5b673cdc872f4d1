"""Conditions from the environment: a platform condition (``factor`` / ``level``) names a
family of initial states, and a seed picks one state of the family, reproducibly.

PushT's state is ``[agent_x, agent_y, block_x, block_y, block_angle]`` on a 512 x 512 table
whose goal pose is ``(256, 256, pi/4)``; gym-pusht's ``reset`` takes it as
``options={"reset_to_state": state}``. Factor ``block_start`` places the block's start in a
region of the table:

========  ============================================================
level     block start
========  ============================================================
left      x in [110, 190], y in [120, 400]
center    x in [210, 300], y in [330, 400] (below the goal)
right     x in [322, 402], y in [120, 400]
========  ============================================================

Block angle within 0.6 rad of the goal's (pi/4); the agent starts at least 110 px from the
block. Any other factor, or no condition, uses the environment's own random reset with the
seed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

PUSHT_BLOCK_REGIONS: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "left": ((110.0, 190.0), (120.0, 400.0)),
    "center": ((210.0, 300.0), (330.0, 400.0)),
    "right": ((322.0, 402.0), (120.0, 400.0)),
}
PUSHT_FACTOR = "block_start"


class UnknownCondition(ValueError):
    """The condition names a factor or level this environment cannot set up."""


@dataclass(frozen=True)
class InitialState:
    """What the runner sets up: the seed given to ``env.reset`` and its options."""

    seed: int
    factor: str
    level: str
    options: dict[str, Any]

    def as_record(self) -> dict[str, str]:
        """Strings for the episode file's ``software`` record (the seed and the condition)."""
        state = self.options.get("reset_to_state")
        return {
            "sim_seed": str(self.seed),
            "sim_condition": f"{self.factor}={self.level}" if self.factor else "",
            "sim_initial_state": "" if state is None else repr([round(v, 4) for v in state]),
        }


def derive_seed(*parts: object) -> int:
    """A seed from any labels (a campaign seed and a trial order, an episode id...): the same
    labels give the same seed on every machine and every Python (no ``hash()``)."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


def pusht_initial_state(factor: str | None, level: str | None, seed: int) -> InitialState:
    """The PushT initial state of condition ``factor=level`` for ``seed``. Raises
    UnknownCondition for a ``block_start`` level it does not know."""
    if not factor or factor != PUSHT_FACTOR:
        return InitialState(seed=seed, factor=factor or "", level=level or "", options={})
    if level not in PUSHT_BLOCK_REGIONS:
        known = ", ".join(PUSHT_BLOCK_REGIONS)
        raise UnknownCondition(f"{factor}={level!r}: PushT knows {factor} levels {known}")
    rng = np.random.default_rng(seed)
    (x_low, x_high), (y_low, y_high) = PUSHT_BLOCK_REGIONS[level]
    block = np.array([rng.uniform(x_low, x_high), rng.uniform(y_low, y_high)])
    angle = float(np.pi / 4 + rng.uniform(-0.6, 0.6))
    while True:
        agent = rng.uniform(60.0, 452.0, size=2)
        if np.linalg.norm(agent - block) >= 110.0:
            break
    state = [float(agent[0]), float(agent[1]), float(block[0]), float(block[1]), angle]
    return InitialState(seed=seed, factor=factor, level=level, options={"reset_to_state": state})


def condition_initial_state(condition: dict[str, Any] | None, seed: int) -> InitialState:
    """`pusht_initial_state` for a condition as the robot API gives it (or None)."""
    if condition is None:
        return pusht_initial_state(None, None, seed)
    return pusht_initial_state(condition.get("factor"), condition.get("level"), seed)
