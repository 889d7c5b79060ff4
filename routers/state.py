"""The state API: ``/v1.0/state/{store}...`` and ``/v1.0-alpha1/state/{store}/query``."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from components.state.base import StateItem
from routers import schemas
from routers.http import (
    JSON,
    json_response,
    no_content,
    query_metadata,
    read_body,
    read_json,
    services,
)
from routers.table import RouteTable
from services import errors

routes = RouteTable(tags=["state"])

_STORE = {
    400: ["ERR_STATE_STORE_NOT_FOUND", "ERR_MALFORMED_REQUEST"],
    500: ["ERR_STATE_STORE_NOT_CONFIGURED"],
}


def _errors(extra: dict[int, list[str]]) -> dict[int | str, dict[str, Any]]:
    merged = {status: list(codes) for status, codes in _STORE.items()}
    for status, codes in extra.items():
        merged.setdefault(status, []).extend(codes)
    return schemas.errors_doc(merged)


def _expiry_header(item: StateItem) -> str | None:
    return None if item.expires_at is None else item.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")


@routes.get(
    "/v1.0/state/{storeName}/{key:anykey}",
    summary="Get a state value",
    description="Answers the stored JSON as-is with its ETag; 204 when the key is missing. "
    + schemas.METADATA_NOTE,
    responses={
        200: {"description": "The stored value", "content": {JSON: {"schema": {}}}},
        204: {"description": "No value under this key"},
        **_errors({500: ["ERR_STATE_GET"]}),
    },
    response_class=Response,
)
async def get_state(request: Request, storeName: str, key: str, consistency: str | None = None) -> Response:
    service = services(request).state
    handle = service.resolve(storeName)
    item = await service.get(handle, key, consistency, query_metadata(request))
    if item is None:
        return Response(status_code=204)
    headers = {"ETag": item.etag} if item.etag is not None else {}
    expiry = _expiry_header(item)
    if expiry is not None:
        headers["metadata.ttlExpireTime"] = expiry
    return Response(item.value, media_type=JSON, headers=headers)


_SAVE_DOC: dict[str, Any] = {
    "summary": "Save state",
    "description": "Saves every item (all or none on stores with transactions); 204 on success. "
    + schemas.METADATA_NOTE,
    "openapi_extra": schemas.json_body({"type": "array", "items": schemas.ref(schemas.SaveStateItem)}),
    "responses": {
        204: {"description": "Saved"},
        **_errors({400: ["ERR_STATE_SAVE"], 409: ["ERR_STATE_SAVE"], 500: ["ERR_STATE_SAVE"]}),
    },
    "status_code": 204,
    "response_class": Response,
}


@routes.post("/v1.0/state/{storeName}", operation_id="save_state", **_SAVE_DOC)
@routes.put("/v1.0/state/{storeName}", operation_id="save_state_put", **_SAVE_DOC)
async def save_state(request: Request, storeName: str) -> Response:
    service = services(request).state
    handle = service.resolve(storeName)
    await service.save(handle, await read_json(request), query_metadata(request))
    return no_content()


@routes.delete(
    "/v1.0/state/{storeName}/{key:anykey}",
    summary="Delete a state value",
    description="If-Match carries the expected ETag. Deleting a missing key succeeds. "
    + schemas.METADATA_NOTE,
    responses={
        204: {"description": "Deleted (or was not there)"},
        **_errors({400: ["ERR_STATE_DELETE"], 409: ["ERR_STATE_DELETE"], 500: ["ERR_STATE_DELETE"]}),
    },
    status_code=204,
    response_class=Response,
)
async def delete_state(
    request: Request,
    storeName: str,
    key: str,
    concurrency: str | None = None,
    consistency: str | None = None,
) -> Response:
    service = services(request).state
    handle = service.resolve(storeName)
    etag = request.headers.get("if-match")
    options = {"concurrency": concurrency, "consistency": consistency}
    await service.delete(handle, key, etag, options, query_metadata(request))
    return no_content()


def _bulk_entry(key: str, item: StateItem | None) -> dict[str, Any]:
    if item is None:
        return {"key": key}
    entry: dict[str, Any] = {"key": key, "data": _embedded_json(item.value)}
    if item.etag is not None:
        entry["etag"] = item.etag
    expiry = _expiry_header(item)
    if expiry is not None:
        entry["metadata"] = {"ttlExpireTime": expiry}
    return entry


def _embedded_json(value: bytes) -> Any:
    """Stored bytes embedded raw; bytes that are not JSON (written by another client) as a string."""
    try:
        orjson.loads(value)
    except orjson.JSONDecodeError:
        return value.decode("utf-8", errors="replace")
    return orjson.Fragment(value)


_BULK_DOC: dict[str, Any] = {
    "summary": "Get several state values",
    "description": "Answers one entry per key, in request order; a missing key has only `key`. "
    + schemas.METADATA_NOTE,
    "openapi_extra": schemas.json_body(schemas.ref(schemas.BulkGetRequest)),
    "responses": {
        200: {"model": list[schemas.BulkStateItem], "description": "One entry per key"},
        **_errors({500: ["ERR_STATE_BULK_GET"]}),
    },
    "response_class": Response,
}


@routes.post("/v1.0/state/{storeName}/bulk", operation_id="bulk_get_state", **_BULK_DOC)
@routes.put("/v1.0/state/{storeName}/bulk", operation_id="bulk_get_state_put", **_BULK_DOC)
async def bulk_get_state(request: Request, storeName: str) -> Response:
    service = services(request).state
    handle = service.resolve(storeName)
    body = await read_json(request, prefix="failed deserializing HTTP body: ")
    found = await service.bulk_get(handle, body, query_metadata(request))
    return json_response([_bulk_entry(key, item) for key, item in found])


_TRANSACTION_DOC: dict[str, Any] = {
    "summary": "Apply a state transaction",
    "description": "Upserts and deletes applied all together or not at all. " + schemas.METADATA_NOTE,
    "openapi_extra": schemas.json_body(schemas.ref(schemas.TransactionRequest)),
    "responses": {
        204: {"description": "Applied"},
        **_errors(
            {
                400: ["ERR_NOT_SUPPORTED_STATE_OPERATION"],
                500: ["ERR_STATE_STORE_NOT_SUPPORTED", "ERR_STATE_TRANSACTION"],
            }
        ),
    },
    "status_code": 204,
    "response_class": Response,
}


@routes.post("/v1.0/state/{storeName}/transaction", operation_id="state_transaction", **_TRANSACTION_DOC)
@routes.put("/v1.0/state/{storeName}/transaction", operation_id="state_transaction_put", **_TRANSACTION_DOC)
async def state_transaction(request: Request, storeName: str) -> Response:
    service = services(request).state
    handle = service.resolve(storeName)
    service.require_transactions(handle)
    body = await read_json(request, prefix="failed deserializing HTTP body: ")
    await service.transact(handle, body, query_metadata(request))
    return no_content()


_QUERY_DOC: dict[str, Any] = {
    "summary": "Query state (alpha)",
    "description": "Filters with EQ, NEQ, GT, GTE, LT, LTE, IN, AND, OR over JSON paths, sorts and pages; "
    "204 when nothing matches. " + schemas.METADATA_NOTE,
    "openapi_extra": schemas.json_body(schemas.ref(schemas.StateQuery)),
    "responses": {
        200: {"model": schemas.QueryResult, "description": "Matching items"},
        204: {"description": "Nothing matches"},
        **_errors({400: ["ERR_BODY_READ"], 500: ["ERR_STATE_STORE_NOT_SUPPORTED", "ERR_STATE_QUERY"]}),
    },
    "response_class": Response,
}


@routes.post("/v1.0-alpha1/state/{storeName}/query", operation_id="query_state", **_QUERY_DOC)
@routes.put("/v1.0-alpha1/state/{storeName}/query", operation_id="query_state_put", **_QUERY_DOC)
async def query_state(request: Request, storeName: str) -> Response:
    service = services(request).state
    handle = service.resolve(storeName)
    service.require_query(handle)
    body = await read_body(request, unreadable=errors.body_read)
    result = await service.query(handle, body, query_metadata(request))
    if not result.results:
        return no_content()
    payload: dict[str, Any] = {
        "results": [
            {"key": handle.keys.user_key(item.key), "data": _embedded_json(item.value), "etag": item.etag}
            if item.etag is not None
            else {"key": handle.keys.user_key(item.key), "data": _embedded_json(item.value)}
            for item in result.results
        ]
    }
    if result.token is not None:
        payload["token"] = result.token
    return json_response(payload)
