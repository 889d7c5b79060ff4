"""Direct redis-py asyncio reads, no HTTP: the ceiling one Python process reaches on one core, and
what each part of l8's Redis client set-up costs per call.

Each variant runs ``concurrency`` coroutines that read one key in a loop for ``seconds``, on uvloop,
and reports operations per second and microseconds of this process's CPU per operation.

Variants (``pool`` x ``command``):

- pool ``default``: ``Redis(host, port)``, what the baseline app uses.
- pool ``timeouts``: a ConnectionPool with what components/state/redis.py adds by default: socket
  and connect timeouts (Dapr's readTimeout 3 s, dialTimeout 5 s), keep-alive and go-redis's retry
  back-off (maxRetries 3).
- pool ``blocking``: the same in a BlockingConnectionPool (10 per CPU here) that waits readTimeout + 1 s
  for a free connection (what the component builds when ``poolSize`` is set).
- command ``hmget``: HMGET data version (the baseline's read).
- command ``script``: EVALSHA of l8's GET script (TYPE, HMGET, PTTL), as l8 reads.

Prints one JSON object per variant on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

import orjson
import uvloop
from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from baseline_app import GET_SCRIPT


def _client(pool: str, host: str, port: int) -> Redis:
    if pool == "default":
        return Redis(host=host, port=port)
    options: dict[str, Any] = {
        "connection_class": Connection,
        "host": host,
        "port": port,
        "socket_connect_timeout": 5.0,
        "socket_timeout": 3.0,
        "socket_keepalive": True,
        "retry": Retry(ExponentialWithJitterBackoff(cap=0.512, base=0.008), 3),
    }
    if pool == "timeouts":
        return Redis.from_pool(ConnectionPool(**options))
    if pool == "blocking":
        return Redis.from_pool(
            BlockingConnectionPool(max_connections=10 * (os.cpu_count() or 1), timeout=4.0, **options)
        )
    raise SystemExit(f"unknown pool {pool!r}")


async def _run(
    pool: str, command: str, host: str, port: int, key: str, seconds: float, concurrency: int
) -> dict[str, Any]:
    client = _client(pool, host, port)
    script = client.register_script(GET_SCRIPT)

    async def read() -> Any:
        if command == "hmget":
            return await client.hmget(key, "data", "version")
        return await script((key,), (), client)

    first = await read()
    if not first or first[0] is None:
        raise SystemExit(f"key {key!r} is not seeded")
    count = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal count
        while time.perf_counter() < stop:
            await read()
            count += 1

    for _ in range(concurrency):  # warm the pool's connections first
        await read()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    await client.aclose()
    return {
        "pool": pool,
        "command": command,
        "concurrency": concurrency,
        "seconds": round(wall, 3),
        "ops": count,
        "ops_per_s": round(count / wall, 1),
        "cpu_us_per_op": round(cpu / count * 1e6, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", required=True, help="host:port")
    parser.add_argument("--key", required=True, help="the storage key (a HASH with data and version)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--variant", action="append", default=None, help="pool:command, e.g. default:hmget (repeatable)"
    )
    arguments = parser.parse_args()
    host, _, port = arguments.redis.rpartition(":")
    for variant in arguments.variant or ["default:hmget"]:
        pool, _, command = variant.partition(":")
        result = uvloop.run(
            _run(pool, command, host, int(port), arguments.key, arguments.seconds, arguments.concurrency)
        )
        print(orjson.dumps(result).decode(), flush=True)


if __name__ == "__main__":
    main()
