"""Bad publish and bulk publish requests: one table, each row the request, Dapr's status, error code
and ErrorInfo reason. Every answer must be Dapr's error shape, and afterwards nothing may have
reached either broker.

The sidecar has two in-memory brokers, ``pubsub`` and ``scoped`` (allowedTopics: ``only``), and a
1 KiB --max-body-size.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from components.pubsub.base import Message, SubscribeRequest
from services.errors import ApiError
from tests.routers.conftest import JSON, StartSidecar, assert_error, component, detail

MAX_BODY = 1024
BIG = b"x" * (MAX_BODY + 10)
NO_BODY = object()
TOPICS = ("orders", "only")

PUB = "/v1.0/publish/pubsub/orders"
BULK = "/v1.0-alpha1/publish/bulk/pubsub/orders"
CE = {"content-type": "application/cloudevents+json"}

RICH = ["ResourceInfo", "ErrorInfo"]
LOOKUP = ["ErrorInfo"]
NOT_FOUND = "ERR_PUBSUB_NOT_FOUND"
TOPIC_EMPTY = "ERR_TOPIC_NAME_EMPTY"
METADATA = "ERR_PUBSUB_REQUEST_METADATA"
PUBLISH = "ERR_PUBSUB_PUBLISH_MESSAGE"
CE_SER = "ERR_PUBSUB_CLOUD_EVENTS_SER"
EVENTS_SER = "ERR_PUBSUB_EVENTS_SER"
FORBIDDEN = "ERR_PUBSUB_FORBIDDEN"


@dataclass(frozen=True)
class Bad:
    method: str
    path: str
    status: int
    code: str
    body: Any = NO_BODY
    """bytes are sent as they are; anything else as JSON."""
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    chunked: bool = False
    details: list[str] | None = None
    reason: str | None = None
    """The ErrorInfo reason, when there are details."""
    message: str | None = None


def entry(
    entry_id: Any = "1", event: Any = "x", content_type: Any = "text/plain", **extra: Any
) -> dict[str, Any]:
    return {"entryId": entry_id, "event": event, "contentType": content_type, **extra}


def bulk(status: int, code: str, *entries: Any, reason: str, **row: Any) -> Bad:
    return Bad("POST", BULK, status, code, body=list(entries), details=RICH, reason=reason, **row)


ROWS = {
    # -- lookup, in Dapr's order -------------------------------------------------------------------
    "unknown-pubsub": Bad(
        "POST", "/v1.0/publish/nope/orders", 404, NOT_FOUND, b"x", details=LOOKUP, reason="DAPR_PUBSUB_NOT_FOUND",
        message="pubsub nope is not found",
    ),
    "unknown-pubsub-before-body-limit": Bad(
        "POST", "/v1.0/publish/nope/orders", 404, NOT_FOUND, BIG, details=LOOKUP, reason="DAPR_PUBSUB_NOT_FOUND"
    ),
    "unknown-pubsub-before-topic": Bad(
        "POST", "/v1.0/publish/nope/", 404, NOT_FOUND, b"x", details=LOOKUP, reason="DAPR_PUBSUB_NOT_FOUND"
    ),
    # /v1.0/publish//orders is cleaned to /v1.0/publish/orders: component "orders", no topic.
    "empty-pubsub-segment": Bad(
        "POST", "/v1.0/publish//orders", 404, NOT_FOUND, b"x", details=LOOKUP, reason="DAPR_PUBSUB_NOT_FOUND"
    ),
    "empty-topic": Bad(
        "POST", "/v1.0/publish/pubsub/", 404, TOPIC_EMPTY, b"x", details=RICH, reason="DAPR_PUBSUB_TOPIC_NAME_EMPTY",
        message="topic is empty in pubsub pubsub",
    ),
    "no-topic-segment-put": Bad(
        "PUT", "/v1.0/publish/pubsub", 404, TOPIC_EMPTY, b"x", details=RICH, reason="DAPR_PUBSUB_TOPIC_NAME_EMPTY"
    ),
    "empty-topic-before-body-limit": Bad(
        "POST", "/v1.0/publish/pubsub/", 404, TOPIC_EMPTY, BIG, details=RICH, reason="DAPR_PUBSUB_TOPIC_NAME_EMPTY"
    ),
    "wrong-verb": Bad("GET", PUB, 404, "ERR_DIRECT_INVOKE"),
    "wrong-verb-delete": Bad("DELETE", PUB, 404, "ERR_DIRECT_INVOKE"),
    # -- publish -----------------------------------------------------------------------------------
    "raw-payload-not-bool": Bad(
        "POST", PUB, 400, METADATA, b"x", params={"metadata.rawPayload": "yes"}, details=RICH,
        reason="DAPR_PUBSUB_METADATA_DESERIALIZATION",
        message="failed deserializing metadata. Error: rawPayload value must be a valid boolean: actual is 'yes'",
    ),
    "body-over-limit": Bad(
        "POST", PUB, 500, PUBLISH, BIG, details=RICH, reason="DAPR_PUBSUB_PUBLISH_MESSAGE"
    ),
    "body-over-limit-chunked": Bad(
        "PUT", PUB, 500, PUBLISH, BIG, chunked=True, details=RICH, reason="DAPR_PUBSUB_PUBLISH_MESSAGE"
    ),
    "body-over-limit-before-raw-payload": Bad(
        "POST", PUB, 500, PUBLISH, BIG, params={"metadata.rawPayload": "yes"}, details=RICH,
        reason="DAPR_PUBSUB_PUBLISH_MESSAGE",
    ),
    "cloudevent-array": Bad(
        "POST", PUB, 500, CE_SER, b"[1]", headers=CE, details=RICH, reason="DAPR_PUBSUB_CLOUD_EVENT_CREATION",
        message="cannot create cloudevent",
    ),
    "cloudevent-not-json": Bad(
        "POST", PUB, 500, CE_SER, b"{id: 1}", headers=CE, details=RICH, reason="DAPR_PUBSUB_CLOUD_EVENT_CREATION"
    ),
    "cloudevent-null": Bad(
        "POST", PUB, 500, CE_SER, b"null", headers=CE, details=RICH, reason="DAPR_PUBSUB_CLOUD_EVENT_CREATION"
    ),
    "cloudevent-empty": Bad(
        "POST", PUB, 500, CE_SER, b"", headers={"content-type": "application/cloudevents+json; charset=utf-8"},
        details=RICH, reason="DAPR_PUBSUB_CLOUD_EVENT_CREATION",
    ),
    "forbidden-topic": Bad(
        "POST", "/v1.0/publish/scoped/orders", 403, FORBIDDEN, b"x", details=RICH, reason="DAPR_PUBSUB_FORBIDDEN"
    ),
    # Dapr builds the envelope before the scope check.
    "forbidden-topic-after-envelope": Bad(
        "POST", "/v1.0/publish/scoped/orders", 500, CE_SER, b"[1]", headers=CE, details=RICH,
        reason="DAPR_PUBSUB_CLOUD_EVENT_CREATION",
    ),
    # -- bulk publish ------------------------------------------------------------------------------
    "bulk-unknown-pubsub": Bad(
        "POST", "/v1.0/publish/bulk/nope/orders", 404, NOT_FOUND, [entry()], details=LOOKUP,
        reason="DAPR_PUBSUB_NOT_FOUND",
    ),
    "bulk-empty-topic": Bad(
        "POST", "/v1.0-alpha1/publish/bulk/pubsub/", 404, TOPIC_EMPTY, [entry()], details=RICH,
        reason="DAPR_PUBSUB_TOPIC_NAME_EMPTY",
    ),
    "bulk-raw-payload-not-bool-before-body": Bad(
        "POST", BULK, 400, METADATA, b"{not json", params={"metadata.rawPayload": "2"}, details=RICH,
        reason="DAPR_PUBSUB_METADATA_DESERIALIZATION",
    ),
    "bulk-not-json": Bad("POST", BULK, 400, EVENTS_SER, b"[{", details=RICH, reason="DAPR_PUBSUB_UNMARSHAL_EVENTS"),
    "bulk-empty-body": Bad("POST", BULK, 400, EVENTS_SER, b"", details=RICH, reason="DAPR_PUBSUB_UNMARSHAL_EVENTS"),
    "bulk-object": Bad(
        "POST", BULK, 400, EVENTS_SER, {"entries": [entry()]}, details=RICH, reason="DAPR_PUBSUB_UNMARSHAL_EVENTS"
    ),
    "bulk-body-over-limit": Bad(
        "POST", BULK, 400, EVENTS_SER, [entry(event="x" * MAX_BODY)], details=RICH,
        reason="DAPR_PUBSUB_UNMARSHAL_EVENTS",
    ),
    "bulk-entry-not-object": bulk(400, EVENTS_SER, entry(), 1, reason="DAPR_PUBSUB_UNMARSHAL_EVENTS"),
    "bulk-entry-id-number": bulk(400, EVENTS_SER, entry(entry_id=1), reason="DAPR_PUBSUB_UNMARSHAL_EVENTS"),
    "bulk-metadata-number": bulk(
        400, EVENTS_SER, entry(metadata={"ttlInSeconds": 10}), reason="DAPR_PUBSUB_UNMARSHAL_EVENTS"
    ),
    # A later entry's type error fails the body before an earlier entry's conversion, as Go decodes first.
    "bulk-decode-before-convert": bulk(
        400, EVENTS_SER, entry(content_type="image/png"), entry("2", content_type=5),
        reason="DAPR_PUBSUB_UNMARSHAL_EVENTS",
    ),
    "bulk-missing-entry-id": bulk(
        400, EVENTS_SER, {"event": "x", "contentType": "text/plain"}, reason="DAPR_PUBSUB_MARSHAL_EVENTS",
        message="error marshaling events to bytes for topic orders pubsub pubsub. error: "
        "entryId is duplicated or not present for entry",
    ),
    "bulk-empty-entry-id": bulk(400, EVENTS_SER, entry(""), reason="DAPR_PUBSUB_MARSHAL_EVENTS"),
    "bulk-duplicate-entry-id": bulk(
        400, EVENTS_SER, entry("1"), entry("2"), entry("1"), reason="DAPR_PUBSUB_MARSHAL_EVENTS"
    ),
    "bulk-duplicate-entry-id-other-spelling": bulk(
        400, EVENTS_SER, entry("1"), {"entryID": "1", "event": "y", "contentType": "text/plain"},
        reason="DAPR_PUBSUB_MARSHAL_EVENTS",
    ),
    "bulk-null-entry": bulk(400, EVENTS_SER, entry(), None, reason="DAPR_PUBSUB_MARSHAL_ENVELOPE"),
    "bulk-missing-content-type": bulk(
        400, EVENTS_SER, {"entryId": "1", "event": "x"}, reason="DAPR_PUBSUB_MARSHAL_ENVELOPE",
        message="error when marshalling cloud event envelope for topic orders pubsub pubsub: "
        "error: mismatch between contentType and event",
    ),
    "bulk-unknown-content-type": bulk(
        400, EVENTS_SER, entry(content_type="image/png"), reason="DAPR_PUBSUB_MARSHAL_ENVELOPE"
    ),
    "bulk-text-not-string": bulk(400, EVENTS_SER, entry(event={"a": 1}), reason="DAPR_PUBSUB_MARSHAL_ENVELOPE"),
    "bulk-xml-not-string": bulk(
        400, EVENTS_SER, entry(event=1, content_type="application/xml"), reason="DAPR_PUBSUB_MARSHAL_ENVELOPE"
    ),
    "bulk-binary-not-string": bulk(
        400, EVENTS_SER, entry(event=[1], content_type="application/octet-stream"),
        reason="DAPR_PUBSUB_MARSHAL_ENVELOPE",
    ),
    "bulk-binary-not-base64": bulk(
        400, EVENTS_SER, entry(event="not base64!", content_type="application/octet-stream"),
        reason="DAPR_PUBSUB_MARSHAL_ENVELOPE",
    ),
    "bulk-valid-then-invalid": bulk(
        400, EVENTS_SER, entry("1"), entry("2", event=3), reason="DAPR_PUBSUB_MARSHAL_ENVELOPE"
    ),
    "bulk-cloudevent-not-object": bulk(
        500, CE_SER, entry("1"), entry("2", event=[1], content_type="application/cloudevents+json"),
        reason="DAPR_PUBSUB_CLOUD_EVENT_CREATION",
    ),
    "bulk-forbidden": Bad(
        "POST", "/v1.0/publish/bulk/scoped/orders", 403, FORBIDDEN, [entry()], details=RICH,
        reason="DAPR_PUBSUB_FORBIDDEN",
    ),
}  # fmt: skip


@pytest.mark.parametrize("row", list(ROWS.values()), ids=list(ROWS))
async def test_bad_publish_is_refused_and_publishes_nothing(start_sidecar: StartSidecar, row: Bad) -> None:
    sidecar = await start_sidecar(
        component("pubsub", "pubsub.in-memory"),
        component("scoped", "pubsub.in-memory", allowedTopics="only"),
        max_body_size=MAX_BODY,
    )
    reached: list[Message] = []

    async def handler(message: Message) -> None:
        reached.append(message)

    for instance in (c.instance for c in sidecar.app.state.runtime.components.of("pubsub").values()):
        for topic in TOPICS:
            await instance.subscribe(SubscribeRequest(topic), handler)

    kwargs: dict[str, Any] = {"params": row.params, "headers": dict(row.headers)}
    if row.body is not NO_BODY:
        content = row.body if isinstance(row.body, bytes) else orjson.dumps(row.body)
        if not isinstance(row.body, bytes):
            kwargs["headers"].setdefault("content-type", JSON)
        kwargs["content"] = _stream(content) if row.chunked else content
    response = await sidecar.request(row.method, row.path, **kwargs)

    body = assert_error(response, row.status, row.code, message=row.message, details=row.details)
    if row.reason is not None:
        info = detail(body, "ErrorInfo")
        assert info["reason"] == row.reason
        assert info["domain"] == "dapr.io"
    if "ResourceInfo" in (row.details or []):
        resource = detail(body, "ResourceInfo")
        assert resource["resource_type"] == "pubsub"
        assert resource["description"] == body["message"]
    await asyncio.sleep(0.05)
    assert reached == []


async def _stream(content: bytes) -> Any:
    for start in range(0, len(content), 256):
        yield content[start : start + 256]


async def test_not_found_details_carry_the_request_metadata(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar(component("pubsub", "pubsub.in-memory"))
    response = await sidecar.request(
        "POST",
        "/v1.0/publish/nope/orders",
        params={"metadata.partitionKey": "p", "other": "ignored"},
        content=b"x",
    )
    body = assert_error(response, 404, NOT_FOUND, details=["ErrorInfo"])
    assert detail(body, "ErrorInfo")["metadata"] == {"partitionKey": "p"}
    empty = await sidecar.request("POST", "/v1.0/publish/pubsub/", content=b"x")
    assert detail(empty.json(), "ErrorInfo")["metadata"] == {}


async def test_no_pubsub_component_is_not_found(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar()  # no components at all: Dapr's adapter exists, the name does not
    response = await sidecar.request("POST", "/v1.0/publish/pubsub/orders", content=b"x")
    assert_error(response, 404, NOT_FOUND, message="pubsub pubsub is not found", details=["ErrorInfo"])


async def test_an_empty_component_name_is_refused_first(start_sidecar: StartSidecar) -> None:
    """Unreachable over HTTP (the path is cleaned first), but the service keeps Dapr's order."""
    sidecar = await start_sidecar(component("pubsub", "pubsub.in-memory"))
    service = sidecar.app.state.runtime.services.pubsub
    with pytest.raises(ApiError) as raised:
        service.resolve("", {"k": "v"}, "")
    assert (raised.value.status, raised.value.code) == (404, "ERR_PUBSUB_EMPTY")
    assert raised.value.details is not None
    assert raised.value.details[-1]["metadata"] == {"k": "v"}
