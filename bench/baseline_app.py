"""The baseline the state benchmark compares l8 against: a raw ASGI app with one redis-py asyncio
client, served by uvicorn on uvloop + httptools like l8, reading and writing the same Redis layout
(one HASH per key with ``data`` and ``version``).

It does the least a state API must do and nothing else: no framework, no middleware, no key
validation. Routes (``<key>`` is the user's key, stored as ``<prefix><key>``):

- ``GET /v1.0/state/statestore/<key>``: HMGET data version; the value as-is, application/json, ETag.
- ``GET /lua/<key>``: the same answer read through l8's own GET script (EVALSHA), which isolates
  the cost of the script from the cost of the HTTP layers.
- ``POST /v1.0/state/statestore``: a JSON array of ``{key, value}``; one HSET of ``data`` per item.
- ``GET /noop``: 204, no Redis.

Run: ``python bench/baseline_app.py --port P --redis 127.0.0.1:N --prefix bench||``.
"""

from __future__ import annotations

import argparse
from typing import Any

import orjson
from raw_asgi import EMPTY, NO_CONTENT, lifespan, read_body, serve
from redis.asyncio import Redis

STATE_PREFIX = "/v1.0/state/statestore/"
SAVE_PATH = "/v1.0/state/statestore"
LUA_PREFIX = "/lua/"

# l8's GET script (components/state/redis.py), copied so the baseline does not import l8.
GET_SCRIPT = """
local out = {}
for i, key in ipairs(KEYS) do
  local kind = redis.call("TYPE", key).ok
  if kind == "hash" then
    local fields = redis.call("HMGET", key, "data", "version")
    out[i] = {fields[1], fields[2], redis.call("PTTL", key)}
  elseif kind == "string" then
    out[i] = {redis.call("GET", key), false, redis.call("PTTL", key)}
  else
    out[i] = false
  end
end
return out
"""

_JSON = (b"content-type", b"application/json")


def make_app(redis_url: str, prefix: str) -> Any:
    client: Redis | None = None
    script: Any = None

    async def answer_value(send: Any, data: Any, version: Any) -> None:
        if data is None:
            await send(NO_CONTENT)
            await send(EMPTY)
            return
        headers = [_JSON, (b"content-length", str(len(data)).encode())]
        if version is not None:
            headers.append((b"etag", version))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    async def start() -> None:
        nonlocal client, script
        client = Redis.from_url(redis_url)
        await client.ping()
        script = client.register_script(GET_SCRIPT)

    async def stop() -> None:
        if client is not None:
            await client.aclose()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await lifespan(receive, send, start, stop)
            return
        assert client is not None
        path: str = scope["path"]
        method: str = scope["method"]
        if method == "GET" and path.startswith(STATE_PREFIX):
            data, version = await client.hmget(prefix + path[len(STATE_PREFIX) :], "data", "version")
            await answer_value(send, data, version)
        elif method == "GET" and path.startswith(LUA_PREFIX):
            (row,) = await script((prefix + path[len(LUA_PREFIX) :],), (), client)
            if row:
                await answer_value(send, row[0], row[1])
            else:
                await answer_value(send, None, None)
        elif method in ("POST", "PUT") and path == SAVE_PATH:
            items = orjson.loads(await read_body(receive))
            for item in items:
                await client.hset(prefix + item["key"], "data", orjson.dumps(item["value"]))
            await send(NO_CONTENT)
            await send(EMPTY)
        elif path == "/noop":
            await send(NO_CONTENT)
            await send(EMPTY)
        else:
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send(EMPTY)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True, help="host:port")
    parser.add_argument("--prefix", default="bench||")
    arguments = parser.parse_args()
    serve(make_app(f"redis://{arguments.redis}/0", arguments.prefix), arguments.port)


if __name__ == "__main__":
    main()
