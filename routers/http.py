"""Request and response helpers shared by the routers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from services import errors, json_body
from services.errors import BodyTooLarge
from services.lifecycle import Readiness, ShutdownSwitch
from services.sidecar import Services

JSON = "application/json"


SIDECAR = "l8.sidecar"
"""The scope key under which every request carries the :class:`Sidecar`."""


@dataclass(slots=True)
class Sidecar:
    """What every request reaches: made by create_app; the lifespan hands it the services once it
    has built them and takes them back when shutdown begins."""

    readiness: Readiness
    shutdown: ShutdownSwitch
    services: Services | None = None


def sidecar(request: Request) -> Sidecar:
    found: Sidecar = request.scope[SIDECAR]
    return found


def services(request: Request) -> Services:
    """The building blocks' services; before start-up (or after shutdown began), not ready."""
    found = sidecar(request).services
    if found is None:
        raise errors.health_not_ready(["components"])
    return found


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
