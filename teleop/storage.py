"""Where episode files live. One module owns file placement.

Uploads are staged on a local disk under `UPLOAD_STAGING_DIR/<upload id>.part` while chunks
arrive (a chunk is written at an offset, which object stores cannot do). Accepted files move
into Django's default storage under a content address, `episodes/<aa>/<bb>/<sha256>.h5`, so
the same bytes are stored once and a key says what it holds.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage

READ_BLOCK_BYTES = 1024 * 1024


def staging_path(upload_id) -> Path:
    directory = Path(settings.UPLOAD_STAGING_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"{upload_id}.part"


def create_staging_file(upload_id) -> Path:
    path = staging_path(upload_id)
    path.touch(exist_ok=True)
    return path


def discard_staging_file(upload_id) -> None:
    with contextlib.suppress(FileNotFoundError):
        staging_path(upload_id).unlink()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(READ_BLOCK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def episode_key(sha256: str) -> str:
    return f"episodes/{sha256[:2]}/{sha256[2:4]}/{sha256}.h5"


def store_episode_file(path: Path, sha256: str) -> str:
    """Put a validated file into the default storage under its content address (once)."""
    key = episode_key(sha256)
    if not default_storage.exists(key):
        with open(path, "rb") as f:
            saved = default_storage.save(key, File(f))
        if saved != key:  # a concurrent writer stored the same bytes first
            default_storage.delete(saved)
    return key


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
