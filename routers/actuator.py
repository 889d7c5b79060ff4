"""Layotto's actuator on l8's API port: ``GET /actuator/health/liveness`` and ``/readiness`` (200
when UP, 503 with the failing indicators otherwise: Layotto answers 500, Kubernetes takes any
failure, 503 is the convention), ``GET /actuator/info`` and ``POST /actuator/logger``.

The probes answer before start-up ends and after shutdown begins too (the runtime indicator says
INIT or DOWN); the API token does not apply to them (app/middleware.py), as Kubernetes probes send
none. Info and logger need the token when one is set. A request naming an app (``dapr-app-id``) on
these paths invokes that app's own (Spring Boot's actuator lives there too)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from routers import schemas
from routers.http import json_response, read_json, services, sidecar
from routers.table import RouteTable
from services import errors
from services.actuator import ActuatorService, Health, Indication, runtime_indication

routes = RouteTable(tags=["actuator"])

_HEALTH_DOC = {
    "responses": {
        200: {"model": schemas.HealthResponse, "description": "UP"},
        503: {"model": schemas.HealthResponse, "description": "DOWN or INIT, with the failing indicators"},
    },
    "response_class": Response,
}


def runtime_state(request: Request) -> Indication:
    """The runtime indicator: INIT, UP or DOWN (shutting down)."""
    side = sidecar(request)
    stopping = side.readiness.stopping or side.shutdown.requested
    return runtime_indication(serving=side.readiness.ready and side.services is not None, stopping=stopping)


def _health(health: Health) -> Response:
    return json_response(health.body(), 200 if health.up else 503)


@routes.get(
    "/actuator/health/liveness",
    app_path=True,
    summary="Is the sidecar alive (Kubernetes liveness probe)",
    description="The runtime indicator only: INIT while starting, UP while serving, DOWN once shutdown "
    "began. A backend that is down does not fail liveness (restarting the pod would not bring it back).",
    **_HEALTH_DOC,
)
async def liveness(request: Request) -> Response:
    return _health(ActuatorService.liveness(runtime_state(request)))


@routes.get(
    "/actuator/health/readiness",
    app_path=True,
    summary="Can the sidecar serve (Kubernetes readiness probe)",
    description="The runtime indicator and one per component: a component whose backend can fail is "
    "pinged (Redis PING, etcd status, Kafka metadata, SELECT 1, S3 HEAD bucket) within a second, its "
    "answer kept for a second; the others are UP once started.",
    **_HEALTH_DOC,
)
async def readiness(request: Request) -> Response:
    runtime = runtime_state(request)
    found = sidecar(request).services
    if found is None:
        return _health(Health.of({"runtime_startup": runtime}))
    return _health(await found.actuator.readiness(runtime))


@routes.get(
    "/actuator/info",
    app_path=True,
    summary="What this sidecar is",
    description="Layotto's info contributors: app (name, version, app id, start time), components, "
    "and the log levels set.",
    responses={200: {"model": schemas.ActuatorInfo, "description": "The sidecar's facts"}},
    response_class=Response,
)
async def info(request: Request) -> Response:
    return json_response(services(request).actuator.info())


@routes.post(
    "/actuator/logger",
    app_path=True,
    summary="Change a logger's level while running",
    description="Layotto's body: the logger (component) and its new level; the level holds for the "
    "loggers below that name too. Answers {}.",
    openapi_extra=schemas.json_body(schemas.ref(schemas.LoggerLevelRequest)),
    responses={
        200: {"description": "Changed ({})"},
        **schemas.errors_doc({400: ["ERR_MALFORMED_REQUEST"]}),
    },
    response_class=Response,
)
async def set_logger_level(request: Request) -> Response:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise errors.malformed('the body must be {"component": ..., "level": ...}')
    services(request).actuator.set_log_level(body.get("component"), body.get("level"))
    return json_response({})
