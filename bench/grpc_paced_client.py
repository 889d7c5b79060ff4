"""A fixed-rate, open-loop gRPC load client: unary calls over h2c (framed by hand on uvloop, HPACK
from ``hpack``), ``connections`` HTTP/2 connections, one fixed arrival schedule for the whole run
(call ``i`` is due at ``start + i / rate``, on connection ``i % connections``), sent when due
whether or not earlier calls have answered (HTTP/2 streams: a slow answer never delays the next
send, so no coordinated omission).

Each call's latency is measured twice, with ``time.perf_counter``:

- from its **send** (the bytes handed to the socket) to its trailers: what the server and the
  network add, comparable with bench/paced_client.py's HTTP figures;
- from its **scheduled** time: the open-loop figure, which also holds this client's own lateness
  (the event loop's timers wake up to 1 ms late, on every target alike). ``send_late_*`` reports how
  late sends were, so a bursty or overloaded client shows up instead of hiding in the figures.

A call counts as an error unless it ends with ``grpc-status: 0``.

    python bench/grpc_paced_client.py 127.0.0.1:PORT /dapr.proto.runtime.v1.Dapr/GetState BODY_FILE

``BODY_FILE`` holds the framed request message (bench/grpc_bench.py's ``framed``). Prints one JSON
object: achieved rate, errors, late sends, p50/p90/p99/max in milliseconds for both measures.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import socket
import struct
import time
from pathlib import Path
from typing import Any

import orjson
import uvloop
from hpack import Decoder, Encoder, NeverIndexedHeaderTuple
from paced_client import percentile

_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_DATA, _HEADERS, _RST_STREAM, _SETTINGS, _PING, _GOAWAY, _WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
_END_STREAM, _ACK, _END_HEADERS, _PADDED, _PRIORITY = 0x1, 0x1, 0x4, 0x8, 0x20
_MAX_WINDOW = 2**31 - 1
_FRAME = struct.Struct(">HBBBI")  # a 24-bit length as 16 + 8 bits, type, flags, stream id
_UNKNOWN = b"-"


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    size = len(payload)
    return _FRAME.pack(size >> 8, size & 0xFF, kind, flags, stream) + payload


# Our SETTINGS: no header table (every header block the server sends is then self-contained, so a
# block decodes the same every time and is decoded once), no push, the largest windows.
_HELLO = (
    _PREFACE
    + _frame(_SETTINGS, 0, 0, struct.pack(">HIHIHI", 1, 0, 2, 0, 4, _MAX_WINDOW))
    + _frame(_WINDOW_UPDATE, 0, 0, struct.pack(">I", _MAX_WINDOW - 65535))
)


class _Call:
    __slots__ = ("due", "sent", "status")

    def __init__(self, due: float, sent: float) -> None:
        self.due = due
        self.sent = sent
        self.status = _UNKNOWN


class GrpcConnection(asyncio.Protocol):
    """One h2c connection, framed by hand (the pure-Python ``h2`` costs about a millisecond of
    CPU per call, which would make the client the bottleneck): the request's header block is
    encoded once, statelessly, so each call is two frames of fixed bytes but for the stream id."""

    def __init__(
        self, authority: str, path: str, body: bytes, done: list[tuple[float, float, float, bytes]]
    ) -> None:
        headers = [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", authority),
                   ("content-type", "application/grpc"), ("te", "trailers")]  # fmt: skip
        self.block = Encoder().encode([NeverIndexedHeaderTuple(k, v) for k, v in headers])
        self.body = body
        self.done = done
        self.calls: dict[int, _Call] = {}
        self.next_stream = 1
        self.buffer = b""
        self.received = 0
        self.decoder = Decoder()
        self.statuses: dict[bytes, bytes | None] = {}
        self.transport: asyncio.Transport | None = None
        self.lost = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport.write(_HELLO)

    def send(self, due: float) -> None:
        assert self.transport is not None
        stream = self.next_stream
        self.next_stream += 2
        data = _frame(_HEADERS, _END_HEADERS, stream, self.block)
        data += _frame(_DATA, _END_STREAM, stream, self.body)
        sent = time.perf_counter()
        self.transport.write(data)
        self.calls[stream] = _Call(due, sent)

    def _status(self, block: bytes) -> bytes | None:
        """The block's grpc-status, decoded once per distinct block."""
        if block not in self.statuses:
            found = None
            for name, value in self.decoder.decode(block, raw=True):
                if name == b"grpc-status":
                    found = value
            self.statuses[block] = found
        return self.statuses[block]

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        buffer = self.buffer + data if self.buffer else data
        offset, out = 0, []
        while len(buffer) - offset >= 9:
            high, low, kind, flags, stream = _FRAME.unpack_from(buffer, offset)
            size = (high << 8) | low
            if len(buffer) - offset - 9 < size:
                break
            payload = buffer[offset + 9 : offset + 9 + size]
            offset += 9 + size
            stream &= 0x7FFFFFFF
            if kind == _DATA:
                self.received += size
            elif kind == _HEADERS:
                if flags & _PADDED:
                    payload = payload[1 : len(payload) - payload[0]]
                if flags & _PRIORITY:
                    payload = payload[5:]
                status = self._status(payload)
                call = self.calls.get(stream)
                if call is not None and status is not None:
                    call.status = status
            elif kind == _SETTINGS and not flags & _ACK:
                out.append(_frame(_SETTINGS, _ACK, 0, b""))
            elif kind == _PING and not flags & _ACK:
                out.append(_frame(_PING, _ACK, 0, payload))
            elif kind == _GOAWAY:
                self.lost += len(self.calls)
                self.calls.clear()
            if stream and (kind == _RST_STREAM or (kind in (_DATA, _HEADERS) and flags & _END_STREAM)):
                call = self.calls.pop(stream, None)
                if call is not None:
                    self.done.append((call.due, call.sent, now, call.status))
        self.buffer = buffer[offset:]
        if self.received > 2**30:
            out.append(_frame(_WINDOW_UPDATE, 0, 0, struct.pack(">I", self.received)))
            self.received = 0
        if out and self.transport is not None:
            self.transport.write(b"".join(out))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost += len(self.calls)
        self.calls.clear()


