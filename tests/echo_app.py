"""An app for service invocation tests: a real HTTP server (aiohttp, in the test's event loop) that
answers every request with what it received, so a test sees exactly what l8 forwarded.

- any path: 200 JSON ``{method, path (as escaped), query, headers: [[name, value]...], body_length,
  body_sha256, body (text, when it is UTF-8)}``;
- ``/status/<code>``: that status, a JSON body, ``x-app: yes`` and ``connection: x-hop`` headers
  (plus an ``x-hop`` header that a proxy must drop);
- ``/download/<n>``: ``n`` bytes, streamed in 64 KiB chunks without a length;
- ``/upload``: reads the body as a stream, answers its length and SHA-256 (never holding it);
- ``/flaky/<key>/<n>``: 503 for the first ``n`` calls with that key, then as any path;
- ``/sleep/<ms>``: answers after that long.

``calls`` counts the requests each path received; ``received`` keeps (method, path, query, body
SHA-256) of each echoed request.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiohttp import web

from tests.servers import LOOPBACK, free_port

CHUNK = 64 * 1024


calls: Counter[str] = Counter()
received: list[tuple[str, str, str, str]] = []


async def _echo(request: web.Request) -> web.StreamResponse:
    path = request.raw_path.partition("?")[0]
    calls[path] += 1
    if path.startswith("/flaky/"):
        _, _, key, failures = path.split("/")
        if calls[path] <= int(failures):
            return web.Response(status=503, text=f"failure {calls[path]} of {key}")
    if path.startswith("/sleep/"):
        await asyncio.sleep(int(path.rsplit("/", 1)[1]) / 1000)
    if path.startswith("/status/"):
        status = int(path.rsplit("/", 1)[1])
        headers = {"x-app": "yes", "Connection": "x-hop", "x-hop": "drop me"}
        return web.Response(status=status, body=orjson.dumps({"status": status}), headers=headers,
                            content_type="application/json")  # fmt: skip
    if path.startswith("/download/"):
        size = int(path.rsplit("/", 1)[1])
        response = web.StreamResponse(status=200, headers={"content-type": "application/octet-stream"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        block = b"z" * CHUNK
        while size > 0:
            await response.write(block[: min(size, CHUNK)])
            size -= CHUNK
        await response.write_eof()
        return response
    digest, length = hashlib.sha256(), 0
    body = bytearray()
    async for chunk in request.content.iter_chunked(CHUNK):
        digest.update(chunk)
        length += len(chunk)
        if path != "/upload" and length <= 1 << 20:
            body += chunk
    answer: dict[str, Any] = {
        "method": request.method,
        "path": path,
        "query": request.rel_url.raw_query_string,
        "headers": [[name, value] for name, value in request.headers.items()],
        "body_length": length,
        "body_sha256": digest.hexdigest(),
    }
    received.append((request.method, path, answer["query"], answer["body_sha256"]))
    if path != "/upload":
        with contextlib.suppress(UnicodeDecodeError):
            answer["body"] = bytes(body).decode()
    return web.Response(body=orjson.dumps(answer), content_type="application/json")


@contextlib.asynccontextmanager
async def echo_app() -> AsyncIterator[int]:
    """Serve the echo app on a free loopback port; yields the port."""
    app = web.Application(client_max_size=1 << 40)
    app.router.add_route("*", "/{tail:.*}", _echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, LOOPBACK, port)
    await site.start()
    try:
        yield port
    finally:
        await runner.cleanup()
