"""`EpisodeReader` and `open_episode_file`: read a pg-episode/1 file, complete or truncated.

A file whose writer was killed is still marked "open for SWMR write" in its superblock;
`open_episode_file` presents it to HDF5 with those flags cleared, without modifying it (see
`proving_ground.episode.writer` for why the writer uses SWMR).
"""

from __future__ import annotations

import io
import json
import os
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from proving_ground.episode.spec import FRAME_INDEX_CHUNK_ROWS, EmbodimentSpec

# --------------------------------------------------------------------------------------------
# Reader
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """An event: `kind` from `EVENT_KINDS`, `name` (stage id or label), `t` in seconds."""

    kind: str
    name: str
    t: float


@dataclass(frozen=True)
class CameraInfo:
    encoding: str
    width: int
    height: int
    fps: float


_SWMR_WRITE_FLAGS = 0b101  # superblock v3 consistency flags: open for write, SWMR write


def lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 ``hashlittle``: the checksum HDF5 puts on its metadata
    (``H5_checksum_lookup3``), here for the 44-byte superblock only."""
    mask = 0xFFFFFFFF

    def rot(x: int, k: int) -> int:
        return ((x << k) | (x >> (32 - k))) & mask

    a = b = c = (0xDEADBEEF + len(data) + initval) & mask
    rest = data
    while len(rest) > 12:
        a = (a + int.from_bytes(rest[0:4], "little")) & mask
        b = (b + int.from_bytes(rest[4:8], "little")) & mask
        c = (c + int.from_bytes(rest[8:12], "little")) & mask
        a = (a - c) & mask ^ rot(c, 4)
        c = (c + b) & mask
        b = (b - a) & mask ^ rot(a, 6)
        a = (a + c) & mask
        c = (c - b) & mask ^ rot(b, 8)
        b = (b + a) & mask
        a = (a - c) & mask ^ rot(c, 16)
        c = (c + b) & mask
        b = (b - a) & mask ^ rot(a, 19)
        a = (a + c) & mask
        c = (c - b) & mask ^ rot(b, 4)
        b = (b + a) & mask
        rest = rest[12:]
    if not rest:
        return c
    rest = rest + bytes(12 - len(rest))
    a = (a + int.from_bytes(rest[0:4], "little")) & mask
    b = (b + int.from_bytes(rest[4:8], "little")) & mask
    c = (c + int.from_bytes(rest[8:12], "little")) & mask
    c = (c ^ b) - rot(b, 14) & mask
    a = (a ^ c) - rot(c, 11) & mask
    b = (b ^ a) - rot(a, 25) & mask
    c = (c ^ b) - rot(b, 16) & mask
    a = (a ^ c) - rot(c, 4) & mask
    b = (b ^ a) - rot(a, 14) & mask
    c = (c ^ b) - rot(b, 24) & mask
    return c


def superblock_left_open(path: str | os.PathLike[str]) -> bytes | None:
    """If a SWMR writer left the file open (it crashed), the superblock with its "open for
    write" flags cleared and its checksum redone; else None.

    Only for a version 3 superblock at offset 0 with a valid checksum, whose stored
    end-of-file address the file actually reaches (a file cut short is not a crash). Layout
    (HDF5 format spec, superblock v2/v3): signature (8), version (1), size of offsets O (1),
    size of lengths (1), consistency flags (1), base address, superblock extension address,
    end-of-file address, root object header address (O each), checksum (4).
    """
    with open(path, "rb") as fh:
        head = fh.read(12 + 4 * 8 + 4)
        size = os.fstat(fh.fileno()).st_size
    if len(head) < 12 or head[8] != 3 or head[11] & _SWMR_WRITE_FLAGS != _SWMR_WRITE_FLAGS:
        return None
    width = head[9]
    end = 12 + 4 * width
    if width not in (2, 4, 8) or len(head) < end + 4:
        return None
    base = int.from_bytes(head[12 : 12 + width], "little")
    eof = int.from_bytes(head[12 + 2 * width : 12 + 3 * width], "little")
    if (
        base != 0
        or eof > size
        or lookup3(head[:end]) != int.from_bytes(head[end : end + 4], "little")
    ):
        return None
    cleared = head[:11] + bytes([head[11] & ~_SWMR_WRITE_FLAGS]) + head[12:end]
    return cleared + lookup3(cleared).to_bytes(4, "little")


class _SuperblockOverlay(io.RawIOBase):
    """A read-only file whose first bytes read as `superblock` instead of what is on disk;
    h5py opens it through its file-object driver."""

    def __init__(self, path: str | os.PathLike[str], superblock: bytes):
        super().__init__()
        self._file = open(path, "rb")  # noqa: SIM115 - closed with this object
        self._superblock = superblock

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def readinto(self, buffer: Any) -> int:
        position = self._file.tell()
        count = self._file.readinto(buffer)
        if count and position < len(self._superblock):
            overlap = min(count, len(self._superblock) - position)
            memoryview(buffer).cast("B")[:overlap] = self._superblock[position : position + overlap]
        return count

    def close(self) -> None:
        self._file.close()
        super().close()


def open_episode_file(path: str | os.PathLike[str]) -> h5py.File:
    """Open read-only; raises OSError if HDF5 cannot.

    A file whose SWMR writer was killed is still flagged "open for write" in its superblock,
    and a plain open refuses it. h5py's ``swmr=True`` read mode would open it, but that mode
    skips HDF5's end-of-file check and retries metadata reads whose checksum fails, with
    back-off: on a damaged file it hangs for minutes (measured). So such a file is opened
    normally through an overlay that presents its superblock with the flags cleared; the file
    on disk is never modified. HDF5 then checks it like any closed file.
    """
    try:
        return h5py.File(path, "r")
    except OSError:
        superblock = superblock_left_open(path)
        if superblock is None:
            raise
    source = _SuperblockOverlay(path, superblock)
    try:
        f = h5py.File(source, "r")
    except BaseException:
        source.close()
        raise
    weakref.finalize(f, source.close)
    return f


def attr_value(value: Any) -> Any:
    """An HDF5 attribute as plain Python: bytes decoded, numpy scalars unwrapped."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return [attr_value(v) for v in value.tolist()]
    return value


