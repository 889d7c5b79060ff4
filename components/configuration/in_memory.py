"""configuration.in-memory: items kept in the sidecar's process, the reference backend of the
configuration contract (components/configuration/base.py). Nothing is shared: two instances are two
separate stores, and everything is gone when the process ends. No component metadata.

An item's version is a counter of the store, in decimal, bumped by every saved item, so it differs
from every earlier version of any item of the store.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import structlog

from components.configuration.base import (
    ChangeHandler,
    ConfigurationItem,
    DeleteRequest,
    Feature,
    GetRequest,
    SaveRequest,
    SubscribeRequest,
)
from components.configuration.subscriptions import QueuedSubscription, Subscribers, deleted, unique
from components.errors import BackendError
from components.metadata import ComponentMetadata, decode

log = structlog.get_logger(__name__)

NAME = "configuration.in-memory"


class InMemoryMetadata(ComponentMetadata):
    """No fields."""


class InMemoryConfigurationStore:
    def __init__(self) -> None:
        self._groups: dict[tuple[str, str], dict[str, ConfigurationItem]] = {}
        self._versions = itertools.count(1)
        self._subscribers: Subscribers[QueuedSubscription] = Subscribers(NAME)
        self._open = False

    async def init(self, metadata: Mapping[str, str]) -> None:
        decode(InMemoryMetadata, metadata)
        self._open = True

    def features(self) -> frozenset[Feature]:
        return frozenset()

    def _live(self) -> None:
        if not self._open:
            raise BackendError("in-memory configuration store is not initialised or already closed")

    async def get(self, request: GetRequest) -> list[ConfigurationItem]:
        self._live()
        items = self._groups.get((request.group, request.label), {})
        if not request.keys:
            return list(items.values())
        return [items[key] for key in unique(request.keys) if key in items]

    async def subscribe(self, request: SubscribeRequest, handler: ChangeHandler) -> QueuedSubscription:
        self._live()
        return self._subscribers.add(QueuedSubscription(request, handler, NAME, self._subscribers.discard))

    async def save(self, request: SaveRequest) -> None:
        self._live()
        saved = []
        for item in request.items:
            stored = ConfigurationItem(
                item.key,
                item.value,
                str(next(self._versions)),
                dict(item.metadata),
                item.group,
                item.label,
                dict(item.tags),
            )
            self._groups.setdefault((item.group, item.label), {})[item.key] = stored
            saved.append(stored)
        self._subscribers.publish(saved)

    async def delete(self, request: DeleteRequest) -> None:
        self._live()
        items = self._groups.get((request.group, request.label), {})
        removed = [
            deleted(request.group, request.label, key)
            for key in unique(request.keys)
            if items.pop(key, None) is not None
        ]
        self._subscribers.publish(removed)

    async def close(self) -> None:
        self._open = False
        await self._subscribers.close()
