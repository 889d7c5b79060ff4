"""Random identifiers for the hot path: W3C trace and span ids and UUIDv4 event ids.

``os.urandom`` is a system call, and a publish needs three random values (trace id, span id, event
id): these are sliced from a buffer of the same kernel CSPRNG bytes, refilled 4 KiB at a time, so
a publish makes no system call for them. A forked child starts with a fresh buffer, never a copy of
its parent's.
"""

from __future__ import annotations

import os

_REFILL = 4096


class _RandomBytes:
    def __init__(self) -> None:
        self._buffer = b""
        self._offset = 0

    def take(self, count: int) -> bytes:
        offset = self._offset
        if offset + count > len(self._buffer):
            self._buffer, offset = os.urandom(max(_REFILL, count)), 0
        self._offset = offset + count
        return self._buffer[offset : offset + count]

    def forget(self) -> None:
        self._buffer, self._offset = b"", 0


_bytes = _RandomBytes()
os.register_at_fork(after_in_child=_bytes.forget)


def random_hex(count: int) -> str:
    """``count`` random bytes as lower-case hex (a trace id is 16, a span id 8)."""
    return _bytes.take(count).hex()


def uuid4() -> str:
    """A random (version 4, RFC 9562 variant) UUID in its canonical text form, as ``str(uuid.uuid4())``."""
    raw = bytearray(_bytes.take(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
