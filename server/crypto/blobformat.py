"""The encrypted blob format: how file contents sit in the blob store.

A blob is a header followed by segments::

    offset size  field
    ------ ----  -----------------------------------------------------------
         0    4  magic            b"MDAV"
         4    1  format version   1
         5    1  algorithm        1 = AES-256-GCM, STREAM nonces (below)
         6    4  segment size     plaintext bytes per segment, big-endian (65,536)
        10   16  key id           id of this blob's data key (the blob id)
        26    7  nonce prefix     random, fresh for every blob
        33    …  segments

Every segment but the last holds exactly ``segment size`` plaintext bytes; the
last holds 0 to ``segment size`` bytes (an empty file is one empty last
segment).  Segment ``i`` is ``AES-256-GCM(data key, nonce_i, plaintext_i,
aad=header)`` and is stored as ciphertext followed by its 16-byte tag, where::

    nonce_i = nonce prefix (7) || i as uint32 big-endian (4) || last flag (1)

and the last flag is 1 for the final segment, 0 otherwise (the STREAM
construction of Hoang, Reyhanitabar, Rogaway and Vizár).  Hence:

- a flipped bit anywhere fails that segment's tag (the header is the AAD of
  every segment, so a changed header fails them all);
- swapping two segments fails, their counters differ;
- truncation at a segment boundary fails, the new final segment was sealed
  with flag 0; truncation inside a segment fails its tag;
- extension fails, the former final segment was sealed with flag 1;
- a segment of another blob fails, its key and nonce prefix differ.

The number of segments follows from the blob's length, and the plaintext
length follows from both, so the reader also checks it against the size the
database recorded.  A range read decrypts only the segments it touches.

Data keys are random per blob and never stored here: the database keeps them
wrapped by the organisation key (:mod:`server.crypto.keys`).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from typing import BinaryIO, Final

from server.crypto._primitives import GCM_TAG_BYTES, Gcm, random_bytes
from server.errors import DecryptionFailed

__all__ = [
    "HEADER_SIZE",
    "SEGMENT_SIZE",
    "BlobReader",
    "BlobWriter",
    "ciphertext_size",
]

MAGIC: Final = b"MDAV"
FORMAT_VERSION: Final = 1
ALG_AES256GCM_STREAM: Final = 1
SEGMENT_SIZE: Final = 64 * 1024
KEY_ID_BYTES: Final = 16
NONCE_PREFIX_BYTES: Final = 7

_HEADER = struct.Struct(">4sBBI16s7s")
HEADER_SIZE: Final = _HEADER.size  # 33
_COUNTER = struct.Struct(">I")
_MAX_SEGMENTS: Final = 2**32


def _nonce(prefix: bytes, index: int, *, last: bool) -> bytes:
    return prefix + _COUNTER.pack(index) + (b"\x01" if last else b"\x00")


def _segment_count(plaintext_size: int, segment_size: int) -> int:
    # An empty blob still has one (empty) final segment.
    return max(1, -(-plaintext_size // segment_size))


def ciphertext_size(plaintext_size: int, segment_size: int = SEGMENT_SIZE) -> int:
    """Size in bytes of the blob that holds ``plaintext_size`` bytes."""
    return HEADER_SIZE + plaintext_size + _segment_count(plaintext_size, segment_size) * GCM_TAG_BYTES


class BlobWriter:
    """Encrypt a stream of plaintext into the blob format, in constant memory.

    Ciphertext goes to ``sink`` (a callable taking bytes) as segments fill up;
    at most one segment of plaintext is buffered, because a full segment can
    only be sealed once it is known whether more data follows it.
    """

    def __init__(
        self,
        data_key: bytes,
        key_id: bytes,
        sink: Callable[[bytes], object],
        *,
        segment_size: int = SEGMENT_SIZE,
    ) -> None:
        if len(key_id) != KEY_ID_BYTES:
            raise ValueError("key id must be 16 bytes")
        if not 0 < segment_size < 2**31:
            raise ValueError("segment size out of range")
        self._gcm = Gcm(data_key)
        self._sink = sink
        self._segment_size = segment_size
        self._prefix = random_bytes(NONCE_PREFIX_BYTES)
        self._header = _HEADER.pack(MAGIC, FORMAT_VERSION, ALG_AES256GCM_STREAM, segment_size, key_id, self._prefix)
        self._buffer = bytearray()
        self._index = 0
        self._size = 0
        self._closed = False
        sink(self._header)

    @property
    def plaintext_size(self) -> int:
        """Plaintext bytes accepted so far."""
        return self._size

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._closed:
            raise ValueError("write to a closed BlobWriter")
        view = memoryview(data).cast("B")
        n = len(view)
        self._size += n
        size = self._segment_size
        if self._buffer:
            # Top up the pending segment; seal it only once more data follows it.
            missing = size - len(self._buffer)
            if n <= missing:
                self._buffer += view
                return n
            self._buffer += view[:missing]
            view = view[missing:]
            self._seal(self._buffer, last=False)
            self._buffer = bytearray()
        # Full segments straight from the caller's buffer (no copy) while more data follows.
        while len(view) > size:
            self._seal(view[:size], last=False)
            view = view[size:]
        self._buffer += view
        return n

    def close(self) -> int:
        """Seal the final segment; return the plaintext size."""
        if not self._closed:
            self._closed = True
            self._seal(bytes(self._buffer), last=True)
            self._buffer = bytearray()
        return self._size

    def _seal(self, plaintext: bytes | bytearray | memoryview, *, last: bool) -> None:
        if self._index >= _MAX_SEGMENTS:
            raise ValueError("blob too large for the segment counter")
        nonce = _nonce(self._prefix, self._index, last=last)
        self._sink(self._gcm.seal(nonce, plaintext, self._header))
        self._index += 1


class BlobReader(io.RawIOBase):
    """A seekable, read-only view of the plaintext of one blob.

    ``source`` is the open ciphertext (seekable); ``plaintext_size`` is what the
    database recorded.  Any inconsistency between the two, or any failed
    segment, raises :class:`~server.errors.DecryptionFailed`; no byte of a
    segment is returned before its tag has been verified.
    """

    def __init__(
        self,
        data_key: bytes,
        key_id: bytes,
        source: BinaryIO,
        *,
        plaintext_size: int,
        ciphertext_size: int,
    ) -> None:
        super().__init__()
        self._source = source
        self._gcm = Gcm(data_key)
        header = source.read(HEADER_SIZE)
        if len(header) != HEADER_SIZE:
            raise DecryptionFailed()
        magic, version, alg, segment_size, stored_key_id, prefix = _HEADER.unpack(header)
        if (
            magic != MAGIC
            or version != FORMAT_VERSION
            or alg != ALG_AES256GCM_STREAM
            or segment_size == 0
            or stored_key_id != key_id
        ):
            raise DecryptionFailed()
        segments = _segment_count(plaintext_size, segment_size)
        if ciphertext_size != HEADER_SIZE + plaintext_size + segments * GCM_TAG_BYTES:
            raise DecryptionFailed()
        self._header = header
        self._prefix = prefix
        self._segment_size = segment_size
        self._segments = segments
        self._size = plaintext_size
        self._pos = 0
        self._cached_index = -1
        self._cached = b""

    # -- io.RawIOBase --------------------------------------------------------

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self._size + offset
        else:
            raise ValueError("invalid whence")
        if pos < 0:
            raise ValueError("negative seek position")
        self._pos = pos
        return pos

    def read(self, size: int | None = -1) -> bytes:
        if self.closed:
            raise ValueError("read from a closed BlobReader")
        remaining = self._size - self._pos
        if remaining <= 0:
            return b""
        if size is None or size < 0 or size > remaining:
            size = remaining
        parts: list[bytes] = []
        while size > 0:
            index, offset = divmod(self._pos, self._segment_size)
            plaintext = self._segment(index)
            chunk = plaintext[offset : offset + size]
            parts.append(chunk)
            self._pos += len(chunk)
            size -= len(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            try:
                self._source.close()
            finally:
                super().close()

    # -- internals -----------------------------------------------------------

    def _segment(self, index: int) -> bytes:
        if index == self._cached_index:
            return self._cached
        last = index == self._segments - 1
        plain_len = self._size - index * self._segment_size if last else self._segment_size
        sealed_len = plain_len + GCM_TAG_BYTES
        self._source.seek(HEADER_SIZE + index * (self._segment_size + GCM_TAG_BYTES))
        sealed = self._source.read(sealed_len)
        if len(sealed) != sealed_len:
            raise DecryptionFailed()
        plaintext = self._gcm.open(_nonce(self._prefix, index, last=last), sealed, self._header)
        self._cached_index = index
        self._cached = plaintext
        return plaintext
