"""create_app(): the FastAPI application, assembled from Settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException
from starlette.routing import Route as PageRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from app import __version__
from app import errors as errors_door
from app.dispatcher import Dispatcher
from app.middleware import SidecarMiddleware
from app.runtime import Runtime
from app.settings import Settings
from mesh.tcpcopy import TcpCopy
from routers import schemas
from routers.api import FALLBACK, ROUTES
from routers.http import SIDECAR, Sidecar
from routers.table import Route
from services import errors
from services.errors import ApiError, BodyTooLarge
from services.lifecycle import Readiness, ShutdownSwitch

DESCRIPTION = (
    "l8 is a sidecar application runtime. Its HTTP API is Dapr's: routes, bodies, status codes and "
    "error codes follow Dapr's sidecar API, so Dapr apps and SDKs work against it unchanged. Every "
    'error answers `{"errorCode", "message"}` with Dapr\'s status.'
)


class SidecarApp(FastAPI):
    """FastAPI behind l8's own entry: uvicorn's HTTP requests go to l8's middleware and the
    dispatcher built from the route table; FastAPI's cycle (its telemetry check, Starlette's error
    and exception layers, routing, dependency injection) runs only for the routes declared
    ``framework=True`` and for its own documentation pages (``/docs``, ``/openapi.json``)."""

    sidecar_middleware: dict[str, Any]
    sidecar: Sidecar
    dispatcher: Dispatcher
    _entry: ASGIApp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self  # what Starlette.__call__ sets, for FastAPI's own pages
        scope[SIDECAR] = self.sidecar
        await self._entry(scope, receive, send)


def create_app(settings: Settings | None = None, *, tcp_copy: TcpCopy | None = None) -> SidecarApp:
    """The app for ``settings``; nothing starts until its lifespan runs, which builds the runtime
    once and hands its services to every request (``routers.http.Sidecar``). ``tcp_copy`` is the
    copier the server's protocol feeds, when TCP copy is on."""
    settings = settings or Settings.load()
    sidecar = Sidecar(Readiness(settings.app_id), ShutdownSwitch())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with Runtime(settings, tcp_copy=tcp_copy) as runtime:
            app.state.runtime = runtime  # for tests and tools that look inside a running sidecar
            sidecar.services = runtime.services
            dispatcher.limits = runtime.rate_limits or None
            sidecar.readiness.ready = True
            try:
                yield
            finally:
                sidecar.readiness.ready = False

    app = SidecarApp(
        title="l8",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        redirect_slashes=False,
    )
    app.state.settings = settings
    app.sidecar = sidecar

    own_pages = [route.path for route in app.router.routes if isinstance(route, PageRoute)]
    for route in (*ROUTES, FALLBACK):
        if route.framework:
            app.router.routes.append(_api_route(route))
    dispatcher = Dispatcher(ROUTES, FALLBACK, super(SidecarApp, app).__call__, own_pages)
    app.dispatcher = dispatcher

    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(BodyTooLarge, _body_too_large)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_exception)
    app.add_exception_handler(Exception, _unexpected)
    app.sidecar_middleware = {
        "api_token": settings.api_token.get_secret_value() if settings.api_token else None,
        "mesh_token": settings.mesh_token.get_secret_value() if settings.mesh_token else None,
        "max_body_size": settings.max_body_size,
        "api_logging": settings.enable_api_logging,
    }
    app._entry = SidecarMiddleware(dispatcher, **app.sidecar_middleware)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _api_route(route: Route) -> APIRoute:
    return APIRoute(route.path, route.handler, methods=list(route.methods), **route.doc)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return errors_door.answer(exc)


async def _unexpected(request: Request, exc: Exception) -> Response:
    # Answers in Dapr's shape; the exception is then re-raised to SidecarMiddleware, which logs it.
    return await _api_error(request, errors_door.internal(exc))


async def _body_too_large(request: Request, exc: Exception) -> Response:
    return await _api_error(request, errors.malformed(str(exc)))


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(
        f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
    )
    return await _api_error(request, errors.malformed(problems or "invalid request"))


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code in (404, 405):
        return await _api_error(request, errors.no_app_id())
    return await _api_error(request, ApiError(exc.status_code, "ERR_BAD_REQUEST", str(exc.detail)))


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document of the route table, plus the request-body models the handlers parse
    themselves, minus the 422 answers FastAPI assumes (l8 never sends one)."""
    if app.openapi_schema:
        return app.openapi_schema
    documented = [_api_route(route) for route in ROUTES if route.documented]
    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=documented
    )
    _, definitions = models_json_schema(
        [(model, "validation") for model in schemas.REQUEST_MODELS],
        ref_template="#/components/schemas/{model}",
    )
    registry = document.setdefault("components", {}).setdefault("schemas", {})
    registry.update(definitions.get("$defs", {}))
    for path in document.get("paths", {}).values():
        for operation in path.values():
            operation.get("responses", {}).pop("422", None)
    registry.pop("HTTPValidationError", None)
    registry.pop("ValidationError", None)
    app.openapi_schema = document
    return document
