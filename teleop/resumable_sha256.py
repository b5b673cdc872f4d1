"""SHA-256 whose running state can be saved and resumed in another process.

An upload's chunks may land on any web process, one after another, so the whole file's
SHA-256 is carried from chunk to chunk as 112 bytes stored on the upload row: completing an
upload then needs no second read of the file. `hashlib` cannot export its state (its
objects only `copy()` within a process), and the PyPI packages that try (rehash) poke at
hashlib's private memory layout. OpenSSL's own `SHA256_Init/Update/Final` work on a
caller-owned `SHA256_CTX`, a plain struct published in `openssl/sha.h` (eight 32-bit words
of state, the 64-bit bit count as two words, a 64-byte block buffer, its fill and the digest
length: 112 bytes) — so the struct's bytes are the state. These functions are marked
deprecated in OpenSSL 3 but are exported and unchanged; the library is the one Python's own
`hashlib` links, so nothing new is installed. No Django here.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib

STATE_BYTES = 112  # sizeof(SHA256_CTX)


def _load_libcrypto() -> ctypes.CDLL:
    import _hashlib  # the OpenSSL build hashlib uses; load the same libcrypto

    candidates = [ctypes.util.find_library("crypto"), "libcrypto.so.3", "libcrypto.so"]
    for name in filter(None, candidates):
        try:
            lib = ctypes.CDLL(name)
            lib.SHA256_Init  # noqa: B018 - raises AttributeError when absent
            break
        except (OSError, AttributeError):
            continue
    else:  # pragma: no cover - every supported platform has libcrypto
        raise ImportError(f"libcrypto with SHA256_Init not found (hashlib: {_hashlib.__file__})")
    for name in ("SHA256_Init", "SHA256_Update", "SHA256_Final"):
        getattr(lib, name).restype = ctypes.c_int
    lib.SHA256_Init.argtypes = [ctypes.c_char_p]
    lib.SHA256_Update.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.SHA256_Final.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    return lib


_lib = _load_libcrypto()


class ResumableSHA256:
    """`hashlib.sha256`'s interface (`update`, `digest`, `hexdigest`) plus `state()` and
    `from_state()`. `digest()` leaves the running state untouched."""

    __slots__ = ("_ctx",)

    def __init__(self, data: bytes = b""):
        self._ctx = ctypes.create_string_buffer(STATE_BYTES)
        if _lib.SHA256_Init(self._ctx) != 1:  # pragma: no cover - cannot fail for SHA-256
            raise RuntimeError("SHA256_Init failed")
        if data:
            self.update(data)

    @classmethod
    def from_state(cls, state: bytes | memoryview | None) -> ResumableSHA256:
        """Resume from `state()` bytes; None or empty starts a new hash."""
        hasher = cls()
        if state:
            state = bytes(state)
            if len(state) != STATE_BYTES:
                raise ValueError(f"A SHA-256 state is {STATE_BYTES} bytes, not {len(state)}.")
            ctypes.memmove(hasher._ctx, state, STATE_BYTES)
        return hasher

    def state(self) -> bytes:
        return self._ctx.raw

    def update(self, data: bytes | bytearray | memoryview) -> None:
        data = bytes(data) if not isinstance(data, bytes) else data
        if _lib.SHA256_Update(self._ctx, data, len(data)) != 1:  # pragma: no cover
            raise RuntimeError("SHA256_Update failed")

    def digest(self) -> bytes:
        copy = ctypes.create_string_buffer(self._ctx.raw, STATE_BYTES)
        out = ctypes.create_string_buffer(32)
        if _lib.SHA256_Final(out, copy) != 1:  # pragma: no cover
            raise RuntimeError("SHA256_Final failed")
        return out.raw

    def hexdigest(self) -> str:
        return self.digest().hex()


def _self_test() -> None:
    """Refuse to run on a libcrypto whose struct differs from the one documented above."""
    first = ResumableSHA256(b"proving ")
    resumed = ResumableSHA256.from_state(first.state())
    resumed.update(b"ground" * 20)
    if resumed.digest() != hashlib.sha256(b"proving " + b"ground" * 20).digest():
        raise ImportError("libcrypto's SHA256_CTX is not the documented 112-byte struct")


_self_test()
