"""Service invocation: ``/v1.0/invoke/{app-id}/method/{method...}`` for every verb, and the
``dapr-app-id`` header on any other path (routers/fallback.py).

The app id is everything between ``invoke/`` and the first ``/method/`` of the path as it was
escaped (so ``http%3A%2F%2Fhost%3A8080`` is the URL ``http://host:8080``), and the method is the
rest, still escaped: both are read from the raw path, as Dapr's router reads them.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import Response

from routers import schemas
from routers.http import services
from routers.streaming import StreamedResponse
from routers.table import METHODS, RouteTable
from services import errors
from services.invocation import InvocationService

routes = RouteTable(tags=["invoke"])

INVOKE_PREFIX = "/v1.0/invoke/"
_METHOD_MARK = "/method/"
APP_ID_HEADER = b"dapr-app-id"

_INVOKE_DOC: dict[str, Any] = {
    "summary": "Invoke a method of an app",
    "description": "Forwards the request (verb, headers less hop-by-hop ones, query string and streamed "
    "body) to the method of the app: this sidecar's app, another app through its sidecar (found by name "
    "resolution), an HTTPEndpoint resource or a URL. The app's status, headers and body come back "
    "unchanged; 500 ERR_DIRECT_INVOKE only when the call cannot be made.",
    "responses": {
        200: {"description": "Whatever the invoked method answers (any status)"},
        **schemas.errors_doc({404: ["ERR_DIRECT_INVOKE"], 500: ["ERR_DIRECT_INVOKE"]}),
    },
    "openapi_extra": schemas.raw_body("The request body for the invoked method, streamed"),
}


def split_invoke_path(raw_path: str) -> tuple[str, str] | None:
    """(app id, escaped method) of an escaped ``/v1.0/invoke/<app>/method/<method>`` path."""
    rest = raw_path[len(INVOKE_PREFIX) :]
    app, mark, method = rest.partition(_METHOD_MARK)
    if not mark:
        if rest.endswith("/method"):
            return unquote(rest[: -len("/method")]), ""
        return None
    return unquote(app), method


async def forward(request: Request, app_id: str, method: str) -> Response:
    service: InvocationService = services(request).invocation
    return StreamedResponse(await service.invoke(app_id, method, request.scope, request.receive))


def raw_path(request: Request) -> str:
    """The request's path as it was escaped (cleaned by the middleware as Dapr's router does)."""
    raw: bytes = request.scope.get("raw_path") or request.scope["path"].encode()
    return raw.decode("latin-1")


def app_id_from_headers(request: Request) -> str | None:
    for name, value in request.scope["headers"]:
        if name == APP_ID_HEADER:
            found: str = value.decode("latin-1")
            return found
    return None


async def invoke(request: Request, target: str) -> Response:
    path = raw_path(request)
    header_app = app_id_from_headers(request)
    if header_app:  # the header wins, even on an invoke path; the method is then the whole path
        return await forward(request, header_app, path.lstrip("/"))
    parts = split_invoke_path(path)
    if parts is None:
        raise errors.no_app_id()
    return await forward(request, *parts)


for _verb in METHODS:  # one route per verb: OpenAPI wants an operation id of its own for each
    routes.add(
        "/v1.0/invoke/{target:anykey}",
        invoke,
        [_verb],
        operation_id=f"invoke_{_verb.lower()}",
        **_INVOKE_DOC,
    )
