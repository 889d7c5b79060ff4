"""One message to the app, as daprd delivers it over HTTP (reference §4.5).

``POST <app><path>`` with the stored bytes as they are (the publisher's CloudEvent JSON),
``Content-Type: application/cloudevents+json``, the broker's message metadata as headers, a
``pubsubname`` header and a ``traceparent`` (with ``tracestate``) that continues the event's trace.
With subscription metadata ``rawPayload: "true"`` the bytes are not a CloudEvent: the app gets a
fresh envelope carrying them as ``data_base64``.

The app's answer becomes an :class:`Outcome` exactly as daprd reads it: any 2xx is a success
unless its JSON body says ``{"status": "RETRY"}`` (or an unknown status: retry) or ``"DROP"``;
404 drops; every other status, and no answer at all, asks for a retry.
"""

from __future__ import annotations

import base64
import enum
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from components.metadata import is_truthy, lookup
from components.pubsub.base import Message
from mesh.app_channel import AppResponse, AppUnreachable
from services.trace_context import TraceContext

CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json"
RAW_PAYLOAD = "rawPayload"

# Headers l8 sets itself or that describe the connection: broker metadata never overrides them.
_RESERVED_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "host",
        "upgrade",
        "te",
        "trailer",
        "expect",
        "traceparent",
        "tracestate",
        "pubsubname",
        "dapr-api-token",
    }
)
_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


class EventChannel(Protocol):
    """Where a subscription's messages go: the app channel (``AppConnection`` has these), or a
    streaming subscription's stream (services/pubsub/streaming.py)."""

    async def deliver_event(
        self, path: str, body: bytes, headers: Mapping[str, str], topic: str = ""
    ) -> AppResponse: ...

    async def deliver_bulk(self, path: str, body: bytes, headers: Mapping[str, str]) -> AppResponse: ...


class ChannelClosed(Exception):
    """Raised by a channel whose stream ended before the event was answered: the event is given
    back to the broker, neither retried on the channel nor dead-lettered."""


class Outcome(enum.Enum):
    SUCCESS = "SUCCESS"
    """Done: acknowledge."""
    RETRY = "RETRY"
    """Not done: the retry policy, then the dead-letter topic or the broker, take over."""
    DROP = "DROP"
    """Refused for good: acknowledge, copy to the dead-letter topic if one is set."""


@dataclass(slots=True, frozen=True)
class DeliveryResult:
    outcome: Outcome
    status: int | None = None
    """The app's HTTP status; None when the app did not answer."""
    detail: str = ""
    """Why, for the log line of whoever handles a failure."""


class EventError(Exception):
    """The message bytes are not a CloudEvent (not JSON, or not a JSON object)."""


def raw_payload(metadata: Mapping[str, str]) -> bool:
    """Subscription metadata ``rawPayload`` (Go's bool spellings, name case-insensitive)."""
    return is_truthy(lookup(metadata, RAW_PAYLOAD) or "")


def parse_cloud_event(data: bytes) -> dict[str, Any]:
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise EventError(f"message is not JSON: {exc}") from None
    if not isinstance(event, dict):
        raise EventError(f"message is JSON but not a CloudEvent object ({type(event).__name__})")
    return event


def raw_envelope(message: Message, pubsub: str) -> dict[str, Any]:
    """daprd's envelope for a rawPayload subscription (pubsub.FromRawPayload + trace fields from
    the broker metadata)."""
    event: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "specversion": "1.0",
        "datacontenttype": "application/octet-stream",
        "source": "Dapr",
        "type": "com.dapr.event.sent",
        "topic": message.topic,
        "pubsubname": pubsub,
        "data_base64": base64.b64encode(message.data).decode("ascii"),
    }
    metadata = message.metadata
    if "traceid" in metadata:
        event["traceid"] = metadata["traceid"]
    if "traceparent" in metadata:
        event["traceparent"] = event["traceid"] = metadata["traceparent"]
    if "tracestate" in metadata:
        event["tracestate"] = metadata["tracestate"]
    return event