def _bounds(start: int, stop: int | None, n: int) -> tuple[int, int]:
    begin, end, _ = slice(start, stop).indices(n)
    return begin, max(begin, end)


class EpisodeReader:
    """Read an episode lazily: nothing is loaded until asked for, and only the rows asked for.

    Meant for files we wrote or that passed `validate`; do not point it at an unvalidated
    upload (h5py would follow external links and external storage). A truncated file (no
    ``end_time``, or datasets of different lengths after a crash) reads as its shortest
    consistent prefix and has ``truncated`` set.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._file = open_episode_file(self.path)
        try:
            self.attrs: dict[str, Any] = {k: attr_value(v) for k, v in self._file.attrs.items()}
            observations = self._file.get("observations")
            self.observation_keys: list[str] = sorted(
                k
                for k, v in (observations.items() if observations else [])
                if isinstance(v, h5py.Dataset)
            )
            lengths = [self._file["timestamps"].shape[0], self._file["action"].shape[0]]
            lengths += [self._file[f"observations/{k}"].shape[0] for k in self.observation_keys]
            self.num_steps: int = min(lengths)
            images = self._file.get("observations/images")
            self.cameras: list[str] = sorted(images) if images is not None else []
            self._frame_counts = {cam: self._consistent_frames(cam) for cam in self.cameras}
            self.truncated: bool = "end_time" not in self.attrs or len(set(lengths)) > 1
        except BaseException:
            self._file.close()
            raise

    def _consistent_frames(self, cam: str) -> int:
        group = self._file[f"observations/images/{cam}"]
        n = min(group["index"].shape[0], group["timestamps"].shape[0])
        size = group["data"].shape[0]
        # After a crash the last index rows may point past the data; walk back to the last
        # frame whose bytes exist (offsets only grow, so this touches a few rows).
        while n > 0:
            offset, length = group["index"][n - 1]
            if offset + length <= size:
                break
            n -= 1
        return int(n)

    # -- steps ----------------------------------------------------------------------------

    @property
    def duration_s(self) -> float:
        """Last step time minus first, seconds (0.0 below two steps)."""
        if self.num_steps < 2:
            return 0.0
        ts = self._file["timestamps"]
        return float(ts[self.num_steps - 1] - ts[0])

    def timestamps(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Step times in seconds, float64 ``(stop - start,)``."""
        begin, end = _bounds(start, stop, self.num_steps)
        return self._file["timestamps"][begin:end]

    def observation(self, key: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows ``start:stop`` of ``/observations/<key>``, shape ``(rows, *spec shape)``."""
        if key not in self.observation_keys:
            raise KeyError(key)
        begin, end = _bounds(start, stop, self.num_steps)
        return self._file[f"observations/{key}"][begin:end]

    def action(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        begin, end = _bounds(start, stop, self.num_steps)
        return self._file["action"][begin:end]

    @property
    def spec(self) -> EmbodimentSpec | None:
        """The embodiment spec the writer recorded, if the file carries one."""
        raw = self.attrs.get("embodiment_spec")
        return EmbodimentSpec.from_dict(json.loads(raw)) if raw else None

    # -- cameras --------------------------------------------------------------------------

    def camera_info(self, cam: str) -> CameraInfo:
        attrs = self._file[f"observations/images/{cam}"].attrs
        return CameraInfo(
            str(attr_value(attrs["encoding"])),
            int(attrs["width"]),
            int(attrs["height"]),
            float(attrs["fps"]),
        )

    def frame_count(self, cam: str) -> int:
        return self._frame_counts[cam]

    def frame_timestamps(self, cam: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Frame times in seconds, float64."""
        begin, end = _bounds(start, stop, self.frame_count(cam))
        return self._file[f"observations/images/{cam}/timestamps"][begin:end]

    def frame(self, cam: str, i: int) -> bytes:
        """The encoded bytes of frame ``i`` (negative counts from the end)."""
        n = self.frame_count(cam)
        if not -n <= i < n:
            raise IndexError(f"frame {i} of {n} ({cam})")
        group = self._file[f"observations/images/{cam}"]
        offset, length = (int(v) for v in group["index"][i % n])
        return group["data"][offset : offset + length].tobytes()

    def frames(
        self, cam: str, start: int = 0, stop: int | None = None, *, batch_bytes: int = 8 << 20
    ) -> Iterator[bytes]:
        """Encoded frames ``start:stop`` in order. Reads one slice of the stream per batch of
        consecutive frames (up to ``batch_bytes``), never the frames outside the range."""
        begin, end = _bounds(start, stop, self.frame_count(cam))
        group = self._file[f"observations/images/{cam}"]
        index_ds, data = group["index"], group["data"]
        for block_start in range(begin, end, FRAME_INDEX_CHUNK_ROWS):
            index = index_ds[block_start : min(end, block_start + FRAME_INDEX_CHUNK_ROWS)]
            offsets, lengths = index[:, 0].tolist(), index[:, 1].tolist()
            i = 0
            while i < len(offsets):
                # One read for a run of frames that follow each other in the stream.
                lo = hi = offsets[i]
                j = i
                while (
                    j < len(offsets)
                    and offsets[j] == hi
                    and (j == i or hi + lengths[j] - lo <= batch_bytes)
                ):
                    hi += lengths[j]
                    j += 1
                block = data[lo:hi]
                for offset, length in zip(offsets[i:j], lengths[i:j], strict=True):
                    yield block[offset - lo : offset - lo + length].tobytes()
                i = j

    # -- events ---------------------------------------------------------------------------

    def events(self) -> list[Event]:
        """All events in recording order (small: one row per stage or intervention edge)."""
        group = self._file.get("events")
        if group is None:
            return []
        n = min(group[k].shape[0] for k in ("kind", "name", "t"))
        kinds, names, times = group["kind"][:n], group["name"][:n], group["t"][:n]
        return [
            Event(attr_value(k), attr_value(nm), float(t))
            for k, nm, t in zip(kinds, names, times, strict=True)
        ]

    # -- lifetime -------------------------------------------------------------------------

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> EpisodeReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
