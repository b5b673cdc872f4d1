"""Task success criteria: a structured JSON spec, validated, and evaluated on an episode's arrays.

A task version's success criteria are data, never code. The spec (``"pg-criteria/1"``, schema in
``core/schemas/criteria-v1.schema.json``, user guide in ``docs/criteria.md``) holds

- a binary success criterion: a description for the human labeler, optionally naming an
  automatic check whose result decides success;
- ordered stages for partial credit, each with a weight; the weights sum to 1;
- failure codes a labeler can attach to a failed episode;
- automatic checks from a fixed menu (``final_value``, ``stage_by_time``, ``control_rate``,
  ``finite``, ``camera_not_frozen``), each with typed, bounded parameters.

Why a fixed menu rather than expressions: criteria come from users, are shown to operators,
and run on the server and on robots. Any expression language (``eval``, a mini-language,
user-supplied regular expressions) is an injection and denial-of-service surface and makes a
criterion's meaning depend on an interpreter's version. A closed set of checks with numeric
parameters can be validated completely, rendered to a human, and content-hashed so that a
locked task version means the same thing forever. A new kind of check is a code change with
a schema version, on purpose.

Validation has three layers, and `parse_criteria` reports every problem it finds with a JSON
pointer path: (1) the input must be a bounded JSON value (depth, size, string lengths, finite
numbers, integers within +-2**53) so that nothing later can recurse or format without limit;
(2) the JSON Schema, with ``additionalProperties: false`` everywhere; (3) cross-field rules the
schema cannot say: unique stage ids, failure codes and check ids, references to existing
stages and checks, and stage weights summing to 1.

Control rate is measured from the median inter-sample interval, not the mean: the mean is
``duration / (n - 1)`` and one multi-second stall (a GC pause, a USB reset) drags it down
however steady the loop was otherwise, while the median reports the rate the loop actually ran
at for most of the episode. Stalls are not hidden: when the nominal rate is known the result
also reports the fraction of intervals longer than 1.5x the nominal period.

This module must stay importable without Django (it runs on robots); it uses numpy, jsonschema
and the standard library only.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import json
import math
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, ClassVar

import jsonschema
import numpy as np

SCHEMA_ID = "pg-criteria/1"
CRITERIA_SCHEMA: dict[str, Any] = json.loads(
    resources.files(__package__).joinpath("schemas/criteria-v1.schema.json").read_text("utf-8")
)
_VALIDATOR = jsonschema.Draft202012Validator(CRITERIA_SCHEMA)

WEIGHT_SUM_TOLERANCE = 1e-6

# Input bounds checked before the schema runs. A valid spec is 5 levels deep and at most a few
# thousand values (64 checks x 64 signals), its longest string 2000 characters; the bounds sit
# well above that and well below anything that could exhaust the stack or memory.
_MAX_DEPTH = 32
_MAX_VALUES = 10_000
_MAX_STRING_CHARS = 10_000
# JSON numbers are doubles in most readers; larger integers would not survive a round trip,
# and Python refuses to format integers past 4300 digits (which would crash error messages).
_MAX_SAFE_INTEGER = 2**53
_MAX_REPORTED_PROBLEMS = 50

# Durations and rates computed from float timestamps carry rounding error (np.arange(n) / 50
# has intervals of 0.020000000000000018 s). Comparisons against thresholds allow this much, far
# below the resolution of any robot clock.
_CLOCK_TOLERANCE_S = 1e-9
_RATE_RELATIVE_TOLERANCE = 1e-9
# An interval this many times the nominal period counts as late in `control_rate`.
_LATE_INTERVAL_FACTOR = 1.5

_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


# --- Problems -------------------------------------------------------------------------------


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


def _pointer(parts: Iterable[str | int]) -> str:
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


def _short_repr(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _json_type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


# --- The spec as dataclasses -----------------------------------------------------------------


class CheckStatus(enum.StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    # The data the check needs is absent, empty or unreadable; `message` says which.
    NOT_EVALUABLE = "not_evaluable"


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one automatic check on one episode.

    `value` is the measured number in the check's unit (seconds, Hz, the signal's own unit, or a
    count for ``finite``), None when nothing could be measured. `details` holds further
    measurements, such as ``late_fraction`` for ``control_rate``.
    """

    check_id: str
    type: str
    status: CheckStatus
    value: float | None
    message: str
    details: Mapping[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status == CheckStatus.PASSED

    def to_dict(self) -> dict[str, Any]:
        return {
            "check_id": self.check_id,
            "type": self.type,
            "status": str(self.status),
            "value": self.value,
            "message": self.message,
            "details": dict(self.details),
        }


@dataclass(frozen=True)
class EpisodeSignals:
    """What the checks read from one logged episode.

    - `timestamps`: shape (T,), seconds, the control loop's measured sample times.
    - `signals`: name (``"action"``, ``"observations/qpos"``) -> array of shape (T, ...) whose
      first axis is time, aligned with `timestamps`.
    - `stage_events`: (stage id, seconds since episode start) for each stage reached; an
      episode without an event for a stage did not reach it.
    - `camera_frames`: camera name -> (encoded frames (JPEG/PNG bytes), per-frame timestamps of
      shape (F,) in seconds).
    - `nominal_hz`: the embodiment's nominal control rate, if known.
    """

    timestamps: np.ndarray
    signals: Mapping[str, np.ndarray] = field(default_factory=dict)
    stage_events: Sequence[tuple[str, float]] = ()
    camera_frames: Mapping[str, tuple[Sequence[bytes], np.ndarray]] = field(default_factory=dict)
    nominal_hz: float | None = None


class _AutomaticCheck:
    """Behaviour shared by the check dataclasses: serialization and result construction."""

    type: ClassVar[str]
    id: str

    def to_dict(self) -> dict[str, Any]:
        """The normalized spec of this check; unset optional parameters are left out."""
        out: dict[str, Any] = {"id": self.id, "type": self.type}
        for spec_field in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, spec_field.name)
            if spec_field.name == "id" or value is None or value == "" or value == ():
                continue
            out[spec_field.name] = list(value) if isinstance(value, tuple) else value
        return out

    def evaluate(self, episode: EpisodeSignals) -> CheckResult:
        raise NotImplementedError

    def _result(
        self,
        status: CheckStatus,
        message: str,
        value: float | None = None,
        details: Mapping[str, float] | None = None,
    ) -> CheckResult:
        return CheckResult(
            check_id=self.id,
            type=self.type,
            status=status,
            value=value,
            message=message,
            details=dict(details or {}),
        )


