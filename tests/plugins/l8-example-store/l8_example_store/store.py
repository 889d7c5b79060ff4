"""state.example: a dict in the sidecar's process, with ETags and a typed ``maxKeys`` setting.

It implements l8's state store contract (components/state/base.py) and nothing optional beyond
ETags, so l8's conformance suite runs on it like on a built-in store.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

from components.errors import ETagMismatchError, StateError
from components.metadata import ComponentMetadata, decode
from components.state.base import (
    Concurrency,
    DeleteRequest,
    Feature,
    GetRequest,
    SetRequest,
    StateItem,
)


class ExampleMetadata(ComponentMetadata):
    maxKeys: int = 10_000
    """A save that would store more keys than this fails."""


class ExampleStateStore:
    def __init__(self) -> None:  # no I/O here: l8 creates stores before it reads their metadata
        self._items: dict[str, tuple[bytes, str]] = {}
        self._versions = itertools.count(1)
        self._max_keys = ExampleMetadata().maxKeys

    async def init(self, metadata: Mapping[str, str]) -> None:
        self._max_keys = decode(ExampleMetadata, metadata).maxKeys

    def features(self) -> frozenset[Feature]:
        return frozenset({Feature.ETAG})

    async def get(self, request: GetRequest) -> StateItem | None:
        found = self._items.get(request.key)
        return None if found is None else StateItem(*found)

    async def bulk_get(self, requests: Sequence[GetRequest]) -> list[StateItem | None]:
        return [await self.get(request) for request in requests]

    def _check(self, key: str, etag: str | None, concurrency: Concurrency) -> None:
        found = self._items.get(key)
        if etag is not None and (found is None or found[1] != etag):
            raise ETagMismatchError(f"etag mismatch for key {key}")
        if etag is None and concurrency is Concurrency.FIRST_WRITE and found is not None:
            raise ETagMismatchError(f"key {key} already exists (first-write)")

    async def set(self, request: SetRequest) -> None:
        self._check(request.key, request.etag, request.concurrency)
        if request.key not in self._items and len(self._items) >= self._max_keys:
            raise StateError(f"the store holds its maximum of {self._max_keys} keys")
        self._items[request.key] = (request.value, str(next(self._versions)))

    async def bulk_set(self, requests: Sequence[SetRequest]) -> None:
        for request in requests:
            await self.set(request)

    async def delete(self, request: DeleteRequest) -> None:
        self._check(request.key, request.etag, Concurrency.LAST_WRITE)  # first-write is for saves
        self._items.pop(request.key, None)

    async def close(self) -> None:
        self._items.clear()
