"""The ``pg-criteria/1`` spec as immutable dataclasses, and what a spec decides.

A task version's success criteria are data, never code. The spec (schema in
``sdk/proving_ground/schemas/criteria-v1.schema.json``, user guide in ``docs/criteria.md``)
holds

- a binary success criterion: a description for the human labeler, optionally naming an
  automatic check whose result decides success;
- ordered stages for partial credit, each with a weight; the weights sum to 1;
- failure codes a labeler can attach to a failed episode;
- automatic checks from a fixed menu (see `proving_ground.criteria.automatic_checks`).

Build a `Criteria` with `proving_ground.criteria.parsing.parse_criteria`. This module also
holds the problems a spec can have (`CriteriaProblem`, `CriteriaError`), the canonical JSON
a locked task version is content-hashed by, and what a spec decides about one episode: its
stage score, success from the checks' results, and the results of its checks.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from proving_ground.criteria.automatic_checks import (
    Check,
    CheckResult,
    CheckStatus,
    EpisodeSignals,
)

SCHEMA_ID = "pg-criteria/1"


@dataclass(frozen=True)
class CriteriaProblem:
    """One thing wrong with a spec. `path` is a JSON pointer (RFC 6901) into the spec, ``""``
    for the spec itself, e.g. ``/checks/2/threshold``; `message` says what is wrong and what is
    allowed."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '(spec)'}: {self.message}"


class CriteriaError(ValueError):
    """A spec (or a use of one, such as an unknown stage id) is invalid. `problems` lists every
    problem found, sorted by path."""

    def __init__(self, problems: Sequence[CriteriaProblem]):
        self.problems: list[CriteriaProblem] = list(problems)
        summary = "; ".join(str(problem) for problem in self.problems[:5])
        more = len(self.problems) - 5
        super().__init__(
            f"invalid success criteria: {summary}" + (f"; and {more} more" if more > 0 else "")
        )


def json_pointer(parts: Iterable[str | int]) -> str:
    """The JSON pointer (RFC 6901) of a path of keys and indices: ``["checks", 2]`` ->
    ``/checks/2``."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


def short_repr(value: object) -> str:
    """`repr(value)`, cut to 60 characters, for quoting user input in a message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class Stage:
    """One stage for partial credit. `weight` is in [0, 1]; a spec's weights sum to 1."""

    id: str
    description: str
    weight: float


@dataclass(frozen=True)
class FailureCode:
    code: str
    description: str


@dataclass(frozen=True)
class SuccessCriterion:
    """The binary criterion. When `check` names an automatic check, that check's pass or fail
    decides success (see `success_from_checks`); otherwise a human judges by `description`."""

    description: str
    check: str | None = None


@dataclass(frozen=True)
class Criteria:
    """A validated ``pg-criteria/1`` spec. Build with `parse_criteria`; immutable and
    comparable, and ``parse_criteria(c.to_dict()) == c``."""

    schema: ClassVar[str] = SCHEMA_ID
    success: SuccessCriterion
    stages: tuple[Stage, ...] = ()
    failure_codes: tuple[FailureCode, ...] = ()
    checks: tuple[Check, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The normalized spec: every top-level key present, numbers as floats (indices as
        ints), unset optional parameters left out."""
        success: dict[str, Any] = {"description": self.success.description}
        if self.success.check is not None:
            success["check"] = self.success.check
        return {
            "schema": self.schema,
            "success": success,
            "stages": [
                {"id": s.id, "description": s.description, "weight": s.weight} for s in self.stages
            ],
            "failure_codes": [
                {"code": f.code, "description": f.description} for f in self.failure_codes
            ],
            "checks": [check.to_dict() for check in self.checks],
        }


def canonical_json(spec: Criteria | Mapping[str, Any]) -> str:
    """Canonical JSON text for content hashing: sorted keys, no whitespace, ASCII only.

    Given `Criteria`, serializes its normalized `to_dict()`, so equivalent spellings of a spec
    (a missing ``"stages"`` and ``"stages": []``, ``1`` and ``1.0``) hash alike; hash
    ``canonical_json(parse_criteria(raw))``. Given a mapping, serializes it as it is. Raises
    `CriteriaError` for values JSON cannot hold (NaN, infinity, non-JSON types).
    """
    value = spec.to_dict() if isinstance(spec, Criteria) else spec
    try:
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
        )
    except (TypeError, ValueError, RecursionError) as exc:
        raise CriteriaError([CriteriaProblem("", f"not serializable as JSON: {exc}")]) from exc


def evaluate_checks(criteria: Criteria, episode: EpisodeSignals) -> list[CheckResult]:
    """Run every automatic check on the episode: one result per check, in spec order. Missing
    or unusable data gives ``not_evaluable`` results, never an exception."""
    return [check.evaluate(episode) for check in criteria.checks]


def stage_score(criteria: Criteria, stages_reached: Iterable[str]) -> float:
    """Partial credit in [0, 1]: the sum of the weights of the distinct stages reached.

    Stages are ordered for display, but reaching a later stage does not credit earlier ones:
    the labeler marks each stage reached. A spec without stages scores 0.0. Raises
    `CriteriaError` for a stage id the spec does not define.
    """
    weights = {stage.id: stage.weight for stage in criteria.stages}
    reached = set(stages_reached)
    unknown = sorted(reached - weights.keys())
    if unknown:
        known = ", ".join(weights) if weights else "none: the spec has no stages"
        raise CriteriaError(
            [
                CriteriaProblem("", f"unknown stage {short_repr(stage_id)}; stages: {known}")
                for stage_id in unknown
            ]
        )
    # fsum is correctly rounded, so the score is monotone in the set reached; weights summing
    # to 1 only within 1e-6 could otherwise push a full score past 1.
    return min(1.0, math.fsum(weights[stage_id] for stage_id in reached))


def success_from_checks(criteria: Criteria, results: Iterable[CheckResult]) -> bool | None:
    """Success as decided by the spec's success check: True if it passed, False if it failed,
    None when the spec names no success check, or its result is absent or not evaluable."""
    check_id = criteria.success.check
    if check_id is None:
        return None
    for result in results:
        if result.check_id == check_id:
            if result.status == CheckStatus.NOT_EVALUABLE:
                return None
            return result.status == CheckStatus.PASSED
    return None