@dataclass(frozen=True)
class FinalValueCheck(_AutomaticCheck):
    """Passes when a signal's final value (or its mean over the last `window_s` seconds)
    compares true against `threshold` with `op`. `index` picks one element of the signal's last
    axis; without it the signal must hold one number per time step."""

    type: ClassVar[str] = "final_value"
    id: str
    signal: str
    op: str
    threshold: float
    index: int | None = None
    window_s: float | None = None
    description: str = ""

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> FinalValueCheck:
        return cls(
            id=spec["id"],
            signal=spec["signal"],
            op=spec["op"],
            threshold=float(spec["threshold"]),
            index=int(spec["index"]) if "index" in spec else None,
            window_s=float(spec["window_s"]) if "window_s" in spec else None,
            description=spec.get("description", ""),
        )

    def evaluate(self, episode: EpisodeSignals) -> CheckResult:
        label = self.signal if self.index is None else f"{self.signal}[{self.index}]"
        values, reason = _scalar_series(episode.signals, self.signal, self.index)
        if values is None:
            return self._result(CheckStatus.NOT_EVALUABLE, reason)
        if self.window_s is None:
            measured = float(values[-1])
            what = f"final value of {label}"
        else:
            timestamps, reason = _sample_times(episode.timestamps)
            if timestamps is None:
                return self._result(CheckStatus.NOT_EVALUABLE, reason)
            if len(timestamps) != len(values):
                return self._result(
                    CheckStatus.NOT_EVALUABLE,
                    f"{self.signal} has {len(values)} samples but the episode has "
                    f"{len(timestamps)} timestamps",
                )
            in_window = timestamps >= timestamps[-1] - self.window_s - _CLOCK_TOLERANCE_S
            measured = float(np.mean(values[in_window]))
            what = (
                f"mean of {label} over the last {self.window_s:g} s "
                f"({int(in_window.sum())} samples)"
            )
        if not math.isfinite(measured):
            return self._result(CheckStatus.NOT_EVALUABLE, f"{what} is {measured}, not finite")
        passed = _COMPARISONS[self.op](measured, self.threshold)
        return self._result(
            CheckStatus.PASSED if passed else CheckStatus.FAILED,
            f"{what} = {measured:.6g}; needs {self.op} {self.threshold:g}",
            value=measured,
        )


