"""Every request is served inside a trace: the middleware binds its trace id and request id to
the log context, continuing a valid ``traceparent`` and giving a request without one a new trace
(so what the request calls carries the id its log lines show)."""

from __future__ import annotations

from typing import Any

import pytest
import structlog
from starlette.types import Receive, Scope, Send

from app.middleware import SidecarMiddleware
from services.trace_context import parse_traceparent

VALID = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class Seen:
    """An app that records the headers and log context it was called with."""

    def __init__(self) -> None:
        self.headers: dict[bytes, list[bytes]] = {}
        self.context: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        for name, value in scope["headers"]:
            self.headers.setdefault(name, []).append(value)
        self.context = structlog.contextvars.get_contextvars()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def serve(headers: list[tuple[bytes, bytes]]) -> tuple[Seen, dict[bytes, bytes]]:
    seen = Seen()
    middleware = SidecarMiddleware(seen, api_token=None, max_body_size=1024)
    answer: dict[bytes, bytes] = {}

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            answer.update(message["headers"])

    scope = {"type": "http", "method": "GET", "path": "/v1.0/state/s/k", "raw_path": b"/v1.0/state/s/k"}
    await middleware({**scope, "headers": headers, "query_string": b""}, receive, send)
    return seen, answer


async def test_a_valid_traceparent_is_continued_as_it_came() -> None:
    seen, answer = await serve([(b"traceparent", VALID), (b"tracestate", b"vendor=1")])
    assert seen.headers[b"traceparent"] == [VALID] and seen.headers[b"tracestate"] == [b"vendor=1"]
    assert seen.context["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert seen.context["request_id"] == answer[b"x-request-id"].decode()


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [(b"tracestate", b"vendor=1")],  # W3C: a tracestate travels only with a valid parent
        [(b"traceparent", b"00-" + b"0" * 32 + b"-00f067aa0ba902b7-01"), (b"tracestate", b"vendor=1")],
        [(b"traceparent", b"garbage")],
    ],
)
async def test_a_request_without_a_valid_parent_starts_a_new_sampled_trace(
    headers: list[tuple[bytes, bytes]],
) -> None:
    seen, _ = await serve([(b"x-request-id", b"req-7"), *headers])
    [traceparent] = seen.headers[b"traceparent"]
    parsed = parse_traceparent(traceparent.decode())
    assert parsed is not None and parsed[1] == "01"
    assert b"tracestate" not in seen.headers
    assert seen.context == {"request_id": "req-7", "trace_id": parsed[0]}


async def test_each_new_trace_is_its_own() -> None:
    first, _ = await serve([])
    second, _ = await serve([])
    assert first.context["trace_id"] != second.context["trace_id"]
