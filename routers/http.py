"""Request and response helpers shared by the routers."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import Request
from fastapi.responses import Response

from app import errors
from app.middleware import BodyTooLarge
from app.runtime import Runtime

JSON = "application/json"


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


async def read_body(request: Request) -> bytes:
    try:
        return await request.body()
    except BodyTooLarge as exc:
        raise errors.malformed(str(exc)) from None


async def read_json(request: Request, *, prefix: str = "") -> Any:
    """The body as JSON; a body that is not JSON answers 400 ERR_MALFORMED_REQUEST."""
    body = await read_body(request)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        reason = "unexpected end of JSON input" if not body.strip() else str(exc)
        raise errors.malformed(f"{prefix}{reason}") from None


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type=JSON)


def no_content() -> Response:
    return Response(status_code=204)
