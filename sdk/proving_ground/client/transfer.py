"""Constants and the small pure pieces of the robot client's requests and uploads."""

from __future__ import annotations

import email.utils
import hashlib
import os
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import BinaryIO

import requests

from proving_ground.client.errors import ProvingGroundError

TUS_VERSION = "1.0.0"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
MiB = 1024 * 1024
DEFAULT_CHUNK_BYTES = 8 * MiB
#: The largest chunk the client sends in one PATCH (the server streams any size; smaller
#: chunks resume with less to resend).
MAX_CHUNK_BYTES = 16 * MiB
#: Reads while hashing stay this small, so memory does not grow with the chunk size.
HASH_PIECE_BYTES = 1 * MiB
#: Statuses that mean "not now" rather than "no": a gateway or the database is away, or the
#: caller is over its rate.
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
#: Episode states after which the server holds the file whole.
UPLOADED_STATES = frozenset({"processing", "ready", "rejected"})
FINAL_STATES = frozenset({"ready", "rejected"})

ProgressCallback = Callable[[int, int], None]


# --- Small pure helpers ---------------------------------------------------------------------


def version_tuple(version: str) -> tuple[int, ...]:
    """``"1.10.2"`` -> ``(1, 10, 2)``, compared number by number (so 1.10 > 1.9). A part's
    trailing non-digits are ignored (``"2rc1"`` counts as 2); missing parts count as 0."""
    parts = []
    for part in version.strip().split("."):
        digits = re.match(r"\d*", part).group()
        parts.append(int(digits) if digits else 0)
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()  # 1.0 == 1.0.0
    return tuple(parts)


def range_digest(f: BinaryIO, offset: int, length: int) -> bytes:
    """SHA-256 of ``length`` bytes of ``f`` from ``offset``, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    f.seek(offset)
    left = length
    while left:
        piece = f.read(min(HASH_PIECE_BYTES, left))
        if not piece:
            raise ProvingGroundError(
                f"{getattr(f, 'name', 'file')} shrank while uploading", error="file_changed"
            )
        digest.update(piece)
        left -= len(piece)
    return digest.digest()


def read_episode_id(path: str | os.PathLike[str]) -> str | None:
    """The ``episode_id`` root attribute of a pg-episode file, or None when the file is not
    one (or h5py is not installed). Opens crashed (SWMR-flagged) files too."""
    try:
        from proving_ground.episode.reader import attr_value, open_episode_file
        from proving_ground.episode.spec import SCHEMA
    except ImportError:
        return None
    try:
        with open_episode_file(path) as f:
            if attr_value(f.attrs.get("schema")) != SCHEMA:
                return None
            return str(uuid.UUID(str(attr_value(f.attrs.get("episode_id")))))
    except (OSError, ValueError, TypeError):
        return None


def retry_after_s(response: requests.Response) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), or None."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"[0-9]{1,9}", value):  # not isdigit(): it takes "²", which float() refuses
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class FileSlice:
    """``length`` bytes of an open file from ``offset``, read on demand as a request body.

    ``__len__`` lets requests send a Content-Length (never ``Transfer-Encoding: chunked``,
    which the server answers 411), and urllib3 pulls the bytes through ``read`` in small
    blocks, so a chunk is never held in memory whole."""

    def __init__(self, f: BinaryIO, offset: int, length: int):
        self._f = f
        self._length = length
        self._left = length
        f.seek(offset)

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        size = self._left if size is None or size < 0 else min(size, self._left)
        data = self._f.read(size)
        self._left -= len(data)
        return data


# Errors after which the request may or may not have reached the server: retry (POSTs are
# idempotent by key, PATCH by offset). An SSL error is a configuration problem, not a hiccup.
def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, requests.exceptions.SSLError):
        return False
    return isinstance(
        exc,
        requests.ConnectionError
        | requests.Timeout
        | requests.exceptions.ChunkedEncodingError
        | requests.exceptions.ContentDecodingError,
    )
