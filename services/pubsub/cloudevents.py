"""The CloudEvent envelope a publish puts on the broker, byte for byte as Dapr builds it
(components-contrib pubsub/envelope.go, dapr pkg/runtime/pubsub/cloudevents.go).

A new envelope carries ``id`` (UUIDv4), ``source`` (the app id, ``Dapr`` when empty), ``type``
(``com.dapr.event.sent``), ``specversion`` 1.0, ``datacontenttype`` (the request's Content-Type
verbatim, ``text/plain`` when absent), ``topic``, ``pubsubname``, ``traceid`` = ``traceparent`` (the
publish span), ``tracestate``, ``time`` (RFC 3339, seconds, local offset) and the payload: JSON
content types as ``data`` (the body itself, so numbers stay exactly as sent; a body that is not JSON
as a string), ``application/octet-stream`` as ``data_base64``, anything else as a string.
``metadata.cloudevent.{id,source,type,subject,traceid,traceparent,tracestate}`` override those
fields (names case-insensitive; ``traceparent`` wins over ``traceid``). Keys are sorted, as Go
writes a map.

An ``application/cloudevents+json`` body is the app's own CloudEvent: it must be a JSON object and
is kept as sent except that ``topic`` and ``pubsubname`` are overwritten and missing ``time``,
trace fields, ``source``, ``type`` and ``specversion`` are filled in.

A TTL (``metadata.ttl`` or ``metadata.ttlInSeconds``: Go duration or whole seconds) becomes an
``expiration`` field unless the broker expires messages itself (``Feature.MESSAGE_TTL``).

The ``cloudevents`` SDK was considered and not used: it models a spec-conformant event and
serialises it itself, while Dapr's rules are field-by-field defaults, a user event kept as sent,
a payload spliced in unparsed and a non-JSON ``application/json`` body degraded to a string. What
is left is a dict and one ``orjson.dumps`` per publish, which is also what the hot path wants.

Differences from Dapr kept on purpose: Go re-serialises a JSON payload (sorted keys, HTML-escaped
``<>&``, whitespace dropped) where l8 keeps the bytes as sent, which is the same JSON value; and
``application/x-protobuf`` bodies that happen to be CloudEvent protobufs are sent as strings, as l8
does not decode protobuf.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from components.metadata import lookup
from services import json_body
from services.json_body import JsonBodyError, JsonRefused
from services.random_ids import uuid4
from services.trace_context import TraceContext

CLOUDEVENT_CONTENT_TYPE = "application/cloudevents+json"
JSON_CONTENT_TYPE = "application/json"
DEFAULT_TYPE = "com.dapr.event.sent"
DEFAULT_SOURCE = "Dapr"
DEFAULT_DATA_CONTENT_TYPE = "text/plain"
SPEC_VERSION = "1.0"

_OVERRIDE_PREFIX = "cloudevent."
_OVERRIDES = ("id", "source", "type", "subject", "traceid", "traceparent", "tracestate")
_MAX_TTL_SECONDS = (2**63 - 1) / 1e9  # Go's time.Duration saturates at MaxInt64 nanoseconds


class InvalidCloudEvent(ValueError):
    """An ``application/cloudevents+json`` body that is not a JSON object."""


# -- content types (components-contrib contenttype/utils.go) ---------------------------------------


def _is(content_type: str, expected: str) -> bool:
    lowered = content_type.lower()
    return lowered == expected or lowered.partition(";")[0] == expected


def is_cloudevent(content_type: str) -> bool:
    return _is(content_type, CLOUDEVENT_CONTENT_TYPE)


def is_json(content_type: str) -> bool:
    return _is(content_type, JSON_CONTENT_TYPE)


def is_binary(content_type: str) -> bool:
    return _is(content_type, "application/octet-stream") or _is(
        content_type, "application/cloudevents+protobuf"
    )


def is_text(content_type: str) -> bool:
    return content_type.lower().startswith("text/") or _is(content_type, "application/xml")


# -- time ------------------------------------------------------------------------------------------

_clock: list[Any] = [0, ""]  # (second, its RFC 3339 text): one strftime per second, not per publish


def now_rfc3339() -> str:
    """Now in RFC 3339 with second precision and the local offset (``Z`` for UTC), as Go writes
    ``time.Now().Format(time.RFC3339)``."""
    second = int(time.time())
    if _clock[0] != second:
        local = time.localtime(second)
        offset = local.tm_gmtoff or 0
        if offset == 0:
            suffix = "Z"
        else:
            sign = "+" if offset > 0 else "-"
            hours, minutes = divmod(abs(offset) // 60, 60)
            suffix = f"{sign}{hours:02d}:{minutes:02d}"
        _clock[0], _clock[1] = second, time.strftime("%Y-%m-%dT%H:%M:%S", local) + suffix
    text: str = _clock[1]
    return text


# -- metadata --------------------------------------------------------------------------------------

_GO_DURATION = re.compile(r"[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_GO_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def ttl_seconds(metadata: Mapping[str, str]) -> float | None:
    """The message TTL of ``metadata.ttl`` (first) or ``metadata.ttlInSeconds``, names
    case-insensitive: a Go duration (``90s``, ``1m30s``; negative means already expired) or whole
    seconds above zero. ``None`` when absent or unreadable: Dapr then adds no expiration."""
    if not metadata:
        return None
    value = lookup(metadata, "ttl", "ttlInSeconds")
    if not value:
        return None
    if value == "0" or _GO_DURATION.fullmatch(value):
        seconds = sum(float(n) * _GO_UNITS[unit] for n, unit in _GO_PART.findall(value))
        return 0.0 if value.startswith("-") else min(seconds, _MAX_TTL_SECONDS)
    if value.isascii() and value.lstrip("+-").isdigit():
        whole = int(value)
        return min(float(whole), _MAX_TTL_SECONDS) if whole > 0 else None
    return None


def expiration(ttl: float) -> str:
    """``now + ttl`` in RFC 3339 UTC, seconds precision (Go truncates)."""
    moment = datetime.now(UTC) + timedelta(seconds=ttl)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _overrides(metadata: Mapping[str, str]) -> dict[str, str]:
    """``cloudevent.<field>`` values; an exact-case name wins over other spellings, as in Dapr's
    mapstructure decode."""
    found: dict[str, str] = {}
    exact: set[str] = set()
    for key, value in metadata.items():
        lowered = key.lower()
        if not lowered.startswith(_OVERRIDE_PREFIX):
            continue
        name = lowered[len(_OVERRIDE_PREFIX) :]
        if name not in _OVERRIDES or name in exact:
            continue
        if key == _OVERRIDE_PREFIX + name:
            exact.add(name)
            found[name] = value
        else:
            found.setdefault(name, value)
    return found


# -- payloads --------------------------------------------------------------------------------------


def loads_exact(body: bytes) -> Any:
    """Parse the first JSON value of ``body`` (trailing data ignored, as Go's json.Decoder does),
    numbers kept as their original text (``orjson.Fragment``), so re-serialising changes none.
    Raises ValueError when there is no JSON value, :class:`~services.json_body.JsonRefused` when it
    is nested too deep or not UTF-8."""
    return json_body.loads_exact(body)


def json_data(body: bytes) -> orjson.Fragment | None:
    """``body`` as an embeddable JSON value without re-serialising it, or None when it is not JSON
    (Dapr then sends it as a string); raises :class:`~services.json_body.JsonRefused` for JSON no
    Dapr endpoint takes (nested deeper than Go's 10,000 levels, not UTF-8)."""
    try:
        return orjson.Fragment(json_body.first_value(body))
    except JsonRefused:
        raise
    except JsonBodyError:
        return None


def _text(body: bytes) -> str:
    return body.decode("utf-8", errors="replace")


# -- envelopes -------------------------------------------------------------------------------------


def envelope(
    body: bytes,
    content_type: str | None,
    *,
    topic: str,
    pubsub: str,
    app_id: str,
    trace: TraceContext,
    metadata: Mapping[str, str],
    native_ttl: bool = False,
) -> bytes:
    """The envelope's JSON for a publish of ``body``; raises :class:`InvalidCloudEvent` for an
    ``application/cloudevents+json`` body that is not a JSON object."""
    content_type = content_type or ""
    user_event = bool(content_type) and is_cloudevent(content_type)
    if user_event:
        event = _user_event(body, topic, pubsub, trace)
    else:
        event = _new_event(body, content_type, topic, pubsub, app_id, trace, metadata)
    sort = user_event
    if metadata and not native_ttl:
        ttl = ttl_seconds(metadata)
        if ttl is not None:
            event["expiration"] = expiration(ttl)
            sort = True
    # A new event is built in key order; Go sorts map keys, so anything else is sorted here.
    return json_body.dumps(event, sort_keys=sort)


def _new_event(
    body: bytes,
    content_type: str,
    topic: str,
    pubsub: str,
    app_id: str,
    trace: TraceContext,
    metadata: Mapping[str, str],
) -> dict[str, Any]:
    event_id = event_type = subject = ""
    source = app_id
    traceid = trace.traceparent
    tracestate = trace.tracestate
    if metadata:
        overrides = _overrides(metadata)
        if overrides:
            event_id = overrides.get("id", event_id)
            source = overrides.get("source", source)
            event_type = overrides.get("type", event_type)
            subject = overrides.get("subject", subject)
            traceid = overrides.get("traceid", traceid)
            tracestate = overrides.get("tracestate", tracestate)
            traceid = overrides.get("traceparent") or traceid
    data_field = "data"
    data: Any
    if not content_type:
        content_type = DEFAULT_DATA_CONTENT_TYPE
        data = _text(body)
    elif is_json(content_type):
        fragment = json_data(body)
        data = fragment if fragment is not None else _text(body)
    elif is_binary(content_type):
        data_field = "data_base64"
        data = base64.b64encode(body).decode("ascii")
    else:
        data = _text(body)
    # Built in sorted key order, so the common case serialises without OPT_SORT_KEYS.
    event: dict[str, Any] = {
        data_field: data,
        "datacontenttype": content_type,
        "id": event_id or uuid4(),
        "pubsubname": pubsub,
        "source": source or DEFAULT_SOURCE,
        "specversion": SPEC_VERSION,
    }
    if subject:
        event["subject"] = subject
    event["time"] = now_rfc3339()
    event["topic"] = topic
    event["traceid"] = traceid
    event["traceparent"] = traceid
    event["tracestate"] = tracestate
    event["type"] = event_type or DEFAULT_TYPE
    return event


def _user_event(body: bytes, topic: str, pubsub: str, trace: TraceContext) -> dict[str, Any]:
    try:
        event = loads_exact(body)
    except JsonRefused:
        raise
    except ValueError as exc:
        raise InvalidCloudEvent(f"the body is not JSON: {exc}") from None
    if not isinstance(event, dict):
        raise InvalidCloudEvent(f"the body is JSON {_kind(event)}, not an object")
    event["topic"] = topic
    event["pubsubname"] = pubsub
    if event.get("time") is None:
        event["time"] = now_rfc3339()
    if event.get("traceid") is None:
        event["traceid"] = event["traceparent"] = trace.traceparent
    if event.get("tracestate") is None:
        event["tracestate"] = trace.tracestate
    if event.get("source") is None:
        event["source"] = DEFAULT_SOURCE
    if event.get("type") is None:
        event["type"] = DEFAULT_TYPE
    if event.get("specversion") is None:
        event["specversion"] = SPEC_VERSION
    return event


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"