@dataclass(frozen=True)
class StageByTimeCheck(_AutomaticCheck):
    """Passes when `stage` was first reached at most `by_s` seconds after the episode start
    (inclusive). `value` is the time it was first reached, in seconds."""

    type: ClassVar[str] = "stage_by_time"
    id: str
    stage: str
    by_s: float
    description: str = ""

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> StageByTimeCheck:
        return cls(
            id=spec["id"],
            stage=spec["stage"],
            by_s=float(spec["by_s"]),
            description=spec.get("description", ""),
        )

    def evaluate(self, episode: EpisodeSignals) -> CheckResult:
        # Events with unusable times are skipped rather than failing the check: the stage may
        # still have a usable event.
        times = [
            float(t)
            for stage_id, t in episode.stage_events
            if stage_id == self.stage and math.isfinite(float(t))
        ]
        if not times:
            return self._result(
                CheckStatus.FAILED,
                f"stage '{self.stage}' was not reached (no stage event); needs by {self.by_s:g} s",
            )
        first_s = min(times)
        return self._result(
            CheckStatus.PASSED if first_s <= self.by_s else CheckStatus.FAILED,
            f"stage '{self.stage}' first reached at {first_s:.6g} s; needs by {self.by_s:g} s",
            value=first_s,
        )


@dataclass(frozen=True)
class ControlRateCheck(_AutomaticCheck):
    """Passes when the control rate, 1 / median interval between consecutive timestamps, is at
    least `min_hz` (up to a relative 1e-9 of float rounding). `value` is that rate in Hz.
    With the episode's nominal rate known, `details["late_fraction"]` (in [0, 1]) is the share
    of intervals longer than 1.5x the nominal period."""

    type: ClassVar[str] = "control_rate"
    id: str
    min_hz: float
    description: str = ""

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> ControlRateCheck:
        return cls(
            id=spec["id"], min_hz=float(spec["min_hz"]), description=spec.get("description", "")
        )

    def evaluate(self, episode: EpisodeSignals) -> CheckResult:
        timestamps, reason = _sample_times(episode.timestamps)
        if timestamps is None:
            return self._result(CheckStatus.NOT_EVALUABLE, reason)
        if len(timestamps) < 2:
            return self._result(
                CheckStatus.NOT_EVALUABLE,
                f"a rate needs at least 2 timestamps; the episode has {len(timestamps)}",
            )
        intervals_s = np.diff(timestamps)
        backwards = np.flatnonzero(intervals_s <= 0)
        if backwards.size:
            # A clock that stands still or runs back has no rate; the upload validator should
            # have refused such a file.
            return self._result(
                CheckStatus.NOT_EVALUABLE,
                f"timestamps do not increase at sample {int(backwards[0]) + 1}",
            )
        median_interval_s = float(np.median(intervals_s))
        rate_hz = 1.0 / median_interval_s
        details: dict[str, float] = {
            "median_interval_s": median_interval_s,
            "intervals": float(len(intervals_s)),
        }
        message = (
            f"control rate {rate_hz:.6g} Hz (median of {len(intervals_s)} intervals); "
            f"needs >= {self.min_hz:g} Hz"
        )
        nominal_hz = episode.nominal_hz
        if nominal_hz is not None and math.isfinite(nominal_hz) and nominal_hz > 0:
            late_fraction = float(np.mean(intervals_s > _LATE_INTERVAL_FACTOR / nominal_hz))
            details["nominal_hz"] = float(nominal_hz)
            details["late_fraction"] = late_fraction
            message += (
                f"; {late_fraction:.1%} of intervals longer than {_LATE_INTERVAL_FACTOR:g}x the "
                f"nominal {nominal_hz:g} Hz period"
            )
        passed = rate_hz >= self.min_hz * (1 - _RATE_RELATIVE_TOLERANCE)
        return self._result(
            CheckStatus.PASSED if passed else CheckStatus.FAILED,
            message,
            value=rate_hz,
            details=details,
        )


