"""The app behind the scheduler benchmark: raw ASGI on uvicorn. Every ``POST /job/{name}`` carries
``{"due": <epoch seconds>}``; the app records ``arrival - due`` (its wall clock, the same host's as
the sender's) and answers 200. ``GET /delays`` answers the recorded delays (seconds) and
``DELETE /delays`` forgets them.

Run: ``python bench/scheduler_target.py --port P``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import orjson
from raw_asgi import lifespan, read_body, serve

_delays: list[float] = []
_names: list[str] = []


async def _nothing() -> None:
    return None


async def _answer(send: Any, status: int, body: bytes = b"") -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send, _nothing, _nothing)
        return
    body = await read_body(receive)
    arrived = time.time()
    path, method = scope["path"], scope["method"]
    if method == "POST" and path.startswith("/job/"):
        _delays.append(arrived - float(orjson.loads(body)["due"]))
        _names.append(path.removeprefix("/job/"))
        await _answer(send, 200)
    elif path == "/delays" and method == "GET":
        await _answer(send, 200, orjson.dumps({"delays": _delays, "names": _names}))
    elif path == "/delays" and method == "DELETE":
        _delays.clear()
        _names.clear()
        await _answer(send, 204)
    else:
        await _answer(send, 404)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    serve(app, parser.parse_args().port)


if __name__ == "__main__":
    main()
