"""The app's HTTP pipeline (a Configuration's ``spec.appHttpPipeline``) around calls this sidecar
makes to its own app: service invocation delivered to the app, pub/sub and input-binding
deliveries, subscription discovery, configuration updates, as Dapr runs it on its app channel.

The pipeline is an ASGI wrapper (wasm/http_pipeline.py's, injected by the runtime: the mesh does
not import wasm); :func:`through` hands it one buffered call as an ASGI request and takes its answer
back. Handlers see the request in the pipeline's order and the answer in reverse; one may rewrite
the request (method, path, query, headers, body), answer it itself (the app is not called), or
pass it on. Without a pipeline none of this runs: the channel and the invocation service check for
it once per call and go their usual way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol
from urllib.parse import unquote

from mesh.asgi import ASGIApp, Message, Receive, Scope, Send, read_body, request_target

Headers = list[tuple[bytes, bytes]]
AppCall = Callable[[str, str, Headers, bytes], Awaitable[tuple[int, Headers, bytes]]]
"""(method, path with query, headers, body) -> (status, headers, body): the call to the app."""

_NOT_FORWARDED = frozenset({b"content-length", b"transfer-encoding", b"host"})


class AppPipeline(Protocol):
    """An ASGI wrapper: runs ``app`` (the call to the app) inside its handlers."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None: ...


async def through(
    pipeline: AppPipeline, method: str, target: str, headers: Headers, body: bytes, call: AppCall
) -> tuple[int, Headers, bytes]:
    """The answer to ``method target`` once ``pipeline`` has run around ``call``. Exceptions of
    ``call`` (the app unreachable) come out unchanged."""
    path, _, query = target.partition("?")
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(path),
        "raw_path": path.encode("latin-1"),
        "query_string": query.encode("latin-1"),
        "headers": headers,
        "client": None,
        "server": None,
    }
    answer = _Answer()
    await pipeline(scope, _once(body), answer.send, _app(call))
    content = b"".join(answer.chunks)
    length = answer.length if method == "HEAD" and answer.length is not None else str(len(content)).encode()
    return answer.status, [*answer.headers, (b"content-length", length)], content


def _app(call: AppCall) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_body(receive)
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in _NOT_FORWARDED]
        status, answer_headers, body = await call(scope["method"], request_target(scope), headers, body)
        framed = [(k, v) for k, v in answer_headers if k.lower() not in _NOT_FORWARDED]
        # a HEAD answer keeps the length the app announced; any other, its body's
        length = next((v for k, v in answer_headers if k.lower() == b"content-length"), None)
        framed.append(
            (b"content-length", length if scope["method"] == "HEAD" and length else str(len(body)).encode())
        )
        await send({"type": "http.response.start", "status": status, "headers": framed})
        await send({"type": "http.response.body", "body": body})

    return app


def _once(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


class _Answer:
    def __init__(self) -> None:
        self.status = 500
        self.headers: Headers = []
        self.length: bytes | None = None
        self.chunks: list[bytes] = []

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = []
            for name, value in message.get("headers", ()):
                if name.lower() == b"content-length":
                    self.length = value
                else:
                    self.headers.append((name, value))
        elif message["type"] == "http.response.body":
            self.chunks.append(message.get("body", b""))


class BufferedUpstream:
    """An answer read whole (mesh/proxy.py's ``Upstream``), as the pipeline leaves it."""

    def __init__(self, status: int, headers: Headers, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self._body = body

    async def chunks(self) -> AsyncIterator[bytes]:
        if self._body:
            yield self._body

    def release(self) -> None:
        self._body = b""