@dataclass(frozen=True)
class FiniteCheck(_AutomaticCheck):
    """Passes when the listed signals (every signal of the episode when `signals` is empty)
    hold no NaN or infinity. `value` is the number of non-finite elements found."""

    type: ClassVar[str] = "finite"
    id: str
    signals: tuple[str, ...] = ()
    description: str = ""

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> FiniteCheck:
        return cls(
            id=spec["id"],
            signals=tuple(spec.get("signals", ())),
            description=spec.get("description", ""),
        )

    def evaluate(self, episode: EpisodeSignals) -> CheckResult:
        names = self.signals or tuple(sorted(episode.signals))
        if not names:
            return self._result(CheckStatus.NOT_EVALUABLE, "the episode has no signals")
        unreadable: list[str] = []
        offenders: list[str] = []
        nonfinite_total = 0
        for name in names:
            if name not in episode.signals:
                unreadable.append(f"signal '{name}' is not in the episode")
                continue
            array = np.asarray(episode.signals[name])
            if array.ndim == 0 or array.shape[0] == 0:
                unreadable.append(f"signal '{name}' has no samples")
                continue
            if array.dtype.kind in "biu":  # integers and booleans cannot hold NaN or inf
                continue
            if array.dtype.kind not in "fc":
                unreadable.append(f"signal '{name}' is not numeric (dtype {array.dtype})")
                continue
            nonfinite = ~np.isfinite(array.reshape(array.shape[0], -1))
            count = int(nonfinite.sum())
            if count:
                first_sample = int(np.flatnonzero(nonfinite.any(axis=1))[0])
                offenders.append(f"{name}: {count} (first at sample {first_sample})")
                nonfinite_total += count
        # A non-finite value found anywhere decides the check even if another signal is missing.
        if offenders:
            message = f"{nonfinite_total} NaN or infinite values: " + ", ".join(offenders)
            if unreadable:
                message += "; also " + "; ".join(unreadable)
            return self._result(CheckStatus.FAILED, message, value=float(nonfinite_total))
        if unreadable:
            return self._result(CheckStatus.NOT_EVALUABLE, "; ".join(unreadable))
        return self._result(
            CheckStatus.PASSED,
            f"no NaN or infinite values in {len(names)} signals ({', '.join(names)})",
            value=0.0,
        )


@dataclass(frozen=True)
class CameraNotFrozenCheck(_AutomaticCheck):
    """Passes when `camera` has no run of byte-identical consecutive frames lasting longer than
    `max_frozen_s` seconds. A run lasts from its first frame's timestamp to its last frame's
    (one repeated frame at 30 fps is a run of 1/30 s). `value` is the longest run, seconds.

    Frames are compared by digest of their encoded bytes, never decoded: a live sensor's noise
    makes every real frame's encoding differ, so identical bytes mean the driver re-sent its last
    buffer. Not detected: a frozen image re-encoded with varying bytes (changing metadata, a
    non-deterministic encoder). Falsely flagged: a noise-free image of a static scene, as a
    simulator may render.
    """

    type: ClassVar[str] = "camera_not_frozen"
    id: str
    camera: str
    max_frozen_s: float
    description: str = ""

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> CameraNotFrozenCheck:
        return cls(
            id=spec["id"],
            camera=spec["camera"],
            max_frozen_s=float(spec["max_frozen_s"]),
            description=spec.get("description", ""),
        )

    def evaluate(self, episode: EpisodeSignals) -> CheckResult:
        if self.camera not in episode.camera_frames:
            return self._result(
                CheckStatus.NOT_EVALUABLE, f"camera '{self.camera}' is not in the episode"
            )
        frames, frame_times = episode.camera_frames[self.camera]
        if len(frames) == 0:
            return self._result(CheckStatus.NOT_EVALUABLE, f"camera '{self.camera}' has no frames")
        frame_times_s, reason = _sample_times(frame_times)
        if frame_times_s is None:
            return self._result(CheckStatus.NOT_EVALUABLE, f"camera '{self.camera}': {reason}")
        if len(frame_times_s) != len(frames):
            return self._result(
                CheckStatus.NOT_EVALUABLE,
                f"camera '{self.camera}' has {len(frames)} frames but {len(frame_times_s)} "
                "frame timestamps",
            )
        # Digests rather than the frames themselves: `frames` may be a lazy reader over a file,
        # and this keeps 16 bytes per frame in memory instead of the image.
        digests = [hashlib.blake2b(frame, digest_size=16).digest() for frame in frames]
        longest_s, longest_start, longest_frames = 0.0, 0, 1
        run_start = 0
        for i in range(1, len(digests) + 1):
            if i < len(digests) and digests[i] == digests[run_start]:
                continue
            run_s = float(frame_times_s[i - 1] - frame_times_s[run_start])
            if run_s > longest_s:
                longest_s, longest_start, longest_frames = run_s, run_start, i - run_start
            run_start = i
        passed = longest_s <= self.max_frozen_s + _CLOCK_TOLERANCE_S
        return self._result(
            CheckStatus.PASSED if passed else CheckStatus.FAILED,
            f"camera '{self.camera}': longest run of identical frames {longest_s:.6g} s "
            f"({longest_frames} frames from {float(frame_times_s[longest_start]):.6g} s); "
            f"allowed up to {self.max_frozen_s:g} s",
            value=longest_s,
        )


