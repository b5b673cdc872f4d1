"""Hostile and broken episode files, generated on demand (no binary fixtures).

Each generator takes a directory and returns the path of a new file. Most start from a small
valid episode written by our own `EpisodeWriter` and then damage it with plain h5py, the way
an attacker or a buggy third-party writer would. `HOSTILE_KINDS` is the table the validator's
tests run (kind, generator, expected problem code, whether it is a structural refusal that
must happen before any data is read); the upload tests reuse it.

`FifoTrap` turns "the validator never reads /etc/passwd" into something a test can observe:
a named pipe that records whether anyone opened it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from proving_ground.episode.reader import lookup3
from proving_ground.episode.spec import encode_jpeg
from proving_ground.episode.writer import EpisodeWriter

SMALL_SPEC: dict[str, Any] = {
    "name": "test-arm",
    "joint_names": [f"joint_{i}" for i in range(7)],
    "observations": {
        "qpos": {"shape": [7], "dtype": "float32"},
        "qvel": {"shape": [7], "dtype": "float32"},
    },
    "action": {"shape": [7], "dtype": "float32"},
    "cameras": [{"name": "cam_high", "width": 64, "height": 48, "fps": 30}],
    "control_hz": 200,
}


@functools.cache
def small_frames(width: int = 64, height: int = 48, count: int = 3) -> tuple[bytes, ...]:
    """A few distinct JPEG frames, encoded once per process and reused."""
    rng = np.random.default_rng(width * 1000 + height)
    return tuple(
        encode_jpeg(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)) for _ in range(count)
    )


def write_episode(
    path: Path,
    spec: dict[str, Any] = SMALL_SPEC,
    *,
    seconds: float = 1.0,
    frames: dict[str, list[bytes]] | None = None,
    step_hz: float | None = None,
) -> Path:
    """A valid episode: every observation row i filled with i (qvel with -i), action i / 10,
    frames cycling through `small_frames` (or the given per-camera lists), one stage event."""
    hz = step_hz or spec["control_hz"]
    with EpisodeWriter(
        path,
        spec,
        episode_id=str(uuid.uuid4()),
        robot="robot-1",
        task_version="task-v1",
        operator="op-7f3a",
        software={"teleop_stack": "1.2.3"},
    ) as writer:
        for i in range(int(seconds * hz)):
            obs = {
                key: np.full(value["shape"], -i if key == "qvel" else i)
                for key, value in spec["observations"].items()
            }
            writer.add_step(i / hz, obs, np.full(spec["action"]["shape"], i / 10))
        for cam in spec["cameras"]:
            own = (frames or {}).get(cam["name"])
            cycle = own or small_frames(cam["width"], cam["height"])
            count = len(own) if own else int(seconds * cam["fps"])
            for k in range(count):
                writer.add_frame(cam["name"], k / cam["fps"], cycle[k % len(cycle)])
        writer.add_event("stage", "grasp", seconds / 2)
    return path


@contextlib.contextmanager
def _edit(directory: Path, name: str) -> Iterator[h5py.File]:
    path = write_episode(directory / f"{name}.h5")
    with h5py.File(path, "r+") as f:
        yield f


def _made(directory: Path, name: str, change: Callable[[h5py.File], Any]) -> Path:
    with _edit(directory, name) as f:
        change(f)
    return directory / f"{name}.h5"


# -- structural: refused before any data is read --------------------------------------------


def external_link(directory: Path, target: Path | str = "/etc/passwd") -> Path:
    return _made(
        directory,
        "external_link",
        lambda f: f.__setitem__("leak", h5py.ExternalLink(str(target), "/x")),
    )


def soft_link(directory: Path) -> Path:
    return _made(
        directory,
        "soft_link",
        lambda f: f.__setitem__("observations/alias", h5py.SoftLink("/action")),
    )


def external_storage(directory: Path, target: Path | str = "/etc/passwd") -> Path:
    """A dataset whose raw bytes are declared to live in `target`."""
    return _made(
        directory,
        "external_storage",
        lambda f: f.create_dataset(
            "observations/leak", shape=(64,), dtype="u1", external=[(str(target), 0, 64)]
        ),
    )


def virtual_dataset(directory: Path, source: Path | str | None = None) -> Path:
    """A virtual dataset mapping `source` (default: a small HDF5 file made here)."""
    if source is None:
        source = directory / "source.h5"
        with h5py.File(source, "w") as src:
            src["x"] = np.arange(16, dtype="f4")
    layout = h5py.VirtualLayout(shape=(16,), dtype="f4")
    layout[:] = h5py.VirtualSource(str(source), "x", shape=(16,))
    return _made(
        directory, "virtual_dataset", lambda f: f.create_virtual_dataset("observations/v", layout)
    )


def gzip_bomb(directory: Path) -> Path:
    """1 GiB of zeros in ~1 MB of gzip: the same compressed chunk written 1024 times."""
    chunk = 1 << 20
    packed = zlib.compress(bytes(chunk), 9)

    def change(f: h5py.File) -> None:
        bomb = f.create_dataset(
            "observations/bomb",
            shape=(1024 * chunk,),
            dtype="u1",
            chunks=(chunk,),
            compression="gzip",
        )
        for i in range(1024):
            bomb.id.write_direct_chunk((i * chunk,), packed)

    return _made(directory, "gzip_bomb", change)


def declares_terabytes(directory: Path) -> Path:
    """8 TiB declared, nothing stored: the file stays a few KB."""
    return _made(
        directory,
        "declares_terabytes",
        lambda f: f.create_dataset(
            "observations/huge", shape=(1 << 40,), maxshape=(None,), chunks=(1 << 16,), dtype="f8"
        ),
    )


def rank_seven(directory: Path) -> Path:
    return _made(
        directory,
        "rank_seven",
        lambda f: f.create_dataset("observations/deep", shape=(1,) * 7, dtype="f4"),
    )


def object_dtype(directory: Path) -> Path:
    """A ragged (variable-length int32) dataset: numpy reads it as an object array."""
    return _made(
        directory,
        "object_dtype",
        lambda f: f.create_dataset("observations/ragged", (3,), dtype=h5py.vlen_dtype(np.int32)),
    )


def reference_dtype(directory: Path) -> Path:
    return _made(
        directory,
        "reference_dtype",
        lambda f: f.create_dataset(
            "observations/refs", data=np.array([f["timestamps"].ref], dtype=h5py.ref_dtype)
        ),
    )


def reference_attribute(directory: Path) -> Path:
    return _made(directory, "reference_attribute", lambda f: f.attrs.__setitem__("ref", f.ref))


def unknown_filter(directory: Path) -> Path:
    """Scale-offset: built into HDF5 but lossy and not on the allow-list."""
    return _made(
        directory,
        "unknown_filter",
        lambda f: f.create_dataset("observations/packed", data=np.arange(100.0), scaleoffset=2),
    )


def chunk_too_large(directory: Path) -> Path:
    return _made(
        directory,
        "chunk_too_large",
        lambda f: f.create_dataset(
            "observations/wide", shape=(1, 1 << 25), chunks=(1, 1 << 25), dtype="f8"
        ),
    )


def name_too_long(directory: Path) -> Path:
    return _made(directory, "name_too_long", lambda f: f.create_group("n" * 300))


def attribute_too_large(directory: Path) -> Path:
    return _made(
        directory,
        "attribute_too_large",
        lambda f: f.attrs.__setitem__("blob", np.zeros(100_000, "u1")),
    )


def many_objects(directory: Path) -> Path:
    """40 groups: refused under `max_objects=20` (see the table's limits)."""

    def change(f: h5py.File) -> None:
        for i in range(40):
            f.create_group(f"extra/g{i}")

    return _made(directory, "many_objects", change)


def userblock(directory: Path) -> Path:
    path = directory / "userblock.h5"
    with h5py.File(path, "w", userblock_size=512) as f:
        f["timestamps"] = np.arange(3.0)
    return path


def cut_short(directory: Path) -> Path:
    """A valid file with its last half cut off: HDF5 cannot open it."""
    path = write_episode(directory / "cut_short.h5")
    os.truncate(path, path.stat().st_size // 2)
    return path


def mark_left_open(path: Path) -> Path:
    """Set the superblock's "open for SWMR write" flags, as a writer killed mid-episode
    leaves them, and redo its checksum."""
    with open(path, "r+b") as fh:
        head = bytearray(fh.read(48))
        assert head[8] == 3 and head[9] == 8, "a libver='latest' file with 8-byte offsets"
        head[11] = 0b101
        head[44:48] = lookup3(bytes(head[:44])).to_bytes(4, "little")
        fh.seek(0)
        fh.write(head)
    return path


def left_open_and_damaged(directory: Path) -> Path:
    """Looks like a crashed recording, and the root group's header is damaged: h5py's SWMR
    read mode would retry the failing checksum for minutes."""
    path = mark_left_open(write_episode(directory / "left_open_and_damaged.h5"))
    with open(path, "r+b") as fh:
        root = int.from_bytes(fh.read(48)[36:44], "little")
        fh.seek(root + 8)
        fh.write(b"\xff" * 8)
    return path


def not_hdf5(directory: Path) -> Path:
    path = directory / "not_hdf5.h5"
    path.write_bytes(b"PK\x03\x04" + b"this is a zip archive, honest" * 10)
    return path


def empty_file(directory: Path) -> Path:
    path = directory / "empty.h5"
    path.touch()
    return path


# -- content: found by reading --------------------------------------------------------------


def _replace(f: h5py.File, name: str, **kwargs: Any) -> None:
    del f[name]
    f.create_dataset(name, **kwargs)


def vlen_bytes_qpos(directory: Path) -> Path:
    def change(f: h5py.File) -> None:
        n = f["observations/qpos"].shape[0]
        _replace(f, "observations/qpos", shape=(n,), dtype=h5py.vlen_dtype(np.uint8))

    return _made(directory, "vlen_bytes_qpos", change)


def wrong_dtype(directory: Path) -> Path:
    def change(f: h5py.File) -> None:
        data = f["observations/qpos"][:]
        _replace(f, "observations/qpos", data=data.astype(np.float64))

    return _made(directory, "wrong_dtype", change)


def wrong_shape(directory: Path) -> Path:
    def change(f: h5py.File) -> None:
        data = f["observations/qpos"][:]
        _replace(f, "observations/qpos", data=data[:, :6])

    return _made(directory, "wrong_shape", change)


def nan_in_qpos(directory: Path) -> Path:
    def change(f: h5py.File) -> None:
        f["observations/qpos"][50, 3] = np.nan

    return _made(directory, "nan_in_qpos", change)


def non_monotonic_time(directory: Path) -> Path:
    def change(f: h5py.File) -> None:
        f["timestamps"][100] = f["timestamps"][99] - 0.001

    return _made(directory, "non_monotonic_time", change)


def missing_dataset(directory: Path) -> Path:
    return _made(directory, "missing_dataset", lambda f: f.__delitem__("action"))


def length_mismatch(directory: Path) -> Path:
    return _made(directory, "length_mismatch", lambda f: f["action"].resize(150, axis=0))


def wrong_schema(directory: Path) -> Path:
    return _made(
        directory, "wrong_schema", lambda f: f.attrs.__setitem__("schema", "pg-episode/99")
    )


def bad_frame_index(directory: Path) -> Path:
    def change(f: h5py.File) -> None:
        f["observations/images/cam_high/index"][3] = (10**9, 100)

    return _made(directory, "bad_frame_index", change)


def undecodable_frame(directory: Path) -> Path:
    """Frames that start like JPEG and then are noise."""
    junk = [b"\xff\xd8\xff" + os.urandom(500) for _ in range(30)]
    return write_episode(directory / "undecodable_frame.h5", frames={"cam_high": junk})


def frame_size_mismatch(directory: Path) -> Path:
    """Real JPEGs of 32x24 in a camera declared 64x48."""
    wrong = list(small_frames(32, 24)) * 10
    return write_episode(directory / "frame_size_mismatch.h5", frames={"cam_high": wrong})


@dataclass(frozen=True)
class HostileKind:
    kind: str
    make: Callable[[Path], Path]
    code: str
    structural: bool
    limits: dict[str, Any] = field(default_factory=dict)


HOSTILE_KINDS: tuple[HostileKind, ...] = (
    HostileKind("external link", external_link, "external_link", True),
    HostileKind("soft link", soft_link, "soft_link", True),
    HostileKind("external raw storage at /etc/passwd", external_storage, "external_storage", True),
    HostileKind("virtual dataset", virtual_dataset, "virtual_dataset", True),
    HostileKind("gzip bomb", gzip_bomb, "compression_ratio_too_high", True),
    HostileKind("declares terabytes", declares_terabytes, "declared_size_too_large", True),
    HostileKind("rank 7", rank_seven, "rank_too_high", True),
    HostileKind("object dtype (ragged ints)", object_dtype, "object_dtype", True),
    HostileKind("reference dtype", reference_dtype, "reference_dtype", True),
    HostileKind("reference attribute", reference_attribute, "reference_dtype", True),
    HostileKind("unknown filter", unknown_filter, "unknown_filter", True),
    HostileKind("chunk too large", chunk_too_large, "chunk_too_large", True),
    HostileKind("name too long", name_too_long, "name_too_long", True),
    HostileKind("attribute too large", attribute_too_large, "attribute_too_large", True),
    HostileKind("too many objects", many_objects, "too_many_objects", True, {"max_objects": 20}),
    HostileKind("user block", userblock, "userblock_refused", True),
    HostileKind("truncated bytes", cut_short, "corrupt_file", True),
    HostileKind("left open by a writer and damaged", left_open_and_damaged, "corrupt_file", True),
    HostileKind("not HDF5 at all", not_hdf5, "not_hdf5", True),
    HostileKind("empty file", empty_file, "empty_file", True),
    HostileKind("vlen bytes where qpos belongs", vlen_bytes_qpos, "wrong_dtype", False),
    HostileKind("wrong dtype", wrong_dtype, "wrong_dtype", False),
    HostileKind("wrong shape", wrong_shape, "wrong_shape", False),
    HostileKind("NaN in qpos", nan_in_qpos, "non_finite", False),
    HostileKind("non-monotonic time", non_monotonic_time, "non_monotonic_timestamps", False),
    HostileKind("missing required dataset", missing_dataset, "missing_dataset", False),
    HostileKind("length mismatch in a closed file", length_mismatch, "length_mismatch", False),
    HostileKind("unknown schema", wrong_schema, "wrong_schema", False),
    HostileKind("frame index past the stream", bad_frame_index, "bad_frame_index", False),
    HostileKind("undecodable frames", undecodable_frame, "undecodable_frame", False),
    HostileKind("frames of the wrong size", frame_size_mismatch, "frame_size_mismatch", False),
)


class FifoTrap:
    """A named pipe at `path` that counts how often it was opened for reading.

    A thread opens the pipe for writing in a loop; each open returns only after a reader has
    opened the other end (Linux counts reader opens, so even a reader that closed at once is
    seen). `close()` gives the thread a moment to count an open that just happened, reads the
    count, then opens the reading end itself to release the thread.
    """

    def __init__(self, path: Path):
        self.path = path
        os.mkfifo(path)
        self._opens = 0
        self._stop = False
        self._thread = threading.Thread(target=self._count, daemon=True)
        self._thread.start()

    def _count(self) -> None:
        while not self._stop:
            with open(self.path, "wb"):
                if not self._stop:
                    self._opens += 1

    def close(self) -> int:
        """Stop watching; returns the number of opens seen."""
        time.sleep(0.2)  # an unblocked thread counts within microseconds; be generous
        opens = self._opens
        self._stop = True
        fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        self._thread.join(timeout=5)
        os.close(fd)
        return opens
