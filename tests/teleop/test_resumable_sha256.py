"""The upload's carried SHA-256: resumed from its saved state in any split, it equals
hashlib's digest of the whole."""

import hashlib
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from teleop.resumable_sha256 import STATE_BYTES, ResumableSHA256


@given(st.lists(st.binary(max_size=300), max_size=12))
def test_resuming_from_saved_state_after_every_piece_equals_hashlib(pieces):
    state = None
    for piece in pieces:
        hasher = ResumableSHA256.from_state(state)
        hasher.update(piece)
        state = hasher.state()
    assert len(state or ResumableSHA256().state()) == STATE_BYTES
    assert (
        ResumableSHA256.from_state(state).hexdigest()
        == hashlib.sha256(b"".join(pieces)).hexdigest()
    )


def test_digest_does_not_end_the_running_hash():
    hasher = ResumableSHA256(b"abc")
    assert hasher.digest() == hashlib.sha256(b"abc").digest()
    hasher.update(b"def")
    assert hasher.hexdigest() == hashlib.sha256(b"abcdef").hexdigest()


def test_a_large_piece_crosses_many_blocks():
    data = bytes(range(256)) * 40_000
    hasher = ResumableSHA256.from_state(ResumableSHA256(data[:777]).state())
    hasher.update(memoryview(data)[777:])
    assert hasher.digest() == hashlib.sha256(data).digest()


def test_state_of_the_wrong_size_is_refused():
    with pytest.raises(ValueError, match="112 bytes"):
        ResumableSHA256.from_state(b"x" * 10)


def test_state_is_plain_bytes_that_survive_a_round_trip():
    state = ResumableSHA256(b"robot").state()
    assert isinstance(state, bytes)
    assert ResumableSHA256.from_state(pickle.loads(pickle.dumps(state))).digest() == (
        hashlib.sha256(b"robot").digest()
    )