Check = FinalValueCheck | StageByTimeCheck | ControlRateCheck | FiniteCheck | CameraNotFrozenCheck
_CHECK_CLASSES: dict[str, type[Check]] = {
    cls.type: cls
    for cls in (
        FinalValueCheck,
        StageByTimeCheck,
        ControlRateCheck,
        FiniteCheck,
        CameraNotFrozenCheck,
    )
}


def _scalar_series(
    signals: Mapping[str, np.ndarray], name: str, index: int | None
) -> tuple[np.ndarray, str] | tuple[None, str]:
    """The signal as one float64 number per time step, shape (T,), or None and the reason."""
    if name not in signals:
        return None, f"signal '{name}' is not in the episode"
    array = np.asarray(signals[name])
    if array.dtype.kind not in "biuf":
        return None, f"signal '{name}' is not real-valued (dtype {array.dtype})"
    if array.ndim == 0 or array.shape[0] == 0:
        return None, f"signal '{name}' has no samples"
    if index is not None:
        if array.ndim < 2:
            return None, f"signal '{name}' has one value per step; it has no index {index}"
        if index >= array.shape[-1]:
            return None, (
                f"index {index} is out of range for signal '{name}' with "
                f"{array.shape[-1]} values per step"
            )
        array = array[..., index]
    per_step = array.reshape(array.shape[0], -1)
    if per_step.shape[1] != 1:
        return None, (
            f"signal '{name}' has shape {array.shape}, more than one value per step; give an index"
        )
    return per_step[:, 0].astype(np.float64), ""


def _sample_times(timestamps: object) -> tuple[np.ndarray, str] | tuple[None, str]:
    """Timestamps as a finite float64 array of shape (T,), or None and the reason."""
    array = np.asarray(timestamps)
    if array.ndim != 1 or array.dtype.kind not in "iuf":
        return None, f"timestamps must be a 1-D array of seconds, got shape {array.shape}"
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        return None, "timestamps contain NaN or infinity"
    return array, ""


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


# --- Parsing ---------------------------------------------------------------------------------


def parse_criteria(spec: object) -> Criteria:
    """Validate a JSON-like spec and return it as `Criteria`.

    Raises `CriteriaError` listing every problem found (at most 50, then a count), and never
    any other exception, whatever the input.

    A valid spec of plain JSON values is parsed once per process and the (immutable) result
    reused: schema validation costs about 0.9 ms, and every trial report and check verdict
    parses its task version's criteria again.
    """
    canonical = _canonical_json(spec)
    if canonical is not None:
        return _parse_canonical(canonical)
    return _parse(spec)


def _canonical_json(spec: object) -> str | None:
    """The spec as sorted JSON text when that text reads back to an equal value of the same
    JSON types (no tuples, NaN, non-string keys or other Python values), else None."""
    try:
        text = json.dumps(spec, sort_keys=True, allow_nan=False)
        return text if json.loads(text) == spec else None
    except (TypeError, ValueError, RecursionError):
        return None


@functools.lru_cache(maxsize=256)
def _parse_canonical(text: str) -> Criteria:
    return _parse(json.loads(text))  # a CriteriaError is raised, never cached


