"""File helpers every part of the SDK (and the server) shares: durable writes and digests.

Standard library only.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

READ_BLOCK_BYTES = 1 << 20


def fsync_path(path: str | os.PathLike[str], *, directory: bool = False) -> None:
    """fsync a file, or with `directory` a directory entry (making a rename inside it durable).

    Raises OSError as the system reports it; see `fsync_directory_if_supported` for the
    best-effort variant."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_directory_if_supported(directory: str | os.PathLike[str]) -> None:
    """Make a rename durable where the file system can: errors (some network and container
    file systems refuse to open or fsync a directory) are ignored."""
    try:
        fsync_path(directory, directory=True)
    except OSError:
        pass


def fsync_tree(root: str | os.PathLike[str]) -> None:
    """fsync every file and directory under `root`, `root` included."""
    for folder, _dirs, names in os.walk(root):
        for name in names:
            fsync_path(Path(folder) / name)
        fsync_path(folder, directory=True)


def file_digest(path: str | os.PathLike[str]) -> tuple[str, int]:
    """(SHA-256 hex digest, size in bytes) of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(READ_BLOCK_BYTES):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB blocks."""
    return file_digest(path)[0]
