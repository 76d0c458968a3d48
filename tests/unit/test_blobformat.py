"""The encrypted blob format: round trips, ranges, and every kind of tampering."""

from __future__ import annotations

import io
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.crypto import HEADER_SIZE, BlobReader, BlobWriter, ciphertext_size
from server.crypto._primitives import GCM_TAG_BYTES
from server.errors import DecryptionFailed

KEY = bytes(range(32))
KEY_ID = bytes(range(16))
SEG = 64  # small segments so that tests cross many boundaries


def seal(data: bytes, *, key: bytes = KEY, key_id: bytes = KEY_ID, segment_size: int = SEG) -> bytes:
    out = bytearray()
    writer = BlobWriter(key, key_id, out.extend, segment_size=segment_size)
    # Feed in uneven pieces to exercise the buffering.
    for i in range(0, len(data), 37):
        writer.write(data[i : i + 37])
    writer.close()
    return bytes(out)


def reader(blob: bytes, size: int, *, key: bytes = KEY, key_id: bytes = KEY_ID) -> BlobReader:
    return BlobReader(key, key_id, io.BytesIO(blob), plaintext_size=size, ciphertext_size=len(blob))


def segment_offset(index: int) -> int:
    return HEADER_SIZE + index * (SEG + GCM_TAG_BYTES)


@pytest.mark.parametrize("size", [0, 1, SEG - 1, SEG, SEG + 1, 3 * SEG, 3 * SEG + 5])
def test_round_trip_at_segment_boundaries(size: int) -> None:
    data = os.urandom(size)
    blob = seal(data)
    assert len(blob) == ciphertext_size(size, SEG)
    assert reader(blob, size).read() == data


def test_default_segment_size_round_trip() -> None:
    data = os.urandom(200_000)
    blob = seal(data, segment_size=64 * 1024)
    assert len(blob) == ciphertext_size(len(data))
    assert reader(blob, len(data)).read() == data


def test_ciphertext_does_not_contain_plaintext() -> None:
    data = b"PATIENT-MARKER-" * 100
    assert b"PATIENT-MARKER" not in seal(data)


def test_same_plaintext_seals_differently() -> None:
    data = b"same" * 50
    assert seal(data) != seal(data)  # fresh nonce prefix per blob


@settings(max_examples=200, deadline=None)
@given(data=st.binary(min_size=0, max_size=700), start=st.integers(0, 800), length=st.integers(0, 800))
def test_ranges_return_exact_bytes(data: bytes, start: int, length: int) -> None:
    r = reader(seal(data), len(data))
    r.seek(start)
    assert r.read(length) == data[start : start + length]


def test_read_in_small_pieces_crosses_segments() -> None:
    data = os.urandom(5 * SEG + 3)
    r = reader(seal(data), len(data))
    pieces = []
    while chunk := r.read(7):
        pieces.append(chunk)
    assert b"".join(pieces) == data


def _expect_failure(blob: bytes, size: int) -> None:
    with pytest.raises(DecryptionFailed):
        reader(blob, size).read()


def test_flipped_bit_in_a_segment_fails() -> None:
    data = os.urandom(3 * SEG)
    blob = bytearray(seal(data))
    blob[segment_offset(1) + 5] ^= 0x01
    _expect_failure(bytes(blob), len(data))


def test_flipped_bit_in_a_tag_fails() -> None:
    data = os.urandom(2 * SEG)
    blob = bytearray(seal(data))
    blob[segment_offset(1) - 1] ^= 0x80
    _expect_failure(bytes(blob), len(data))


@pytest.mark.parametrize("offset", [0, 4, 5, 6, 10, 26, 32])
def test_changed_header_fails(offset: int) -> None:
    data = os.urandom(2 * SEG)
    blob = bytearray(seal(data))
    blob[offset] ^= 0x01
    _expect_failure(bytes(blob), len(data))


def test_swapped_segments_fail() -> None:
    data = os.urandom(3 * SEG)
    blob = bytearray(seal(data))
    a = blob[segment_offset(0) : segment_offset(1)]
    b = blob[segment_offset(1) : segment_offset(2)]
    blob[segment_offset(0) : segment_offset(2)] = b + a
    _expect_failure(bytes(blob), len(data))


def test_truncation_at_a_segment_boundary_fails_even_with_a_matching_size() -> None:
    # Drop the last segment and claim the shorter size: the new last segment
    # was sealed as "not last", so authentication fails.
    data = os.urandom(3 * SEG)
    blob = seal(data)[: segment_offset(2)]
    _expect_failure(blob, 2 * SEG)


def test_truncation_inside_a_segment_fails() -> None:
    data = os.urandom(3 * SEG)
    blob = seal(data)[:-5]
    with pytest.raises(DecryptionFailed):
        reader(blob, len(data))  # the recorded size no longer matches the blob


def test_extension_fails_even_with_a_matching_size() -> None:
    data = os.urandom(2 * SEG)
    other = seal(os.urandom(2 * SEG))
    # Append the last segment of another blob and claim the longer size.
    blob = seal(data) + other[segment_offset(1) :]
    _expect_failure(blob, 2 * SEG + SEG)


def test_segment_from_another_blob_fails() -> None:
    data = os.urandom(2 * SEG)
    mine, other = bytearray(seal(data)), seal(os.urandom(2 * SEG))
    mine[segment_offset(0) : segment_offset(1)] = other[segment_offset(0) : segment_offset(1)]
    _expect_failure(bytes(mine), len(data))


def test_wrong_key_fails() -> None:
    data = os.urandom(SEG)
    _expect_failure_key = pytest.raises(DecryptionFailed)
    with _expect_failure_key:
        reader(seal(data), len(data), key=bytes(32)).read()


def test_wrong_key_id_fails_before_decrypting() -> None:
    data = os.urandom(SEG)
    with pytest.raises(DecryptionFailed):
        reader(seal(data), len(data), key_id=bytes(16))


def test_no_byte_of_a_damaged_segment_is_returned() -> None:
    data = os.urandom(3 * SEG)
    blob = bytearray(seal(data))
    blob[segment_offset(2) + 1] ^= 0x01
    r = reader(bytes(blob), len(data))
    assert r.read(2 * SEG) == data[: 2 * SEG]  # intact segments are fine
    with pytest.raises(DecryptionFailed):
        r.read(1)
