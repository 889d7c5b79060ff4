"""The activation table: the actors active on this sidecar.

* **Activation** claims the actor in placement first (no two sidecars run one actor): while
  another live sidecar still holds the claim (it is deactivating the actor after a rebalance, or
  its lease has not ended yet) the claim is tried again with a growing pause, up to a bound.
* **Deactivation** (idle, rebalanced, shutdown) drains the actor's turns, calls
  ``DELETE /actors/{type}/{id}`` on the app and releases the claim; calls that arrive meanwhile
  wait and then start over (the actor may be elsewhere by then).
* **Fencing** drops every activation at once: this sidecar's lease may end any moment, and with
  it its claims.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

import structlog

from mesh.errors import PlacementUnavailable
from mesh.placement.base import Placement
from services import errors
from services.actors.activation import Activation
from services.actors.config import TypeConfig
from services.actors.host import ActorHost

log = structlog.get_logger(__name__)

Key = tuple[str, str]


class ActivationTable:
    def __init__(
        self,
        placement: Placement,
        app: ActorHost,
        *,
        claim_timeout: float = 10.0,
        first_pause: float = 0.02,
        max_pause: float = 0.5,
    ) -> None:
        self._placement = placement
        self._app = app
        self._active: dict[Key, Activation] = {}
        self._activating: dict[Key, asyncio.Task[Activation]] = {}
        self._claim_timeout = claim_timeout
        self._first_pause = first_pause
        self._max_pause = max_pause
        self._closing: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._active)

    def get(self, actor_type: str, actor_id: str) -> Activation | None:
        found = self._active.get((actor_type, actor_id))
        return None if found is None or found.closing else found

    def counts(self) -> dict[str, int]:
        counted: dict[str, int] = {}
        for activation in self._active.values():
            counted[activation.actor_type] = counted.get(activation.actor_type, 0) + 1
        return counted

    def activations(self) -> list[Activation]:
        return list(self._active.values())

    async def activate(self, actor_type: str, actor_id: str, config: TypeConfig) -> Activation:
        """The actor's activation here, made (and claimed) if there is none."""
        key = (actor_type, actor_id)
        while True:
            found = self._active.get(key)
            if found is not None:
                if not found.closing:
                    return found
                await found.closed.wait()
                continue
            pending = self._activating.get(key)
            if pending is None:
                pending = asyncio.get_running_loop().create_task(self._claim(key, config))
                self._activating[key] = pending
                pending.add_done_callback(self._settled(key))
            return await asyncio.shield(pending)

    async def _claimed(self, key: Key) -> bool:
        try:
            return await self._placement.claim(*key)
        except PlacementUnavailable as exc:
            raise errors.actor_invoke_failed(str(exc)) from None

    def _settled(self, key: Key) -> Callable[[asyncio.Task[Activation]], None]:
        def forget(_task: asyncio.Task[Activation]) -> None:
            self._activating.pop(key, None)

        return forget

    async def _claim(self, key: Key, config: TypeConfig) -> Activation:
        pause = self._first_pause
        give_up = time.monotonic() + self._claim_timeout
        while not await self._claimed(key):
            if time.monotonic() >= give_up:
                raise errors.actor_invoke_failed(
                    f"actor {key[0]}||{key[1]} is still active on another sidecar"
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, self._max_pause)
        activation = Activation(*key, config)
        self._active[key] = activation
        log.debug("actor activated", actor_type=key[0], actor_id=key[1])
        return activation

    async def deactivate(self, activation: Activation, drain_timeout: float | None = None) -> None:
        """Drain the turns (up to the type's ``drainOngoingCallTimeout``), tell the app, release the
        claim. A second call waits for the first."""
        if activation.closing:
            await activation.closed.wait()
            return
        timeout = activation.config.drain_timeout.total_seconds() if drain_timeout is None else drain_timeout
        try:
            if not await activation.drain(timeout):
                log.warning(
                    "an actor's turn did not end within the drain timeout; deactivated anyway",
                    actor_type=activation.actor_type,
                    actor_id=activation.actor_id,
                )
            await self._app.deactivate(*activation.key)
        finally:
            if self._active.get(activation.key) is activation:
                del self._active[activation.key]
            activation.finish()
            try:
                await self._placement.release(*activation.key)
            except Exception as exc:  # the claim ends with the lease anyway
                log.warning("releasing an actor's claim failed", error=str(exc))
        log.debug("actor deactivated", actor_type=activation.actor_type, actor_id=activation.actor_id)

    async def deactivate_all(
        self, activations: Iterable[Activation], drain_timeout: Callable[[Activation], float] | None = None
    ) -> None:
        chosen = list(activations)
        if not chosen:
            return
        await asyncio.gather(
            *(self.deactivate(a, drain_timeout(a) if drain_timeout else None) for a in chosen),
            return_exceptions=True,
        )

    async def drop(self, activations: Iterable[Activation]) -> None:
        """End activations at once, without draining or telling the app (its host stream is gone),
        and release their claims. Calls waiting for a turn start over."""
        chosen = list(activations)
        for activation in chosen:
            if self._active.get(activation.key) is activation:
                del self._active[activation.key]
            activation.finish()
        results = await asyncio.gather(
            *(self._placement.release(*a.key) for a in chosen), return_exceptions=True
        )
        for result in results:
            if isinstance(result, Exception):  # the claim ends with the lease anyway
                log.warning("releasing an actor's claim failed", error=str(result))

    def idle(self, now: float) -> list[Activation]:
        """The activations idle longer than their type's ``actorIdleTimeout``."""
        return [
            a
            for a in self._active.values()
            if not a.closing and a.idle_for(now) >= a.config.idle_timeout.total_seconds()
        ]

    def fence(self) -> int:
        """Drop every activation at once, without draining or releasing: the claims end with the
        lease. The app is told in the background. The number dropped."""
        dropped = list(self._active.values())
        self._active.clear()
        for activation in dropped:
            activation.finish()
            task = asyncio.get_running_loop().create_task(self._app.deactivate(*activation.key))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        return len(dropped)

    async def aclose(self) -> None:
        for task in list(self._closing):
            task.cancel()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
