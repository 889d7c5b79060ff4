"""The sidecar's tracer over the OpenTelemetry SDK: its own ``TracerProvider`` (never the process's
global one), a ``ParentBased(TraceIdRatioBased(samplingRate))`` sampler as daprd's, and one batch
processor per exporter of ``spec.tracing`` (OTLP over http/protobuf or gRPC, Zipkin, stdout).

This module imports the SDK at its top: it is imported only when tracing is on
(:func:`observability.tracing.start_tracing`), so a sidecar without tracing imports nothing of it.
The current span travels in OpenTelemetry's context (a contextvar): the HTTP server span the
middleware opens is the parent of whatever the request does, including the tasks it starts.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http import HTTPStatus
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from observability.tracing.spec import TracingSpec

SpanIds = tuple[str, str, str, str]
"""(trace id, span id, flags ``00``/``01``, tracestate) of a span, as W3C headers write them."""

_KINDS = {
    "server": SpanKind.SERVER,
    "client": SpanKind.CLIENT,
    "producer": SpanKind.PRODUCER,
    "consumer": SpanKind.CONSUMER,
    "internal": SpanKind.INTERNAL,
}
_PROPAGATOR = TraceContextTextMapPropagator()
EXPORT_DELAY_MS = 1000
"""How long a finished span may wait for its batch (the SDK's default is 5 s)."""
EXPORT_TIMEOUT = 3.0
"""Seconds one export may take, retries included (the SDK's default is 10 s): an unreachable
collector must not hold the sidecar's shutdown past its grace period."""


def _ids(span: trace.Span) -> SpanIds:
    context = span.get_span_context()
    return (
        format(context.trace_id, "032x"),
        format(context.span_id, "016x"),
        "01" if context.trace_flags.sampled else "00",
        context.trace_state.to_header(),
    )


class ServerSpan:
    """The span of one API call, current while the call is served: :meth:`finish` ends it."""

    __slots__ = ("_span", "_token", "ids")

    def __init__(self, span: trace.Span, token: object | None) -> None:
        self._span = span
        self._token = token
        """None: the span was never made current (a proxied call, whose handler yields)."""
        self.ids = _ids(span)

    def finish(self, status: int) -> None:
        """End the span with the answer's status (0: none was sent)."""
        span = self._span
        if span.is_recording():
            span.set_attribute("dapr.status_code", str(status))
            set_http_status(span, status)
        span.end()
        otel_context.detach(self._token)  # type: ignore[arg-type]

    def finish_rpc(self, error: str | None) -> None:
        """End the span of a gRPC call: ERROR with the status message when it failed (daprd's
        ``UpdateSpanStatusFromGRPCError``), else unset."""
        span = self._span
        if error is not None and span.is_recording():
            span.set_status(Status(StatusCode.ERROR, error))
        span.end()
        if self._token is not None:
            otel_context.detach(self._token)  # type: ignore[arg-type]


def http_span_status(status: int) -> Status | None:
    """daprd's ``traceStatusFromHTTPCode``: below 400 the status stays unset; from 400 on it is
    an error described ``Code(404): Not Found``. No answer at all (0) is an error too."""
    if 0 < status < 400:
        return None
    try:
        text = HTTPStatus(status).phrase
    except ValueError:
        text = "Unknown"
    return Status(StatusCode.ERROR, f"Code({status}): {text}")


def set_http_status(span: trace.Span, status: int) -> None:
    error = http_span_status(status)
    if error is not None:
        span.set_status(error)


class ChildSpans:
    """Spans started together under the current one, not made current (daprd's producer span per
    entry of a bulk publish); :meth:`finish` ends them all with the call's HTTP status."""

    __slots__ = ("_spans", "ids")

    def __init__(self, spans: list[trace.Span]) -> None:
        self._spans = spans
        self.ids = [_ids(span) for span in spans]

    def finish(self, status: int) -> None:
        error = http_span_status(status)
        for span in self._spans:
            if error is not None:
                span.set_status(error)
            span.end()


class Tracer:
    def __init__(self, app_id: str | None, spec: TracingSpec) -> None:
        self.spec = spec
        self._provider = TracerProvider(
            resource=Resource.create({"service.name": app_id or "l8"}),
            sampler=ParentBased(TraceIdRatioBased(spec.sampling_rate)),
        )
        for exporter in _exporters(spec):
            self._provider.add_span_processor(
                BatchSpanProcessor(exporter, schedule_delay_millis=EXPORT_DELAY_MS)
            )
        self._tracer = self._provider.get_tracer("l8")

    def server(
        self,
        name: str,
        carrier: Mapping[str, str],
        attributes: Mapping[str, Any],
        kind: str = "client",
        *,
        current: bool = True,
    ) -> ServerSpan:
        """Start the span of an API call under the caller's ``traceparent``/``tracestate`` (a new
        trace without one) and make it current (unless ``current`` is False: a handler that
        yields could end it in another context). daprd's HTTP API span is a CLIENT span; the
        callee's span of a forwarded invocation a SERVER one."""
        parent = _PROPAGATOR.extract(carrier)
        span = self._tracer.start_span(name, parent, _KINDS[kind], attributes)
        if not current:
            return ServerSpan(span, None)
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        return ServerSpan(span, token)

    @contextmanager
    def span(
        self,
        name: str,
        kind: str,
        attributes: Mapping[str, Any],
        parent: tuple[str | None, str | None] | None = None,
        *,
        http_status: bool = False,
    ) -> Iterator[SpanIds]:
        """A span current for the ``with`` block, under ``parent`` (``traceparent``, ``tracestate``)
        when given, else under the current span; yields its ids for the headers of what it sends.
        ``parent=(None, None)`` starts a new trace (daprd: an event without a traceparent).
        ``http_status``: the status is the app's answer (:meth:`answered`) alone, as daprd sets
        it, not an exception's."""
        context = None
        if parent is not None:
            traceparent, tracestate = parent
            carrier = {"traceparent": traceparent or ""}
            if tracestate:
                carrier["tracestate"] = tracestate
            context = _PROPAGATOR.extract(carrier)
        with self._tracer.start_as_current_span(
            name,
            context,
            _KINDS[kind],
            attributes,
            record_exception=not http_status,
            set_status_on_exception=not http_status,
        ) as span:
            yield _ids(span)

    def children(self, name: str, kind: str, count: int) -> ChildSpans:
        """``count`` spans under the current span (see :class:`ChildSpans`)."""
        return ChildSpans([self._tracer.start_span(name, None, _KINDS[kind]) for _ in range(count)])

    @staticmethod
    def current() -> SpanIds:
        """The ids of the current span (the API call's, in a request)."""
        return _ids(trace.get_current_span())

    @staticmethod
    def answered(status: int) -> None:
        """Give the current span (one :meth:`span` opened) the status of the app's HTTP answer."""
        set_http_status(trace.get_current_span(), status)

    def shutdown(self) -> None:
        """Export what is still batched and stop the exporters (blocking: run it in a thread)."""
        self._provider.shutdown()


def _exporters(spec: TracingSpec) -> list[SpanExporter]:
    exporters: list[SpanExporter] = []
    otel = spec.otel
    if otel is not None:
        if otel.protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

            exporters.append(
                GrpcExporter(endpoint=otel.endpoint, insecure=not otel.secure, timeout=EXPORT_TIMEOUT)
            )
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporters.append(OTLPSpanExporter(endpoint=otel.url, timeout=EXPORT_TIMEOUT))
    if spec.zipkin is not None:
        from opentelemetry.exporter.zipkin.json import ZipkinExporter

        exporters.append(ZipkinExporter(endpoint=spec.zipkin, timeout=int(EXPORT_TIMEOUT)))
    if spec.stdout:
        exporters.append(ConsoleSpanExporter())
    return exporters
