"""Dapr's gRPC service (``dapr.proto.runtime.v1.Dapr``) assembled from the blocks' RPCs.

Every RPC goes through one door (:func:`_unary`, :func:`_streaming`): the sidecar's services (or
UNAVAILABLE before start-up ends and once shutdown begins), then the block's handler, whose
:class:`ApiError` becomes the gRPC status of routers/grpc/errors.py. An RPC no block serves here
(actors, jobs, workflows, crypto, conversation, ...) answers UNIMPLEMENTED.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import structlog
from dapr.proto.runtime.v1 import dapr_pb2_grpc
from google.protobuf import empty_pb2

from routers.grpc import bindings, configuration, invoke, lock, metadata, pubsub, secrets, state
from routers.grpc.calls import Context, Streaming, Unary
from routers.grpc.errors import to_status
from routers.http import Sidecar
from services.errors import ApiError
from services.log_levels import PROCESS_LEVELS
from services.sidecar import Services

API_LOGGER = "l8.api"
"""The HTTP middleware's logger of API calls (app/middleware.py), shared by both transports."""
log = structlog.get_logger(API_LOGGER)

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


class ApiLog:
    """``--enable-api-logging`` for gRPC calls: each call at info with the flag, else at debug
    once the ``l8.api`` logger is set to debug, as the HTTP middleware logs its calls."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def wanted(self) -> bool:
        return self.enabled or PROCESS_LEVELS.threshold(API_LOGGER) <= logging.DEBUG

    def record(self, method: str, context: Context, started: float) -> None:
        code = context.code() or grpc.StatusCode.OK
        (log.info if self.enabled else log.debug)(
            "api call",
            method=method,
            status=code.name if isinstance(code, grpc.StatusCode) else str(code),
            ms=round((time.perf_counter() - started) * 1000, 3),
        )


def _unary(
    sidecar: Sidecar, name: str, handler: Unary, api_log: ApiLog
) -> Callable[[Any, Any, Context], Any]:
    method = f"/{SERVICE}/{name}"

    async def rpc(_servicer: Any, request: Any, context: Context) -> Any:
        logged = api_log.wanted()
        started = time.perf_counter()
        try:
            services = await _services(sidecar, context)
            try:
                return await handler(services, request, context)
            except ApiError as exc:
                await _refuse(context, exc)
        finally:
            if logged:
                api_log.record(method, context, started)

    return rpc


def _streaming(
    sidecar: Sidecar, name: str, handler: Streaming, streams: set[asyncio.Task[Any]], api_log: ApiLog
) -> Any:
    method = f"/{SERVICE}/{name}"

    async def rpc(_servicer: Any, request: Any, context: Context) -> AsyncIterator[Any]:
        logged = api_log.wanted()
        started = time.perf_counter()
        task = asyncio.current_task()
        try:
            services = await _services(sidecar, context)
            if task is not None:  # ended first at shutdown: a stream would otherwise hold it up
                streams.add(task)
            async for answer in handler(services, request, context):
                yield answer
        except ApiError as exc:
            await _refuse(context, exc)
        finally:
            if task is not None:
                streams.discard(task)
            if logged:
                api_log.record(method, context, started)

    return rpc


async def _unimplemented(_servicer: Any, _request: Any, context: Context) -> None:
    await context.abort(grpc.StatusCode.UNIMPLEMENTED, "this method is not served by l8 yet")


def dapr_servicer(
    sidecar: Sidecar, streams: set[asyncio.Task[Any]], api_log: ApiLog
) -> dapr_pb2_grpc.DaprServicer:
    """The servicer of every RPC for ``sidecar``; ``streams`` collects the open server streams."""

    async def shutdown(_servicer: Any, _request: Any, _context: Context) -> empty_pb2.Empty:
        sidecar.shutdown.request()
        return empty_pb2.Empty()

    methods: dict[str, Any] = {
        name: _unimplemented for name in dir(dapr_pb2_grpc.DaprServicer) if name[:1].isupper()
    }
    methods.update({name: _unary(sidecar, name, handler, api_log) for name, handler in RPCS.items()})
    methods.update(
        {name: _streaming(sidecar, name, handler, streams, api_log) for name, handler in STREAMS.items()}
    )
    methods["Shutdown"] = shutdown
    servicer_class = type("L8DaprServicer", (dapr_pb2_grpc.DaprServicer,), methods)
    servicer: dapr_pb2_grpc.DaprServicer = servicer_class()
    return servicer
