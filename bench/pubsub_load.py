"""Load for the pub/sub benchmark, two modes.

``paced URL``: publishes at a fixed rate over keep-alive connections (raw asyncio streams on uvloop,
as bench/paced_client.py), each event's data being ``{"t": time.time_ns()}`` taken just before the
request is written, so the subscriber app can measure publish-to-delivery latency. Prints the
publish requests' own latency and status counts.

``direct redis|kafka ADDRESS``: the same kind of client publishing straight to the broker, as
fast as it can for a while, with ``concurrency`` coroutines: redis-py asyncio XADD of an
envelope-sized payload, or an aiokafka producer (acks=all) sending and awaiting each message. This is
what l8's publish throughput is compared with.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
import uuid
from typing import Any

import orjson
import uvloop
from paced_client import _read_response, percentile

# What l8 stores for a 12-byte JSON body: a CloudEvent of about this size.
ENVELOPE = orjson.dumps(
    {
        "data": {"t": 1_700_000_000_000_000_000},
        "datacontenttype": "application/json",
        "id": str(uuid.uuid4()),
        "pubsubname": "bench",
        "source": "bench",
        "specversion": "1.0",
        "time": "2026-11-22T10:00:00Z",
        "topic": "bench-direct",
        "traceid": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "tracestate": "",
        "type": "com.dapr.event.sent",
    }
)


async def paced(
    host: str, port: int, path: str, rate: float, connections: int, seconds: float, warmup: float
) -> dict[str, Any]:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\nContent-Length: "
    ).encode()
    interval = connections / rate
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    late = errors = 0
    streams = [await asyncio.open_connection(host, port) for _ in range(connections)]
    start = time.perf_counter() + 0.05
    measure_from = start + warmup
    end = measure_from + seconds

    async def connection(index: int) -> None:
        nonlocal late, errors
        reader, writer = streams[index]
        due = start + index * interval / connections
        while due < end:
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            elif wait < -0.001 and due >= measure_from:
                late += 1
            body = b'{"t":%d}' % time.time_ns()
            sent = time.perf_counter()
            writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
            try:
                status = await _read_response(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                errors += 1
                return
            if due >= measure_from:
                latencies.append(time.perf_counter() - sent)
                statuses[status] = statuses.get(status, 0) + 1
            due += interval
        writer.close()

    gc.disable()
    await asyncio.gather(*(connection(i) for i in range(connections)))
    gc.enable()
    ms = sorted(value * 1000 for value in latencies)
    return {
        "rate_target": rate,
        "connections": connections,
        "requests": len(ms),
        "rate_achieved": round(len(ms) / seconds, 1),
        "late_sends": late,
        "errors": errors,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "publish_p50_ms": round(percentile(ms, 0.5), 3),
        "publish_p99_ms": round(percentile(ms, 0.99), 3),
    }


async def _flat_out(send: Any, concurrency: int, seconds: float, warmup: float) -> dict[str, Any]:
    count = 0
    measuring = False
    stop = False

    async def worker() -> None:
        nonlocal count
        while not stop:
            await send()
            if measuring:
                count += 1

    workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
    await asyncio.sleep(warmup)
    measuring = True
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    measuring = False
    elapsed = time.perf_counter() - started
    stop = True
    await asyncio.gather(*workers)
    return {"messages": count, "seconds": round(elapsed, 3), "rps": round(count / elapsed, 1)}


async def direct_redis(address: str, concurrency: int, seconds: float, warmup: float) -> dict[str, Any]:
    import redis.asyncio as redis

    host, _, port = address.rpartition(":")
    client = redis.Redis(host=host, port=int(port), max_connections=concurrency)
    try:

        async def send() -> None:
            await client.xadd("bench-direct", {"data": ENVELOPE}, maxlen=100_000, approximate=True)

        return await _flat_out(send, concurrency, seconds, warmup)
    finally:
        await client.aclose()


async def direct_kafka(address: str, concurrency: int, seconds: float, warmup: float) -> dict[str, Any]:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=address, acks="all")
    await producer.start()
    try:

        async def send() -> None:
            await producer.send_and_wait("bench-direct", ENVELOPE)

        return await _flat_out(send, concurrency, seconds, warmup)
    finally:
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("paced")
    p.add_argument("url")
    p.add_argument("--rate", type=float, default=1000.0)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0)
    d = sub.add_parser("direct")
    d.add_argument("broker", choices=["redis", "kafka"])
    d.add_argument("address")
    d.add_argument("--concurrency", type=int, default=16)
    d.add_argument("--seconds", type=float, default=10.0)
    d.add_argument("--warmup", type=float, default=2.0)
    arguments = parser.parse_args()
    if arguments.mode == "paced":
        rest = arguments.url.removeprefix("http://")
        address, _, path = rest.partition("/")
        host, _, port = address.rpartition(":")
        result = uvloop.run(
            paced(
                host,
                int(port),
                "/" + path,
                arguments.rate,
                arguments.connections,
                arguments.seconds,
                arguments.warmup,
            )
        )
    else:
        run = direct_redis if arguments.broker == "redis" else direct_kafka
        result = uvloop.run(
            run(arguments.address, arguments.concurrency, arguments.seconds, arguments.warmup)
        )
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