def _parse(spec: object) -> Criteria:
    unsafe, nonfinite = _json_value_problems(spec)
    if unsafe:
        raise CriteriaError(unsafe + nonfinite)
    problems = nonfinite + _schema_problems(spec) + _cross_field_problems(spec)
    if problems:
        problems = sorted(set(problems), key=lambda p: (p.path, p.message))
        if len(problems) > _MAX_REPORTED_PROBLEMS:
            extra = len(problems) - _MAX_REPORTED_PROBLEMS
            problems = problems[:_MAX_REPORTED_PROBLEMS]
            problems.append(CriteriaProblem("", f"and {extra} more problems"))
        raise CriteriaError(problems)
    assert isinstance(spec, dict)  # guaranteed by the schema
    success = spec["success"]
    return Criteria(
        success=SuccessCriterion(description=success["description"], check=success.get("check")),
        stages=tuple(
            Stage(id=s["id"], description=s["description"], weight=float(s["weight"]))
            for s in spec.get("stages", ())
        ),
        failure_codes=tuple(
            FailureCode(code=f["code"], description=f["description"])
            for f in spec.get("failure_codes", ())
        ),
        checks=tuple(_CHECK_CLASSES[c["type"]].from_dict(c) for c in spec.get("checks", ())),
    )


def _json_value_problems(
    spec: object,
) -> tuple[list[CriteriaProblem], list[CriteriaProblem]]:
    """(unsafe, nonfinite): problems that make a value unsafe to hand to the schema validator
    (not JSON, too deep, too many values, strings too long, integers too large to format), and
    non-finite numbers, which are safe to validate but slip through the schema's bounds (every
    comparison with NaN is false).

    Iterative, so hostile nesting cannot exhaust the stack."""
    problems: list[CriteriaProblem] = []
    nonfinite: list[CriteriaProblem] = []
    stack: list[tuple[object, tuple[str | int, ...]]] = [(spec, ())]
    queued = 1
    while stack:
        value, parts = stack.pop()
        # Counted before a container's items are queued, so a million-item list costs nothing.
        queued += len(value) if isinstance(value, list | dict) else 0
        if queued > _MAX_VALUES:
            return [CriteriaProblem("", f"the spec holds more than {_MAX_VALUES} values")], []
        if len(parts) > _MAX_DEPTH:
            too_deep = CriteriaProblem(
                _pointer(parts[:_MAX_DEPTH]), f"nested deeper than {_MAX_DEPTH} levels"
            )
            return [too_deep], []
        path = _pointer(parts)
        if value is None or isinstance(value, bool):
            continue
        if isinstance(value, int):
            if abs(value) > _MAX_SAFE_INTEGER:
                problems.append(
                    CriteriaProblem(path, "integer too large; integers must lie within +-2**53")
                )
        elif isinstance(value, float):
            if not math.isfinite(value):
                nonfinite.append(CriteriaProblem(path, f"{value} is not a finite number"))
        elif isinstance(value, str):
            if len(value) > _MAX_STRING_CHARS:
                problems.append(
                    CriteriaProblem(path, f"string of {len(value)} characters is far too long")
                )
        elif isinstance(value, list):
            stack.extend((item, (*parts, i)) for i, item in enumerate(value))
        elif isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    problems.append(
                        CriteriaProblem(path, f"object key {_short_repr(key)} is not a string")
                    )
                elif len(key) > _MAX_STRING_CHARS:
                    problems.append(CriteriaProblem(path, "object key is far too long"))
                else:
                    stack.append((item, (*parts, key)))
        else:
            problems.append(CriteriaProblem(path, f"{type(value).__name__} is not a JSON value"))
    return problems, nonfinite


def _schema_problems(spec: object) -> list[CriteriaProblem]:
    problems: list[CriteriaProblem] = []
    for error in _VALIDATOR.iter_errors(spec):
        parts = list(error.absolute_path)
        if isinstance(error.instance, float) and not math.isfinite(error.instance):
            continue  # already reported by _json_value_problems
        problems.extend(_explain_schema_error(error, parts))
    return problems


