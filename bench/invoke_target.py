"""The app behind the invocation benchmark: raw ASGI on uvicorn (uvloop + httptools), reading the
request body and answering 200 with a 2-byte JSON body, so what is measured is the path to it.

Run: ``python bench/invoke_target.py --port P``.
"""

from __future__ import annotations

import argparse
from typing import Any

from raw_asgi import lifespan, read_body, serve

_OK: dict[str, Any] = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")],
}
_BODY: dict[str, Any] = {"type": "http.response.body", "body": b"{}"}


async def _nothing() -> None:
    return None


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send, _nothing, _nothing)
        return
    await read_body(receive)
    await send(_OK)
    await send(_BODY)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    serve(app, parser.parse_args().port)


if __name__ == "__main__":
    main()
