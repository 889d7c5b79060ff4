"""What every configuration backend shares to call its handlers: :class:`QueuedSubscription` (one
queue and one task per subscription, so handlers run one at a time and in order, and a writer only
ever appends to a queue: a slow handler never blocks it) and :class:`Subscribers` (the live
subscriptions of one store)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar, cast

import structlog

from components.configuration.base import ChangeHandler, ConfigurationItem, SubscribeRequest

log = structlog.get_logger(__name__)


Address = tuple[str, str, str]
"""``(group, label, key)``: what identifies an item."""


def deleted(group: str, label: str, key: str) -> ConfigurationItem:
    """The change event of a removed item: no value, no version."""
    return ConfigurationItem(key, group=group, label=label, deleted=True)


class QueuedSubscription:
    """One subscription: the items it wants, the changes its handler has not seen yet, and the task
    that hands them over one call at a time, in the order they were offered.

    The queue is unbounded: a handler that never returns lets it grow rather than stalling the
    store's writers or the other subscriptions.
    """

    stop_timeout: float = 5.0
    """How long ``close()`` waits for a running handler call before cancelling it."""

    def __init__(
        self,
        request: SubscribeRequest,
        handler: ChangeHandler,
        store: str,
        on_close: Callable[[QueuedSubscription], None],
    ) -> None:
        self.group = request.group
        self.label = request.label
        self.keys = frozenset(request.keys)
        """Empty: every key of the group and label."""
        self.closed = False
        self._handler = handler
        self._store = store
        self._on_close: Callable[[QueuedSubscription], None] | None = on_close
        self._queue: asyncio.Queue[list[ConfigurationItem]] = asyncio.Queue()
        self._calling = False
        self._task = asyncio.create_task(self._run())
        self._closing: asyncio.Future[None] | None = None

    def wants(self, group: str, label: str, key: str) -> bool:
        return group == self.group and label == self.label and (not self.keys or key in self.keys)

    def offer(self, items: Iterable[ConfigurationItem]) -> None:
        """Queue the items of one change this subscription wants (none: nothing is queued)."""
        if self.closed:
            return
        wanted = [item for item in items if self.wants(item.group, item.label, item.key)]
        if wanted:
            self._queue.put_nowait(wanted)

    async def _run(self) -> None:
        while not self.closed:
            items = await self._queue.get()
            if self.closed:
                return
            self._calling = True
            try:
                await self._handler(items)
            except Exception:
                # The contract: a failing handler is logged and the subscription goes on.
                log.exception(f"{self._store}: subscription handler failed", keys=[i.key for i in items])
            finally:
                self._calling = False

    def _detach(self) -> None:
        self.closed = True
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close(self)

    async def close(self) -> None:
        if asyncio.current_task() is self._task:
            # Called by its own handler: the loop ends as soon as the handler returns.
            self._detach()
            return
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._stop())
        await asyncio.shield(self._closing)

    async def _stop(self) -> None:
        self._detach()
        task = self._task
        if not self._calling:
            task.cancel()  # waiting for a change: nothing to finish
        done, _ = await asyncio.wait({task}, timeout=self.stop_timeout)
        if not done:
            log.warning(f"{self._store}: handler still running at close, cancelled", keys=sorted(self.keys))
            task.cancel()
            await asyncio.wait({task})


S = TypeVar("S", bound=QueuedSubscription)


class Subscribers(Generic[S]):
    """The live subscriptions of one store, in the order they were made. A store builds each one
    (a :class:`QueuedSubscription`, or a subclass keeping what its backend needs) with
    ``on_close=subscribers.discard`` and registers it with :meth:`add`."""

    def __init__(self, store: str) -> None:
        self.store = store
        """The component type, for log lines."""
        self._live: dict[S, None] = {}

    def add(self, subscription: S) -> S:
        self._live[subscription] = None
        return subscription

    def discard(self, subscription: QueuedSubscription) -> None:
        self._live.pop(cast(S, subscription), None)

    def __iter__(self) -> Iterator[S]:
        return iter(list(self._live))

    def __bool__(self) -> bool:
        return bool(self._live)

    def publish(self, items: list[ConfigurationItem]) -> None:
        """Offer one change (the items it touched) to every subscription."""
        if items:
            for subscription in list(self._live):
                subscription.offer(items)

    async def close(self) -> None:
        subscriptions = list(self._live)
        self._live.clear()
        await asyncio.gather(*(subscription.close() for subscription in subscriptions))


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait for its end, cancelling again if a library swallowed the request
    (redis-py 8.1 loses a cancellation that lands while a command is being answered)."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.5)
    if not task.cancelled():
        task.exception()  # retrieved: the task logged it


def unique(keys: Iterable[str]) -> list[str]:
    """The keys of a request once each, in their order."""
    return list(dict.fromkeys(keys))
