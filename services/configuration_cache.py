"""The sidecar's copy of a configuration store (component metadata ``cacheEnable: "true"``, l8's
own): gets are answered from memory, kept current by a subscription to every key of the group and
label, so a store in Redis or etcd is off the hot path of reads.

The copy of a group and label is made at its first get: the subscription starts first, then every
item is read, then the changes that arrived meanwhile are applied in order (a change the read
already saw is applied again, to the same effect), so nothing between the two is lost. The copy is
as fresh as the store's change feed: a write (through any sidecar, or directly in the backend) is
seen once its change event arrives, typically within a millisecond; a get right after a save through
this sidecar may still answer the earlier value. Without ``cacheEnable`` every get reads the store.
"""

from __future__ import annotations

import asyncio
import contextlib

from components.configuration.base import ConfigurationItem, ConfigurationStore, GetRequest, Subscription

MAX_CACHED_VIEWS = 64
"""Groups and labels come from requests: past this many copies, gets of new ones read the store."""


class _View:
    """Every item of one group and label."""

    def __init__(self) -> None:
        self.items: dict[str, ConfigurationItem] = {}
        self.early: list[list[ConfigurationItem]] | None = []
        """Changes that arrived while the first read was out, applied after it."""
        self.subscription: Subscription | None = None

    def apply(self, items: list[ConfigurationItem]) -> None:
        for item in items:
            if item.deleted:
                self.items.pop(item.key, None)
            else:
                self.items[item.key] = item

    async def changed(self, items: list[ConfigurationItem]) -> None:
        if self.early is not None:
            self.early.append(items)
        else:
            self.apply(items)


class ConfigurationCache:
    def __init__(self, store: ConfigurationStore) -> None:
        self._store = store
        self._views: dict[tuple[str, str], _View] = {}
        self._loading: dict[tuple[str, str], asyncio.Task[_View]] = {}

    async def get(self, request: GetRequest) -> list[ConfigurationItem]:
        key = (request.group, request.label)
        view = self._views.get(key)
        if view is None:
            if len(self._views) + len(self._loading) >= MAX_CACHED_VIEWS:
                return await self._store.get(request)
            view = await self._load(key, request)
        if not request.keys:
            return list(view.items.values())
        found = (view.items.get(name) for name in request.keys)
        return [item for item in found if item is not None]

    async def _load(self, key: tuple[str, str], request: GetRequest) -> _View:
        task = self._loading.get(key)
        if task is None:
            task = self._loading[key] = asyncio.get_running_loop().create_task(self._fill(key, request))
            task.add_done_callback(lambda _: self._loading.pop(key, None))
        return await asyncio.shield(task)  # one load for every get that waits on it

    async def _fill(self, key: tuple[str, str], request: GetRequest) -> _View:
        view = _View()
        every = GetRequest((), request.group, request.label, request.metadata)
        view.subscription = await self._store.subscribe(every, view.changed)
        try:
            view.apply(await self._store.get(every))
        except BaseException:
            await view.subscription.close()
            raise
        early, view.early = view.early or [], None
        for items in early:
            view.apply(items)
        self._views[key] = view
        return view

    async def aclose(self) -> None:
        loading, self._loading = list(self._loading.values()), {}
        for task in loading:  # a load finishing after this would keep a subscription open
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        views, self._views = list(self._views.values()), {}
        for view in views:
            if view.subscription is not None:
                await view.subscription.close()
