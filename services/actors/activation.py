"""One actor's activation on this sidecar: its turns (one at a time, reentrant along one call
chain when the type allows it), its timers, and when it was last used."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from services import errors
from services.actors.config import TypeConfig
from services.actors.timer_spec import RunningTimer


class Deactivated(Exception):
    """The activation ended (idle, rebalanced, fenced, shutdown) before the turn began: the caller
    looks the actor up again (it may now be elsewhere) and activates it anew."""


class Activation:
    def __init__(self, actor_type: str, actor_id: str, config: TypeConfig) -> None:
        self.actor_type = actor_type
        self.actor_id = actor_id
        self.config = config
        self._turn = asyncio.Lock()
        self._chain: str | None = None
        """The reentrancy id of the call chain holding the turn (None: a chain without one)."""
        self._depth = 0
        self.busy = 0
        """Turns running or waiting: an actor with any is not idle."""
        self.last_used = time.monotonic()
        self.closing = False
        self.closed = asyncio.Event()
        self.timers: dict[str, RunningTimer] = {}
        self._drained = False

    @property
    def key(self) -> tuple[str, str]:
        return self.actor_type, self.actor_id

    def idle_for(self, now: float) -> float:
        return 0.0 if self.busy else now - self.last_used

    @asynccontextmanager
    async def turn(self, chain: str | None = None) -> AsyncIterator[None]:
        """Hold the actor's one turn. A call carrying the reentrancy id of the chain holding the
        turn enters at once (up to the type's stack depth); any other call waits its turn.
        Raises :class:`Deactivated` when the activation ends first."""
        if self.closing:
            raise Deactivated()
        self.busy += 1
        try:
            if chain is not None and self.config.reentrancy and self._depth and self._chain == chain:
                if self._depth >= self.config.max_stack_depth:
                    raise errors.actor_stack_depth()
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            async with self._turn:
                if self.closing:
                    raise Deactivated()
                self._chain, self._depth = chain, 1
                try:
                    yield
                finally:
                    self._chain, self._depth = None, 0
        finally:
            self.busy -= 1
            self.last_used = time.monotonic()

    async def drain(self, timeout: float) -> bool:  # noqa: ASYNC109 - the drain's own deadline
        """Mark the activation closing and wait (up to ``timeout`` seconds) until no turn runs.
        ``True`` when it drained in time. Holds the turn afterwards: call :meth:`finish`."""
        self.closing = True
        self.stop_timers()
        try:
            async with asyncio.timeout(timeout):
                await self._turn.acquire()
        except TimeoutError:
            return False
        self._drained = True
        return True

    def finish(self) -> None:
        """The activation is gone: waiters see :class:`Deactivated` and start over."""
        self.closing = True
        self.stop_timers()
        if self._drained:
            self._drained = False
            self._turn.release()
        self.closed.set()

    def stop_timers(self) -> None:
        for running in self.timers.values():
            running.task.cancel()
        self.timers.clear()
