"""The distributed lock API: Dapr's ``/v1.0-alpha1/lock/{store}`` and ``/v1.0-alpha1/unlock/{store}``,
and l8's renewal ``/v1.0-alpha1/lock/{store}/renew`` (Layotto's LockKeepAlive, which it stubbed)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from routers import schemas
from routers.http import json_response, read_message, services
from routers.table import RouteTable

routes = RouteTable(tags=["lock"])

_VALIDATION = {
    400: ["ERR_MALFORMED_REQUEST", "ERR_LOCK_STORE_NOT_FOUND"],
    500: ["ERR_LOCK_STORE_NOT_CONFIGURED"],
}


def _doc(model: type, answer: type, failure: str, description: str, summary: str) -> dict[str, Any]:
    codes = {status: list(names) for status, names in _VALIDATION.items()}
    codes[500] = [*codes[500], failure]
    return {
        "summary": summary,
        "description": description,
        "openapi_extra": schemas.json_body(schemas.ref(model)),
        "responses": {200: {"model": answer, "description": "The outcome"}, **schemas.errors_doc(codes)},
        "response_class": Response,
    }


@routes.post(
    "/v1.0-alpha1/lock/{storeName}",
    **_doc(
        schemas.TryLockRequest,
        schemas.TryLockResponse,
        "ERR_TRY_LOCK",
        "Never waits: success is false when another owner (or this one) holds the resource. Bodies "
        "are read as protojson: camelCase or snake_case names, unknown fields ignored.",
        "Try to acquire a lock",
    ),
)
async def try_lock(request: Request, storeName: str) -> Response:
    acquired = await services(request).lock.try_lock(storeName, await read_message(request))
    return json_response({"success": acquired})


@routes.post(
    "/v1.0-alpha1/unlock/{storeName}",
    **_doc(
        schemas.UnlockRequest,
        schemas.LockStatusResponse,
        "ERR_UNLOCK",
        "Only the owner releases a lock: status 2 (LOCK_BELONGS_TO_OTHERS) leaves it held, status 1 "
        "(LOCK_DOES_NOT_EXIST) when nobody holds it.",
        "Release a lock",
    ),
)
async def unlock(request: Request, storeName: str) -> Response:
    status = await services(request).lock.unlock(storeName, await read_message(request))
    return json_response({"status": int(status)})


@routes.post(
    "/v1.0-alpha1/lock/{storeName}/renew",
    **_doc(
        schemas.TryLockRequest,
        schemas.LockStatusResponse,
        "ERR_RENEW_LOCK",
        "l8's own: the owner sets its lock to expire expiryInSeconds from now. Status 0 renewed, 1 "
        "nobody holds it (expired or released), 2 another owner holds it.",
        "Renew a lock",
    ),
)
async def renew_lock(request: Request, storeName: str) -> Response:
    status = await services(request).lock.renew(storeName, await read_message(request))
    return json_response({"status": int(status)})
