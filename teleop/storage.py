"""Where episode files live. One module owns file placement.

Everything lives in Django's default storage (local files, or S3-compatible object storage),
so any web process and any worker on any machine sees the same files:

- `uploads/<upload id>/<offset>`: an upload's bytes as they arrived, one object per chunk,
  or per `UPLOAD_PART_MAX_BYTES` of a larger chunk (tus writes at an offset; object stores
  cannot, so the parts are kept apart). Processing joins them into one local scratch file,
  then drops them.
- `episodes/<aa>/<bb>/<sha256>.h5`: accepted files under their content address, so the same
  bytes are stored once and a key says what it holds.
- `recordings/<episode id>.rrd` and `exports/...`: built by jobs from the episode files.

Scratch files (a chunk while it arrives, an episode while it is validated) go to the local
temporary directory (`TMPDIR`) and are removed afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage

READ_BLOCK_BYTES = 1024 * 1024
# A PATCH of any size is stored as parts of at most this many bytes, each stored as it fills:
# the scratch file stays this small, and on object storage each part is one PUT streamed
# from it (under the 64 MiB multipart threshold, whose parts boto3 holds in memory).
UPLOAD_PART_MAX_BYTES = 16 * 1024 * 1024


class UploadPartsMissing(Exception):
    """The stored parts of an upload do not cover the file (a part is gone)."""


def upload_part_key(upload_id, offset: int) -> str:
    return f"uploads/{upload_id}/{offset:020d}"


@contextlib.contextmanager
def chunk_scratch_file() -> Iterator[BinaryIO]:
    """A named scratch file for a chunk while it arrives: `save_upload_part` lets a local
    storage move it into place instead of writing the bytes a second time."""
    scratch = tempfile.NamedTemporaryFile(prefix="pg-chunk-", delete=False)  # noqa: SIM115
    try:
        yield scratch
    finally:
        scratch.close()
        Path(scratch.name).unlink(missing_ok=True)


def save_upload_part(upload_id, offset: int, content: BinaryIO) -> str:
    """Store a received chunk; returns its key (a new one if a lost attempt left one)."""
    content.flush()
    named = isinstance(getattr(content, "name", None), str)
    wrapped = _ScratchFile(content) if named else File(content)
    return default_storage.save(upload_part_key(upload_id, offset), wrapped)


def delete_upload_part(key: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        default_storage.delete(key)


def discard_upload_parts(upload_id) -> None:
    """Drop every stored part of an upload, including any a request left behind when it
    died between storing its chunk and recording it."""
    directory = f"uploads/{upload_id}"
    try:
        _, names = default_storage.listdir(directory)
    except FileNotFoundError:
        names = []
    for name in names:
        delete_upload_part(f"{directory}/{name}")
    legacy = legacy_staging_path(upload_id)
    if legacy is not None:
        legacy.unlink(missing_ok=True)
    with contextlib.suppress(OSError, NotImplementedError):
        os.rmdir(default_storage.path(directory))  # local storage keeps empty folders


def legacy_staging_path(upload_id) -> Path | None:
    """Where releases before stateless uploads staged a file on the web server's disk."""
    directory = getattr(settings, "UPLOAD_STAGING_DIR", None)
    if not directory:
        return None
    path = Path(directory) / f"{upload_id}.part"
    return path if path.exists() else None


@contextlib.contextmanager
def joined_upload_parts(parts: Iterable, *, length: int) -> Iterator[tuple[Path, str]]:
    """The parts of an upload joined, in offset order, into one local scratch file; yields
    (path, SHA-256 of what was joined). Raises UploadPartsMissing when the parts leave a gap
    or a stored part is shorter than recorded. The scratch file is removed afterwards (unless
    `store_episode_file(move=True)` moved it into the storage)."""
    parts = sorted(parts, key=lambda part: part.offset)
    digest = hashlib.sha256()
    handle, name = tempfile.mkstemp(prefix="pg-episode-", suffix=".h5")
    path = Path(name)
    try:
        with os.fdopen(handle, "wb") as out:
            position = 0
            for part in parts:
                if part.offset != position:
                    raise UploadPartsMissing(f"The bytes from {position} were never stored.")
                try:
                    source = default_storage.open(part.key, "rb")
                except FileNotFoundError as exc:
                    raise UploadPartsMissing(f"The part at {part.offset} is gone.") from exc
                with source:
                    copied = _copy_hashing(source, out, digest)
                if copied != part.size_bytes:
                    raise UploadPartsMissing(f"The part at {part.offset} is incomplete.")
                position += copied
            if position != length:
                raise UploadPartsMissing(f"Only {position} of {length} bytes were stored.")
        yield path, digest.hexdigest()
    finally:
        path.unlink(missing_ok=True)


def _copy_hashing(source, out, digest) -> int:
    copied = 0
    while block := source.read(READ_BLOCK_BYTES):
        out.write(block)
        digest.update(block)
        copied += len(block)
    return copied


class _ScratchFile(File):
    """A local scratch file the storage may move instead of copy (FileSystemStorage moves a
    file that names its `temporary_file_path`)."""

    def temporary_file_path(self) -> str:
        return self.file.name


def episode_key(sha256: str) -> str:
    return f"episodes/{sha256[:2]}/{sha256[2:4]}/{sha256}.h5"


def store_episode_file(path: Path, sha256: str, *, move: bool = False) -> str:
    """Put a validated file into the default storage under its content address (once).
    `move=True` lets a local storage take the scratch file itself instead of a copy."""
    key = episode_key(sha256)
    if default_storage.exists(key) and default_storage.size(key) != Path(path).stat().st_size:
        # A local storage writes in place: a worker killed mid-save left part of the file.
        # (An object store shows an object only once all of it is written.)
        default_storage.delete(key)
    if not default_storage.exists(key):
        with open(path, "rb") as f:
            saved = default_storage.save(key, _ScratchFile(f) if move else File(f))
        if saved != key:  # a concurrent writer stored the same bytes first
            default_storage.delete(saved)
    return key


def delete_stored_file(key: str) -> None:
    """Delete the stored object `key` (nothing if it is gone already)."""
    with contextlib.suppress(FileNotFoundError):
        default_storage.delete(key)


@contextlib.contextmanager
def local_episode_file(key: str) -> Iterator[Path]:
    """A local path to a stored episode file: the file itself on a local storage, else a
    temporary download removed afterwards."""
    try:
        yield Path(default_storage.path(key))
        return
    except NotImplementedError:  # remote storage: no local path
        pass
    with tempfile.NamedTemporaryFile(suffix=".h5", delete=False) as tmp:
        with default_storage.open(key, "rb") as source:
            shutil.copyfileobj(source, tmp, READ_BLOCK_BYTES)
    try:
        yield Path(tmp.name)
    finally:
        os.unlink(tmp.name)
