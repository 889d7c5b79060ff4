"""The publish API: ``/v1.0/publish/{pubsub}/{topic...}`` and bulk publish at
``/v1.0-alpha1/publish/bulk/...`` and ``/v1.0/publish/bulk/...``.

The topic is the rest of the path and may hold slashes. The middleware has already cleaned the path
as Dapr's router does, so ``/v1.0/publish/pubsub/`` arrives as ``/v1.0/publish/pubsub``; the
routes without a topic take it and answer Dapr's 404 ERR_TOPIC_NAME_EMPTY rather than leaving it to
the invocation fallback. Bulk routes are declared first: ``/v1.0/publish/bulk/p/t`` is a bulk
publish, as in Dapr, whose router prefers the static segment.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from routers import schemas
from routers.http import JSON, no_content, query_metadata, read_body, services
from routers.table import RouteTable
from services import errors
from services.pubsub.publisher import BulkPublishFailure
from services.trace_context import TraceContext

routes = RouteTable(tags=["pubsub"])

_LOOKUP = {
    400: ["ERR_PUBSUB_NOT_CONFIGURED", "ERR_PUBSUB_REQUEST_METADATA"],
    403: ["ERR_PUBSUB_FORBIDDEN"],
    404: ["ERR_PUBSUB_EMPTY", "ERR_PUBSUB_NOT_FOUND", "ERR_TOPIC_NAME_EMPTY"],
}


def _errors(extra: dict[int, list[str]]) -> dict[int | str, dict[str, Any]]:
    merged = {status: list(codes) for status, codes in _LOOKUP.items()}
    for status, codes in extra.items():
        merged.setdefault(status, []).extend(codes)
    return schemas.errors_doc(dict(sorted(merged.items())))


def _headers(request: Request) -> tuple[str | None, TraceContext]:
    """The Content-Type and the publish span, from one pass over the raw headers."""
    content_type = traceparent = tracestate = None
    for name, value in request.scope["headers"]:
        if name == b"content-type":
            content_type = value.decode("latin-1")
        elif name == b"traceparent":
            traceparent = value.decode("latin-1")
        elif name == b"tracestate":
            tracestate = value.decode("latin-1")
    return content_type, TraceContext.from_headers(traceparent, tracestate)


_NO_TOPIC_DOC: dict[str, Any] = {
    "description": "The path of a publish whose topic is empty (e.g. /v1.0/publish/pubsub/, cleaned of "
    "its trailing slash): always an error.",
    "responses": _errors({}),
    "response_class": Response,
}

# -- bulk publish ----------------------------------------------------------------------------------

_BULK_DOC: dict[str, Any] = {
    "summary": "Publish several events",
    "description": "Each entry becomes its own CloudEvent (as for a single publish, by the entry's "
    "contentType) on the topic; 204 once every entry reached the broker. " + schemas.PUBLISH_METADATA_NOTE,
    "openapi_extra": schemas.json_body({"type": "array", "items": schemas.ref(schemas.BulkPublishEntry)}),
    "responses": {
        204: {"description": "Every entry published"},
        **_errors(
            {
                400: ["ERR_PUBSUB_EVENTS_SER"],
                500: ["ERR_PUBSUB_PUBLISH_MESSAGE", "ERR_PUBSUB_CLOUD_EVENTS_SER"],
            }
        ),
    },
    "status_code": 204,
    "response_class": Response,
}
_BULK_DOC["responses"][500]["description"] += (
    '. When entries fail the body is {"failedEntries": [{"entryId", "error"}], "errorCode": '
    '"ERR_PUBSUB_PUBLISH_MESSAGE"} (no message), repeated in the metadata.responseData header, '
    "with the error in metadata.error; the other entries were published."
)


@routes.post(
    "/v1.0-alpha1/publish/bulk/{pubsubname}/{topic:anykey}", operation_id="bulk_publish_alpha", **_BULK_DOC
)
@routes.put(
    "/v1.0-alpha1/publish/bulk/{pubsubname}/{topic:anykey}",
    operation_id="bulk_publish_alpha_put",
    **_BULK_DOC,
)
@routes.post("/v1.0/publish/bulk/{pubsubname}/{topic:anykey}", operation_id="bulk_publish", **_BULK_DOC)
@routes.put("/v1.0/publish/bulk/{pubsubname}/{topic:anykey}", operation_id="bulk_publish_put", **_BULK_DOC)
async def bulk_publish(request: Request, pubsubname: str, topic: str) -> Response:
    service = services(request).pubsub
    metadata = query_metadata(request)
    handle = service.resolve(pubsubname, metadata, topic)
    app_id = service.app_id
    # Dapr decodes the body as it reads it: a body over the limit is an undecodable request.
    body = await read_body(
        request, unreadable=lambda reason: errors.pubsub_unmarshal_events(pubsubname, topic, app_id, reason)
    )
    failure = await service.bulk_publish(handle, topic, body, metadata, _headers(request)[1])
    return no_content() if failure is None else _bulk_failure(failure)


def _bulk_failure(failure: BulkPublishFailure) -> Response:
    body = failure.body()
    headers = {
        "metadata.responseData": body.decode(),
        # Dapr's kit error as a string: the gRPC code's name and the message.
        "metadata.error": f"api error: code = Internal desc = {failure.error.message}",
    }
    return Response(body, status_code=failure.error.status, media_type=JSON, headers=headers)


# /v1.0/publish/bulk/<x> is a publish to a component named "bulk" (topic <x>), as in Dapr, so only
# the alpha path has a topic-less bulk route.
@routes.post(
    "/v1.0-alpha1/publish/bulk/{pubsubname}",
    operation_id="bulk_publish_no_topic",
    summary="Bulk publish without a topic",
    **_NO_TOPIC_DOC,
)
@routes.put(
    "/v1.0-alpha1/publish/bulk/{pubsubname}",
    operation_id="bulk_publish_no_topic_put",
    summary="Bulk publish without a topic",
    **_NO_TOPIC_DOC,
)
async def bulk_publish_without_topic(request: Request, pubsubname: str) -> Response:
    return await bulk_publish(request, pubsubname, "")


# -- publish ---------------------------------------------------------------------------------------

_PUBLISH_DOC: dict[str, Any] = {
    "summary": "Publish an event",
    "description": "Wraps the body in a CloudEvent (data by Content-Type: JSON kept as sent, "
    "application/octet-stream as data_base64, anything else as a string; an "
    "application/cloudevents+json body is the event itself) and puts it on the topic, which may "
    "contain slashes; 204 once the broker has it. " + schemas.PUBLISH_METADATA_NOTE,
    "openapi_extra": schemas.raw_body("The event's data, of the request's Content-Type"),
    "responses": {
        204: {"description": "Published"},
        **_errors({500: ["ERR_PUBSUB_PUBLISH_MESSAGE", "ERR_PUBSUB_CLOUD_EVENTS_SER"]}),
    },
    "status_code": 204,
    "response_class": Response,
}


@routes.post("/v1.0/publish/{pubsubname}/{topic:anykey}", operation_id="publish", **_PUBLISH_DOC)
@routes.put("/v1.0/publish/{pubsubname}/{topic:anykey}", operation_id="publish_put", **_PUBLISH_DOC)
async def publish(request: Request, pubsubname: str, topic: str) -> Response:
    service = services(request).pubsub
    metadata = query_metadata(request)
    handle = service.resolve(pubsubname, metadata, topic)
    body = await read_body(
        request, unreadable=lambda reason: errors.pubsub_publish_failed(pubsubname, topic, reason)
    )
    content_type, trace = _headers(request)
    await service.publish(handle, topic, body, content_type, metadata, trace)
    return no_content()


@routes.post(
    "/v1.0/publish/{pubsubname}",
    operation_id="publish_no_topic",
    summary="Publish without a topic",
    **_NO_TOPIC_DOC,
)
@routes.put(
    "/v1.0/publish/{pubsubname}",
    operation_id="publish_no_topic_put",
    summary="Publish without a topic",
    **_NO_TOPIC_DOC,
)
async def publish_without_topic(request: Request, pubsubname: str) -> Response:
    return await publish(request, pubsubname, "")
