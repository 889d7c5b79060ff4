"""The harness for benchmarks whose client runs in the benchmark's own process (a grpcio channel, an
aiohttp session, a component called directly) rather than a load tool: the process pinned to a
core, closed-loop throughput, sequential latencies and their percentiles."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

from paced_client import percentile


@contextlib.contextmanager
def pinned_here(core: str) -> Iterator[None]:
    """The benchmark's own process on ``core`` for the block (on a machine of two cores or more),
    so that what it starts on the other core does not share one with it."""
    before = os.sched_getaffinity(0)
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {int(core)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


async def closed_loop(call: Callable[[], Awaitable[Any]], clients: int, seconds: float) -> float:
    """Calls per second of ``clients`` loops, each calling again as soon as it is answered."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await call()
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(clients)))
    return done / (time.perf_counter() - started)


async def sequential_ms(call: Callable[[], Awaitable[Any]], calls: int) -> list[float]:
    """Milliseconds each of ``calls`` calls took, one after the other."""
    taken = []
    for _ in range(calls):
        started = time.perf_counter()
        await call()
        taken.append((time.perf_counter() - started) * 1000)
    return taken


def percentiles(samples_ms: Iterable[float]) -> dict[str, float]:
    """``{"p50", "p90", "p99"}`` of latencies in milliseconds, to the microsecond."""
    ordered = sorted(samples_ms)
    return {f"p{q}": round(percentile(ordered, q / 100), 3) for q in (50, 90, 99)}
