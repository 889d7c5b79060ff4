"""What daprd records of a proxied gRPC call (routers/grpc/proxy.py), on both sidecars, as its
stream interceptors do (pkg/diagnostics ``GRPCTraceStreamServerInterceptor``,
``StreamingServerInterceptor`` and ``StreamingClientInterceptor``; pkg/api/grpc's API log):

- a span named after the full method (``/test.Greeter/Say``), under the call's ``traceparent``:
  CLIENT on the sidecar whose app made the call (the target is another app), SERVER on the
  sidecar of the target app; its attributes are the call's ``dapr-*`` metadata (never the API
  token), its status ERROR with the gRPC status message when the call failed. The caller's
  sidecar sends the next sidecar its own span as ``traceparent`` (the caller's removed); the
  target's sidecar hands its app the trace headers the call came with, as daprd does;
- ``dapr_grpc_io_server_*`` on the sidecar the app called, ``dapr_grpc_io_client_*`` on the
  sidecar another sidecar forwarded the call to (daprd's internal server records those);
- the API log line (``l8.api``, as the Door's) on the sidecar the app called; daprd's internal
  server logs none.

With tracing and metrics off and the API log quiet, :meth:`ProxyObserver.watch` answers None and
the call goes through untouched: the proxy pays one call and a log-level lookup.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import grpc

from routers.grpc.api import API_LOGGER, log
from services.log_levels import PROCESS_LEVELS

if TYPE_CHECKING:
    from observability.metrics import GrpcClientMetrics, GrpcServerMetrics
    from observability.tracing.tracer import ServerSpan, Tracer

Metadata = list[tuple[str, str | bytes]]
TRACE_HEADERS = frozenset({"traceparent", "tracestate"})
_TOKEN = "dapr-api-token"


class ProxyObserver:
    """The span, metrics and log line of the proxied calls of one sidecar."""

    def __init__(
        self,
        app_id: str,
        *,
        tracer: Tracer | None = None,
        server_metrics: GrpcServerMetrics | None = None,
        client_metrics: GrpcClientMetrics | None = None,
        api_logging: bool = False,
    ) -> None:
        self.app_id = app_id
        self.tracer = tracer
        self.server_metrics = server_metrics
        self.client_metrics = client_metrics
        self.api_logging = api_logging

    def watch(self, method: str, target: str, metadata: Any, from_peer: bool) -> CallWatch | None:
        """The watch of one call to ``target`` (``from_peer``: another sidecar forwarded it);
        None when nothing is to be recorded."""
        metrics = self.client_metrics if from_peer else self.server_metrics
        logged = not from_peer and (self.api_logging or PROCESS_LEVELS.threshold(API_LOGGER) <= logging.DEBUG)
        tracer = self.tracer
        if tracer is None and metrics is None and not logged:
            return None
        span = None
        trace: Metadata | None = None
        if tracer is not None:
            local = target == self.app_id
            carrier: dict[str, str] = {}
            attributes: dict[str, str] = {}
            for key, value in metadata or ():
                if key in TRACE_HEADERS and isinstance(value, str):
                    carrier[key] = value
                elif key.startswith("dapr-") and not key.endswith("-bin") and key != _TOKEN:
                    attributes[key] = str(value)
            span = tracer.server(
                method, carrier, attributes, kind="server" if local else "client", current=False
            )
            if not local:
                trace_id, span_id, flags, state = span.ids
                trace = [("traceparent", f"00-{trace_id}-{span_id}-{flags}")]
                if state:
                    trace.append(("tracestate", state))
        return CallWatch(method, span, metrics, self.api_logging if logged else None, trace)


class CallWatch:
    """One proxied call being watched: :meth:`end` records it once it has its status."""

    __slots__ = ("_info", "_method", "_metrics", "_span", "_started", "trace")

    def __init__(
        self,
        method: str,
        span: ServerSpan | None,
        metrics: GrpcServerMetrics | None,
        info: bool | None,
        trace: Metadata | None,
    ) -> None:
        self._method = method
        self._span = span
        self._metrics = metrics
        self._info = info
        """None: no log line; True: at info (``--enable-api-logging``); False: at debug."""
        self.trace = trace
        """The trace headers the next sidecar gets in place of the caller's; None: the headers
        go on as they came (to this sidecar's own app)."""
        self._started = time.perf_counter()

    def end(self, context: Any, cancelled: bool) -> None:
        seconds = time.perf_counter() - self._started
        code = context.code()
        if cancelled:
            code = grpc.StatusCode.CANCELLED
        elif not isinstance(code, grpc.StatusCode):
            code = grpc.StatusCode.OK
        if self._span is not None:
            failed = code is not grpc.StatusCode.OK
            self._span.finish_rpc((context.details() or code.name) if failed else None)
        status = code.name
        if self._metrics is not None:
            self._metrics.record(self._method, status, seconds)
        if self._info is not None:
            (log.info if self._info else log.debug)(
                "api call", method=self._method, status=status, ms=round(seconds * 1000, 3)
            )
