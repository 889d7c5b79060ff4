"""The app callback's messages from l8's HTTP-shaped calls and back (routers/grpc/app_callback.py).

Each function builds daprd's request message from what the services hand the app channel (the
CloudEvent JSON, Dapr's bulk envelope, a binding event) or turns the app's answer into the body
its HTTP route would have sent (``/dapr/subscribe``'s array, ``{"status": ...}``,
``{"statuses": [...]}``), so the services read one contract whatever the app speaks.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import orjson
from dapr.proto.runtime.v1 import appcallback_pb2
from google.protobuf import json_format, struct_pb2

from mesh.app_channel import BindingAnswer

# The CloudEvent fields TopicEventRequest carries in its own fields; the rest are its extensions.
_CE_FIELDS = frozenset(
    {"id", "source", "type", "specversion", "datacontenttype", "data", "data_base64", "topic", "pubsubname"}
)
# One enum for single and bulk answers: TopicEventResponse.TopicEventResponseStatus.
_STATUS_NAMES = {
    value: name for name, value in appcallback_pb2.TopicEventResponse.TopicEventResponseStatus.items()
}


class EventUnreadable(Exception):
    """The message is not a CloudEvent the app callback can carry."""


def route(path: str) -> str:
    """A gRPC route as the HTTP contract holds it: behind one ``/`` (the empty route, daprd's
    default for a subscription that names none, becomes ``/``). :func:`grpc_path` undoes it."""
    return "/" + path


def grpc_path(route: str) -> str:
    """The path ``OnTopicEvent`` gets for a route (the one ``/`` :func:`route` added removed)."""
    return route[1:] if route.startswith("/") else route


def subscriptions_json(answer: appcallback_pb2.ListTopicSubscriptionsResponse) -> bytes:
    """``ListTopicSubscriptions``'s answer as ``GET /dapr/subscribe``'s JSON array, every path
    through :func:`route`: the paths come back to the app exactly as it named them."""
    items: list[dict[str, Any]] = []
    for subscription in answer.subscriptions:
        routes = subscription.routes
        rules = [{"match": rule.match, "path": route(rule.path)} for rule in routes.rules]
        default = route(routes.default) if routes.default or not rules else ""
        item: dict[str, Any] = {
            "pubsubname": subscription.pubsub_name,
            "topic": subscription.topic,
            "metadata": dict(subscription.metadata),
            "routes": {"rules": rules, "default": default},
        }
        if subscription.dead_letter_topic:
            item["deadLetterTopic"] = subscription.dead_letter_topic
        if subscription.HasField("bulk_subscribe"):
            bulk = subscription.bulk_subscribe
            item["bulkSubscribe"] = {
                "enabled": bulk.enabled,
                "maxMessagesCount": bulk.max_messages_count,
                "maxAwaitDurationMs": bulk.max_await_duration_ms,
            }
        items.append(item)
    return orjson.dumps(items)


def cloud_event(body: bytes) -> dict[str, Any]:
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise EventUnreadable(f"message is not JSON: {exc}") from None
    if not isinstance(event, dict):
        raise EventUnreadable("message is not a CloudEvent object")
    return event


def event_data(event: Mapping[str, Any]) -> bytes:
    """The event's data as daprd hands it to a gRPC app: ``data_base64`` decoded; ``data`` as text
    for a text content type, as JSON for a JSON (or CloudEvents) one or none."""
    encoded = event.get("data_base64")
    if encoded is not None:
        if not isinstance(encoded, str):
            raise EventUnreadable("data_base64 is not a string")
        try:
            return base64.b64decode(encoded, validate=True)
        except ValueError as exc:
            raise EventUnreadable(f"data_base64 is not base64: {exc}") from None
    data = event.get("data")
    if data is None:
        return b""
    content_type = _text(event, "datacontenttype").lower()
    if isinstance(data, str) and not _is_json(content_type):
        return data.encode()
    return orjson.dumps(data)


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip()
    return media in ("", "application/json", "application/cloudevents+json") or media.endswith("+json")


def extensions(event: Mapping[str, Any]) -> struct_pb2.Struct:
    extra = struct_pb2.Struct()
    rest = {name: value for name, value in event.items() if name not in _CE_FIELDS}
    if rest:
        json_format.ParseDict(rest, extra)
    return extra


def topic_event(body: bytes, path: str, pubsub: str, topic: str = "") -> appcallback_pb2.TopicEventRequest:
    """``OnTopicEvent``'s request for one delivery (``body``: the CloudEvent JSON) on the
    subscription to ``topic`` and ``pubsub``, which daprd sends rather than the event's own fields
    (a dead-letter copy keeps its first topic inside)."""
    event = cloud_event(body)
    return appcallback_pb2.TopicEventRequest(
        id=_text(event, "id"),
        source=_text(event, "source"),
        type=_text(event, "type"),
        spec_version=_text(event, "specversion"),
        data_content_type=_text(event, "datacontenttype"),
        data=event_data(event),
        topic=topic or _text(event, "topic"),
        pubsub_name=pubsub or _text(event, "pubsubname"),
        path=grpc_path(path),
        extensions=extensions(event),
    )


def status_name(status: int) -> str:
    """A ``TopicEventResponseStatus`` by name; an unknown one keeps its number (the delivery
    retries it, as daprd does)."""
    name: str = _STATUS_NAMES.get(status, f"UNKNOWN({status})")
    return name


def topic_answer(answer: appcallback_pb2.TopicEventResponse) -> bytes:
    """The app's status as the JSON an HTTP subscriber answers."""
    return orjson.dumps({"status": status_name(answer.status)})