def _explain_schema_error(
    error: jsonschema.ValidationError, parts: list[str | int]
) -> list[CriteriaProblem]:
    """Reword a jsonschema error as problems that say what is wrong and what is allowed."""
    instance, expected, schema = error.instance, error.validator_value, error.schema
    path = _pointer(parts)
    match error.validator:
        case "required":
            return [
                CriteriaProblem(_pointer([*parts, key]), f"'{key}' is required")
                for key in expected
                if key not in instance
            ]
        case "additionalProperties":
            allowed = ", ".join(sorted(schema.get("properties", {})))
            return [
                CriteriaProblem(
                    _pointer([*parts, key]), f"unknown key {_short_repr(key)}; allowed: {allowed}"
                )
                for key in instance
                if key not in schema.get("properties", {})
            ]
        case "type":
            message = f"expected {expected}, got {_json_type_name(instance)}"
        case "enum":
            allowed = ", ".join(repr(option) for option in expected)
            message = f"{_short_repr(instance)} is not allowed; use one of: {allowed}"
        case "const":
            message = f"must be {expected!r}, got {_short_repr(instance)}"
        case "pattern":
            message = f"{_short_repr(instance)} is not {schema.get('description', expected)}"
        case "minLength" | "maxLength":
            bound = "at least" if error.validator == "minLength" else "at most"
            message = f"has {len(instance)} characters; needs {bound} {expected}"
        case "minItems" | "maxItems":
            bound = "at least" if error.validator == "minItems" else "at most"
            message = f"has {len(instance)} items; {bound} {expected} allowed"
        case "minimum":
            message = f"{instance} is below the minimum {expected}"
        case "maximum":
            message = f"{instance} is above the maximum {expected}"
        case "exclusiveMinimum":
            message = f"{instance} must be greater than {expected}"
        case "uniqueItems":
            message = "items must be unique; some appear more than once"
        case _:
            message = error.message if len(error.message) <= 200 else error.message[:197] + "..."
    return [CriteriaProblem(path, message)]


def _cross_field_problems(spec: object) -> list[CriteriaProblem]:
    """Rules the JSON Schema cannot express. Reads the raw spec defensively, so that these are
    reported alongside schema problems; malformed parts are skipped (the schema reports them)."""
    if not isinstance(spec, dict):
        return []
    problems: list[CriteriaProblem] = []
    stage_ids = _unique_slugs(spec, "stages", "id", "stage id", problems)
    _unique_slugs(spec, "failure_codes", "code", "failure code", problems)
    check_ids = _unique_slugs(spec, "checks", "id", "check id", problems)

    checks = spec.get("checks")
    for i, check in enumerate(checks if isinstance(checks, list) else []):
        if not (isinstance(check, dict) and check.get("type") == "stage_by_time"):
            continue
        stage = check.get("stage")
        if isinstance(stage, str) and stage not in stage_ids:
            known = ", ".join(stage_ids) if stage_ids else "none: the spec has no stages"
            problems.append(
                CriteriaProblem(
                    _pointer(["checks", i, "stage"]),
                    f"unknown stage {_short_repr(stage)}; stages: {known}",
                )
            )

    success = spec.get("success")
    success_check = success.get("check") if isinstance(success, dict) else None
    if isinstance(success_check, str) and success_check not in check_ids:
        known = ", ".join(check_ids) if check_ids else "none: the spec has no checks"
        problems.append(
            CriteriaProblem(
                "/success/check", f"unknown check {_short_repr(success_check)}; checks: {known}"
            )
        )

    stages = spec.get("stages")
    if isinstance(stages, list) and stages:
        weights = [s.get("weight") if isinstance(s, dict) else None for s in stages]
        usable = all(
            isinstance(w, int | float) and not isinstance(w, bool) and math.isfinite(w) and w >= 0
            for w in weights
        )
        if usable:
            total = math.fsum(weights)
            if abs(total - 1.0) > WEIGHT_SUM_TOLERANCE:
                problems.append(
                    CriteriaProblem(
                        "/stages",
                        f"stage weights sum to {total:.9g}; they must sum to 1 "
                        f"(within {WEIGHT_SUM_TOLERANCE:g})",
                    )
                )
    return problems


def _unique_slugs(
    spec: dict[str, Any], list_key: str, item_key: str, noun: str, problems: list[CriteriaProblem]
) -> list[str]:
    """The string values of `item_key` across ``spec[list_key]``, in order and without repeats;
    each repeat is appended to `problems`."""
    items = spec.get(list_key)
    first_at: dict[str, int] = {}
    for i, item in enumerate(items if isinstance(items, list) else []):
        value = item.get(item_key) if isinstance(item, dict) else None
        if not isinstance(value, str):
            continue
        if value in first_at:
            problems.append(
                CriteriaProblem(
                    _pointer([list_key, i, item_key]),
                    f"duplicate {noun} {_short_repr(value)} (first at "
                    f"{_pointer([list_key, first_at[value], item_key])})",
                )
            )
        else:
            first_at[value] = i
    return list(first_at)


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


# --- Evaluation ------------------------------------------------------------------------------


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
                CriteriaProblem("", f"unknown stage {_short_repr(stage_id)}; stages: {known}")
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
