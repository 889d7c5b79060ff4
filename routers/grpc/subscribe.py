"""``SubscribeTopicEventsAlpha1``: a streaming subscription (services/pubsub/streaming.py) over a
bidirectional stream, as daprd serves it (pkg/api/grpc/subscribe.go, pkg/runtime/pubsub/streamer).

The first message must be an ``initial_request`` (pubsub, topic, metadata, dead-letter topic);
the subscription starts and the stream answers one ``initial_response``. Then each event goes out
as an ``event_message``, the ``TopicEventRequest`` a gRPC app's ``OnTopicEvent`` gets (built by
routers/grpc/app_events.py, with daprd's ``path`` ``/``), and each ``event_processed`` the app
sends (the event's id and its status) answers it. A second ``initial_request`` ends the stream, as
the client's end (half-close or cancel) does; the subscription stops with it.

daprd's refusals are its plain errors (status UNKNOWN, no details) but for an unknown pub/sub
(INVALID_ARGUMENT, ``DAPR_PUBSUB_NOT_FOUND``): "initial request is required", "pubsubName is
required", "topic is required", "failed to create subscription for <pubsub>: subscription to
topic '<topic>' on pubsub '<pubsub>' is not allowed", "duplicate initial request received".
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import structlog
from dapr.proto.runtime.v1 import pubsub_pb2

from routers.grpc import app_events
from routers.grpc.app_events import EventUnreadable
from routers.grpc.calls import Context, Streaming, string_map
from services import errors
from services.errors import ApiError
from services.pubsub.streaming import EventStream
from services.sidecar import Services

log = structlog.get_logger(__name__)

_INITIAL_RESPONSE = pubsub_pb2.SubscribeTopicEventsResponseAlpha1(
    initial_response=pubsub_pb2.SubscribeTopicEventsResponseInitialAlpha1()
)


async def subscribe_topic_events(
    services: Services, requests: Any, context: Context
) -> AsyncIterator[pubsub_pb2.SubscribeTopicEventsResponseAlpha1]:
    incoming: AsyncIterator[Any] = aiter(requests)
    try:
        first = await anext(incoming)
    except StopAsyncIteration:
        raise errors.go_error("EOF") from None
    if first.WhichOneof("subscribe_topic_events_request_type") != "initial_request":
        raise errors.go_error("initial request is required")
    initial = first.initial_request
    async with services.streams.open(
        initial.pubsub_name, initial.topic, string_map(initial.metadata), initial.dead_letter_topic
    ) as stream:
        reader = asyncio.create_task(_read_answers(incoming, stream), name="subscription stream answers")
        try:
            yield _INITIAL_RESPONSE
            while (event := await stream.next_event()) is not None:
                try:
                    message = app_events.topic_event(event.body, "", event.pubsub, event.topic)
                except EventUnreadable as exc:
                    stream.unsendable(event, str(exc))
                    continue
                message.path = event.path
                stream.sent(event, message.id)
                yield pubsub_pb2.SubscribeTopicEventsResponseAlpha1(event_message=message)
        finally:
            stream.close("the subscription stream ended")
            reader.cancel()
            await asyncio.wait({reader})  # its end, without its cancellation
        refusal = None if reader.cancelled() else reader.result()
        if refusal is not None:
            raise refusal


async def _read_answers(incoming: AsyncIterator[Any], stream: EventStream) -> ApiError | None:
    """Hand each ``event_processed`` to the stream until the client's side ends; the stream is
    closed then. A second ``initial_request`` is daprd's error."""
    refusal: ApiError | None = None
    try:
        async for request in incoming:
            if request.WhichOneof("subscribe_topic_events_request_type") != "event_processed":
                refusal = errors.go_error("duplicate initial request received")
                break
            processed = request.event_processed
            stream.answer(processed.id, app_events.status_name(processed.status.status))
    except Exception as exc:  # the call broke (reset, cancelled): the subscription ends with it
        log.debug("subscription stream read ended", error=f"{type(exc).__name__}: {exc}")
    finally:
        stream.close("the subscription stream ended")
    return refusal


STREAMS: dict[str, Streaming] = {"SubscribeTopicEventsAlpha1": subscribe_topic_events}
