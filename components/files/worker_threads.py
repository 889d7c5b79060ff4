"""Blocking calls in worker threads, made safe to cancel: a thread cannot be stopped, so a caller
cancelled while one runs waits for it before its clean-up closes what the thread uses, and undoes
what the thread opened for it. file.local's disk I/O goes through these."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def acquire(function: Callable[..., T], args: tuple[Any, ...], undo: Callable[[T], object]) -> T:
    """What ``function(*args)`` opens in a worker thread. When the caller is cancelled meanwhile
    (a deadline ran out), the thread is let finish and what it opened is undone, never leaked."""
    task = asyncio.ensure_future(asyncio.to_thread(function, *args))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])
        if not task.cancelled() and task.exception() is None:
            undo(task.result())
        raise


async def in_thread(function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` in a worker thread. A thread cannot be stopped: when the caller is
    cancelled, the call is let finish before the cancellation goes on, so the caller's clean-up
    never closes a descriptor a thread still uses."""
    task = asyncio.ensure_future(asyncio.to_thread(function, *args))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])
        raise


class OneAhead:
    """At most one call in a worker thread, overlapping the caller's own work (the next chunk
    received, the last one sent)."""

    def __init__(self) -> None:
        self._task: asyncio.Future[Any] | None = None

    async def submit(self, function: Callable[..., Any], *args: Any) -> None:
        """Start ``function(*args)`` once the call before it (whose error it raises) is done."""
        await self.result()
        self._task = asyncio.ensure_future(asyncio.to_thread(function, *args))

    async def result(self) -> Any:
        """The call's result (None when there is none), as :func:`in_thread` waits for it."""
        task, self._task = self._task, None
        if task is None:
            return None
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            await asyncio.wait([task])
            raise

    async def settle(self) -> None:
        """Wait for a call in flight to end, whatever happens, ignoring its outcome: before a
        clean-up closes what the thread uses."""
        task, self._task = self._task, None
        if task is None:
            return
        while not task.done():
            try:
                await asyncio.wait([task])
            except asyncio.CancelledError:
                continue  # the caller is unwinding already: the clean-up still must wait
        if not task.cancelled():
            task.exception()  # retrieved: its error, if any, is the unwinding's cause or moot
