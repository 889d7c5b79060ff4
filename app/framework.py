"""FastAPI, where l8 still needs it: the OpenAPI document of the route table, the documentation
pages (``/docs``, ``/redoc``, ``/openapi.json``) and any route declared ``framework=True``.

The pages load Swagger UI's and ReDoc's scripts and styles from l8 itself (``/docs/assets/``, the
files the fastapi-offline package ships), never from a public CDN: a sidecar's network seldom
reaches one, and FastAPI's default pages are blank without it. ReDoc's bundle is served with its
one hard-coded outside address (the "API docs by Redocly" logo, which no option turns off) pointed
at l8's own favicon, so the page makes no request beyond l8.

Built on first use (FastAPI costs about 7 MB of memory and 0.2 s of import that an idle sidecar
serving only the dispatcher's routes never needs). Its exception handlers answer through the error
door, so a framework route fails exactly as a dispatched one does.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException

from app import __version__
from app import errors as door
from routers import schemas
from routers.table import Route
from services import errors
from services.errors import ApiError, BodyTooLarge

DESCRIPTION = (
    "l8 is a sidecar application runtime. Its HTTP API is Dapr's: routes, bodies, status codes and "
    "error codes follow Dapr's sidecar API, so Dapr apps and SDKs work against it unchanged. Every "
    'error answers `{"errorCode", "message"}` with Dapr\'s status.'
)
OPENAPI, DOCS, REDOC = "/openapi.json", "/docs", "/redoc"
ASSETS = f"{DOCS}/assets"
ASSET_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")
"""What fastapi-offline ships (Swagger UI's bundle and styles, ReDoc's standalone bundle)."""
PAGE_PATHS = frozenset(
    {OPENAPI, DOCS, REDOC, f"{DOCS}/oauth2-redirect", *(f"{ASSETS}/{name}" for name in ASSET_FILES)}
)
"""The paths FastAPI serves itself (swagger's OAuth2 redirect page comes with the docs)."""
REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"


def build_framework(routes: Iterable[Route]) -> FastAPI:
    """FastAPI over ``routes``: the framework ones served, every documented one in the document."""
    table = list(routes)
    app = FastAPIOffline(
        docs_url=DOCS,
        redoc_url=REDOC,
        static_url=ASSETS,
        title="l8",
        version=__version__,
        description=DESCRIPTION,
        redirect_slashes=False,
        openapi_url=OPENAPI,
    )
    # Ahead of the static mount, which would serve the bundle as shipped.
    bundle = APIRoute(
        f"{ASSETS}/redoc.standalone.js", _redoc_bundle, methods=["GET"], include_in_schema=False
    )
    app.router.routes.insert(0, bundle)
    for route in table:
        if route.framework:
            app.router.routes.append(api_route(route))
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(BodyTooLarge, _body_too_large)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_exception)
    app.add_exception_handler(Exception, _unexpected)
    app.openapi = lambda: _openapi(app, table)  # type: ignore[method-assign]
    return app


@cache
def _redoc_bundle_bytes() -> bytes:
    shipped = (files("fastapi_offline") / "static" / "redoc.standalone.js").read_bytes()
    return shipped.replace(REDOC_LOGO, f"{ASSETS}/favicon.png".encode())


async def _redoc_bundle() -> Response:
    return Response(
        _redoc_bundle_bytes(),
        media_type="text/javascript; charset=utf-8",
        headers={"cache-control": "public, max-age=86400"},
    )


def api_route(route: Route) -> APIRoute:
    return APIRoute(route.path, route.handler, methods=list(route.methods), **route.doc)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return door.answer(exc)


async def _unexpected(request: Request, exc: Exception) -> Response:
    # Answers in Dapr's shape; the exception is then re-raised to SidecarMiddleware, which logs it.
    return door.answer(door.internal(exc))


async def _body_too_large(request: Request, exc: Exception) -> Response:
    return door.answer(errors.malformed(str(exc)))


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(
        f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
    )
    return door.answer(errors.malformed(problems or "invalid request"))


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code in (404, 405):
        return door.answer(errors.no_app_id())
    return door.answer(ApiError(exc.status_code, "ERR_BAD_REQUEST", str(exc.detail)))


def _openapi(app: FastAPI, routes: list[Route]) -> dict[str, Any]:
    """FastAPI's document of the route table, plus the request-body models the handlers parse
    themselves (and every model a route's documentation refers to), minus the 422 answers FastAPI
    assumes (l8 never sends one)."""
    if app.openapi_schema:
        return app.openapi_schema
    documented = [api_route(route) for route in routes if route.documented]
    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=documented
    )
    _, definitions = models_json_schema(
        [
            (model, "validation")
            for model in {
                **dict.fromkeys(schemas.REQUEST_MODELS),
                **dict.fromkeys(schemas.REFERENCED.values()),
            }
        ],
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
