"""Every path or verb no other route takes. Dapr treats these as service invocation: the app id
comes from the ``dapr-app-id`` header, or from basic auth with the user ``dapr-app-id``
(``http://dapr-app-id:orders@localhost:3500/neworder``), and the method is the whole path.
Without an app id the answer is 404 ERR_DIRECT_INVOKE."""

from __future__ import annotations

import base64
import binascii

from starlette.requests import Request
from starlette.responses import Response

from routers.invoke import app_id_from_headers, forward, raw_path
from routers.table import METHODS, RouteTable
from services import errors

routes = RouteTable()

_BASIC_USER = "dapr-app-id"


def _app_id_from_basic_auth(request: Request) -> str | None:
    for name, value in request.scope["headers"]:
        if name == b"authorization" and value[:6].lower() == b"basic ":
            try:
                user, _, password = base64.b64decode(value[6:].strip(), validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            return password if user == _BASIC_USER and password else None
    return None


@routes.route("/{path:path}", METHODS, include_in_schema=False)
async def unmatched(request: Request, path: str) -> Response:
    app_id = app_id_from_headers(request) or _app_id_from_basic_auth(request)
    if not app_id:
        raise errors.no_app_id()
    return await forward(request, app_id, raw_path(request).lstrip("/"))
