"""The dump file format of TCP copy: binary-safe, one file a sequence of length-prefixed records.

A file starts with the 8 bytes ``L8DUMP\\x00\\x01`` (name, NUL, format version 1). Each record is a
24-byte header, big-endian, then ``length`` bytes of payload:

======  =====  =============================================================================
bytes   field  meaning
======  =====  =============================================================================
1       kind   0 connection opened (payload ``client-ip:port>server-ip:port``), 1 bytes the
               client sent, 2 bytes l8 answered (only with ``responses: true``), 3 closed
1       flags  reserved, 0
2       port   the listener port
4       conn   connection number, unique in the process
4       window sampling window number
8       time   nanoseconds since the Unix epoch
4       length payload length
======  =====  =============================================================================

Payloads are the bytes exactly as read from (or written to) the socket, so a connection's kind-1
records, in order, are its request stream from the first request of the window on.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

MAGIC = b"L8DUMP\x00\x01"
HEADER = struct.Struct(">BBHIIQI")
OPENED, REQUEST, RESPONSE, CLOSED = 0, 1, 2, 3
KINDS = {OPENED: "opened", REQUEST: "request", RESPONSE: "response", CLOSED: "closed"}


class DumpError(ValueError):
    """Not a dump file, or one cut short (the message says where)."""


@dataclass(frozen=True, slots=True)
class Record:
    kind: int
    port: int
    connection: int
    window: int
    time_ns: int
    payload: bytes

    def encode(self) -> bytes:
        header = HEADER.pack(self.kind, 0, self.port, self.connection, self.window, self.time_ns,
                             len(self.payload))  # fmt: skip
        return header + self.payload


def read_records(path: Path) -> Iterator[Record]:
    """The records of one dump file; a last record cut short (l8 killed mid-write) ends it."""
    with path.open("rb") as dump:
        if dump.read(len(MAGIC)) != MAGIC:
            raise DumpError(f"{path}: not an l8 TCP copy dump (no L8DUMP header)")
        yield from _records(dump)


def _records(dump: BinaryIO) -> Iterator[Record]:
    while True:
        header = dump.read(HEADER.size)
        if len(header) < HEADER.size:
            return
        kind, _, port, connection, window, time_ns, length = HEADER.unpack(header)
        payload = dump.read(length)
        if len(payload) < length:
            return
        yield Record(kind, port, connection, window, time_ns, payload)


def dump_files(target: Path) -> list[Path]:
    """``target`` itself, or the dump files of a folder, oldest first."""
    if target.is_dir():
        return sorted(target.glob("*.dump"))
    return [target]
