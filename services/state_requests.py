"""Decoding Dapr's state request bodies (already parsed JSON) into component requests.

Field names match case-insensitively and type errors read like Go's JSON decoder's, because Dapr
apps and SDKs were written against those. Everything is validated before anything is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

import orjson

from components.errors import InvalidStateRequestError
from components.state.base import (
    Concurrency,
    Consistency,
    DeleteRequest,
    SetRequest,
    TransactionOperation,
)
from components.state.ttl import parse_ttl
from services import errors, json_body

T = TypeVar("T")

_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "bool", int: "number", float: "number"}


def json_type(value: Any) -> str:
    return "null" if value is None else _JSON_TYPES.get(type(value), "value")


def _lower_keys(document: Mapping[str, Any]) -> dict[str, Any]:
    return {str(name).lower(): value for name, value in document.items()}


def _string(value: Any, where: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise errors.malformed(f"json: cannot unmarshal {json_type(value)} into Go {where} of type string")


_NO_METADATA: Mapping[str, str] = MappingProxyType({})
"""Shared by every item without metadata: 150,000 empty dicts are 10 MB."""


def string_map(value: Any, where: str) -> Mapping[str, str]:
    if value is None:
        return _NO_METADATA
    if not isinstance(value, dict):
        raise errors.malformed(
            f"json: cannot unmarshal {json_type(value)} into Go {where} of type map[string]string"
        )
    for item in value.values():
        if not isinstance(item, str):
            raise errors.malformed(f"json: cannot unmarshal {json_type(item)} into Go {where} of type string")
    return value


def concurrency(value: str | None) -> Concurrency:
    if not value:
        return Concurrency.LAST_WRITE
    try:
        return Concurrency(value)
    except ValueError:
        raise InvalidStateRequestError(f"unrecognized concurrency model '{value}'") from None


def consistency(value: str | None, *, strict: bool = True) -> Consistency:
    if not value:
        return Consistency.EVENTUAL
    try:
        return Consistency(value)
    except ValueError:
        if not strict:
            return Consistency.EVENTUAL
        raise InvalidStateRequestError(f"unrecognized consistency model '{value}'") from None


def encode_value(value: Any) -> bytes:
    try:
        return json_body.dumps(value)
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise errors.malformed(f"value cannot be stored as JSON: {exc}") from None


def _merged(metadata: Mapping[str, str], query_metadata: Mapping[str, str]) -> Mapping[str, str]:
    if not query_metadata:
        return metadata
    return {**metadata, **query_metadata}


def set_request(
    raw: Any,
    storage_key: Callable[[str], str],
    query_metadata: Mapping[str, str],
    where: str = "struct field SetRequest",
) -> SetRequest:
    """One save item ``{key, value, etag, metadata, options}``. Raises ApiError (400) for shape
    errors and InvalidStateRequestError for option values the store layer rejects (Dapr: 500)."""
    if not isinstance(raw, dict):
        raise errors.malformed(
            f"json: cannot unmarshal {json_type(raw)} into Go value of type state.SetRequest"
        )
    fields = _lower_keys(raw)
    key = _string(fields.get("key"), f"{where}.key")
    if not key:
        raise errors.malformed('"key" is a required field')
    etag = _string(fields.get("etag"), f"{where}.etag")
    metadata = _merged(string_map(fields.get("metadata"), f"{where}.metadata"), query_metadata)
    options = fields.get("options")
    if options is not None and not isinstance(options, dict):
        raise errors.malformed(
            f"json: cannot unmarshal {json_type(options)} into Go {where}.options "
            "of type state.SetStateOption"
        )
    option_fields = _lower_keys(options or {})
    return SetRequest(
        key=storage_key(key),
        value=encode_value(fields.get("value")),
        etag=etag or None,
        ttl=parse_ttl(metadata.get("ttlInSeconds")),
        concurrency=concurrency(_string(option_fields.get("concurrency"), f"{where}.options.concurrency")),
        consistency=consistency(_string(option_fields.get("consistency"), f"{where}.options.consistency")),
        metadata=metadata,
    )


def delete_request(
    raw: Any, storage_key: Callable[[str], str], query_metadata: Mapping[str, str]
) -> DeleteRequest:
    """A transaction's delete operation ``{key, etag, metadata, options}``."""
    if not isinstance(raw, dict):
        raise errors.malformed(
            f"failed deserializing HTTP body: delete request must be an object, not {json_type(raw)}"
        )
    fields = _lower_keys(raw)
    where = "struct field DeleteRequest"
    key = _string(fields.get("key"), f"{where}.key")
    if not key:
        raise errors.malformed('"key" is a required field')
    options = fields.get("options")
    if options is not None and not isinstance(options, dict):
        raise errors.malformed(f"json: cannot unmarshal {json_type(options)} into Go {where}.options")
    option_fields = _lower_keys(options or {})
    return DeleteRequest(
        key=storage_key(key),
        etag=_string(fields.get("etag"), f"{where}.etag") or None,
        concurrency=concurrency(_string(option_fields.get("concurrency"), f"{where}.options.concurrency")),
        consistency=consistency(_string(option_fields.get("consistency"), f"{where}.options.consistency")),
        metadata=_merged(string_map(fields.get("metadata"), f"{where}.metadata"), query_metadata),
    )


