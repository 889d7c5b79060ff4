"""Request and response helpers shared by the routers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import ClientDisconnect

from app.runtime import Runtime
from services import errors, json_body
from services.errors import BodyTooLarge

JSON = "application/json"


class AnyKeyConvertor(Convertor[str]):
    """The rest of the path, newlines included (``{key:anykey}``). Dapr matches routes on the
    escaped path, so a decoded key may hold any character; Starlette matches the decoded path, where
    ``{key:path}`` (``.*``) stops at a newline and ``/v1.0/state/s/a%0Ab`` would fall through to
    the 404 fallback."""

    regex = "(?s:.*)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return str(value)


# Starlette resolves a convertor when a route is declared, so it is registered with this module.
register_url_convertor("anykey", AnyKeyConvertor())


class DirectRoute(APIRoute):
    """A route FastAPI documents but does not drive: the handler is called with the Request, the
    path parameters and the raw string values of the query parameters it declares.

    Handlers parse and validate bodies themselves (Dapr's lenient rules and error codes), so
    FastAPI's dependency resolution and validation did nothing for them but cost about 65 us per
    request, a quarter of a state GET (docs/performance.md). Declared query parameters must be
    ``str | None``.
    """

    def get_route_handler(self) -> Callable[[Request], Any]:
        endpoint = self.endpoint
        query = [(field.alias, field.name) for field in self.dependant.query_params]

        async def handle(request: Request) -> Any:
            if query and request.scope["query_string"]:
                values = request.query_params
                return await endpoint(request, **request.path_params, **{n: values.get(a) for a, n in query})
            return await endpoint(request, **request.path_params)

        return handle


def runtime(request: Request) -> Runtime:
    current: Runtime = request.app.state.runtime
    return current


def query_metadata(request: Request) -> dict[str, str]:
    """``?metadata.k=v`` parameters with the prefix removed (first value wins, case kept)."""
    raw = request.scope["query_string"]
    if b"metadata." not in raw:
        return {}
    found: dict[str, str] = {}
    for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        if name.startswith("metadata.") and len(name) > 9:
            found.setdefault(name[9:], value)
    return found


async def read_body(
    request: Request, *, unreadable: Callable[[str], errors.ApiError] = errors.malformed, keep: bool = True
) -> bytes:
    """The whole body; one over --max-body-size answers ``unreadable`` (the endpoint's read error:
    ERR_MALFORMED_REQUEST where Dapr decodes while reading, ERR_BODY_READ where it reads first).
    ``keep=False`` leaves it off the request, so it is freed once the caller has decoded it."""
    # Read from the ASGI channel directly: Starlette's Request.body() (a stream generator and a
    # join) costs a few microseconds a publish; the body is kept on the request as body() keeps it.
    try:
        message = await request.receive()
        body: bytes = message.get("body", b"")
        if message.get("more_body", False):
            chunks = [body]
            while message.get("more_body", False):
                message = await request.receive()
                if message["type"] == "http.disconnect":
                    raise ClientDisconnect()
                chunks.append(message.get("body", b""))
            body = b"".join(chunks)
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect()
    except BodyTooLarge as exc:
        raise unreadable(str(exc)) from None
    if keep:
        request._body = body
    return body


async def read_json(request: Request, *, prefix: str = "") -> Any:
    """The body as JSON; a body that is not JSON answers 400 ERR_MALFORMED_REQUEST. The body is not
    kept on the request: once decoded it is freed."""
    body = await read_body(request, keep=False)
    try:
        return await json_body.loads_off_loop(body)
    except json_body.JsonBodyError as exc:
        reason = "unexpected end of JSON input" if not body.strip() else str(exc)
        raise errors.malformed(f"{prefix}{reason}") from None


async def read_message(request: Request) -> Any:
    """A proto message's JSON body: an empty body is the empty message (protojson accepts it)."""
    body = await read_body(request)
    if not body.strip():
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise errors.malformed(f"failed deserializing HTTP body: {exc}") from None


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type=JSON)


_NO_CONTENT = Response(status_code=204)


def no_content() -> Response:
    """The 204 answer, built once: a Response is not changed by being sent."""
    return _NO_CONTENT
