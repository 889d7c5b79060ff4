"""InvokeService over services/invocation.py, as ``/v1.0/invoke/{id}/method/{method}`` uses it: the
message's ``http_extension`` gives the HTTP verb (POST when none) and the query string, its data
becomes the body with its content type, and the call's metadata go along as headers. The target's
answer comes back whole, its status in the ``dapr-http-status`` header; a status other than 2xx
is also the call's gRPC status (daprd's ``ErrorFromHTTPResponseCode``), with the body as the
message."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import grpc
from dapr.proto.common.v1 import common_pb2
from google.protobuf import any_pb2

from mesh.proxy import VOUCHED
from routers.grpc.calls import Context, Unary
from services.sidecar import Services

_VERBS = {value: name for name, value in common_pb2.HTTPExtension.Verb.items()}
# HTTP/2 and gRPC's own headers: not the call's to pass on.
_NOT_FORWARDED = frozenset({"content-type", "content-length", "user-agent", "te", "host", "dapr-api-token"})

_PATH_SAFE = "/:@!$&'()*+,;=-._~%"
_TRACE = frozenset({"traceparent", "tracestate"})
_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ABORTED,
    412: grpc.StatusCode.FAILED_PRECONDITION,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    499: grpc.StatusCode.CANCELLED,
    500: grpc.StatusCode.INTERNAL,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}
"""grpc-gateway's mapping of an HTTP status to a gRPC code, which daprd uses."""


def _scope(message: Any, context: Context, traced: bool) -> dict[str, Any]:
    verb = _VERBS.get(message.http_extension.verb, "NONE")
    headers: list[tuple[bytes, bytes]] = []
    for key, value in context.invocation_metadata() or ():
        if traced and key in _TRACE:
            continue  # the call's own span (the door's) is the target's parent, as over HTTP
        if isinstance(value, str) and key not in _NOT_FORWARDED and not key.startswith((":", "grpc-")):
            headers.append((key.encode("latin-1"), value.encode("latin-1")))
    if traced:
        headers.extend(_current_span_headers())
    data: bytes = message.data.value
    if message.content_type:
        headers.append((b"content-type", message.content_type.encode("latin-1")))
    headers.append((b"content-length", str(len(data)).encode()))
    return {
        "method": "POST" if verb == "NONE" else verb,
        "headers": headers,
        "query_string": message.http_extension.querystring.encode("latin-1"),
        VOUCHED: False,  # an app's call: a caller id it sends is not another sidecar's word
    }


def _current_span_headers() -> list[tuple[bytes, bytes]]:
    from observability.tracing.tracer import Tracer  # tracing is on: its SDK is loaded already

    trace_id, span_id, flags, tracestate = Tracer.current()
    found = [(b"traceparent", f"00-{trace_id}-{span_id}-{flags}".encode())]
    if tracestate:
        found.append((b"tracestate", tracestate.encode("latin-1")))
    return found


async def invoke_service(services: Services, request: Any, context: Context) -> common_pb2.InvokeResponse:
    message = request.message
    data: bytes = message.data.value
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": data, "more_body": False}

    # The service takes the method as a request path holds it: escaped (what is already is kept).
    method = quote(message.method.lstrip("/"), safe=_PATH_SAFE)
    invocation = services.invocation
    scope = _scope(message, context, invocation.traced)
    upstream = await invocation.invoke(request.id, method, scope, receive)
    try:
        body = b"".join([chunk async for chunk in upstream.chunks()])
    finally:
        upstream.release()
    content_type = ""
    for name, value in upstream.headers:
        if name.lower() == b"content-type":
            content_type = value.decode("latin-1")
    await context.send_initial_metadata((("dapr-http-status", str(upstream.status)),))
    if not 200 <= upstream.status < 300:
        code = _CODES.get(upstream.status, grpc.StatusCode.UNKNOWN)
        await context.abort(code, body.decode("utf-8", errors="replace"))
    return common_pb2.InvokeResponse(data=any_pb2.Any(value=body), content_type=content_type)


RPCS: dict[str, Unary] = {"InvokeService": invoke_service}
