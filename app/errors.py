"""The error door: every error, from any layer, leaves l8 through :func:`answer` (or
:func:`send_error` where a layer speaks raw ASGI), in Dapr's ``{"errorCode","message"}`` shape and
status from the catalogue in services/errors.py."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.responses import Response
from starlette.types import Send

from services.errors import ApiError

__all__ = ["ApiError", "answer", "internal", "send_error"]

JSON = "application/json"


def internal(exc: BaseException) -> ApiError:
    """What an unexpected exception becomes: a 500 that names its type, never a traceback."""
    return ApiError(500, "ERROR", f"internal error: {type(exc).__name__}")


def answer(error: ApiError, headers: dict[str, str] | None = None) -> Response:
    if error.headers:
        headers = {**error.headers, **(headers or {})}
    return Response(error.body(), status_code=error.status, media_type=JSON, headers=headers)


async def send_error(send: Send, error: ApiError, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    """The same answer for layers below the framework (middleware, rate limits)."""
    body = error.body()
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [
                (b"content-type", JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
