"""``SubscribeActorEventsAlpha1``: an app hosts actors over a stream it opens itself (daprd's
pkg/api/grpc/actorcallbacks.go). The first message registers the actor types and their settings,
as ``GET /dapr/config`` does for an HTTP app; the sidecar hosts them (placement) and acknowledges
with an empty ``initial_response``; from then on the sidecar writes its requests (routers/grpc/
actor_host.py) and the app writes its answers, correlated by id (services/actors/callbacks.py).
When the stream ends, the calls waiting for an answer fail, the app's actors are dropped and its
types leave placement (the newest stream still open keeps its own).

Refused as daprd refuses it: FAILED_PRECONDITION where the app has an HTTP channel (its actors are
hosted through ``/dapr/config``), INVALID_ARGUMENT when the first message is not the registration.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import structlog
from dapr.proto.runtime.v1 import actors_pb2

from routers.grpc.actor_host import Incoming, Outgoing, StreamedActorHost
from routers.grpc.calls import Context, Streaming
from services import errors
from services.actors.callbacks import HostConnection
from services.actors.config import ActorConfig, TypeConfig
from services.sidecar import Services

log = structlog.get_logger(__name__)

ACKNOWLEDGED = Outgoing(initial_response=actors_pb2.SubscribeActorEventsResponseInitialAlpha1())
_ANSWERS = ("invoke_response", "reminder_response", "timer_response", "deactivate_response", "request_failed")


def _duration(message: Any, name: str) -> timedelta | None:
    if not message.HasField(name):
        return None
    found: timedelta = getattr(message, name).ToTimedelta()
    return found if found > timedelta(0) else None  # unset or zero: the default, as daprd


def _type_config(message: Any, base: TypeConfig) -> TypeConfig:
    """The settings ``message`` (the registration or one of its ``entities_config``) sets over
    ``base``; what it leaves unset stays."""
    idle = _duration(message, "actor_idle_timeout")
    drain = _duration(message, "drain_ongoing_call_timeout")
    reentrancy, depth = base.reentrancy, base.max_stack_depth
    if message.HasField("reentrancy"):
        reentrancy = message.reentrancy.enabled
        if message.reentrancy.HasField("max_stack_depth") and message.reentrancy.max_stack_depth > 0:
            depth = message.reentrancy.max_stack_depth
    return TypeConfig(
        idle_timeout=idle or base.idle_timeout,
        drain_timeout=drain or base.drain_timeout,
        drain_rebalanced=(
            message.drain_rebalanced_actors
            if message.HasField("drain_rebalanced_actors")
            else base.drain_rebalanced
        ),
        reentrancy=reentrancy,
        max_stack_depth=depth,
    )


def registered_config(initial: actors_pb2.SubscribeActorEventsRequestInitialAlpha1) -> ActorConfig:
    """The registration as the actor runtime's configuration (what ``parse_config`` makes of an
    HTTP app's ``/dapr/config``): ``entities_config`` entries apply to the types it hosts only."""
    defaults = _type_config(initial, TypeConfig())
    types = dict.fromkeys((name for name in initial.entities if name), defaults)
    for entry in initial.entities_config:
        specific = _type_config(entry, defaults)
        for name in entry.entities:
            if name in types:
                types[name] = specific
            else:
                log.warning("configuration given for an actor type the app does not host", actor_type=name)
    return ActorConfig(types, defaults)


def _answer_id(message: Incoming) -> str | None:
    kind = message.WhichOneof("request_type")
    if kind not in _ANSWERS:
        return None
    found: str = getattr(message, kind).id
    return found


async def _read(requests: AsyncIterator[Incoming], connection: HostConnection[Outgoing, Incoming]) -> None:
    """The app's answers, each to the request waiting for it, until the app ends the stream."""
    try:
        async for message in requests:
            request_id = _answer_id(message)
            if request_id is None:
                log.warning(
                    "dropped an actor host message that answers nothing",
                    kind=message.WhichOneof("request_type"),
                )
                continue
            connection.deliver(request_id, message)
    except Exception as exc:  # the stream broke: the writer stops, waiting calls fail
        log.info("actor host stream ended", error=str(exc))
    finally:
        connection.end()


async def subscribe_actor_events(
    services: Services, requests: AsyncIterator[Incoming], context: Context
) -> AsyncIterator[Outgoing]:
    runtime = services.actors
    host = runtime.app if runtime is not None else None
    if runtime is None or not isinstance(host, StreamedActorHost):
        raise errors.actor_stream_needs_grpc_channel()
    try:
        first = await anext(aiter(requests))
    except StopAsyncIteration:
        return
    if first.WhichOneof("request_type") != "initial_request":
        raise errors.actor_stream_not_registered()
    config = registered_config(first.initial_request)
    connection = host.streams.open(config)
    reader: asyncio.Task[None] | None = None
    try:
        try:
            await runtime.apply(config)
        except Exception as exc:  # placement's store away: daprd's Internal "failed to register"
            log.error("the actor host stream's types could not be hosted", error=str(exc))
            raise errors.actor_stream_register_failed(str(exc)) from None
        yield ACKNOWLEDGED
        reader = asyncio.create_task(_read(requests, connection), name="actor host stream reader")
        while (request := await connection.next_request()) is not None:
            yield request
    finally:
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        host.streams.close(connection)
        latest = host.streams.latest
        if not runtime.closed:
            try:
                await runtime.stream_closed(config, latest.config if latest is not None else None)
            except Exception as exc:  # placement's store away: its lease ends the membership
                log.error("the closed actor host stream's types could not leave placement", error=str(exc))


STREAMS: dict[str, Streaming] = {"SubscribeActorEventsAlpha1": subscribe_actor_events}
