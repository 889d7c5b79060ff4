"""state.in-memory: a dict in the sidecar's process. Nothing survives a restart; meant for tests
and for apps that want a scratch store. Transactions and queries are supported."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import orjson

from components.errors import ETagMismatchError
from components.metadata import ComponentMetadata, Duration, decode
from components.state import query as query_language
from components.state.base import (
    Concurrency,
    DeleteRequest,
    Feature,
    GetRequest,
    QueryItem,
    QueryRequest,
    QueryResponse,
    SetRequest,
    StateItem,
    TransactionOperation,
)
from components.state.ttl import as_datetime, expiry_deadline


class InMemoryMetadata(ComponentMetadata):
    cleanupInterval: Duration | None = None
    """How often expired keys are swept; by default they are only dropped when read."""


@dataclass(slots=True)
class _Entry:
    value: bytes
    etag: str
    deadline: float | None


class InMemoryStateStore:
    def __init__(self) -> None:
        self._data: dict[str, _Entry] = {}
        self._sweeper: asyncio.Task[None] | None = None

    async def init(self, metadata: Mapping[str, str]) -> None:
        settings = decode(InMemoryMetadata, metadata)
        if settings.cleanupInterval and settings.cleanupInterval.total_seconds() > 0:
            self._sweeper = asyncio.create_task(self._sweep(settings.cleanupInterval.total_seconds()))

    def features(self) -> frozenset[Feature]:
        return frozenset({Feature.ETAG, Feature.TRANSACTIONAL, Feature.QUERY_API, Feature.TTL})

    def _live(self, key: str, now: float) -> _Entry | None:
        entry = self._data.get(key)
        if entry is not None and entry.deadline is not None and entry.deadline <= now:
            del self._data[key]
            return None
        return entry

    async def get(self, request: GetRequest) -> StateItem | None:
        entry = self._live(request.key, time.time())
        if entry is None:
            return None
        return StateItem(entry.value, entry.etag, as_datetime(entry.deadline))

    async def bulk_get(self, requests: Sequence[GetRequest]) -> list[StateItem | None]:
        return [await self.get(request) for request in requests]

    def _check(self, key: str, etag: str | None, concurrency: Concurrency, now: float) -> None:
        entry = self._live(key, now)
        if etag is not None:
            if entry is None or entry.etag != etag:
                raise ETagMismatchError(f"etag mismatch for key {key}")
        elif concurrency is Concurrency.FIRST_WRITE and entry is not None:
            raise ETagMismatchError(f"key {key} already exists (first-write)")

    async def set(self, request: SetRequest) -> None:
        now = time.time()
        self._check(request.key, request.etag, request.concurrency, now)
        self._data[request.key] = _Entry(request.value, uuid.uuid4().hex, expiry_deadline(request.ttl, now))

    async def bulk_set(self, requests: Sequence[SetRequest]) -> None:
        for request in requests:
            await self.set(request)

    async def delete(self, request: DeleteRequest) -> None:
        self._check(request.key, request.etag, Concurrency.LAST_WRITE, time.time())
        self._data.pop(request.key, None)

    async def transact(self, operations: Sequence[TransactionOperation], metadata: Mapping[str, str]) -> None:
        # No await between check and write: the event loop makes the whole batch atomic.
        now = time.time()
        staged: dict[str, _Entry | None] = {}
        for op in operations:
            current = staged[op.key] if op.key in staged else self._live(op.key, now)
            if op.etag is not None and (current is None or current.etag != op.etag):
                raise ETagMismatchError(f"etag mismatch for key {op.key}")
            if isinstance(op, SetRequest):
                if op.etag is None and op.concurrency is Concurrency.FIRST_WRITE and current is not None:
                    raise ETagMismatchError(f"key {op.key} already exists (first-write)")
                staged[op.key] = _Entry(op.value, uuid.uuid4().hex, expiry_deadline(op.ttl, now))
            else:
                staged[op.key] = None
        for key, entry in staged.items():
            if entry is None:
                self._data.pop(key, None)
            else:
                self._data[key] = entry

    async def query(self, request: QueryRequest) -> QueryResponse:
        now = time.time()
        rows = [
            (key, entry.value, QueryItem(key, entry.value, entry.etag))
            for key, entry in list(self._data.items())
            if key.startswith(request.key_prefix) and self._live(key, now) is not None
        ]
        items, token = query_language.run(request.query, rows, orjson.loads)
        return QueryResponse(items, token)

    async def _sweep(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            now = time.time()
            for key in [k for k, e in self._data.items() if e.deadline is not None and e.deadline <= now]:
                self._data.pop(key, None)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        self._data.clear()
