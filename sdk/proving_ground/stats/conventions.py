"""What every statistics module shares: default levels, scipy imported on first use, the
checks of counts and levels, seeded random generators and the result base.

Conventions. Counts are Python or numpy integers; a rate needs at least one trial, so 0/0
raises ``ValueError`` (a cell with no trials has no rate to show, and silently returning the
vacuous [0, 1] would hide a scheduling bug). Probabilities and bounds are floats in [0, 1].
Every result object is a frozen dataclass with ``to_dict()`` returning JSON-ready data.
Every bootstrap draws from a generator seeded by a SHA-256 of its counts: the same data
always gives the same interval.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import operator
from typing import Any

import numpy as np

DEFAULT_CONFIDENCE = 0.95
DEFAULT_ALPHA = 0.05
# Bumping this changes every bootstrap seed; do it only with a scoring version change.
_SEED_NAMESPACE = "proving-ground/stats/1"


class _ImportedOnUse:
    """A module imported the first time one of its names is used. scipy.stats costs about
    70 MiB of memory and 0.5 s to import; every web process loads this module (through the
    models' scoring versions) but only leaderboard jobs and comparisons compute with it."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attribute: str):
        import importlib

        return getattr(importlib.import_module(self._name), attribute)


special = _ImportedOnUse("scipy.special")
sps = _ImportedOnUse("scipy.stats")


class Result:
    """Base of the frozen result dataclasses: JSON-ready ``to_dict()``."""

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(dataclasses.asdict(self))  # type: ignore[call-overload]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def as_count(value: Any, name: str) -> int:
    """`value` as a non-negative int; TypeError for bools and non-integers, ValueError below 0."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer count, got a bool")
    try:
        count = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer count, got {value!r}") from None
    if count < 0:
        raise ValueError(f"{name} must be >= 0, got {count}")
    return count


def check_counts(successes: Any, trials: Any, label: str = "") -> tuple[int, int]:
    """``(k, n)`` as ints with ``0 <= k <= n`` and ``n >= 1``; `label` prefixes the errors."""
    prefix = f"{label}: " if label else ""
    k = as_count(successes, f"{prefix}successes")
    n = as_count(trials, f"{prefix}trials")
    if n == 0:
        raise ValueError(f"{prefix}no trials (0/0): a success rate needs at least one trial")
    if k > n:
        raise ValueError(f"{prefix}successes ({k}) cannot exceed trials ({n})")
    return k, n


def check_probability_level(value: float, name: str) -> float:
    """`value` as a float strictly between 0 and 1 (a confidence, alpha or power)."""
    level = float(value)
    if not 0.0 < level < 1.0:
        raise ValueError(f"{name} must be strictly between 0 and 1, got {value!r}")
    return level


def check_resamples(resamples: int) -> int:
    """A bootstrap's number of resamples, an int of at least 100."""
    count = operator.index(resamples)
    if count < 100:
        raise ValueError(f"resamples must be at least 100, got {count}")
    return count


def seeded_rng(purpose: str, payload: Any) -> np.random.Generator:
    """A generator seeded by SHA-256 of the canonical JSON of the inputs: same data, same
    draws on any machine with the same numpy (pinned: ``numpy==2.4.6``). PCG64's raw stream
    is stable, but NEP 19 lets ``Generator`` methods such as ``binomial`` and
    ``multinomial`` change their draws between numpy versions; draws that must survive
    upgrades use ``stats.macro_estimand.stable_rng`` (legacy ``RandomState``, frozen)."""
    canonical = json.dumps([_SEED_NAMESPACE, purpose, payload], separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "big"))
