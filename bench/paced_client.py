"""A fixed-rate HTTP/1.1 load client with microsecond timing: ``connections`` keep-alive connections
(raw asyncio streams on uvloop), each sending one request every ``connections / rate`` seconds on its
own schedule, staggered so the total rate is even.

Latency is measured from the moment a request is written to the moment its whole response is read
(``time.perf_counter``), so it includes this client's own read wake-up (tens of microseconds on a
loaded core), the same for every target. A request whose turn comes while the previous one is still
in flight is sent late, not dropped; the number of late sends is reported, so a server that cannot
keep the rate shows up instead of hiding behind a lower rate.

A body containing ``{n}`` gets a counter in its place, so every request is a new one (a lock on a
resource of its own, say). A path containing ``{c}`` gets the connection's number in its place, so
each connection calls a resource of its own (an actor each: one call at a time per actor).

Prints one JSON object: achieved rate, late sends, errors, p50/p90/p99/max in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from typing import Any

import orjson
import uvloop


def _request(method: str, host: str, port: int, path: str, body: bytes) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


async def run(
    host: str,
    port: int,
    path: str,
    method: str,
    body: bytes,
    rate: float,
    connections: int,
    seconds: float,
    warmup: float,
) -> dict[str, Any]:
    requests = [
        _request(method, host, port, path.replace("{c}", str(index)), body) for index in range(connections)
    ]
    unique = b"{n}" in body  # a body of its own per request: "{n}" is replaced by a counter
    sent_count = 0
    interval = connections / rate
    latencies: list[float] = []
    late = errors = 0
    statuses: dict[int, int] = {}
    streams = [await asyncio.open_connection(host, port) for _ in range(connections)]
    start = time.perf_counter() + 0.05
    measure_from = start + warmup
    end = measure_from + seconds

    async def connection(index: int) -> None:
        nonlocal late, errors, sent_count
        reader, writer = streams[index]
        due = start + index * interval / connections
        while due < end:
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            elif wait < -0.001 and due >= measure_from:
                late += 1
            data = requests[index]
            if unique:
                sent_count += 1
                own_path = path.replace("{c}", str(index))
                data = _request(method, host, port, own_path, body.replace(b"{n}", b"%d" % sent_count))
            sent = time.perf_counter()
            writer.write(data)
            try:
                status = await _read_response(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                errors += 1
                return
            done = time.perf_counter()
            if due >= measure_from:
                latencies.append(done - sent)
                statuses[status] = statuses.get(status, 0) + 1
            due += interval
        writer.close()

    gc.disable()  # the client's own collections would show up as server latency
    await asyncio.gather(*(connection(i) for i in range(connections)))
    gc.enable()
    latencies.sort()
    ms = [value * 1000 for value in latencies]
    return {
        "tool": "bench/paced_client.py",
        "rate_target": rate,
        "connections": connections,
        "seconds": seconds,
        "requests": len(ms),
        "rate_achieved": round(len(ms) / seconds, 1),
        "late_sends": late,
        "errors": errors,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "p50_ms": round(percentile(ms, 0.50), 3),
        "p90_ms": round(percentile(ms, 0.90), 3),
        "p99_ms": round(percentile(ms, 0.99), 3),
        "max_ms": round(ms[-1], 3) if ms else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="http://127.0.0.1:PORT/path")
    parser.add_argument("--method", default="GET")
    parser.add_argument("--body", default="")
    parser.add_argument("--rate", type=float, default=1000.0, help="requests per second, all connections")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    arguments = parser.parse_args()
    rest = arguments.url.removeprefix("http://")
    address, _, path = rest.partition("/")
    host, _, port = address.rpartition(":")
    result = uvloop.run(
        run(
            host,
            int(port),
            "/" + path,
            arguments.method,
            arguments.body.encode(),
            arguments.rate,
            arguments.connections,
            arguments.seconds,
            arguments.warmup,
        )
    )
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
