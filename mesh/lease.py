"""A lease in a shared store kept alive from this sidecar: renewed every third of its ttl, and its
possible end told in advance.

Both the name-resolution registries (mesh/registry.py) and placement (mesh/placement/leased.py)
keep one. A renewal that fails is tried again at the next beat. The store starts a lease's ttl
when it applies a renewal, which is after this sidecar sent it, so the lease surely lasts until
``sent + ttl`` of the last renewal that succeeded. A keeper given ``on_lapse`` calls it once
renewals have failed until ``sent + fence_fraction * ttl`` (or when the store answers that the
lease is gone): the lease may end soon, and whatever the sidecar holds under it must stop *before*
another sidecar can take it over. The listener runs from a timer of the event loop, not from the
beat, so a renewal hanging on a frozen store cannot delay it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger(__name__)

FENCE_FRACTION = 0.75
"""Of the ttl since the last renewal sent: two renewals (at 1/3 and 2/3) have failed by then, and a
quarter of the ttl is left for the holder to let go before the store could end the lease."""

Renew = Callable[[], Awaitable[bool]]
"""Renew the lease: True when renewed (or granted anew), False when the store says it is gone."""


class LeaseKeeper:
    def __init__(
        self,
        ttl: float,
        renew: Renew,
        *,
        name: str,
        on_lapse: Callable[[], None] | None = None,
        fence_fraction: float = FENCE_FRACTION,
    ) -> None:
        self.ttl = ttl
        self._renew = renew
        self._name = name
        self._on_lapse = on_lapse
        self._fence_after = ttl * fence_fraction
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self._timer: asyncio.TimerHandle | None = None
        self.lapsed = False
        self.renewed_at = 0.0
        """Loop time at which the last renewal that succeeded was sent."""

    def start(self, granted_at: float) -> None:
        """Keep the lease granted by a call sent at loop time ``granted_at``."""
        self._renewed(granted_at)
        if self._task is None:
            self._task = asyncio.create_task(self._beat(), name=self._name)

    async def _beat(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopped:  # also checked: a client's read timeout may swallow the cancel
            await asyncio.sleep(self.ttl / 3)
            sent = loop.time()
            try:
                renewed = await self._renew()
            except Exception as exc:  # the store away for a while: renewals go on
                log.warning("lease not renewed", lease=self._name, error=str(exc) or type(exc).__name__)
                continue
            if self._stopped:
                return
            if renewed:
                self._renewed(sent)
            else:
                self.lapse()

    def _renewed(self, sent: float) -> None:
        self.renewed_at = sent
        self.lapsed = False
        if self._on_lapse is None:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_at(sent + self._fence_after, self.lapse)

    def lapse(self) -> None:
        """The lease may have ended (renewals failed too long) or has (the store said so)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.lapsed:
            return
        self.lapsed = True
        log.warning("lease lapsing: renewals failed", lease=self._name, ttl=self.ttl)
        if self._on_lapse is not None:
            self._on_lapse()

    async def stop(self) -> None:
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