def _summary(values: list[float]) -> dict[str, float | None]:
    ms = sorted(value * 1000 for value in values)
    return {
        "p50_ms": round(percentile(ms, 0.50), 3),
        "p90_ms": round(percentile(ms, 0.90), 3),
        "p99_ms": round(percentile(ms, 0.99), 3),
        "max_ms": round(ms[-1], 3) if ms else None,
    }


async def run(
    host: str, port: int, path: str, body: bytes, rate: float, connections: int, seconds: float, warmup: float
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    done: list[tuple[float, float, float, bytes]] = []
    authority = f"{host}:{port}"
    links: list[GrpcConnection] = []
    for _ in range(connections):
        _, link = await loop.create_connection(
            lambda: GrpcConnection(authority, path, body, done), host, port
        )
        links.append(link)
    await asyncio.sleep(0.1)  # the SETTINGS exchange
    interval = 1.0 / rate
    start = time.perf_counter() + 0.05
    measure_from = start + warmup
    end = measure_from + seconds
    index = 0
    gc.disable()  # the client's own collections would show up as server latency
    while True:
        due = start + index * interval
        if due >= end:
            break
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        now = time.perf_counter()
        while due <= now and due < end:  # every call now due goes out, each on its own connection
            links[index % connections].send(due)
            index += 1
            due = start + index * interval
    deadline = time.perf_counter() + 5
    while any(link.calls for link in links) and time.perf_counter() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)  # the last answers
    gc.enable()
    for link in links:
        if link.transport is not None:
            link.transport.close()
    measured = [row for row in done if row[0] >= measure_from]
    statuses: dict[str, int] = {}
    for row in measured:
        statuses[row[3].decode()] = statuses.get(row[3].decode(), 0) + 1
    errors = sum(1 for row in measured if row[3] != b"0") + sum(link.lost for link in links)
    late = [row[1] - row[0] for row in measured]
    return {
        "tool": "bench/grpc_paced_client.py",
        "rate_target": rate,
        "connections": connections,
        "seconds": seconds,
        "requests": len(measured),
        "rate_achieved": round(len(measured) / seconds, 1),
        "errors": errors,
        "grpc_statuses": dict(sorted(statuses.items())),
        "unanswered": sum(len(link.calls) for link in links),
        "send_late_p50_ms": round(percentile(sorted(x * 1000 for x in late), 0.5), 3),
        "send_late_p99_ms": round(percentile(sorted(x * 1000 for x in late), 0.99), 3),
        "from_send": _summary([row[2] - row[1] for row in measured]),
        "from_schedule": _summary([row[2] - row[0] for row in measured]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("address", help="127.0.0.1:PORT")
    parser.add_argument("path", help="/package.Service/Method")
    parser.add_argument("body_file", type=Path, help="the framed request message")
    parser.add_argument("--rate", type=float, default=1000.0, help="calls per second, all connections")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    arguments = parser.parse_args()
    host, _, port = arguments.address.rpartition(":")
    result = uvloop.run(
        run(
            host,
            int(port),
            arguments.path,
            arguments.body_file.read_bytes(),
            arguments.rate,
            arguments.connections,
            arguments.seconds,
            arguments.warmup,
        )
    )
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
