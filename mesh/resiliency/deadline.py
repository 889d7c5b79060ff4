"""The sidecar's deadline for component calls (``component_timeout``), cheap enough for every call.

``asyncio.timeout`` schedules and cancels one timer per call, which costs more than an in-memory
state get itself. Here calls are grouped by when they expire, in ticks of a few tens of
milliseconds: one timer per tick cancels the calls of that tick still running, so a call costs a
set insertion and removal, and a deadline is kept to within one tick.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

RESOLUTION = 0.05
"""Seconds per tick: how late past its deadline a call may be cancelled."""


class _Tick:
    __slots__ = ("expired", "loop", "tasks")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.tasks: set[asyncio.Task[Any]] = set()
        """The calls of this tick still running."""
        self.expired: set[asyncio.Task[Any]] = set()
        """Those this tick cancelled, until they have seen it."""


class Deadline:
    """Runs calls that give up ``seconds`` after they start, raising what ``late()`` makes."""

    __slots__ = ("_late", "_resolution", "_ticks", "seconds")

    def __init__(self, seconds: float, late: Callable[[], Exception]) -> None:
        self.seconds = seconds
        self._late = late
        self._resolution = min(RESOLUTION, seconds / 2)
        self._ticks: dict[int, _Tick] = {}

    async def run(self, operation: Callable[..., Awaitable[T]], args: tuple[Any, ...]) -> T:
        """``operation(*args)``, cancelled once it runs past the deadline."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:  # not in a task: nothing to cancel
            return await operation(*args)
        key = math.ceil((loop.time() + self.seconds) / self._resolution)
        tick = self._ticks.get(key)
        if tick is None or tick.loop is not loop:
            tick = self._ticks[key] = _Tick(loop)
            loop.call_at(key * self._resolution, self._expire, key, tick)
        cancelling = task.cancelling()
        tick.tasks.add(task)
        try:
            return await operation(*args)
        except asyncio.CancelledError:
            # As asyncio.timeout decides: the cancellation is the deadline's unless someone else
            # also cancelled the task (a client gone, shutdown), which then wins.
            if task in tick.expired:
                tick.expired.discard(task)
                if task.uncancel() <= cancelling:
                    raise self._late() from None
            raise
        finally:
            tick.tasks.discard(task)
            if tick.expired and task in tick.expired:  # the call swallowed the cancellation
                tick.expired.discard(task)
                task.uncancel()

    def _expire(self, key: int, tick: _Tick) -> None:
        if self._ticks.get(key) is tick:
            del self._ticks[key]
        for task in tick.tasks:
            tick.expired.add(task)
            task.cancel()
