"""pubsub.in-memory: a broker inside the sidecar's process, the embedded default (named ``pubsub``).

Nothing is stored: a message published to a topic is handed at once to the subscriptions then
running, and is gone when none runs. Like Dapr's in-memory broker it never redelivers: a handler
that raises is logged and the message dropped.

Consumer groups live inside one component instance (two instances are two separate brokers). A
subscription belongs to the group named by its ``consumerID`` subscription metadata, or else the
component's ``consumerID`` (the app id the runtime fills in); every group of a topic gets every
message, and the subscriptions of one group take turns (round-robin). So by default the
subscriptions of one sidecar to one topic share its messages, as replicas of an app do on Redis.

Each subscription keeps its own queue, so a slow handler never delays other subscriptions or the
publisher; at most ``max_in_flight`` handler calls run at once, in publish order when it is 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Mapping

import structlog

from components.errors import BackendError
from components.metadata import ComponentMetadata, decode, lookup
from components.pubsub.base import Feature, Handler, Message, PublishRequest, SubscribeRequest

log = structlog.get_logger(__name__)

CONSUMER_ID = "consumerID"


class InMemoryMetadata(ComponentMetadata):
    consumerID: str = ""
    """The default consumer group of this component's subscriptions."""


class InMemorySubscription:
    """One running subscription: a queue, a dispatcher and the handler calls it started."""

    stop_timeout: float = 5.0
    """How long ``stop()`` waits for running handler calls before cancelling them."""

    def __init__(self, topic: str, group: _Group, handler: Handler, max_in_flight: int) -> None:
        self.topic = topic
        self._group = group
        self._handler = handler
        self._queue: asyncio.Queue[Message] = asyncio.Queue()
        self._slots = asyncio.Semaphore(max(1, max_in_flight))
        self._in_flight: set[asyncio.Task[None]] = set()
        self._dispatcher: asyncio.Task[None] | None = asyncio.create_task(self._dispatch())
        self._stopping: asyncio.Future[None] | None = None
        self._paused = False

    async def pause(self) -> None:
        """Messages queue up (the subscription stays in its group) until ``resume()``."""
        if self._paused or self._stopping is not None:
            return
        self._paused = True
        await self._cancel_dispatcher()

    async def resume(self) -> None:
        if not self._paused or self._stopping is not None:
            return
        self._paused = False
        self._dispatcher = asyncio.create_task(self._dispatch())

    async def _cancel_dispatcher(self) -> None:
        # Cancelled while waiting for a slot or the queue: no message is taken and lost.
        dispatcher, self._dispatcher = self._dispatcher, None
        if dispatcher is not None:
            dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await dispatcher

    def offer(self, message: Message) -> None:
        self._queue.put_nowait(message)

    async def _dispatch(self) -> None:
        while True:
            await self._slots.acquire()
            try:
                message = await self._queue.get()
            except BaseException:
                self._slots.release()
                raise
            task = asyncio.create_task(self._deliver(message))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _deliver(self, message: Message) -> None:
        try:
            await self._handler(message)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Dapr's in-memory broker does not redeliver either: the error is this message's end.
            log.exception("pubsub.in-memory: handler failed, message dropped", topic=message.topic)
        finally:
            self._slots.release()

    async def stop(self) -> None:
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop())
        await asyncio.shield(self._stopping)

    async def _stop(self) -> None:
        self._group.leave(self)
        await self._cancel_dispatcher()
        # Queued, never started: another member of the group takes them, else they are dropped.
        while not self._queue.empty():
            self._group.offer(self._queue.get_nowait())
        if self._in_flight:
            _, late = await asyncio.wait(set(self._in_flight), timeout=self.stop_timeout)
            for task in late:
                task.cancel()
            if late:
                log.warning("pubsub.in-memory: handlers cancelled at stop", topic=self.topic, count=len(late))
                await asyncio.wait(late)


class _Group:
    """The subscriptions of one consumer group to one topic, served in turn."""

    def __init__(self) -> None:
        self.members: list[InMemorySubscription] = []
        self._turn = itertools.count()

    def offer(self, message: Message) -> None:
        if self.members:
            self.members[next(self._turn) % len(self.members)].offer(message)

    def leave(self, member: InMemorySubscription) -> None:
        with contextlib.suppress(ValueError):
            self.members.remove(member)


class InMemoryPubSub:
    def __init__(self) -> None:
        self._groups: dict[str, dict[str, _Group]] = {}
        """topic -> consumer group -> its running subscriptions."""
        self._subscriptions: set[InMemorySubscription] = set()
        self._consumer_id = ""
        self._open = False

    async def init(self, metadata: Mapping[str, str]) -> None:
        settings = decode(InMemoryMetadata, metadata)
        self._consumer_id = settings.consumerID
        self._open = True

    def features(self) -> frozenset[Feature]:
        return frozenset()

    def _live(self) -> None:
        if not self._open:
            raise BackendError("in-memory pubsub is not initialised or already closed")

    async def publish(self, request: PublishRequest) -> None:
        self._live()
        groups = self._groups.get(request.topic)
        if not groups:
            return
        message = Message(request.topic, request.data, dict(request.metadata), request.content_type)
        for group in groups.values():
            group.offer(message)

    async def subscribe(self, request: SubscribeRequest, handler: Handler) -> InMemorySubscription:
        self._live()
        name = lookup(request.metadata, CONSUMER_ID) or self._consumer_id
        group = self._groups.setdefault(request.topic, {}).setdefault(name, _Group())
        subscription = InMemorySubscription(request.topic, group, handler, request.max_in_flight)
        group.members.append(subscription)
        self._subscriptions.add(subscription)
        return subscription

    async def close(self) -> None:
        self._open = False
        subscriptions, self._subscriptions = self._subscriptions, set()
        # Stopped together: each one's grace period runs at the same time as the others'.
        await asyncio.gather(*(subscription.stop() for subscription in subscriptions))
        self._groups.clear()
