"""What the benchmarks' raw-ASGI baselines share (bench/baseline_app.py, bench/baseline_publisher.py):
the fixed answers, body reading, the lifespan with l8's GC tuning, and uvicorn on uvloop +
httptools as l8 serves."""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn

NO_CONTENT: dict[str, Any] = {"type": "http.response.start", "status": 204, "headers": []}
NOT_FOUND: dict[str, Any] = {"type": "http.response.start", "status": 404, "headers": []}
EMPTY: dict[str, Any] = {"type": "http.response.body", "body": b""}


async def read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def answer(send: Any, status: int, body: bytes) -> None:
    """A whole answer: JSON when there is a body."""
    headers = [(b"content-length", str(len(body)).encode())]
    if body:
        headers.append((b"content-type", b"application/json"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def lifespan(
    receive: Any, send: Any, start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]]
) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await start()
            gc.collect()
            gc.freeze()
            gc.set_threshold(100_000, 50, 1000)  # the same tuning as l8 (app/server.py)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await stop()
            await send({"type": "lifespan.shutdown.complete"})
            return


def serve(app: Any, port: int) -> None:
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        server_header=False,
        proxy_headers=False,
    )