def too_many(kind: str, count: int, limit: int) -> errors.ApiError:
    return errors.malformed(
        f"too many {kind} in one request: {count} (the limit is {limit}, --max-request-items)"
    )


def check_count(kind: str, items: list[Any], limit: int) -> None:
    """Refuses a request with more than ``limit`` items (0: no limit), before anything is written."""
    if limit and len(items) > limit:
        raise too_many(kind, len(items), limit)


def save_items(
    body: Any, storage_key: Callable[[str], str], query_metadata: Mapping[str, str], limit: int = 0
) -> Iterator[SetRequest]:
    """The save requests of a decoded body, one at a time (the caller drains them with turns for
    other requests). The body's items are released as they are converted (the list is the
    caller's decoded document, of no use afterwards), so a big save holds the decoded items or
    their requests, not both."""
    if not isinstance(body, list):
        raise errors.malformed(
            f"json: cannot unmarshal {json_type(body)} into Go value of type []state.SetRequest"
        )
    check_count("items", body, limit)
    return _released(body, lambda item: set_request(item, storage_key, query_metadata))


def _released(items: list[Any], convert: Callable[[Any], T]) -> Iterator[T]:
    for index, item in enumerate(items):
        items[index] = None
        yield convert(item)


def bulk_get_body(body: Any, limit: int = 0) -> tuple[list[str], int, Mapping[str, str]]:
    """``{keys, parallelism, metadata}`` -> (keys, parallelism, metadata)."""
    if not isinstance(body, dict):
        raise errors.malformed(
            f"failed deserializing HTTP body: json: cannot unmarshal {json_type(body)} into Go value of type "
            "http.bulkGetRequest"
        )
    fields = _lower_keys(body)
    keys = fields.get("keys")
    keys = [] if keys is None else keys
    if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys):
        raise errors.malformed("failed deserializing HTTP body: keys must be an array of strings")
    check_count("keys", keys, limit)
    parallelism = fields.get("parallelism")
    parallelism = 0 if parallelism is None else parallelism
    if isinstance(parallelism, bool) or not isinstance(parallelism, int) or parallelism < 0:
        raise errors.malformed("failed deserializing HTTP body: parallelism must be a non-negative integer")
    metadata = string_map(fields.get("metadata"), "struct field bulkGetRequest.metadata")
    return keys, parallelism, metadata


def transaction_body(
    body: Any, storage_key: Callable[[str], str], query_metadata: Mapping[str, str], limit: int = 0
) -> tuple[Iterator[TransactionOperation], Mapping[str, str]]:
    """``{operations: [{operation, request}], metadata}`` -> (operations, metadata); the body's shape
    is checked here, each operation as it is drawn."""
    if not isinstance(body, dict):
        raise errors.malformed(
            f"failed deserializing HTTP body: json: cannot unmarshal {json_type(body)} into Go value of type "
            "http.transactionalRequest"
        )
    fields = _lower_keys(body)
    metadata = _merged(
        string_map(fields.get("metadata"), "struct field transactionalRequest.metadata"), query_metadata
    )
    raw_operations = fields.get("operations")
    raw_operations = [] if raw_operations is None else raw_operations
    if not isinstance(raw_operations, list):
        raise errors.malformed(
            "failed deserializing HTTP body: json: cannot unmarshal "
            f"{json_type(raw_operations)} into Go struct field transactionalRequest.operations "
            "of type []http.transactionalStateOperation"
        )
    check_count("operations", raw_operations, limit)
    return _released(raw_operations, lambda raw: _operation(raw, storage_key, metadata)), metadata


def _operation(
    raw: Any, storage_key: Callable[[str], str], metadata: Mapping[str, str]
) -> TransactionOperation:
    if not isinstance(raw, dict):
        raise errors.malformed(
            f"failed deserializing HTTP body: operation must be an object, not {json_type(raw)}"
        )
    op_fields = _lower_keys(raw)
    kind = op_fields.get("operation")
    request = op_fields.get("request")
    if kind == "upsert":
        return set_request(request, storage_key, metadata, "struct field SetRequest")
    if kind == "delete":
        return delete_request(request, storage_key, metadata)
    raise errors.unsupported_operation(kind if isinstance(kind, str) else orjson.dumps(kind).decode())
