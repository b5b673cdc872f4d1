"""Validation of uploaded pg-episode/1 files: structure before data, in a bounded child process.

Uploads are untrusted. h5py follows external links, external raw storage (a dataset whose
bytes live in any file on the server, ``/etc/passwd`` included) and virtual datasets on an
ordinary read; a 2.4 KB file can declare 8 TiB; 1 MB of gzip can expand to 1 GiB; and the
HDF5 C library itself may crash on a crafted file. So `validate` works in three phases, each
entered only if the previous found no error:

1. **Bytes** (no h5py): the path is a regular, non-empty file of bounded size with the HDF5
   signature at offset 0. Files with a user block (signature at 512, 1024, ...) are refused.
2. **Structure** (h5py opens the file but reads no dataset and no attribute value): every link
   is walked with ``visititems_links``, which, unlike ``visititems``, reports external and
   soft links instead of following or hiding them. Each dataset's creation property list,
   type and dataspace are inspected: layout (virtual refused), external storage, filters
   (allow-list), chunk size, type class (references and non-byte variable-length sequences
   refused), rank, declared size, and declared size against bytes actually stored (the
   compression ratio). Attributes are checked by type, rank and stored size, unread.
3. **Content** (reads data, in blocks of at most ``read_block_bytes``): root attributes, the
   datasets the embodiment requires with their shapes and dtypes, lengths, finite values,
   strictly increasing timestamps, control and camera rates, a sample of decoded frames and
   frozen cameras. A truncated file (no ``end_time``: the writer crashed) is judged on its
   shortest consistent prefix and gets a ``truncated`` warning, not a rejection.

`validate_isolated` runs `validate` in a fresh interpreter (``python -m
proving_ground.episode.validate``) with an address-space limit and a wall-clock timeout; a
child that runs out of either, or crashes, becomes a report with ``validator_resource_limit``
or ``validator_crashed``, never an exception. The server calls that one.

Problem codes are stable strings (the server stores them); docs/hdf5-format.md lists them.
Reports are shown to the uploader, so they name places inside the HDF5 file, never the file's
place on the server: the report carries no file path, and a message that would quote one
(HDF5's errors name the file they failed on) has it replaced by "the file".
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import logging
import math
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from h5py import h5d, h5s, h5t, h5z

from proving_ground.episode.reader import attr_value, open_episode_file
from proving_ground.episode.spec import (
    ENCODINGS,
    EVENT_KINDS,
    REQUIRED_ROOT_ATTRS,
    SCHEMA,
    EmbodimentSpec,
    as_embodiment_spec,
    frame_encoding,
)

log = logging.getLogger(__name__)

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

# Filters whose decoders ship with HDF5 or h5py and are bounded by the ratio check: deflate
# (gzip), shuffle, fletcher32 (checksum) and LZF. SZIP, N-bit, scale-offset (lossy) and every
# dynamically loaded plugin are refused.
ALLOWED_FILTERS = {
    h5z.FILTER_DEFLATE: "deflate",
    h5z.FILTER_SHUFFLE: "shuffle",
    h5z.FILTER_FLETCHER32: "fletcher32",
    32000: "lzf",
}

ERROR = "error"
WARNING = "warning"

# Exit status of the CLI: 0 valid, 1 a report with errors, 2 usage, 3 out of memory.
EXIT_OUT_OF_MEMORY = 3
_MEMORY_MARKERS = (
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


class _Findings:
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
        message = _without_file_path(message, self.file_path)
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


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


def validate(
    path: str | os.PathLike[str],
    embodiment_spec: EmbodimentSpec | Mapping[str, Any] | None = None,
    limits: ValidationLimits | None = None,
) -> ValidationReport:
    """Check one episode file; never raises for anything about the file (MemoryError aside).

    With `embodiment_spec` (our dataclass or its dict form) the observations, action and
    cameras must match it; without, every check that needs no spec still runs (each dataset
    consistent with the others and with its own camera attributes). Raises ValueError only
    for a malformed spec, which is the caller's bug.
    """
    spec = as_embodiment_spec(embodiment_spec) if embodiment_spec is not None else None
    limits = limits or ValidationLimits()
    report = ValidationReport()
    findings = _Findings(report, limits, path)
    try:
        if not _check_bytes(Path(path), findings):
            return report
        try:
            f = open_episode_file(path)
        except OSError as exc:
            _raise_if_out_of_memory(exc)
            findings.add("corrupt_file", f"HDF5 cannot open the file: {_first_line(exc)}")
            return report
        with f:
            datasets = _check_structure(f, findings)
            if findings.has_errors:
                return report
            _check_content(f, datasets, spec, findings)
    finally:
        findings.finish()
    return report


def validate_isolated(
    path: str | os.PathLike[str],
    embodiment_spec: EmbodimentSpec | Mapping[str, Any] | None = None,
    limits: ValidationLimits | None = None,
    *,
    memory_mb: int = 512,
    timeout_s: float = 60,
) -> ValidationReport:
    """`validate` in a child interpreter capped at `memory_mb` MiB of address space and
    `timeout_s` seconds of wall clock. Never raises for the file: a child over its limits
    gives a report with ``validator_resource_limit``, any other failure ``validator_crashed``.

    The child is ``python -m proving_ground.episode.validate --config-stdin``; the spec and
    limits go in as JSON on stdin and the report comes back as JSON on stdout.
    """
    spec = as_embodiment_spec(embodiment_spec) if embodiment_spec is not None else None
    limits = limits or ValidationLimits()
    config = json.dumps(
        {
            "path": str(path),
            "spec": spec.to_dict() if spec else None,
            "limits": limits.to_dict(),
            "memory_mb": int(memory_mb),
        }
    )
    project_root = str(Path(__file__).resolve().parent.parent)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [project_root, os.environ.get("PYTHONPATH")])),
        # Keep the child's baseline address space small: one BLAS thread, two malloc arenas.
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MALLOC_ARENA_MAX": "2",
    }
    command = [sys.executable, "-m", "proving_ground.episode.validate", "--config-stdin"]
    try:
        child = subprocess.run(
            command, input=config, capture_output=True, text=True, timeout=timeout_s, env=env
        )
    except subprocess.TimeoutExpired:
        return _failed(path, "validator_resource_limit", f"validation took over {timeout_s} s")
    except OSError as exc:
        return _failed(path, "validator_crashed", f"could not start the validator: {exc}")
    stderr = child.stderr[-2000:]
    if child.returncode not in (0, 1):
        # For the operator's log; the report only says that the validator failed.
        log.warning("validator exited with status %s: %s", child.returncode, stderr)
    if child.returncode in (0, 1):
        try:
            return ValidationReport.from_dict(json.loads(child.stdout))
        except (ValueError, TypeError) as exc:
            return _failed(path, "validator_crashed", f"unreadable validator output: {exc}")
    if child.returncode == EXIT_OUT_OF_MEMORY or any(m in stderr.lower() for m in _MEMORY_MARKERS):
        return _failed(
            path, "validator_resource_limit", f"validation needed over {memory_mb} MiB of memory"
        )
    return _failed(path, "validator_crashed", f"validator exited with status {child.returncode}")


def _failed(path: str | os.PathLike[str], code: str, message: str) -> ValidationReport:
    report = ValidationReport(problems=[Problem(code, _without_file_path(message, path))])
    try:
        report.size_bytes = os.stat(path).st_size
    except OSError:
        pass
    return report


def _raise_if_out_of_memory(exc: BaseException) -> None:
    """HDF5 reports a failed malloc as an ordinary error; it must not read as a bad file."""
    if isinstance(exc, MemoryError) or any(m in str(exc).lower() for m in _MEMORY_MARKERS):
        raise MemoryError(str(exc)) from exc


def _without_file_path(message: str, file_path: str | os.PathLike[str] | None) -> str:
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


def _first_line(value: object) -> str:
    text = str(value).strip()
    return text.splitlines()[-1][:300] if text else ""


# --------------------------------------------------------------------------------------------
# Phase 1: bytes
# --------------------------------------------------------------------------------------------


def _check_bytes(path: Path, findings: _Findings) -> bool:
    limits = findings.limits
    try:
        info = path.stat()
    except FileNotFoundError:
        findings.add("missing_file", "no such file")
        return False
    except OSError as exc:
        findings.add("unreadable_file", f"cannot stat the file: {exc.strerror}")
        return False
    if not stat.S_ISREG(info.st_mode):
        # A FIFO or device would block or stream forever.
        findings.add("not_a_regular_file", "the path is not a regular file")
        return False
    findings.report.size_bytes = size = info.st_size
    if size == 0:
        findings.add("empty_file", "the file is empty")
        return False
    if size > limits.max_file_bytes:
        findings.add("file_too_large", f"{size} bytes, over the limit of {limits.max_file_bytes}")
        return False
    with path.open("rb") as fh:
        if fh.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
            return True
        offset = 512
        while offset + len(HDF5_SIGNATURE) <= size:
            fh.seek(offset)
            if fh.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
                findings.add(
                    "userblock_refused",
                    f"HDF5 signature at offset {offset}: files with a user block are refused",
                )
                return False
            offset *= 2
    findings.add("not_hdf5", "no HDF5 signature at offset 0")
    return False


# --------------------------------------------------------------------------------------------
# Phase 2: structure, reading no data
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _DatasetInfo:
    shape: tuple[int, ...]
    dtype: np.dtype | None  # None when numpy has no equivalent
    chunk_rows: int


def _type_problem(tid: h5t.TypeID, depth: int = 0) -> str | None:
    """The problem code of an HDF5 datatype, or None when it is allowed.

    Allowed: integers, floats, complex, bitfields, opaque, enums (h5py's bool), strings
    (fixed or variable length), variable-length bytes, and compounds and arrays of those.
    References point elsewhere in (or outside) the file; other variable-length sequences
    become numpy object arrays of arrays. Both are refused.
    """
    if depth > 8:
        return "unsupported_dtype"
    cls = tid.get_class()
    if cls == h5t.REFERENCE:
        return "reference_dtype"
    if cls == h5t.VLEN:
        base = tid.get_super()
        if base.get_class() == h5t.INTEGER and base.get_size() == 1:
            return None
        return _type_problem(base, depth + 1) or "object_dtype"
    if cls == h5t.COMPOUND:
        for i in range(tid.get_nmembers()):
            problem = _type_problem(tid.get_member_type(i), depth + 1)
            if problem:
                return problem
        return None
    if cls == h5t.ARRAY:
        return _type_problem(tid.get_super(), depth + 1)
    allowed = {h5t.INTEGER, h5t.FLOAT, h5t.STRING, h5t.BITFIELD, h5t.OPAQUE, h5t.ENUM}
    allowed.add(getattr(h5t, "COMPLEX", h5t.FLOAT))
    return None if cls in allowed else "unsupported_dtype"


def _space_shape(space: h5s.SpaceID) -> tuple[int, ...]:
    if space.get_simple_extent_type() == h5s.NULL:
        return (0,)
    return tuple(int(n) for n in space.shape)


def _check_structure(f: h5py.File, findings: _Findings) -> dict[str, _DatasetInfo]:
    """Walk every link; return the datasets (path -> info) if nothing was refused."""
    limits = findings.limits
    datasets: dict[str, _DatasetInfo] = {}
    declared_total = 0
    count = 0

    def visit(name: str, link: h5py.HardLink | h5py.SoftLink | h5py.ExternalLink) -> Any:
        nonlocal declared_total, count
        count += 1
        if count > limits.max_objects:
            findings.add("too_many_objects", f"over {limits.max_objects} links in the file")
            return True  # stops the walk
        path = "/" + name
        if len(name.rsplit("/", 1)[-1].encode("utf-8", "surrogateescape")) > limits.max_name_bytes:
            findings.add("name_too_long", f"a name over {limits.max_name_bytes} bytes", path[:300])
            return None
        if isinstance(link, h5py.ExternalLink):
            findings.add("external_link", "external links are refused", path)
            return None
        if isinstance(link, h5py.SoftLink):
            findings.add("soft_link", "soft links are refused", path)
            return None
        if not isinstance(link, h5py.HardLink):
            findings.add("unsupported_link", "user-defined links are refused", path)
            return None
        try:
            obj = f.get(path)
            _check_attributes(obj, path, findings)
            if isinstance(obj, h5py.Dataset):
                info, declared = _check_dataset(obj, path, findings)
                declared_total += declared
                if info is not None:
                    datasets[path] = info
            elif isinstance(obj, h5py.Datatype):
                problem = _type_problem(obj.id)
                if problem:
                    findings.add(problem, "named datatype of a refused class", path)
        except Exception as exc:  # a crafted object h5py cannot describe
            _raise_if_out_of_memory(exc)
            findings.add("unreadable_object", f"cannot inspect: {_first_line(exc)}", path)
        return None

    try:
        _check_attributes(f, "/", findings)
        f.visititems_links(visit)
    except Exception as exc:
        _raise_if_out_of_memory(exc)
        findings.add("corrupt_file", f"walking the file failed: {_first_line(exc)}")
    if declared_total > limits.max_total_bytes:
        findings.add(
            "declared_size_too_large",
            f"datasets declare {declared_total} bytes in all, over {limits.max_total_bytes}",
            "/",
        )
    return datasets


def _check_attributes(obj: h5py.HLObject, path: str, findings: _Findings) -> None:
    limits = findings.limits
    n = len(obj.attrs)
    if n > limits.max_attributes_per_object:
        findings.add(
            "too_many_attributes", f"{n} attributes, over {limits.max_attributes_per_object}", path
        )
        return
    for name in obj.attrs:
        where = f"{path}@{name}"[:300]
        if len(name.encode("utf-8", "surrogateescape")) > limits.max_name_bytes:
            findings.add(
                "name_too_long", f"an attribute name over {limits.max_name_bytes} bytes", where
            )
            continue
        aid = obj.attrs.get_id(name)
        tid = aid.get_type()
        problem = _type_problem(tid)
        if problem:
            findings.add(problem, "attribute of a refused datatype", where)
            continue
        shape = _space_shape(aid.get_space())
        if len(shape) > limits.max_rank:
            findings.add("rank_too_high", f"attribute of rank {len(shape)}", where)
            continue
        declared = math.prod(shape) * tid.get_size()
        if max(declared, aid.get_storage_size()) > limits.max_attribute_bytes:
            findings.add(
                "attribute_too_large",
                f"attribute of {declared} bytes, over {limits.max_attribute_bytes}",
                where,
            )


def _check_dataset(
    dset: h5py.Dataset, path: str, findings: _Findings
) -> tuple[_DatasetInfo | None, int]:
    """Check one dataset's metadata. Returns its info (None if refused) and declared bytes."""
    limits = findings.limits
    refused = False

    def refuse(code: str, message: str) -> None:
        nonlocal refused
        refused = True
        findings.add(code, message, path)

    dsid = dset.id
    dcpl = dsid.get_create_plist()
    # Layout and external storage first: for these, even asking the extent may touch files.
    layout = dcpl.get_layout()
    if layout == h5d.VIRTUAL:
        refuse("virtual_dataset", "virtual datasets are refused (they read other files)")
        return None, 0
    if dcpl.get_external_count() > 0:
        refuse("external_storage", "datasets stored in external files are refused")
        return None, 0
    filters = [dcpl.get_filter(i)[0] for i in range(dcpl.get_nfilters())]
    unknown = [code for code in filters if code not in ALLOWED_FILTERS]
    if unknown:
        refuse(
            "unknown_filter", f"filter id(s) {unknown} not in {sorted(ALLOWED_FILTERS.values())}"
        )
    tid = dsid.get_type()
    problem = _type_problem(tid)
    if problem:
        refuse(problem, "dataset of a refused datatype")
    shape = _space_shape(dsid.get_space())
    if len(shape) > limits.max_rank:
        refuse("rank_too_high", f"rank {len(shape)}, over {limits.max_rank}")
        return None, 0
    itemsize = tid.get_size()
    declared = math.prod(shape) * itemsize
    if declared > limits.max_dataset_bytes:
        refuse(
            "declared_size_too_large",
            f"declares {declared} bytes, over the limit of {limits.max_dataset_bytes}",
        )
    chunk_rows = 0
    if layout == h5d.CHUNKED:
        chunk = dcpl.get_chunk()
        chunk_bytes = math.prod(chunk) * itemsize
        if chunk_bytes > limits.max_chunk_bytes:
            refuse("chunk_too_large", f"chunks of {chunk_bytes} bytes")
        chunk_rows = int(chunk[0]) if chunk else 0
    stored = dsid.get_storage_size()
    if (
        not refused
        and declared >= limits.compression_check_min_bytes
        and declared > stored * limits.max_compression_ratio
    ):
        if filters:
            refuse(
                "compression_ratio_too_high",
                f"{stored} stored bytes expand to {declared} "
                f"(ratio over {limits.max_compression_ratio:g})",
            )
        else:
            refuse(
                "declared_size_too_large",
                f"declares {declared} bytes but stores only {stored}",
            )
    if refused:
        return None, declared
    try:
        dtype: np.dtype | None = dset.dtype
    except (TypeError, ValueError):
        dtype = None
    return _DatasetInfo(shape, dtype, chunk_rows), declared


# --------------------------------------------------------------------------------------------
# Phase 3: content
# --------------------------------------------------------------------------------------------


class _Content:
    """The content checks of one file, sharing the findings and the file handle."""

    def __init__(
        self,
        f: h5py.File,
        datasets: dict[str, _DatasetInfo],
        spec: EmbodimentSpec | None,
        findings: _Findings,
    ):
        self.f = f
        self.datasets = datasets
        self.spec = spec
        self.findings = findings
        self.limits = findings.limits
        self.report = findings.report
        self.add = findings.add

    # -- helpers --------------------------------------------------------------------------

    def length_problem(self, message: str, path: str) -> None:
        # After a crash, datasets flushed in one go may still differ by a flush; judge prefix.
        severity = WARNING if self.report.truncated else ERROR
        self.add("length_mismatch", message, path, severity)

    def blocks(self, path: str, stop: int) -> Iterator[tuple[int, np.ndarray]]:
        """Rows ``0:stop`` of a dataset in blocks of about ``read_block_bytes``."""
        dset = self.f[path]
        info = self.datasets[path]
        row_bytes = max(1, math.prod(info.shape[1:]) * dset.dtype.itemsize)
        rows = max(1, self.limits.read_block_bytes // row_bytes)
        if info.chunk_rows and rows > info.chunk_rows:
            rows -= rows % info.chunk_rows  # whole chunks: each is decompressed once
        for start in range(0, stop, rows):
            yield start, dset[start : min(stop, start + rows)]

    def expect(
        self,
        path: str,
        *,
        dtype: str | None,
        row_shape: tuple[int, ...] | None,
        numeric: bool = True,
        rows_are_steps: bool = True,
    ) -> _DatasetInfo | None:
        """The dataset at `path` if present with the right dtype and shape, else None.
        `rows_are_steps` False for a byte stream, whose rows are bounded by its bytes."""
        info = self.datasets.get(path)
        if info is None:
            kind = "a group" if isinstance(self.f.get(path), h5py.Group) else "missing"
            self.add("missing_dataset", f"required dataset is {kind}", path)
            return None
        actual = info.dtype
        if dtype is not None:
            wanted = np.dtype(dtype)
            good = (
                actual is not None
                and actual.fields is None
                and actual.kind == wanted.kind
                and actual.itemsize == wanted.itemsize
            )
            if not good:
                self.add("wrong_dtype", f"dtype {actual}, expected {wanted}", path)
                return None
        elif numeric and (actual is None or actual.fields is not None or actual.kind not in "biuf"):
            self.add("wrong_dtype", f"dtype {actual}, expected a numeric type", path)
            return None
        if len(info.shape) < 1:
            self.add("wrong_shape", "a scalar where a time series is expected", path)
            return None
        if row_shape is not None and tuple(info.shape[1:]) != tuple(row_shape):
            self.add(
                "wrong_shape", f"rows of shape {info.shape[1:]}, expected {tuple(row_shape)}", path
            )
            return None
        if rows_are_steps and info.shape[0] > self.limits.max_steps:
            self.add("too_many_steps", f"{info.shape[0]} rows, over {self.limits.max_steps}", path)
            return None
        return info

    def scan_times(self, path: str, n: int) -> np.ndarray | None:
        """Check ``n`` timestamps are finite and strictly increasing; return the intervals
        (float32, enough for a median) or None if they are not."""
        intervals = np.empty(max(0, n - 1), np.float32)
        previous = None
        for start, block in self.blocks(path, n):
            if not np.isfinite(block).all():
                bad = start + int(np.flatnonzero(~np.isfinite(block))[0])
                self.add("non_finite", f"timestamp {bad} is not finite", path)
                return None
            steps = np.diff(block) if previous is None else np.diff(block, prepend=previous)
            if (steps <= 0).any():
                bad = start + int(np.flatnonzero(steps <= 0)[0]) + (0 if previous is None else -1)
                self.add(
                    "non_monotonic_timestamps",
                    f"timestamp {bad + 1} is not after timestamp {bad}",
                    path,
                )
                return None
            begin = start - 1 if previous is not None else 0
            intervals[begin : begin + len(steps)] = steps
            previous = block[-1]
        return intervals

    def scan_finite(self, path: str, n: int) -> None:
        if self.datasets[path].dtype.kind != "f":
            return
        total = 0
        first = -1
        for start, block in self.blocks(path, n):
            bad = ~np.isfinite(block)
            if bad.any():
                rows = np.flatnonzero(bad.reshape(len(block), -1).any(axis=1))
                total += len(rows)
                if first < 0:
                    first = start + int(rows[0])
        if total:
            self.add("non_finite", f"{total} rows hold NaN or infinity, first row {first}", path)

    # -- the checks -----------------------------------------------------------------------

    def run(self) -> None:
        if not self.root_attributes():
            return
        n = self.steps()
        if n:
            self.cameras()
        self.events()

    def root_attributes(self) -> bool:
        """Read the root attributes (values now, after their sizes passed). False stops."""
        attrs: dict[str, Any] = {}
        for name in self.f.attrs:
            try:
                value = _plain(attr_value(self.f.attrs[name]))
            except (OSError, TypeError, ValueError) as exc:
                self.add("bad_attribute", f"unreadable: {_first_line(exc)}", f"/@{name}")
                continue
            # A variable-length string's bytes were not bounded by the structure check.
            if len(json.dumps(value)) > self.limits.max_attribute_bytes:
                self.add("attribute_too_large", "attribute value too long", f"/@{name}")
                continue
            attrs[name] = value
        # The report is stored on the episode row; the spec is already on the embodiment.
        self.report.attrs = {k: v for k, v in attrs.items() if k != "embodiment_spec"}
        schema = attrs.get("schema")
        if schema is None:
            self.add("missing_attribute", "no schema attribute", "/@schema")
            return False
        if schema != SCHEMA:
            self.add(
                "wrong_schema", f"schema {str(schema)[:80]!r}, expected {SCHEMA!r}", "/@schema"
            )
            return False
        for name in REQUIRED_ROOT_ATTRS:
            if name not in attrs:
                self.add(
                    "missing_attribute", f"required attribute {name!r} is missing", f"/@{name}"
                )
        self.report.truncated = "end_time" not in attrs
        if self.report.truncated:
            self.add(
                "truncated",
                "no end_time: the recording did not close cleanly; its flushed prefix is kept",
                "/@end_time",
                WARNING,
            )
        for name, well_formed in _ROOT_ATTR_CHECKS.items():
            if name in attrs and not well_formed(attrs[name]):
                self.add("bad_attribute", f"{name} is malformed", f"/@{name}")
        embodiment = attrs.get("embodiment")
        if self.spec and self.spec.name and embodiment and embodiment != self.spec.name:
            self.add(
                "embodiment_mismatch",
                f"recorded for {str(embodiment)[:80]!r}, expected {self.spec.name!r}",
                "/@embodiment",
            )
        return True

    def steps(self) -> int:
        spec = self.spec
        required: dict[str, tuple[str | None, tuple[int, ...] | None]] = {
            "/timestamps": ("float64", ()),
        }
        if spec:
            for key, a in spec.observations.items():
                required[f"/observations/{key}"] = (a.dtype, a.shape)
            required["/action"] = (spec.action.dtype, spec.action.shape)
            for path in self.datasets:
                parent, _, key = path.rpartition("/")
                if parent == "/observations" and key not in spec.observations:
                    self.add("unexpected_dataset", "not in the embodiment spec", path, WARNING)
        else:
            required["/action"] = (None, None)
            observed = [p for p in self.datasets if p.rpartition("/")[0] == "/observations"]
            if not observed:
                self.add("missing_dataset", "no observation datasets", "/observations")
            for path in observed:
                required[path] = (None, None)
        found = {}
        for path, (dtype, row_shape) in required.items():
            info = self.expect(path, dtype=dtype, row_shape=row_shape)
            if info is not None:
                found[path] = info
        if len(found) < len(required):
            return 0
        lengths = {path: info.shape[0] for path, info in found.items()}
        n = min(lengths.values())
        if len(set(lengths.values())) > 1:
            longest = max(lengths, key=lengths.__getitem__)
            shortest = min(lengths, key=lengths.__getitem__)
            self.length_problem(
                f"{lengths[longest]} rows in {longest} but {n} in {shortest}", shortest
            )
        if n == 0:
            self.add("no_steps", "the episode has no steps", "/timestamps")
            return 0
        intervals = self.scan_times("/timestamps", n)
        for path in found:
            if path != "/timestamps":
                self.scan_finite(path, n)
        if intervals is None:
            return 0
        self.report.num_steps = n
        times = self.f["/timestamps"]
        self.report.duration_s = float(times[n - 1] - times[0])
        if len(intervals):
            self.report.measured_hz = float(1.0 / np.median(intervals))
            nominal = spec.control_hz if spec else _number(self.report.attrs.get("nominal_hz"))
            if nominal and self.report.measured_hz < self.limits.min_rate_fraction * nominal:
                self.add(
                    "control_rate_low",
                    f"measured {self.report.measured_hz:.1f} Hz (median interval), "
                    f"nominal {nominal:g} Hz",
                    "/timestamps",
                    WARNING,
                )
        return n

    def cameras(self) -> None:
        images = "/observations/images"
        group = self.f.get(images)
        present = []
        if isinstance(group, h5py.Group):
            present = sorted(k for k, v in group.items() if isinstance(v, h5py.Group))
        if self.spec:
            wanted = {c.name: c for c in self.spec.cameras}
            for name in present:
                if name not in wanted:
                    self.add(
                        "unexpected_dataset",
                        "camera not in the embodiment spec",
                        f"{images}/{name}",
                        WARNING,
                    )
            for name in wanted:
                self.camera(f"{images}/{name}", name, wanted[name])
        else:
            for name in present:
                self.camera(f"{images}/{name}", name, None)

    def camera(self, group_path: str, name: str, cam_spec: Any) -> None:
        group = self.f.get(group_path)
        if not isinstance(group, h5py.Group):
            self.add("missing_dataset", "camera group is missing", group_path)
            return
        attrs = {
            k: attr_value(group.attrs[k])
            for k in ("encoding", "width", "height", "fps")
            if k in group.attrs
        }
        encoding, width, height, fps = (
            attrs.get(k) for k in ("encoding", "width", "height", "fps")
        )
        if encoding not in ENCODINGS:
            self.add(
                "bad_attribute",
                f"encoding {str(encoding)[:40]!r} not in {ENCODINGS}",
                f"{group_path}@encoding",
            )
            return
        if not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (width, height)
        ):
            self.add("bad_attribute", "width and height must be positive integers", group_path)
            return
        if cam_spec and (width, height) != (cam_spec.width, cam_spec.height):
            self.add(
                "wrong_shape",
                f"camera is {width}x{height}, "
                f"the embodiment says {cam_spec.width}x{cam_spec.height}",
                group_path,
            )
            return
        data = self.expect(f"{group_path}/data", dtype="uint8", row_shape=(), rows_are_steps=False)
        index = self.expect(f"{group_path}/index", dtype="int64", row_shape=(2,))
        times = self.expect(f"{group_path}/timestamps", dtype="float64", row_shape=())
        if data is None or index is None or times is None:
            return
        count = min(index.shape[0], times.shape[0])
        if index.shape[0] != times.shape[0]:
            self.length_problem(
                f"{index.shape[0]} index rows but {times.shape[0]} frame timestamps", group_path
            )
        stream_bytes = data.shape[0]
        lengths = np.empty(count, np.int64)
        offsets = np.empty(count, np.int64)
        for start, block in self.blocks(f"{group_path}/index", count):
            offsets[start : start + len(block)] = block[:, 0]
            lengths[start : start + len(block)] = block[:, 1]
        ends = offsets + lengths
        if self.report.truncated:
            # The writer indexes a frame only after its bytes; a crash mid-flush may still
            # leave index rows ahead of the stream. Keep the prefix whose bytes exist.
            while count and ends[count - 1] > stream_bytes:
                count -= 1
            offsets, lengths, ends = offsets[:count], lengths[:count], ends[:count]
        bad = (
            (offsets < 0)
            | (lengths <= 0)
            | (lengths > self.limits.max_frame_bytes)
            | (ends > stream_bytes)
        )
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            self.add(
                "bad_frame_index",
                f"{int(bad.sum())} frames point outside the stream or have absurd lengths, "
                f"first frame {first}",
                f"{group_path}/index",
            )
            return
        self.report.frame_counts[name] = count
        if count == 0:
            self.add("no_frames", "the camera recorded no frames", group_path, WARNING)
            return
        intervals = self.scan_times(f"{group_path}/timestamps", count)
        if intervals is None:
            return
        if len(intervals) and isinstance(fps, (int, float)) and fps > 0:
            measured = float(1.0 / np.median(intervals))
            if measured < self.limits.min_rate_fraction * fps:
                self.add(
                    "camera_rate_low",
                    f"measured {measured:.1f} fps (median interval), nominal {fps:g}",
                    group_path,
                    WARNING,
                )
        self.decode_sample(group_path, encoding, width, height, offsets, lengths)
        self.frozen(group_path, offsets, lengths, count)

    def decode_sample(
        self,
        group_path: str,
        encoding: str,
        width: int,
        height: int,
        offsets: np.ndarray,
        lengths: np.ndarray,
    ) -> None:
        from PIL import Image

        count = len(offsets)
        picks = np.unique(np.linspace(0, count - 1, min(count, self.limits.decode_samples)).round())
        data = self.f[f"{group_path}/data"]
        failed: list[int] = []
        for i in picks.astype(int).tolist():
            raw = data[int(offsets[i]) : int(offsets[i] + lengths[i])].tobytes()
            if frame_encoding(raw) != encoding:
                failed.append(i)
                continue
            try:
                with Image.open(io.BytesIO(raw)) as image:
                    # Size from the header, before any pixel is decoded: no decompression bomb.
                    if image.size != (width, height):
                        self.add(
                            "frame_size_mismatch",
                            f"frame {i} is {image.size[0]}x{image.size[1]}, "
                            f"the camera says {width}x{height}",
                            f"{group_path}/data",
                        )
                        return
                    image.load()
            except Exception as exc:  # Pillow raises many types for corrupt images
                _raise_if_out_of_memory(exc)
                failed.append(i)
        if failed:
            self.add(
                "undecodable_frame",
                f"{len(failed)} of {len(picks)} sampled frames do not decode as {encoding} "
                f"(frames {failed[:5]})",
                f"{group_path}/data",
            )

    def frozen(self, group_path: str, offsets: np.ndarray, lengths: np.ndarray, count: int) -> None:
        """Warn on identical consecutive frames spanning over ``frozen_after_s``. Only frames
        as long as their predecessor are read (live JPEG almost never repeats a length)."""
        if count < 2:
            return
        data = self.f[f"{group_path}/data"]
        times = self.f[f"{group_path}/timestamps"]
        same_length = np.flatnonzero(lengths[1:] == lengths[:-1]) + 1
        longest = (0.0, 0, 0)
        run_start = None
        previous_i, previous_bytes = -1, b""
        for i in same_length.tolist():
            if previous_i != i - 1:
                previous_bytes = data[
                    int(offsets[i - 1]) : int(offsets[i - 1] + lengths[i - 1])
                ].tobytes()
            current = data[int(offsets[i]) : int(offsets[i] + lengths[i])].tobytes()
            if current == previous_bytes:
                if run_start is None or previous_i != i - 1:
                    run_start = i - 1
                span = float(times[i] - times[run_start])
                if span > longest[0]:
                    longest = (span, run_start, i)
            else:
                run_start = None
            previous_i, previous_bytes = i, current
        if longest[0] > self.limits.frozen_after_s:
            span, first, last = longest
            self.add(
                "camera_frozen",
                f"frames {first}-{last} are identical for {span:.2f} s",
                group_path,
                WARNING,
            )

    def events(self) -> None:
        group = self.f.get("/events")
        if group is None:
            return
        kind = self.expect("/events/kind", dtype=None, row_shape=(), numeric=False)
        name = self.expect("/events/name", dtype=None, row_shape=(), numeric=False)
        times = self.expect("/events/t", dtype="float64", row_shape=())
        if kind is None or name is None or times is None:
            return
        for path, info in (("/events/kind", kind), ("/events/name", name)):
            if info.dtype is None or info.dtype.kind != "S":
                self.add("wrong_dtype", f"dtype {info.dtype}, expected fixed-length strings", path)
                return
        lengths = {kind.shape[0], name.shape[0], times.shape[0]}
        n = min(lengths)
        if len(lengths) > 1:
            self.length_problem("kind, name and t differ in length", "/events")
        for _, block in self.blocks("/events/t", n):
            if not np.isfinite(block).all():
                self.add("non_finite", "an event time is not finite", "/events/t")
                break
        unknown: set[str] = set()
        for _, block in self.blocks("/events/kind", n):
            unknown.update(k.decode("utf-8", "replace") for k in set(block.tolist()))
        unknown -= set(EVENT_KINDS)
        if unknown:
            self.add(
                "unknown_event_kind",
                f"event kinds {sorted(unknown)[:5]} are not among {EVENT_KINDS}",
                "/events/kind",
                WARNING,
            )


def _plain(value: Any) -> Any:
    """A JSON-safe value: strings, finite numbers, lists of those; anything else as text."""
    if isinstance(value, str | bool | int) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return repr(value)[:200]


def _is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return isinstance(value, str)


def _is_iso_time(value: Any) -> bool:
    try:
        datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return False
    return True


def _is_json_object(value: Any) -> bool:
    try:
        return isinstance(json.loads(value), dict)
    except (TypeError, ValueError, RecursionError):
        return False


def _is_positive_number(value: Any) -> bool:
    number = _number(value)
    return number is not None and number > 0 and math.isfinite(number)


_ROOT_ATTR_CHECKS = {
    "episode_id": _is_uuid,
    "start_time": _is_iso_time,
    "end_time": _is_iso_time,
    "software": _is_json_object,
    "nominal_hz": _is_positive_number,
}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _check_content(
    f: h5py.File,
    datasets: dict[str, _DatasetInfo],
    spec: EmbodimentSpec | None,
    findings: _Findings,
) -> None:
    try:
        _Content(f, datasets, spec, findings).run()
    except Exception as exc:  # a file that passed structure but breaks a read
        _raise_if_out_of_memory(exc)
        findings.add("corrupt_file", f"reading failed: {_first_line(exc)}")


# --------------------------------------------------------------------------------------------
# Command line: python -m proving_ground.episode.validate
# --------------------------------------------------------------------------------------------


def _limit_resources(memory_mb: int) -> None:
    """Applied by the child to itself before it touches the file. Raises MemoryError when the
    cap leaves under 32 MiB beyond what the interpreter already maps: below its own footprint
    it would fail at random places (C code that does not check malloc crashes instead)."""
    import resource

    memory = int(memory_mb) << 20
    try:
        status = Path("/proc/self/status").read_text()
        mapped = int(status.split("VmSize:", 1)[1].split()[0]) << 10
    except (OSError, IndexError, ValueError):
        mapped = 0
    if memory < mapped + (32 << 20):
        raise MemoryError(f"{memory_mb} MiB is below the validator's own footprint")
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # The validator never writes a file; anything that tries is killed by SIGXFSZ.
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m proving_ground.episode.validate",
        description="Validate a pg-episode/1 file; print a JSON report (exit 1 when refused).",
    )
    parser.add_argument("path", nargs="?")
    parser.add_argument("--spec", help="embodiment spec JSON file")
    parser.add_argument("--memory-mb", type=int, help="cap this process's address space")
    parser.add_argument(
        "--config-stdin",
        action="store_true",
        help='read {"path", "spec", "limits", "memory_mb"} as JSON from stdin',
    )
    args = parser.parse_args(argv)
    spec: Any = None
    limits = ValidationLimits()
    path, memory_mb = args.path, args.memory_mb
    if args.config_stdin:
        config = json.loads(sys.stdin.read())
        path, spec = config["path"], config.get("spec")
        limits = ValidationLimits.from_dict(config.get("limits") or {})
        memory_mb = config.get("memory_mb", memory_mb)
    elif args.spec:
        spec = json.loads(Path(args.spec).read_text())
    if not path:
        parser.error("a path is needed")
    try:
        if memory_mb:
            _limit_resources(memory_mb)
        report = validate(path, spec, limits)
        out = json.dumps(report.to_dict(), indent=None if args.config_stdin else 2)
    except MemoryError:
        os.write(2, b"MemoryError\n")
        os._exit(EXIT_OUT_OF_MEMORY)
    print(out)
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
