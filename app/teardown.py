"""Stopping what the runtime started: background tasks within a deadline, closes that never stop
the teardown."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

log = structlog.get_logger(__name__)


async def cancel(task: asyncio.Task[None], deadline: float = 5.0) -> None:
    """Cancel a background task and wait for it, within ``deadline``: shutdown never hangs on one
    (a task may swallow one cancellation; it is cancelled again until it ends or time runs out)."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + deadline
    while not task.done() and loop.time() < give_up:
        task.cancel()
        await asyncio.wait([task], timeout=min(0.5, max(0.0, give_up - loop.time())))
    if not task.done():
        log.error("background task did not stop", task=task.get_name())
    elif not task.cancelled() and task.exception() is not None:
        log.error("background task failed", task=task.get_name(), error=repr(task.exception()))


async def close_quietly(instance: Any) -> None:
    with contextlib.suppress(Exception):
        await instance.close()


async def close_logged(name: str, close: Callable[[], Awaitable[None]]) -> None:
    """Teardown goes on past a failing close; every failure is reported once."""
    try:
        await close()
    except Exception as exc:
        log.error("component close failed", component=name, error=str(exc))