def bulk_event(body: bytes, path: str) -> appcallback_pb2.TopicEventBulkRequest:
    """``OnBulkTopicEventAlpha1``'s request from Dapr's bulk envelope JSON."""
    envelope = cloud_event(body)
    entries = []
    for raw in envelope.get("entries") or ():
        entry = appcallback_pb2.TopicEventBulkRequestEntry(
            entry_id=str(raw.get("entryId", "")),
            content_type=str(raw.get("contentType", "")),
            metadata={str(k): str(v) for k, v in (raw.get("metadata") or {}).items()},
        )
        event = raw.get("event")
        if isinstance(event, dict):
            entry.cloud_event.CopyFrom(
                appcallback_pb2.TopicEventCERequest(
                    id=_text(event, "id"),
                    source=_text(event, "source"),
                    type=_text(event, "type"),
                    spec_version=_text(event, "specversion"),
                    data_content_type=_text(event, "datacontenttype"),
                    data=event_data(event),
                    extensions=extensions(event),
                )
            )
        elif isinstance(event, str):
            entry.bytes = base64.b64decode(event)
        entries.append(entry)
    return appcallback_pb2.TopicEventBulkRequest(
        id=_text(envelope, "id"),
        entries=entries,
        metadata={str(k): str(v) for k, v in (envelope.get("metadata") or {}).items()},
        topic=_text(envelope, "topic"),
        pubsub_name=_text(envelope, "pubsubname"),
        type=_text(envelope, "type"),
        path=grpc_path(path),
    )


def bulk_answer(answer: appcallback_pb2.TopicEventBulkResponse) -> bytes:
    statuses = [
        {
            "entryId": entry.entry_id,
            "status": _STATUS_NAMES.get(entry.status, f"UNKNOWN({entry.status})"),
        }
        for entry in answer.statuses
    ]
    return orjson.dumps({"statuses": statuses})


def bulk_all(body: bytes, status: str) -> bytes:
    """One status for every entry of the envelope ``body``."""
    envelope = cloud_event(body)
    entries = envelope.get("entries") or ()
    return orjson.dumps({"statuses": [{"entryId": e.get("entryId"), "status": status} for e in entries]})


def _text(event: Mapping[str, Any], name: str) -> str:
    value = event.get(name)
    return value if isinstance(value, str) else ""


def binding_answer(answer: appcallback_pb2.BindingEventResponse) -> BindingAnswer | None:
    """What daprd's gRPC channel takes from an ``OnBindingEvent`` answer: ``to``, ``data`` and
    ``concurrency``. ``store_name`` and ``states`` it never reads (its ``sendBindingEventToApp``
    fills no state from a gRPC answer), so neither does l8."""
    if not answer.to:
        return None
    parallel = answer.concurrency == appcallback_pb2.BindingEventResponse.PARALLEL
    return BindingAnswer(tuple(answer.to), answer.data, parallel)
