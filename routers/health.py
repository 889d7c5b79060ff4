"""Health and shutdown: the endpoints SDKs poll before they start, and the orderly way out."""

from __future__ import annotations

import structlog
from starlette.requests import Request
from starlette.responses import Response

from routers import schemas
from routers.http import no_content, sidecar
from routers.table import RouteTable
from services import errors

routes = RouteTable(tags=["health"])
log = structlog.get_logger(__name__)


@routes.get(
    "/v1.0/healthz",
    summary="Is the sidecar ready",
    responses={
        204: {"description": "Ready"},
        500: {"model": schemas.ErrorBody, "description": "ERR_HEALTH_NOT_READY, ERR_HEALTH_APPID_NOT_MATCH"},
    },
    status_code=204,
    response_class=Response,
)
async def healthz(request: Request, appid: str | None = None) -> Response:
    readiness = sidecar(request).readiness
    if appid and appid != readiness.app_id:  # an empty appid is no check, as in daprd
        raise errors.health_app_id_mismatch()
    if not readiness.ready:
        raise errors.health_not_ready(["components"])
    return no_content()


@routes.get(
    "/v1.0/healthz/outbound",
    summary="Can the app call the sidecar",
    responses={
        204: {"description": "Components loaded, API up"},
        500: {"model": schemas.ErrorBody, "description": "ERR_OUTBOUND_HEALTH_NOT_READY"},
    },
    status_code=204,
    response_class=Response,
)
async def healthz_outbound(request: Request) -> Response:
    if not sidecar(request).readiness.ready:
        raise errors.outbound_not_ready()
    return no_content()


@routes.post(
    "/v1.0/shutdown",
    summary="Shut the sidecar down gracefully",
    description="Answers 204, then stops accepting, finishes in-flight requests and closes components. "
    "With header dapr-force-shutdown: true the process exits with status 1 right after answering.",
    responses={204: {"description": "Shutting down"}},
    status_code=204,
    response_class=Response,
)
async def shutdown(request: Request) -> Response:
    force = request.headers.get("dapr-force-shutdown", "").lower() == "true"
    log.info("shutdown requested through the API", force=force)
    sidecar(request).shutdown.request(force=force)
    return no_content()
