"""State RPCs: GetState, GetBulkState, SaveState, DeleteState, DeleteBulkState,
ExecuteStateTransaction and QueryStateAlpha1, over services/state.py as the HTTP routes use it.

Values are bytes on this transport: what a gRPC client saves is stored as sent, and read back
as stored (the HTTP API stores a JSON value's encoding). ``ttlExpireTime`` comes back in the
answer's metadata, as daprd puts it there.
"""

from __future__ import annotations

from typing import Any

from dapr.proto.common.v1 import common_pb2
from dapr.proto.runtime.v1 import state_pb2
from google.protobuf import empty_pb2

from components.errors import InvalidStateRequestError
from components.state.base import (
    Concurrency,
    Consistency,
    DeleteRequest,
    SetRequest,
    StateItem,
    TransactionOperation,
)
from components.state.ttl import parse_ttl
from routers.grpc.calls import Context, Unary, string_map
from services import errors
from services import state_requests as decode
from services.sidecar import Services
from services.state import StateStoreHandle

_Options = common_pb2.StateOptions
_CONCURRENCY = {
    _Options.CONCURRENCY_UNSPECIFIED: Concurrency.LAST_WRITE,
    _Options.CONCURRENCY_FIRST_WRITE: Concurrency.FIRST_WRITE,
    _Options.CONCURRENCY_LAST_WRITE: Concurrency.LAST_WRITE,
}
_CONSISTENCY = {
    _Options.CONSISTENCY_UNSPECIFIED: Consistency.EVENTUAL,
    _Options.CONSISTENCY_EVENTUAL: Consistency.EVENTUAL,
    _Options.CONSISTENCY_STRONG: Consistency.STRONG,
}
_CONSISTENCY_NAME = {
    _Options.CONSISTENCY_UNSPECIFIED: None,
    _Options.CONSISTENCY_EVENTUAL: "eventual",
    _Options.CONSISTENCY_STRONG: "strong",
}
EMPTY = empty_pb2.Empty()


def _item_metadata(item: StateItem) -> dict[str, str]:
    if item.expires_at is None:
        return {}
    return {"ttlExpireTime": item.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")}


def _set_request(handle: StateStoreHandle, item: common_pb2.StateItem) -> SetRequest:
    """Raises ApiError for a missing or illegal key, InvalidStateRequestError for a bad TTL."""
    if not item.key:
        raise errors.state_key_empty()
    metadata = string_map(item.metadata)
    options = item.options
    return SetRequest(
        key=handle.storage_key(item.key),
        value=item.value,
        etag=item.etag.value or None,
        ttl=parse_ttl(metadata.get("ttlInSeconds")),
        concurrency=_CONCURRENCY.get(options.concurrency, Concurrency.LAST_WRITE),
        consistency=_CONSISTENCY.get(options.consistency, Consistency.EVENTUAL),
        metadata=metadata,
    )


def _delete_request(handle: StateStoreHandle, item: common_pb2.StateItem) -> DeleteRequest:
    options = item.options
    return DeleteRequest(
        key=handle.storage_key(item.key),
        etag=item.etag.value or None,
        concurrency=_CONCURRENCY.get(options.concurrency, Concurrency.LAST_WRITE),
        consistency=_CONSISTENCY.get(options.consistency, Consistency.EVENTUAL),
        metadata=string_map(item.metadata),
    )


async def get_state(services: Services, request: Any, context: Context) -> state_pb2.GetStateResponse:
    service = services.state
    handle = service.resolve(request.store_name)
    consistency = _CONSISTENCY_NAME.get(request.consistency)
    item = await service.get(handle, request.key, consistency, string_map(request.metadata))
    if item is None:
        return state_pb2.GetStateResponse()
    return state_pb2.GetStateResponse(data=item.value, etag=item.etag or "", metadata=_item_metadata(item))


async def get_bulk_state(
    services: Services, request: Any, context: Context
) -> state_pb2.GetBulkStateResponse:
    service = services.state
    handle = service.resolve(request.store_name)
    body = {"keys": list(request.keys), "metadata": string_map(request.metadata)}
    found = await service.bulk_get(handle, body, {})
    return state_pb2.GetBulkStateResponse(
        items=[
            state_pb2.BulkStateItem(key=key)
            if item is None
            else state_pb2.BulkStateItem(
                key=key, data=item.value, etag=item.etag or "", metadata=_item_metadata(item)
            )
            for key, item in found
        ]
    )


async def save_state(services: Services, request: Any, context: Context) -> empty_pb2.Empty:
    service = services.state
    handle = service.resolve(request.store_name)
    decode.check_count("items", request.states, service.max_items)
    try:
        requests = [_set_request(handle, item) for item in request.states]
    except InvalidStateRequestError as exc:
        raise errors.state_save_failed(handle.name, exc) from exc
    await service.save_requests(handle, requests)
    return EMPTY


async def delete_state(services: Services, request: Any, context: Context) -> empty_pb2.Empty:
    service = services.state
    handle = service.resolve(request.store_name)
    options = {
        "concurrency": str(_CONCURRENCY[request.options.concurrency])
        if request.options.concurrency
        else None,
        "consistency": _CONSISTENCY_NAME.get(request.options.consistency),
    }
    await service.delete(
        handle, request.key, request.etag.value or None, options, string_map(request.metadata)
    )
    return EMPTY


async def delete_bulk_state(services: Services, request: Any, context: Context) -> empty_pb2.Empty:
    service = services.state
    handle = service.resolve(request.store_name)
    decode.check_count("items", request.states, service.max_items)
    await service.delete_many(handle, [_delete_request(handle, item) for item in request.states])
    return EMPTY


def _operation(handle: StateStoreHandle, operation: Any) -> TransactionOperation:
    if operation.operationType == "upsert":
        return _set_request(handle, operation.request)
    if operation.operationType == "delete":
        return _delete_request(handle, operation.request)
    raise errors.unsupported_operation(operation.operationType)


async def execute_state_transaction(services: Services, request: Any, context: Context) -> empty_pb2.Empty:
    service = services.state
    handle = service.resolve(request.storeName)
    service.require_transactions(handle)
    decode.check_count("operations", request.operations, service.max_items)
    try:
        operations = [_operation(handle, operation) for operation in request.operations]
    except InvalidStateRequestError as exc:
        raise errors.state_transaction_failed(exc) from exc
    await service.transact_operations(handle, operations, string_map(request.metadata))
    return EMPTY


async def query_state(services: Services, request: Any, context: Context) -> state_pb2.QueryStateResponse:
    service = services.state
    handle = service.resolve(request.store_name)
    service.require_query(handle)
    result = await service.query(handle, request.query.encode(), string_map(request.metadata))
    return state_pb2.QueryStateResponse(
        results=[
            state_pb2.QueryStateItem(
                key=handle.keys.user_key(item.key), data=item.value, etag=item.etag or ""
            )
            for item in result.results
        ],
        token=result.token or "",
    )


RPCS: dict[str, Unary] = {
    "GetState": get_state,
    "GetBulkState": get_bulk_state,
    "SaveState": save_state,
    "DeleteState": delete_state,
    "DeleteBulkState": delete_bulk_state,
    "ExecuteStateTransaction": execute_state_transaction,
    "QueryStateAlpha1": query_state,
}
