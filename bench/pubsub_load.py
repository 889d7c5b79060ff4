"""Load for the pub/sub benchmark, two modes.

``paced URL``: publishes at a fixed rate over keep-alive connections (raw asyncio streams on uvloop,
as bench/paced_client.py), each event's data being ``{"t": time.time_ns()}`` taken just before the
request is written, so the subscriber app can measure publish-to-delivery latency. Prints the
publish requests' own latency and status counts.

``direct redis|kafka ADDRESS``: the same kind of client publishing straight to the broker, as
fast as it can for a while, with ``concurrency`` coroutines: redis-py asyncio XADD of an
envelope-sized payload, or an aiokafka producer (acks=all) sending and awaiting each message. This is
what l8's publish throughput is compared with.

``floor redis|kafka ADDRESS``: the broker's own publish-to-delivery latency at a fixed rate, a
producer and a consumer in one process and no sidecar: the floor under l8's delivery latency.
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


async def _paced_sends(send: Any, rate: float, concurrency: int, seconds: float) -> int:
    """Calls ``send(t_ns)`` at ``rate`` per second over ``concurrency`` staggered senders."""
    interval = concurrency / rate
    start = time.perf_counter() + 0.05
    end = start + seconds
    sent = 0

    async def sender(index: int) -> None:
        nonlocal sent
        due = start + index * interval / concurrency
        while due < end:
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            await send(time.time_ns())
            sent += 1
            due += interval

    await asyncio.gather(*(sender(i) for i in range(concurrency)))
    return sent


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _floor_result(latencies: list[float], sent: int) -> dict[str, Any]:
    ms = sorted(latencies)
    return {
        "sent": sent,
        "count": len(ms),
        **{f"p{n}_ms": _rounded(percentile(ms, n / 100)) for n in (50, 90, 99)},
        "max_ms": round(ms[-1], 3) if ms else None,
    }


async def floor_redis(address: str, rate: float, concurrency: int, seconds: float) -> dict[str, Any]:
    """The broker's own publish-to-delivery latency: XADD at a fixed rate, XREADGROUP BLOCK and
    XACK as l8's consumer does, no HTTP and no sidecar."""
    import redis.asyncio as redis

    host, _, port = address.rpartition(":")
    client = redis.Redis(host=host, port=int(port), max_connections=concurrency + 2)
    stream = f"bench-floor-{uuid.uuid4().hex[:8]}"
    await client.xgroup_create(stream, "floor", id="$", mkstream=True)
    latencies: list[float] = []
    done = asyncio.Event()

    async def consume() -> None:
        while not done.is_set():
            answer = await client.xreadgroup("floor", "c1", {stream: ">"}, count=100, block=100)
            for _, entries in answer or []:
                now = time.time_ns()
                for entry_id, fields in entries:
                    latencies.append((now - int(fields[b"t"])) / 1e6)
                    await client.xack(stream, "floor", entry_id)

    async def send(t_ns: int) -> None:
        await client.xadd(stream, {"t": str(t_ns)})

    consumer = asyncio.create_task(consume())
    try:
        sent = await _paced_sends(send, rate, concurrency, seconds)
        await asyncio.sleep(1.0)
    finally:
        done.set()
        await consumer
        await client.delete(stream)
        await client.aclose()
    return _floor_result(latencies, sent)


async def floor_kafka(
    address: str, rate: float, concurrency: int, seconds: float, fetch_max_wait_ms: int
) -> dict[str, Any]:
    """The broker's own publish-to-delivery latency: aiokafka send_and_wait (acks=all) at a fixed
    rate to a consumer group with the fetch wait l8's benchmark component uses, no sidecar."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    topic = f"bench-floor-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(bootstrap_servers=address, acks="all")
    await producer.start()
    await producer.send_and_wait(topic, b"0")  # creates the topic
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=address,
        group_id=topic,
        auto_offset_reset="latest",
        fetch_max_wait_ms=fetch_max_wait_ms,
    )
    await consumer.start()
    latencies: list[float] = []
    done = asyncio.Event()

    async def consume() -> None:
        while not done.is_set():
            batches = await consumer.getmany(timeout_ms=100)
            now = time.time_ns()
            for records in batches.values():
                for record in records:
                    if record.value and record.value != b"0":
                        latencies.append((now - int(record.value)) / 1e6)

    async def send(t_ns: int) -> None:
        await producer.send_and_wait(topic, str(t_ns).encode())

    try:
        while not consumer.assignment():  # noqa: ASYNC110 - aiokafka has no event for it
            await asyncio.sleep(0.05)
        await consumer.seek_to_end()
        await asyncio.sleep(0.5)
        reader = asyncio.create_task(consume())
        sent = await _paced_sends(send, rate, concurrency, seconds)
        await asyncio.sleep(1.0)
        done.set()
        await reader
    finally:
        await consumer.stop()
        await producer.stop()
    return _floor_result(latencies, sent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("paced")
    p.add_argument("url")
    p.add_argument("--rate", type=float, default=1000.0)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0)
    for mode in ("direct", "floor"):
        m = sub.add_parser(mode)
        m.add_argument("broker", choices=["redis", "kafka"])
        m.add_argument("address")
        m.add_argument("--concurrency", type=int, default=16)
        m.add_argument("--seconds", type=float, default=10.0)
        if mode == "direct":
            m.add_argument("--warmup", type=float, default=2.0)
        else:
            m.add_argument("--rate", type=float, default=1000.0)
            m.add_argument("--fetch-max-wait-ms", type=int, default=5)
    arguments = parser.parse_args()
    if arguments.mode == "floor":
        a = arguments
        if a.broker == "redis":
            result = uvloop.run(floor_redis(a.address, a.rate, a.concurrency, a.seconds))
        else:
            result = uvloop.run(floor_kafka(a.address, a.rate, a.concurrency, a.seconds, a.fetch_max_wait_ms))
    elif arguments.mode == "paced":
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
