"""The metadata API: what this sidecar runs, and attributes an app attaches to it."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from routers import schemas
from routers.http import json_response, no_content, read_body, services
from routers.table import RouteTable
from services import errors

routes = RouteTable(tags=["metadata"])


@routes.get(
    "/v1.0/metadata",
    summary="Describe this sidecar",
    responses={200: {"model": schemas.MetadataResponse, "description": "Sidecar metadata"}},
    response_class=Response,
)
async def get_metadata(request: Request) -> Response:
    return json_response(services(request).metadata.describe())


@routes.put(
    "/v1.0/metadata/{key}",
    summary="Attach an attribute to this sidecar",
    description="The body (any content type) becomes extended[key]; kept in memory only.",
    openapi_extra={
        "requestBody": {"required": False, "content": {"text/plain": {"schema": {"type": "string"}}}}
    },
    responses={
        204: {"description": "Stored"},
        400: {"model": schemas.ErrorBody, "description": "Dapr error: ERR_BODY_READ (body too large)"},
    },
    status_code=204,
    response_class=Response,
)
async def put_metadata(request: Request, key: str) -> Response:
    value = (await read_body(request, unreadable=errors.body_read)).decode("utf-8", errors="replace")
    services(request).metadata.attach(key, value)
    return no_content()
