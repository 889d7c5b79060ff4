"""The app behind the actors benchmark: raw ASGI on uvicorn (uvloop + httptools) hosting the actor
type ``Bench`` (``GET /dapr/config``). Every other request, an actor method call or the same path
by plain service invocation, is answered 200 with a 2-byte JSON body, so what is measured is the
path to it. A reminder delivery (``PUT /actors/Bench/{id}/method/remind/{name}``) is also recorded:
its body's ``data`` carries the first due time (epoch seconds) and period of the reminder, so the
app computes how late this tick came; ``GET /delays`` answers the delays in seconds.

Run: ``python bench/actor_target.py --port P``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import orjson
from raw_asgi import answer, lifespan, read_body, serve

CONFIG = orjson.dumps({"entities": ["Bench"], "actorIdleTimeout": "1h", "drainOngoingCallTimeout": "5s"})
_OK: dict[str, Any] = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")],
}
_BODY: dict[str, Any] = {"type": "http.response.body", "body": b"{}"}
DELAYS: list[float] = []


async def _nothing() -> None:
    return None


def record_tick(body: bytes) -> None:
    now = time.time()
    data = orjson.loads(body)["data"]
    first, period = data["first"], data["period"]
    tick = max(0, round((now - first) / period)) if period else 0
    DELAYS.append(now - (first + tick * period))


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send, _nothing, _nothing)
        return
    body = await read_body(receive)
    path: str = scope["path"]
    if path == "/dapr/config":
        await answer(send, 200, CONFIG)
        return
    if path == "/delays":
        await answer(send, 200, orjson.dumps(DELAYS))
        return
    if "/method/remind/" in path:
        record_tick(body)
    await send(_OK)
    await send(_BODY)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    serve(app, parser.parse_args().port)


if __name__ == "__main__":
    main()
