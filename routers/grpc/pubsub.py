"""Publish RPCs: PublishEvent, BulkPublishEvent and BulkPublishEventAlpha1, over
services/pubsub/publisher.py as the HTTP routes use it. A bulk publish with failed entries is an
error (daprd answers ERR_PUBSUB_PUBLISH_MESSAGE, INTERNAL), not a partial answer."""

from __future__ import annotations

from typing import Any

from dapr.proto.runtime.v1 import pubsub_pb2
from google.protobuf import empty_pb2

from routers.grpc.calls import Context, Unary, call_metadata, string_map
from services.pubsub.bulk_requests import BulkEntry
from services.sidecar import Services
from services.trace_context import TraceContext

EMPTY = empty_pb2.Empty()


def trace_context(context: Context) -> TraceContext:
    """The span of the call: under the caller's ``traceparent`` metadata, or a new trace."""
    metadata = call_metadata(context)
    return TraceContext.from_headers(metadata.get("traceparent"), metadata.get("tracestate"))


async def publish_event(services: Services, request: Any, context: Context) -> empty_pb2.Empty:
    service = services.pubsub
    metadata = string_map(request.metadata)
    handle = service.resolve(request.pubsub_name, metadata, request.topic)
    await service.publish(
        handle,
        request.topic,
        request.data,
        request.data_content_type or None,
        metadata,
        trace_context(context),
    )
    return EMPTY


async def bulk_publish_event(
    services: Services, request: Any, context: Context
) -> pubsub_pb2.BulkPublishResponse:
    service = services.pubsub
    metadata = string_map(request.metadata)
    handle = service.resolve(request.pubsub_name, metadata, request.topic)
    entries = [
        BulkEntry(
            entry.entry_id,
            entry.event,
            entry.content_type,
            {**metadata, **entry.metadata} if entry.metadata else None,
        )
        for entry in request.entries
    ]
    failure = await service.bulk_publish_entries(
        handle, request.topic, entries, metadata, trace_context(context)
    )
    if failure is not None:
        raise failure.error
    return pubsub_pb2.BulkPublishResponse()


RPCS: dict[str, Unary] = {
    "PublishEvent": publish_event,
    "BulkPublishEvent": bulk_publish_event,
    "BulkPublishEventAlpha1": bulk_publish_event,
}
