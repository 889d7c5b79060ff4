"""The state building block: store lookup, key prefixing, and the translation of component
outcomes into Dapr's answers. Routers call this with parsed JSON and shape what it returns."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import orjson

from components.errors import ComponentError, InvalidStateRequestError, QueryError
from components.key_prefix import SEPARATOR, KeyPrefix
from components.loaded import LoadedComponent
from components.state.base import (
    DeleteRequest,
    Feature,
    GetRequest,
    QueryableStore,
    QueryRequest,
    QueryResponse,
    SetRequest,
    StateItem,
    StateStore,
    TransactionalStore,
    TransactionOperation,
)
from components.state.query import parse_query
from mesh.resiliency import NO_POLICY, Outbound, OutboundFor, no_policy
from services import errors
from services import state_requests as decode

T = TypeVar("T")


@dataclass(slots=True, frozen=True)
class StateStoreHandle:
    """A loaded state store with what the runtime derived from its component file."""

    name: str
    store: StateStore
    keys: KeyPrefix
    features: frozenset[Feature]
    outbound: Outbound = NO_POLICY
    """The component's outbound Resiliency policy and the sidecar's deadline: every store call
    goes through it."""

    def storage_key(self, key: str) -> str:
        if SEPARATOR in key:
            raise errors.illegal_key(self.name, key)
        return self.keys.storage_key(key)


YIELD_EVERY = 500
"""Items converted between turns for other requests. Converting takes a few microseconds an item,
so a 100,000-operation transaction held the event loop for a second and more; in steps of 500 no
turn is longer than a few milliseconds. (A worker thread does not help here: the conversion is
Python holding the GIL, and the loop then waits for the GIL instead.)"""


async def _drain(items: Iterator[T]) -> list[T]:
    drawn: list[T] = []
    for item in items:
        drawn.append(item)
        if len(drawn) % YIELD_EVERY == 0:
            await asyncio.sleep(0)
    return drawn


class StateService:
    def __init__(self, stores: Mapping[str, StateStoreHandle], app_id: str, max_items: int = 0) -> None:
        self._stores = dict(stores)
        self.app_id = app_id
        self.max_items = max_items
        """The most items a save, keys a bulk get, operations a transaction may hold (0: no limit)."""

    @classmethod
    def from_components(
        cls,
        components: Iterable[LoadedComponent],
        app_id: str,
        outbound: OutboundFor = no_policy,
        max_items: int = 0,
    ) -> StateService:
        """The service over the started state stores; a bad ``keyPrefix`` fails start-up."""
        handles = {
            c.name: StateStoreHandle(
                c.name, c.instance, c.key_prefix(app_id), frozenset(c.instance.features()), outbound(c)
            )
            for c in components
        }
        return cls(handles, app_id, max_items)

    def resolve(self, name: str) -> StateStoreHandle:
        handle = self._stores.get(name)
        if handle is not None:
            return handle
        if not self._stores:
            raise errors.state_store_not_configured(name, self.app_id)
        raise errors.state_store_not_found(name, self.app_id)

    # -- reads -------------------------------------------------------------------------------------

    async def get(
        self, handle: StateStoreHandle, key: str, consistency: str | None, metadata: Mapping[str, str]
    ) -> StateItem | None:
        request = GetRequest(handle.storage_key(key), decode.consistency(consistency, strict=False), metadata)
        try:
            return await handle.outbound.call(handle.store.get, request)
        except ComponentError as exc:
            raise errors.state_get_failed(handle.name, key, exc) from exc

    async def bulk_get(
        self, handle: StateStoreHandle, body: Any, query_metadata: Mapping[str, str]
    ) -> list[tuple[str, StateItem | None]]:
        keys, _parallelism, metadata = decode.bulk_get_body(body, self.max_items)
        merged = {**metadata, **query_metadata}
        requests = await _drain(GetRequest(handle.storage_key(key), metadata=merged) for key in keys)
        if not requests:
            return []
        try:
            items = await handle.outbound.call(handle.store.bulk_get, requests)
        except ComponentError as exc:
            raise errors.state_bulk_get_failed(exc) from exc
        return list(zip(keys, items, strict=True))

    @staticmethod
    def require_query(handle: StateStoreHandle) -> None:
        """Checked before the body is read, in Dapr's order."""
        if Feature.QUERY_API not in handle.features:
            raise errors.query_not_supported(handle.name)

    @staticmethod
    def require_transactions(handle: StateStoreHandle) -> None:
        """Checked before the body is read, in Dapr's order."""
        if Feature.TRANSACTIONAL not in handle.features:
            raise errors.transactions_not_supported(handle.name)

    async def query(
        self, handle: StateStoreHandle, body: bytes, metadata: Mapping[str, str]
    ) -> QueryResponse:
        """``body`` is the raw request body: Dapr parses it as part of the query, so a body that is
        not JSON is a failed query (500), not a malformed request."""
        self.require_query(handle)
        store = cast(QueryableStore, handle.store)
        try:
            request = QueryRequest(parse_query(_query_document(body)), handle.keys.prefix, metadata)
            response = await handle.outbound.call(store.query, request)
        except ComponentError as exc:
            raise errors.query_failed(handle.name, exc) from exc
        return response

    # -- writes ------------------------------------------------------------------------------------

    async def save(self, handle: StateStoreHandle, body: Any, query_metadata: Mapping[str, str]) -> None:
        try:
            requests = await _drain(
                decode.save_items(body, handle.storage_key, query_metadata, self.max_items)
            )
        except InvalidStateRequestError as exc:
            raise errors.state_save_failed(handle.name, exc) from exc
        await self.save_requests(handle, requests)

    async def save_requests(self, handle: StateStoreHandle, requests: list[SetRequest]) -> None:
        """Saves decoded items (the gRPC API builds them from its messages): one, all together on a
        store with transactions, or each in turn."""
        if not requests:
            return
        try:
            if len(requests) == 1:
                await handle.outbound.call(handle.store.set, requests[0])
            elif Feature.TRANSACTIONAL in handle.features:
                # Dapr's bulk save is not atomic; where the store can, l8 saves all items or none.
                await handle.outbound.call(cast(TransactionalStore, handle.store).transact, requests, {})
            else:
                await handle.outbound.call(handle.store.bulk_set, requests)
        except ComponentError as exc:
            raise errors.state_save_failed(handle.name, exc) from exc

    async def delete(
        self,
        handle: StateStoreHandle,
        key: str,
        etag: str | None,
        options: Mapping[str, str | None],
        metadata: Mapping[str, str],
    ) -> None:
        storage_key = handle.storage_key(key)
        try:
            request = DeleteRequest(
                key=storage_key,
                etag=etag or None,
                concurrency=decode.concurrency(options.get("concurrency")),
                consistency=decode.consistency(options.get("consistency")),
                metadata=metadata,
            )
            await handle.outbound.call(handle.store.delete, request)
        except ComponentError as exc:
            raise errors.state_delete_failed(key, exc) from exc

    async def delete_many(self, handle: StateStoreHandle, requests: list[DeleteRequest]) -> None:
        """Deletes decoded requests (gRPC's DeleteBulkState): all together on a store with
        transactions, else each in turn, stopping at the first failure."""
        if not requests:
            return
        try:
            if len(requests) == 1:
                await handle.outbound.call(handle.store.delete, requests[0])
            elif Feature.TRANSACTIONAL in handle.features:
                await handle.outbound.call(cast(TransactionalStore, handle.store).transact, requests, {})
            else:
                for request in requests:
                    await handle.outbound.call(handle.store.delete, request)
        except ComponentError as exc:
            raise errors.state_bulk_delete_failed(handle.name, exc) from exc

    async def transact(self, handle: StateStoreHandle, body: Any, query_metadata: Mapping[str, str]) -> None:
        self.require_transactions(handle)
        try:
            drawn, metadata = decode.transaction_body(
                body, handle.storage_key, query_metadata, self.max_items
            )
            operations = await _drain(drawn)
        except InvalidStateRequestError as exc:
            raise errors.state_transaction_failed(exc) from exc
        await self.transact_operations(handle, operations, metadata)

    async def transact_operations(
        self, handle: StateStoreHandle, operations: list[TransactionOperation], metadata: Mapping[str, str]
    ) -> None:
        """Applies decoded operations all together (the gRPC API builds them from its messages)."""
        self.require_transactions(handle)
        decode.check_count("operations", operations, self.max_items)
        if not operations:
            return
        try:
            await handle.outbound.call(cast(TransactionalStore, handle.store).transact, operations, metadata)
        except ComponentError as exc:
            raise errors.state_transaction_failed(exc) from exc


def _query_document(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise QueryError(f"failed to parse JSON query body: {exc}") from None