def is_expired(event: Mapping[str, Any], now: datetime | None = None) -> bool:
    """Whether the CloudEvent's ``expiration`` (RFC 3339) is in the past; an unreadable one never
    expires (daprd's HasExpired)."""
    expiration = event.get("expiration")
    if not isinstance(expiration, str) or not expiration:
        return False
    try:
        moment = datetime.fromisoformat(expiration)
    except ValueError:
        return False
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment < (now or datetime.now(UTC))


def trace_headers(event: Mapping[str, Any]) -> dict[str, str]:
    """``traceparent`` (and ``tracestate``) of a span under the event's ``traceparent``, else its
    ``traceid``; a new trace when it carries neither."""
    state = event.get("tracestate")
    if not isinstance(state, str) or not _header_value_ok(state):  # a stored event may hold anything
        state = None
    trace = TraceContext.under(event.get("traceparent"), state) or TraceContext.under(
        event.get("traceid"), state
    )
    return (trace or TraceContext.start()).headers()


def _header_name_ok(name: str) -> bool:
    return bool(name) and all(char in _TOKEN_CHARS for char in name)


def _header_value_ok(value: str) -> bool:
    # Visible ASCII, space and tab: what every HTTP stack accepts without re-encoding.
    return all(char == "\t" or " " <= char <= "~" for char in value)


def metadata_headers(metadata: Mapping[str, str]) -> dict[str, str]:
    """Broker metadata as headers, skipping names or values HTTP cannot carry and the names l8
    sets itself."""
    headers: dict[str, str] = {}
    for name, value in metadata.items():
        if name.lower() in _RESERVED_HEADERS:
            continue
        if not isinstance(value, str) or not _header_name_ok(name) or not _header_value_ok(value):
            continue
        headers[name] = value
    return headers


def delivery_headers(
    metadata: Mapping[str, str], pubsub: str, event: Mapping[str, Any], content_type: str
) -> dict[str, str]:
    headers = metadata_headers(metadata)
    headers["pubsubname"] = pubsub
    headers.update(trace_headers(event))
    headers["Content-Type"] = content_type
    return headers


def interpret(status: int, body: bytes) -> DeliveryResult:
    """The §4.5 table: the app's answer to one message."""
    if 200 <= status <= 299:
        try:
            answer = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            return DeliveryResult(Outcome.SUCCESS, status, "2xx with a non-JSON body")
        app_status = _status_field(answer)
        if app_status is None or app_status in ("", "SUCCESS"):
            return DeliveryResult(Outcome.SUCCESS, status)
        if app_status == "RETRY":
            return DeliveryResult(Outcome.RETRY, status, "the app answered status RETRY")
        if app_status == "DROP":
            return DeliveryResult(Outcome.DROP, status, "the app answered status DROP")
        return DeliveryResult(Outcome.RETRY, status, f"the app answered unknown status {app_status!r}")
    if status == 404:
        return DeliveryResult(Outcome.DROP, status, f"the app answered 404: {_excerpt(body)}")
    return DeliveryResult(Outcome.RETRY, status, f"the app answered {status}: {_excerpt(body)}")


def _status_field(answer: Any) -> str | None:
    """The ``status`` of a JSON object answer as Go's decoder finds it (exact key first, then any
    case); None when there is none or the answer is not an object with a string status (Go fails
    to decode those, and daprd then counts the delivery a success)."""
    if not isinstance(answer, dict):
        return None
    value = answer.get("status")
    if value is None and "status" not in answer:
        value = next((v for k, v in answer.items() if k.lower() == "status"), None)
    return value if isinstance(value, str) else None


def _excerpt(body: bytes, limit: int = 200) -> str:
    text = body[:limit].decode("utf-8", errors="replace")
    return text + ("..." if len(body) > limit else "")


async def deliver(
    channel: EventChannel, path: str, body: bytes, headers: Mapping[str, str], topic: str = ""
) -> DeliveryResult:
    """POST one message (of the subscription to ``topic``) to the app and read its answer; a
    transport failure is a RETRY without a status. No deadline of its own: a Resiliency timeout
    bounds it, as in daprd."""
    try:
        response = await channel.deliver_event(path, body, headers, topic)
    except AppUnreachable as exc:
        return DeliveryResult(Outcome.RETRY, None, str(exc))
    return interpret(response.status, response.body)
