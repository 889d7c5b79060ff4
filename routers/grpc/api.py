"""Dapr's gRPC service (``dapr.proto.runtime.v1.Dapr``) assembled from the blocks' RPCs.

Every RPC goes through one :class:`Door`: the sidecar's services (or UNAVAILABLE before start-up
ends and once shutdown begins), daprd's span of the call when tracing is on
(routers/grpc/tracing.py), the block's handler, whose :class:`ApiError` becomes the gRPC status of
routers/grpc/errors.py, and the API log line. An RPC no block serves here
(workflows, crypto, conversation, ...) answers UNIMPLEMENTED.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import grpc
import structlog
from dapr.proto.runtime.v1 import dapr_pb2_grpc
from google.protobuf import empty_pb2

from routers.grpc import (
    actor_stream,
    actors,
    binary_files,
    bindings,
    configuration,
    invoke,
    jobs,
    lock,
    metadata,
    pubsub,
    secrets,
    state,
    subscribe,
)
from routers.grpc.calls import Context, Streaming, Unary, call_metadata
from routers.grpc.errors import to_status
from routers.grpc.tracing import span_of
from routers.http import Sidecar
from services.errors import ApiError
from services.log_levels import PROCESS_LEVELS
from services.sidecar import Services

if TYPE_CHECKING:
    from observability.metrics import GrpcServerMetrics
    from observability.tracing.tracer import ServerSpan, Tracer

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
    **actors.RPCS,
    **jobs.RPCS,
    **binary_files.RPCS,
}
STREAMS: dict[str, Streaming] = {
    **configuration.STREAMS,
    **binary_files.STREAMS,
    **actor_stream.STREAMS,
    **subscribe.STREAMS,
}


async def _refuse(context: Context, error: ApiError) -> None:
    status = to_status(error)
    await context.abort(status.code, status.details, status.trailing_metadata)


def _status(context: Context) -> grpc.StatusCode:
    code = context.code()
    return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.OK


class Door:
    """What every call of Dapr's service goes through, for one sidecar."""

    def __init__(
        self,
        sidecar: Sidecar,
        *,
        api_logging: bool = False,
        tracer: Tracer | None = None,
        metrics: GrpcServerMetrics | None = None,
    ) -> None:
        self.sidecar = sidecar
        self.metrics = metrics
        """None when metrics are off."""
        self.api_logging = api_logging
        """``--enable-api-logging``: each call at info; else at debug once ``l8.api`` is at debug."""
        self.tracer = tracer
        """None when tracing is off."""
        self.streams: set[asyncio.Task[Any]] = set()
        """The open server streams, ended first at shutdown (one would otherwise hold it up)."""

    async def _services(self, context: Context) -> Services:
        found = self.sidecar.services
        if found is None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "dapr is not ready")
        assert found is not None
        return found

    def _logged(self) -> bool:
        return self.api_logging or PROCESS_LEVELS.threshold(API_LOGGER) <= logging.DEBUG

    def _done(self, method: str, context: Context, started: float, logged: bool) -> None:
        """The call's metrics and log line, once it has its status."""
        if self.metrics is None and not logged:
            return
        status = _status(context).name
        seconds = time.perf_counter() - started
        if self.metrics is not None:
            self.metrics.record(method, status, seconds)
        if logged:
            (log.info if self.api_logging else log.debug)(
                "api call", method=method, status=status, ms=round(seconds * 1000, 3)
            )

    def _span(self, method: str, name: str, request: Any, context: Context) -> ServerSpan | None:
        if self.tracer is None:
            return None
        headers = call_metadata(context)
        span_name, attributes = span_of(method, name, request, headers)
        carrier: dict[str, str] = {k: headers[k] for k in ("traceparent", "tracestate") if k in headers}
        return self.tracer.server(span_name, carrier, attributes, kind="client")

    @staticmethod
    def _end(span: ServerSpan, context: Context) -> None:
        code = _status(context)
        span.finish_rpc(None if code is grpc.StatusCode.OK else (context.details() or code.name))

    def unary(self, name: str, handler: Unary, service: str = SERVICE) -> Callable[[Any, Any, Context], Any]:
        """``handler`` behind the door; a client stream's handler gets the request iterator."""
        method = f"/{service}/{name}"

        async def rpc(_servicer: Any, request: Any, context: Context) -> Any:
            logged = self._logged()
            started = time.perf_counter()
            span = self._span(method, name, request, context)
            try:
                services = await self._services(context)
                try:
                    return await handler(services, request, context)
                except ApiError as exc:
                    await _refuse(context, exc)
            finally:
                if span is not None:
                    self._end(span, context)
                self._done(method, context, started, logged)

        return rpc

    def streaming(
        self, name: str, handler: Streaming, service: str = SERVICE
    ) -> Callable[[Any, Any, Context], AsyncIterator[Any]]:
        """``handler`` behind the door; a bidirectional stream's handler gets the request iterator."""
        method = f"/{service}/{name}"

        async def rpc(_servicer: Any, request: Any, context: Context) -> AsyncIterator[Any]:
            logged = self._logged()
            started = time.perf_counter()
            task = asyncio.current_task()
            try:
                services = await self._services(context)
                if task is not None:
                    self.streams.add(task)
                async for answer in handler(services, request, context):
                    yield answer
            except ApiError as exc:
                await _refuse(context, exc)
            finally:
                if task is not None:
                    self.streams.discard(task)
                self._done(method, context, started, logged)

        return rpc


async def _unimplemented(_servicer: Any, _request: Any, context: Context) -> None:
    await context.abort(grpc.StatusCode.UNIMPLEMENTED, "this method is not served by l8 yet")


def dapr_servicer(door: Door) -> dapr_pb2_grpc.DaprServicer:
    """The servicer of every RPC, each through ``door``."""
    sidecar = door.sidecar

    async def shutdown(_servicer: Any, _request: Any, _context: Context) -> empty_pb2.Empty:
        sidecar.shutdown.request()
        return empty_pb2.Empty()

    methods: dict[str, Any] = {
        name: _unimplemented for name in dir(dapr_pb2_grpc.DaprServicer) if name[:1].isupper()
    }
    methods.update({name: door.unary(name, handler) for name, handler in RPCS.items()})
    methods.update({name: door.streaming(name, handler) for name, handler in STREAMS.items()})
    methods["Shutdown"] = shutdown
    servicer_class = type("L8DaprServicer", (dapr_pb2_grpc.DaprServicer,), methods)
    servicer: dapr_pb2_grpc.DaprServicer = servicer_class()
    return servicer
