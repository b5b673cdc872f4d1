"""The automatic checks of a success criteria spec, and their evaluation on an episode's arrays.

A fixed menu (``final_value``, ``stage_by_time``, ``control_rate``, ``finite``,
``camera_not_frozen``), each with typed, bounded parameters. Why a fixed menu rather than
expressions: criteria come from users, are shown to operators, and run on the server and on
robots. Any expression language (``eval``, a mini-language, user-supplied regular
expressions) is an injection and denial-of-service surface and makes a criterion's meaning
depend on an interpreter's version. A closed set of checks with numeric parameters can be
validated completely, rendered to a human, and content-hashed so that a locked task version
means the same thing forever. A new kind of check is a code change with a schema version, on
purpose.

Control rate is measured from the median inter-sample interval, not the mean: the mean is
``duration / (n - 1)`` and one multi-second stall (a GC pause, a USB reset) drags it down
however steady the loop was otherwise, while the median reports the rate the loop actually ran
at for most of the episode. Stalls are not hidden: when the nominal rate is known the result
also reports the fraction of intervals longer than 1.5x the nominal period.

Every check reads an `EpisodeSignals`; missing or unusable data gives a ``not_evaluable``
result, never an exception. `proving_ground.checks` builds the signals from an episode file.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

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


CHECK_CLASSES: dict[str, type[Check]] = {
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
