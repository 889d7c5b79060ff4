"""The scheduler's listing over 10,000 jobs (``python bench/scheduler_bench.py --list-only``, or after
the firing rounds): what ListJobs costs on each store, against the store's plainest whole read of
the same records in the same run.

Each store (SQLite in a file, Redis, etcd; the servers on core 1, the benchmark on core 0) holds
10,000 jobs of the app listed and 10,000 reminders of the same app id beside them (the listing must
leave them out). Timed, medians of ``--list-rounds``:

- l8's listing: ``SchedulerService.list_jobs`` (the store read a page of 500 at a time by
  ``list_jobs``, each job decoded), then ``JobsService.list_jobs`` (each rendered as GetJob answers:
  what ListJobs turns into protobuf);
- baseline: the same records read at once with the same client, nothing decoded: SQLite one
  ``SELECT`` of the scope's rows, Redis ``ZRANGE`` of the index then one pipeline of ``HMGET``s,
  etcd one ``get_prefix``.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aetcd
from harness import LOAD_CORE, SERVER_CORE, Processes, free_port, pinned, wait_port
from redis.asyncio import Redis

from components.etcd_connection import EtcdConnectionMetadata
from components.metadata import decode
from components.redis_metadata import RedisConnectionMetadata
from components.scheduler.base import SchedulerStore, StoredJob
from components.scheduler.etcd import EtcdSchedulerStore
from components.scheduler.redis import RedisSchedulerStore
from components.scheduler.sqlite import SQLiteSchedulerStore
from services.jobs import JobsService
from services.scheduler.base import Job, JobKey
from services.scheduler.schedules import plan
from services.scheduler.service import LIST_PAGE, SchedulerService, encode

APP = "bench-list"
JOBS = 10_000


def start_servers(workdir: Path, processes: Processes) -> tuple[str, str]:
    redis_port = free_port()
    command = ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", str(workdir)]  # fmt: skip
    wait_port(processes.start("redis-list", pinned(LOAD_CORE, command)), redis_port)
    etcd_port, peer_port = free_port(), free_port()
    command = ["etcd", "--data-dir", str(workdir / "etcd-list"),
               "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
               "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
               "--listen-peer-urls", f"http://127.0.0.1:{peer_port}"]  # fmt: skip
    wait_port(processes.start("etcd-list", pinned(LOAD_CORE, command)), etcd_port)
    return f"127.0.0.1:{redis_port}", f"127.0.0.1:{etcd_port}"


def _stored(kind: str, name: str, now: float) -> StoredJob:
    every = "@every 1h" if kind == "job" else "1h"  # a reminder's schedule is its period
    job = Job(JobKey(kind, APP, name), schedule=every, data=b'{"order": 7, "items": ["a", "b"]}')
    first = plan(job, now)
    return StoredJob(kind, APP, name, encode(job, first, now), first.first, first.first)


async def _fill(store: SchedulerStore) -> None:
    now = time.time()
    gate = asyncio.Semaphore(64)

    async def put(kind: str, name: str) -> None:
        async with gate:
            await store.put(_stored(kind, name, now), overwrite=True)

    await asyncio.gather(
        *(put(kind, f"T||{n}||job-{n:05d}") for kind in ("job", "reminder") for n in range(JOBS))
    )


def _counted(listing: Callable[..., Awaitable[list[Any]]], *args: str) -> Callable[[], Awaitable[int]]:
    async def count() -> int:
        return len(await listing(*args))

    return count


async def _timed(work: Callable[[], Awaitable[int]], rounds: int) -> tuple[float, int]:
    """Median milliseconds of ``work`` over ``rounds`` (one warm-up first) and what it counted."""
    counted = await work()
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        counted = await work()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), counted


def _baselines(path: Path, redis: Any, etcd: Any) -> dict[str, Callable[[], Awaitable[int]]]:
    """The whole read of each store with its own client library (redis-py, aetcd), apart from
    l8's store objects."""

    def sqlite_read() -> int:
        with sqlite3.connect(path) as conn:
            rows = conn.execute("SELECT name, spec, due, ready FROM jobs WHERE kind = ? AND app_id = ?",
                                ("job", APP)).fetchall()  # fmt: skip
        return len(rows)

    async def sqlite_baseline() -> int:
        return await asyncio.to_thread(sqlite_read)

    async def redis_baseline() -> int:
        index = f"l8||sched||{{job||{APP}}}"
        names = await redis.zrange(index, 0, -1)
        pipe = redis.pipeline(transaction=False)
        for name in names:
            pipe.hmget(f"{index}||{name.decode()}", "spec", "due", "ready", "attempt", "ticks", "token")
        return len(await pipe.execute())

    async def etcd_baseline() -> int:
        return len(list(await etcd.get_prefix(f"/l8/sched/job/{APP}/".encode())))

    return {"sqlite": sqlite_baseline, "redis": redis_baseline, "etcd": etcd_baseline}


def measure(workdir: Path, redis_address: str, etcd_address: str, rounds: int) -> dict[str, Any]:
    """:func:`measure_listing` with this process on core 0 (the servers are on core 1)."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {int(SERVER_CORE)})
    try:
        return asyncio.run(measure_listing(workdir, redis_address, etcd_address, rounds))
    finally:
        os.sched_setaffinity(0, before)


async def measure_listing(
    workdir: Path, redis_address: str, etcd_address: str, rounds: int
) -> dict[str, Any]:
    stores: dict[str, SchedulerStore] = {
        "sqlite": SQLiteSchedulerStore(str(workdir / "list.db")),
        "redis": RedisSchedulerStore(decode(RedisConnectionMetadata, {"redisHost": redis_address})),
        "etcd": EtcdSchedulerStore(decode(EtcdConnectionMetadata, {"endpoints": etcd_address})),
    }
    results: dict[str, Any] = {}
    for store in stores.values():
        await store.open()
    redis_host, redis_port = redis_address.rsplit(":", 1)
    etcd_host, etcd_port = etcd_address.rsplit(":", 1)
    redis = Redis(host=redis_host, port=int(redis_port))
    etcd = aetcd.Client(host=etcd_host, port=int(etcd_port))
    try:
        baselines = _baselines(workdir / "list.db", redis, etcd)
        for name, store in stores.items():
            await _fill(store)
            scheduler = SchedulerService(store, APP)
            listed = _counted(scheduler.list_jobs, "job", APP)
            rendered = _counted(JobsService(scheduler, APP).list_jobs)
            list_ms, list_count = await _timed(listed, rounds)
            render_ms, render_count = await _timed(rendered, rounds)
            base_ms, base_count = await _timed(baselines[name], rounds)
            if not list_count == render_count == base_count == JOBS:
                raise RuntimeError(f"{name}: listed {list_count}, rendered {render_count}, read {base_count}")
            results[name] = {"list_ms": round(list_ms, 1), "render_ms": round(render_ms, 1),
                             "baseline_ms": round(base_ms, 1), "ratio": round(list_ms / base_ms, 2),
                             "jobs": JOBS, "page": LIST_PAGE}  # fmt: skip
    finally:
        for store in stores.values():
            await store.close()
        await redis.aclose()
        await etcd.close()
    return results


def render_rows(results: dict[str, Any]) -> list[str]:
    lines = [
        "| store | l8 listing (pages of 500, decoded) | JobsService.list_jobs (listed, rendered) | "
        "baseline: one whole read | listing / baseline |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, found in results.items():
        lines.append(
            f"| {name} | {found['list_ms']} ms | {found['render_ms']} ms | {found['baseline_ms']} ms "
            f"| {found['ratio']}x |"
        )
    return lines
