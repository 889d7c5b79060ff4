"""Decoding a bulk publish body: ``[{"entryId", "event", "contentType", "metadata"?}, ...]``.

Dapr decodes the body with Go's encoding/json into typed entries, so field names match
case-insensitively (``entryID`` is ``entryId``), a field of the wrong type fails the whole body, and
``null`` is no entries. Each event then becomes bytes by its content type
(pkg/api/http ``ConvertEventToBytes``): ``application/octet-stream`` takes a base64 string,
``text/*`` and ``application/xml`` a string, JSON and CloudEvent types any JSON value; anything else
is refused. One difference: Go decodes JSON numbers into doubles, so ``12345678901234567890`` or
``1.10`` come out changed; l8 keeps every number as sent.
"""

from __future__ import annotations

import base64
import binascii
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services import json_body
from services.pubsub import cloudevents

_MISMATCH = "error: mismatch between contentType and event"


class Problem(enum.Enum):
    UNMARSHAL = "unmarshal"
    """The body is not a JSON array of entry objects with fields of the right types."""
    EVENT = "event"
    """An entry's event does not fit its contentType."""
    ENTRY_ID = "entry id"
    """An entry has no entryId, or one an earlier entry has."""


class InvalidBulkRequest(ValueError):
    def __init__(self, problem: Problem, reason: str) -> None:
        super().__init__(reason)
        self.problem = problem
        self.reason = reason


@dataclass(slots=True, frozen=True)
class BulkEntry:
    entry_id: str
    event: bytes
    content_type: str
    metadata: Mapping[str, str] | None
    """The request's metadata with the entry's own merged over it; None when the entry has no
    ``metadata`` object (Dapr then builds its envelope without metadata)."""


@dataclass(slots=True)
class _Raw:
    entry_id: str = ""
    event: Any = None
    content_type: str = ""
    metadata: dict[str, str] | None = None


def parse_entries(body: bytes, request_metadata: Mapping[str, str], limit: int = 0) -> list[BulkEntry]:
    """The entries of ``body`` in order; raises :class:`InvalidBulkRequest`, also for more than
    ``limit`` entries (0: no limit)."""
    document = _array(body)
    if limit and len(document) > limit:
        raise InvalidBulkRequest(
            Problem.UNMARSHAL,
            f"too many entries in one request: {len(document)} (the limit is {limit}, --max-request-items)",
        )
    raw_entries = [_raw_entry(item, index) for index, item in enumerate(document)]
    entries: list[BulkEntry] = []
    seen: set[str] = set()
    for raw in raw_entries:
        data = _event_bytes(raw.event, raw.content_type)
        metadata = None if raw.metadata is None else {**request_metadata, **raw.metadata}
        if not raw.entry_id or raw.entry_id in seen:
            raise InvalidBulkRequest(Problem.ENTRY_ID, "entryId is duplicated or not present for entry")
        seen.add(raw.entry_id)
        entries.append(BulkEntry(raw.entry_id, data, raw.content_type, metadata))
    return entries


def _array(body: bytes) -> list[Any]:
    if not body.strip():
        raise InvalidBulkRequest(Problem.UNMARSHAL, "EOF")
    try:
        document = cloudevents.loads_exact(body)
    except ValueError as exc:
        raise InvalidBulkRequest(Problem.UNMARSHAL, f"invalid JSON: {exc}") from None
    if document is None:
        return []
    if not isinstance(document, list):
        raise InvalidBulkRequest(
            Problem.UNMARSHAL,
            f"cannot unmarshal {_json_kind(document)} into an array of bulk publish entries",
        )
    return document


def _raw_entry(item: Any, index: int) -> _Raw:
    raw = _Raw()
    if item is None:
        return raw
    if not isinstance(item, dict):
        raise InvalidBulkRequest(
            Problem.UNMARSHAL, f"entry {index}: cannot unmarshal {_json_kind(item)} into a bulk publish entry"
        )
    # Go matches field names case-insensitively; of two spellings in one object the last wins.
    for key, value in item.items():
        name = key.lower()
        if name == "event":
            raw.event = value
        elif name == "entryid":
            raw.entry_id = _string(value, index, "entryId")
        elif name == "contenttype":
            raw.content_type = _string(value, index, "contentType")
        elif name == "metadata":
            raw.metadata = _metadata(value, index)
    return raw


def _string(value: Any, index: int, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidBulkRequest(
            Problem.UNMARSHAL, f"entry {index}: {field} must be a string, got {_json_kind(value)}"
        )
    return value


def _metadata(value: Any, index: int) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidBulkRequest(Problem.UNMARSHAL, f"entry {index}: metadata must be an object of strings")
    return value


def _event_bytes(event: Any, content_type: str) -> bytes:
    if cloudevents.is_binary(content_type):
        if not isinstance(event, str):
            raise InvalidBulkRequest(Problem.EVENT, _MISMATCH)
        try:
            return base64.b64decode(event.replace("\r", "").replace("\n", ""), validate=True)
        except binascii.Error as exc:
            raise InvalidBulkRequest(
                Problem.EVENT, f"error: unable to decode base64 application/octet-stream data: {exc}"
            ) from None
    if cloudevents.is_text(content_type):
        if not isinstance(event, str):
            raise InvalidBulkRequest(Problem.EVENT, _MISMATCH)
        return event.encode()
    if cloudevents.is_json(content_type) or cloudevents.is_cloudevent(content_type):
        return json_body.dumps(event)
    raise InvalidBulkRequest(Problem.EVENT, _MISMATCH)


def _json_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    return "number"
