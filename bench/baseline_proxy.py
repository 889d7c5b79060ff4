"""The baseline the invocation benchmark compares l8 with: the cheapest Python reverse proxy, raw
ASGI on uvicorn (uvloop + httptools, like l8) forwarding every request to one target with one
pooled aiohttp client, body and answer buffered, no header rules, no name resolution.

Run: ``python bench/baseline_proxy.py --port P --target 127.0.0.1:N``.
"""

from __future__ import annotations

import argparse
from typing import Any

from raw_asgi import lifespan, read_body, serve


def make_app(target: str) -> Any:
    clients: dict[str, Any] = {}

    async def start() -> None:
        import aiohttp

        connector = aiohttp.TCPConnector(limit=1024, keepalive_timeout=30)
        clients["session"] = aiohttp.ClientSession(connector=connector, auto_decompress=False)

    async def stop() -> None:
        await clients["session"].close()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send, start, stop)
            return
        body = await read_body(receive)
        url = f"http://{target}{scope['path']}"
        async with clients["session"].request(scope["method"], url, data=body or None) as answer:
            data = await answer.read()
            headers = [(b"content-type", answer.headers.get("content-type", "").encode())]
            headers.append((b"content-length", str(len(data)).encode()))
            await send({"type": "http.response.start", "status": answer.status, "headers": headers})
            await send({"type": "http.response.body", "body": data})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--target", required=True, help="host:port of the app")
    arguments = parser.parse_args()
    serve(make_app(arguments.target), arguments.port)


if __name__ == "__main__":
    main()
