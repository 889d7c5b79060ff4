"""The bulk operations of Dapr's ``bindings.aws.s3`` (components/bindings/s3.py): several objects
in one call, each answered on its own, as Dapr answers them.

``bulkGet``
    Data ``{"items": [{"key"}], "concurrency"?}`` (concurrency 10 when absent, refused below 1):
    answers ``[{"key", "data"?, "error"?}]`` in the items' order, ``data`` the object's text
    (base64 with ``encodeBase64``), ``error`` ``object not found`` for a missing one.
``bulkCreate``
    Data ``{"items": [{"key", "data", "contentType"?}], "concurrency"?}``: each ``data`` stored as
    given (base64-decoded with ``decodeBase64``); answers ``[{"key", "location"?, "error"?}]``.
``bulkDelete``
    Data ``{"keys": [...]}``: S3's DeleteObjects in batches of 1000; answers ``[{"key",
    "error"?}]``.

An item without a key is answered ``key is required``; an item's ``filePath`` is refused, as the
binding refuses it (no file of the sidecar's host is read or written).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import orjson

from components.bindings.base import BindingError, InvokeResponse
from components.bindings.s3_objects import decode_base64, location, read_object, upload
from components.errors import ComponentError
from components.s3_connection import s3_errors

BULK_GET = "bulkGet"
BULK_CREATE = "bulkCreate"
BULK_DELETE = "bulkDelete"
DEFAULT_CONCURRENCY = 10
MAX_DELETE_BATCH = 1000
_NO_FILE_PATH = "filePath is not supported"


class _Options(Protocol):
    decode_base64: bool
    encode_base64: bool


def json_object(data: bytes, prefix: str) -> dict[str, Any]:
    """The request's data as a JSON object with its names lower-cased (Go's decoder matches names
    in any case); ``null`` or no data is an empty object. BindingError ``prefix + reason``."""
    if not data.strip() or data.strip() == b"null":
        return {}
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BindingError(f"{prefix}{exc}") from None
    if not isinstance(value, dict):
        raise BindingError(f"{prefix}json: cannot unmarshal {_json_kind(value)} into a Go struct")
    return {str(name).lower(): item for name, item in value.items()}


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    return "number"


def _items(data: bytes, operation: str) -> tuple[list[Mapping[str, Any]], int]:
    payload = json_object(data, f"s3 binding error: invalid {operation} payload: ")
    items = payload.get("items")
    if items is not None and (not isinstance(items, list) or not all(isinstance(i, dict) for i in items)):
        raise BindingError(
            f"s3 binding error: invalid {operation} payload: items must be an array of objects"
        )
    if not items:
        raise BindingError(f"s3 binding error: {operation} requires at least one item")
    concurrency = payload.get("concurrency")
    if concurrency is None:
        concurrency = DEFAULT_CONCURRENCY
    elif not isinstance(concurrency, int) or isinstance(concurrency, bool):
        raise BindingError(f"s3 binding error: invalid {operation} payload: concurrency must be an integer")
    elif concurrency <= 0:
        raise BindingError(f"s3 binding error: concurrency must be greater than 0, got {concurrency}")
    lowered: list[Mapping[str, Any]] = [
        {str(name).lower(): value for name, value in item.items()} for item in items
    ]
    return lowered, concurrency


def _text(item: Mapping[str, Any], name: str) -> str | None:
    value = item.get(name)
    return value if isinstance(value, str) else None


def _result(key: str, **fields: str) -> dict[str, str]:
    """Go's ``bulkItemResult``: ``key`` always, the other fields only when not empty."""
    return {"key": key, **{name: value for name, value in fields.items() if value}}


async def _each(
    items: list[Mapping[str, Any]],
    concurrency: int,
    work: Callable[[str, Mapping[str, Any]], Awaitable[dict[str, str]]],
) -> bytes:
    gate = asyncio.Semaphore(concurrency)

    async def one(item: Mapping[str, Any]) -> dict[str, str]:
        key = _text(item, "key") or ""
        if not key:
            return _result("", error="key is required")
        if _text(item, "filepath"):
            return _result(key, error=_NO_FILE_PATH)
        async with gate:
            try:
                return await work(key, item)
            except ComponentError as exc:
                return _result(key, error=str(exc))

    return orjson.dumps(await asyncio.gather(*(one(item) for item in items)))


async def bulk_get(
    client: Any, bucket: str, options: _Options, data: bytes, path_style: bool
) -> InvokeResponse:
    items, concurrency = _items(data, BULK_GET)

    async def work(key: str, item: Mapping[str, Any]) -> dict[str, str]:
        content = await read_object(client, bucket, key)
        if options.encode_base64:
            return _result(key, data=base64.b64encode(content).decode())
        return _result(key, data=content.decode("utf-8", errors="replace"))

    return InvokeResponse(await _each(items, concurrency, work))


async def bulk_create(
    client: Any, bucket: str, options: _Options, data: bytes, path_style: bool
) -> InvokeResponse:
    items, concurrency = _items(data, BULK_CREATE)

    async def work(key: str, item: Mapping[str, Any]) -> dict[str, str]:
        text = _text(item, "data")
        if text is None:
            return _result(key, error="either data or filePath is required")
        content = text.encode()
        if options.decode_base64:
            content = decode_base64(content)
        arguments: dict[str, Any] = {"Bucket": bucket, "Key": key}
        content_type = _text(item, "contenttype")
        if content_type:
            arguments["ContentType"] = content_type
        await upload(client, arguments, content)
        return _result(key, location=location(client, bucket, key, path_style))

    return InvokeResponse(await _each(items, concurrency, work))


async def bulk_delete(
    client: Any, bucket: str, options: _Options, data: bytes, path_style: bool
) -> InvokeResponse:
    payload = json_object(data, f"s3 binding error: invalid {BULK_DELETE} payload: ")
    keys = payload.get("keys")
    if keys is not None and (not isinstance(keys, list) or not all(isinstance(k, str) for k in keys)):
        raise BindingError(
            f"s3 binding error: invalid {BULK_DELETE} payload: keys must be an array of strings"
        )
    if not keys:
        raise BindingError(f"s3 binding error: {BULK_DELETE} requires at least one key")
    results = [_result(key) for key in keys]
    positions: dict[str, list[int]] = {}
    for index, key in enumerate(keys):
        if not key.strip():
            results[index] = _result(key, error="key is required")
            continue
        positions.setdefault(key, []).append(index)
    unique = list(positions)
    for start in range(0, len(unique), MAX_DELETE_BATCH):
        batch = unique[start : start + MAX_DELETE_BATCH]
        try:
            with s3_errors("s3 binding error: delete operation failed"):
                answer = await client.delete_objects(
                    Bucket=bucket, Delete={"Objects": [{"Key": key} for key in batch], "Quiet": False}
                )
        except ComponentError as exc:
            for key in batch:
                for index in positions[key]:
                    results[index] = _result(key, error=str(exc))
            continue
        for failure in answer.get("Errors") or []:
            key = failure.get("Key")
            for index in positions.get(key, []):
                results[index] = _result(key, error=failure.get("Message") or "unknown error")
    return InvokeResponse(orjson.dumps(results))


OPERATIONS: Mapping[str, Callable[[Any, str, _Options, bytes, bool], Awaitable[InvokeResponse]]] = {
    BULK_GET: bulk_get,
    BULK_CREATE: bulk_create,
    BULK_DELETE: bulk_delete,
}
