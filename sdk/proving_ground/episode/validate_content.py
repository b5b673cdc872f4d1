"""Validation phase 3, content: run only on a file whose bytes and structure passed.

Reads data in blocks of at most ``read_block_bytes``: root attributes, the datasets the
embodiment requires with their shapes and dtypes, lengths, finite values, strictly increasing
timestamps, control and camera rates, a sample of decoded frames and frozen cameras. A
truncated file (no ``end_time``: the writer crashed) is judged on its shortest consistent
prefix and gets a ``truncated`` warning, not a rejection.
"""

from __future__ import annotations

import io
import json
import math
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import h5py
import numpy as np

from proving_ground.episode.reader import attr_value
from proving_ground.episode.spec import (
    ENCODINGS,
    EVENT_KINDS,
    REQUIRED_ROOT_ATTRS,
    SCHEMA,
    EmbodimentSpec,
    frame_encoding,
    is_audio_name,
)
from proving_ground.episode.validate_report import (
    ERROR,
    WARNING,
    Findings,
    first_line,
    raise_if_out_of_memory,
)
from proving_ground.episode.validate_structure import DatasetInfo


class _Content:
    """The content checks of one file, sharing the findings and the file handle."""

    def __init__(
        self,
        f: h5py.File,
        datasets: dict[str, DatasetInfo],
        spec: EmbodimentSpec | None,
        findings: Findings,
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
    ) -> DatasetInfo | None:
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
        self.audio()
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
                self.add("bad_attribute", f"unreadable: {first_line(exc)}", f"/@{name}")
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
        if "embodiment" in attrs and not str(embodiment or "").strip():
            self.add(
                "embodiment_missing",
                "the file does not name its embodiment (root attribute 'embodiment' is empty)",
                "/@embodiment",
            )
        elif self.spec and self.spec.name and embodiment != self.spec.name:
            self.add(
                "embodiment_mismatch",
                f"recorded for {str(embodiment)[:80]!r}, expected {self.spec.name!r}",
                "/@embodiment",
            )
        return True

    def audio(self) -> None:
        """Refuse audio the embodiment does not declare (spec.py, `AUDIO_NAME_WORDS`): every
        group, dataset or attribute named like audio, anywhere, unless it is an observation
        or camera of the spec (whose attributes are still looked at). Without a spec nothing
        is declared. A refused group's contents are not listed again."""
        declared: set[str] = set()
        if self.spec:
            declared |= {f"/observations/{key}" for key in self.spec.observations}
            declared |= {f"/observations/images/{cam.name}" for cam in self.spec.cameras}
        refused: list[str] = []

        def refuse(path: str, what: str) -> None:
            refused.append(path)
            self.add(
                "audio_not_declared",
                f"{what} named like audio, which the embodiment does not declare: voices are "
                "personal data, recorded only when the embodiment lists them as an observation",
                path,
            )

        def visit(name: str) -> None:
            path = "/" + name
            if any(path.startswith(r + "/") for r in refused):
                return
            if path not in declared and is_audio_name(name.rsplit("/", 1)[-1]):
                refuse(path, "a group" if isinstance(self.f[path], h5py.Group) else "a dataset")
                return
            for attr in self.f[path].attrs:
                if is_audio_name(attr):
                    refuse(f"{path}@{attr}", "an attribute")

        for attr in self.f.attrs:
            if is_audio_name(attr):
                refuse(f"/@{attr}", "an attribute")
        # Hard links only: the structure phase refused soft and external ones.
        self.f.visit(visit)

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
                if (
                    parent == "/observations"
                    and key not in spec.observations
                    and not is_audio_name(key)  # refused as audio_not_declared
                ):
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
                raise_if_out_of_memory(exc)
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


def check_content(
    f: h5py.File,
    datasets: dict[str, DatasetInfo],
    spec: EmbodimentSpec | None,
    findings: Findings,
) -> None:
    """Phase 3 on a file whose structure passed (`datasets` from
    `proving_ground.episode.validate_structure.check_structure`); `spec` None checks only what
    needs no embodiment spec. Problems go to `findings`; a read that fails is ``corrupt_file``."""
    try:
        _Content(f, datasets, spec, findings).run()
    except Exception as exc:  # a file that passed structure but breaks a read
        raise_if_out_of_memory(exc)
        findings.add("corrupt_file", f"reading failed: {first_line(exc)}")
