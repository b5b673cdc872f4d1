"""The validator's report, its problems and limits, and the findings every phase adds to.

A report names places inside the HDF5 file, never the file's place on the server: it carries
no file path, and `Findings.add` replaces the file's path (and its folder) in every message
(HDF5's errors name the file they failed on) with "the file" (see
`proving_ground.episode.validate`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ERROR = "error"
WARNING = "warning"

# How a failed allocation shows in an exception's text or a child's stderr.
MEMORY_MARKERS = (
    "memoryerror",
    "cannot allocate memory",
    "out of memory",
    "memory allocation failed",
    "bad_alloc",
)


@dataclass(frozen=True)
class ValidationLimits:
    """Bounds on what an upload may declare and on how much work validating it may take.

    Defaults admit a few hours of a two-camera arm at 200 Hz and refuse what no recording
    needs. Sizes are in bytes; a "stream" is the steps, one camera's frames, or the events.
    """

    max_file_bytes: int = 64 << 30  # the file on disk
    max_objects: int = 10_000  # links in the file (groups, datasets, types)
    max_name_bytes: int = 255  # one link or attribute name
    max_rank: int = 6  # dimensions of a dataset or attribute
    max_dataset_bytes: int = 32 << 30  # shape x itemsize of one dataset
    max_total_bytes: int = 64 << 30  # the same, summed over the file
    max_chunk_bytes: int = 64 << 20  # one chunk (reading one element reads its chunk)
    max_compression_ratio: float = 100.0  # declared bytes / stored bytes ...
    compression_check_min_bytes: int = 16 << 20  # ... for datasets declaring at least this
    max_attributes_per_object: int = 64
    max_attribute_bytes: int = 64 << 10  # stored size, and decoded string length
    max_steps: int = 20_000_000  # rows in one stream (~28 h at 200 Hz)
    max_frame_bytes: int = 16 << 20  # one encoded frame
    read_block_bytes: int = 8 << 20  # rows read at once when scanning a dataset
    decode_samples: int = 10  # frames decoded per camera: first, last, evenly spaced between
    min_rate_fraction: float = 0.9  # measured rate below this x nominal is a warning
    frozen_after_s: float = 1.0  # identical consecutive frames for longer: a warning
    max_problems: int = 100  # problems kept in a report

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ValidationLimits:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class Problem:
    """One finding: a stable `code`, a human `message`, the HDF5 `path` it concerns ("" for
    the file, ``/obj@attr`` for an attribute), and `severity` "error" or "warning"."""

    code: str
    message: str
    path: str = ""
    severity: str = ERROR

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


@dataclass
class ValidationReport:
    """The verdict on one file and the summary the server stores on the episode row.

    `ok` means no problem of severity "error". `num_steps`, `duration_s` (seconds between
    first and last step), `measured_hz` (1 / median step interval, None below two steps) and
    `frame_counts` describe the consistent prefix; `size_bytes` is the file size. `attrs`
    holds the root attributes as plain values once the structure has passed. It names no
    file system path (see the module docstring).
    """

    problems: list[Problem] = field(default_factory=list)
    truncated: bool = False
    num_steps: int = 0
    duration_s: float = 0.0
    measured_hz: float | None = None
    frame_counts: dict[str, int] = field(default_factory=dict)
    size_bytes: int = 0
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(p.severity == ERROR for p in self.problems)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == WARNING]

    @property
    def codes(self) -> set[str]:
        return {p.code for p in self.problems}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; `ok` included for readers of the stored JSON."""
        out = dataclasses.asdict(self)
        out["ok"] = self.ok
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ValidationReport:
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in fields}
        values["problems"] = [Problem(**p) for p in data.get("problems", [])]
        return cls(**values)


class Findings:
    """Collects problems into a report, capped at ``limits.max_problems``."""

    def __init__(
        self,
        report: ValidationReport,
        limits: ValidationLimits,
        file_path: str | os.PathLike[str] | None = None,
    ):
        self.report = report
        self.limits = limits
        self.dropped = 0
        self.file_path = file_path

    def add(self, code: str, message: str, path: str = "", severity: str = ERROR) -> None:
        message = without_file_path(message, self.file_path)
        if len(self.report.problems) < self.limits.max_problems:
            self.report.problems.append(Problem(code, message, path, severity))
        else:
            self.dropped += 1
            if severity == ERROR and self.report.ok:
                # Never let the cap turn a rejection into an acceptance.
                self.report.problems[-1] = Problem(code, message, path, severity)

    def finish(self) -> None:
        if self.dropped:
            self.report.problems.append(
                Problem(
                    "too_many_problems", f"{self.dropped} more problems not listed", "", WARNING
                )
            )

    @property
    def has_errors(self) -> bool:
        return not self.report.ok


def raise_if_out_of_memory(exc: BaseException) -> None:
    """HDF5 reports a failed malloc as an ordinary error; it must not read as a bad file."""
    if isinstance(exc, MemoryError) or any(m in str(exc).lower() for m in MEMORY_MARKERS):
        raise MemoryError(str(exc)) from exc


def without_file_path(message: str, file_path: str | os.PathLike[str] | None) -> str:
    """`message` with the file's path (as given and resolved) and its folder replaced, so
    that no report tells an uploader where files live on the server."""
    if file_path is None:
        return message
    given = Path(file_path)
    places = {str(given): "the file", str(given.parent): "the upload folder"}
    try:
        resolved = given.resolve()
        places |= {str(resolved): "the file", str(resolved.parent): "the upload folder"}
    except OSError:
        pass
    for place in sorted(places, key=len, reverse=True):  # the file before its folder
        if place not in ("", ".", "/"):
            message = message.replace(place, places[place])
    return message


def first_line(value: object) -> str:
    """The last line of an exception's text (HDF5 puts the reason there), at most 300
    characters."""
    text = str(value).strip()
    return text.splitlines()[-1][:300] if text else ""
