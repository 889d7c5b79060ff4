"""Real OTLP trace receivers for the tests: what an OpenTelemetry collector would get from l8,
decoded with ``opentelemetry-proto``'s classes.

- :class:`OtlpHttpReceiver`: ``POST /v1/traces`` with an ``ExportTraceServiceRequest`` body
  (http/protobuf), on a free loopback port, in a thread of its own;
- :class:`OtlpGrpcReceiver`: the ``TraceService/Export`` gRPC method, on a free loopback port;
- :class:`ZipkinReceiver`: Zipkin's v2 JSON endpoint (``POST /api/v2/spans``).

Both keep every span they received as a :class:`ReceivedSpan`; :meth:`wait_for` waits until
spans matching a test's condition have arrived (the sidecar batches them for up to a second).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.servers import LOOPBACK, free_port

_KINDS = {
    Span.SPAN_KIND_SERVER: "server",
    Span.SPAN_KIND_CLIENT: "client",
    Span.SPAN_KIND_PRODUCER: "producer",
    Span.SPAN_KIND_CONSUMER: "consumer",
    Span.SPAN_KIND_INTERNAL: "internal",
}

_STATUSES = {0: "UNSET", 1: "OK", 2: "ERROR"}


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any] = field(default_factory=dict)
    status: tuple[str, str] = ("UNSET", "")
    """(``UNSET``/``OK``/``ERROR``, description)."""


def _value(value: AnyValue) -> Any:
    return getattr(value, value.WhichOneof("value") or "string_value")


def decode(request: trace_service_pb2.ExportTraceServiceRequest) -> list[ReceivedSpan]:
    spans = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        service=resource.get("service.name", ""),
                        name=span.name,
                        kind=_KINDS.get(span.kind, "unspecified"),
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex(),
                        attributes={a.key: _value(a.value) for a in span.attributes},
                        status=(_STATUSES[span.status.code], span.status.message),
                    )
                )
    return spans


class _Spans:
    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.requests = 0
        self._lock = threading.Condition()

    def add(self, spans: list[ReceivedSpan]) -> None:
        with self._lock:
            self.spans.extend(spans)
            self.requests += 1
            self._lock.notify_all()

    def wait_for(
        self, condition: Callable[[list[ReceivedSpan]], bool], timeout: float = 15.0
    ) -> list[ReceivedSpan]:
        """Every span received, once ``condition`` holds for them (AssertionError after ``timeout``)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not condition(self.spans):
                left = deadline - time.monotonic()
                assert left > 0, f"the spans never matched: {[(s.service, s.name) for s in self.spans]}"
                self._lock.wait(left)
            return list(self.spans)


class _HttpReceiver(_Spans):
    """A receiver on a loopback HTTP server in a thread of its own: :meth:`answer` takes each
    ``POST`` (path and body) and gives its status, content type and body."""

    def __init__(self) -> None:
        super().__init__()
        self.port = free_port()
        answer = self.answer

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                status, content_type, payload = answer(self.path, body)
                self.send_response(status)
                if content_type:
                    self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((LOOPBACK, self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def answer(self, path: str, body: bytes) -> tuple[int, str, bytes]:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class OtlpHttpReceiver(_HttpReceiver):
    def answer(self, path: str, body: bytes) -> tuple[int, str, bytes]:
        if path != "/v1/traces":
            return 404, "", b""
        self.add(decode(trace_service_pb2.ExportTraceServiceRequest.FromString(body)))
        return (
            200,
            "application/x-protobuf",
            trace_service_pb2.ExportTraceServiceResponse().SerializeToString(),
        )

    @property
    def endpoint(self) -> str:
        """As Dapr's ``otel.endpointAddress`` writes it: ``host:port``."""
        return f"{LOOPBACK}:{self.port}"


class OtlpGrpcReceiver(_Spans):
    def __init__(self) -> None:
        super().__init__()
        self.port = free_port()
        receiver = self

        class Service(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:
                receiver.add(decode(request))
                return trace_service_pb2.ExportTraceServiceResponse()

        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), self._server)
        self._server.add_insecure_port(f"{LOOPBACK}:{self.port}")

    @property
    def endpoint(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def __enter__(self) -> Self:
        self._server.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.stop(grace=None).wait(5)


class ZipkinReceiver(_HttpReceiver):
    """A Zipkin v2 endpoint: ``POST /api/v2/spans`` with a JSON list of spans."""

    def answer(self, path: str, body: bytes) -> tuple[int, str, bytes]:
        spans = [
            ReceivedSpan(
                service=span.get("localEndpoint", {}).get("serviceName", ""),
                name=span["name"],
                kind=span.get("kind", "internal").lower(),
                trace_id=span["traceId"],
                span_id=span["id"],
                parent_id=span.get("parentId", ""),
                attributes=dict(span.get("tags", {})),
            )
            for span in json.loads(body)
        ]
        self.add(spans)
        return (202 if path == "/api/v2/spans" else 404), "", b""

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/api/v2/spans"
