"""Dapr's gRPC service (``dapr.proto.runtime.v1.Dapr``) assembled from the blocks' RPCs.

Every RPC goes through one door (:func:`_unary`, :func:`_streaming`): the sidecar's services (or
UNAVAILABLE before start-up ends and once shutdown begins), then the block's handler, whose
:class:`ApiError` becomes the gRPC status of routers/grpc/errors.py. An RPC no block serves here
(actors, jobs, workflows, crypto, conversation, ...) answers UNIMPLEMENTED.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from dapr.proto.runtime.v1 import dapr_pb2_grpc
from google.protobuf import empty_pb2

from routers.grpc import bindings, configuration, invoke, lock, metadata, pubsub, secrets, state
from routers.grpc.calls import Context, Streaming, Unary
from routers.grpc.errors import to_status
from routers.http import Sidecar
from services.errors import ApiError
from services.sidecar import Services

SERVICE = "dapr.proto.runtime.v1.Dapr"
RPCS: dict[str, Unary] = {
    **state.RPCS,
    **pubsub.RPCS,
    **invoke.RPCS,
    **bindings.RPCS,
    **secrets.RPCS,
    **configuration.RPCS,
    **lock.RPCS,
    **metadata.RPCS,
}
STREAMS: dict[str, Streaming] = {**configuration.STREAMS}


async def _services(sidecar: Sidecar, context: Context) -> Services:
    found = sidecar.services
    if found is None:
        await context.abort(grpc.StatusCode.UNAVAILABLE, "dapr is not ready")
    assert found is not None
    return found


async def _refuse(context: Context, error: ApiError) -> None:
    status = to_status(error)
    await context.abort(status.code, status.details, status.trailing_metadata)


def _unary(sidecar: Sidecar, handler: Unary) -> Callable[[Any, Any, Context], Any]:
    async def rpc(_servicer: Any, request: Any, context: Context) -> Any:
        services = await _services(sidecar, context)
        try:
            return await handler(services, request, context)
        except ApiError as exc:
            await _refuse(context, exc)

    return rpc


def _streaming(sidecar: Sidecar, handler: Streaming, streams: set[asyncio.Task[Any]]) -> Any:
    async def rpc(_servicer: Any, request: Any, context: Context) -> AsyncIterator[Any]:
        services = await _services(sidecar, context)
        task = asyncio.current_task()
        if task is not None:  # ended first at shutdown: a stream would otherwise hold it up
            streams.add(task)
        try:
            async for answer in handler(services, request, context):
                yield answer
        except ApiError as exc:
            await _refuse(context, exc)
        finally:
            if task is not None:
                streams.discard(task)

    return rpc


async def _unimplemented(_servicer: Any, _request: Any, context: Context) -> None:
    await context.abort(grpc.StatusCode.UNIMPLEMENTED, "this method is not served by l8 yet")


def dapr_servicer(sidecar: Sidecar, streams: set[asyncio.Task[Any]]) -> dapr_pb2_grpc.DaprServicer:
    """The servicer of every RPC for ``sidecar``; ``streams`` collects the open server streams."""

    async def shutdown(_servicer: Any, _request: Any, _context: Context) -> empty_pb2.Empty:
        sidecar.shutdown.request()
        return empty_pb2.Empty()

    methods: dict[str, Any] = {
        name: _unimplemented for name in dir(dapr_pb2_grpc.DaprServicer) if name[:1].isupper()
    }
    methods.update({name: _unary(sidecar, handler) for name, handler in RPCS.items()})
    methods.update({name: _streaming(sidecar, handler, streams) for name, handler in STREAMS.items()})
    methods["Shutdown"] = shutdown
    servicer_class = type("L8DaprServicer", (dapr_pb2_grpc.DaprServicer,), methods)
    servicer: dapr_pb2_grpc.DaprServicer = servicer_class()
    return servicer
