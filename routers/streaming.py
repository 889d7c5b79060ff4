"""The answer of an invoked target, streamed back to the caller as a Starlette response."""

from __future__ import annotations

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from mesh.proxy import Upstream, response_headers


class StreamedResponse(Response):
    """A response streaming the target's answer through, released when done (a Starlette
    Response, so every route and exception handler treats it as an answer)."""

    def __init__(self, upstream: Upstream) -> None:  # no super(): nothing to render
        self.upstream = upstream
        self.status_code = upstream.status
        self.raw_headers = response_headers(upstream.headers)
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        upstream = self.upstream
        try:
            start = {"type": "http.response.start", "status": upstream.status, "headers": self.raw_headers}
            await send(start)
            if scope["method"] != "HEAD":
                async for chunk in upstream.chunks():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            upstream.release()
