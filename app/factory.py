"""create_app(): l8's ASGI application, assembled from Settings.

uvicorn's HTTP requests go to the middleware and the dispatcher built from the route table; FastAPI
(app/framework.py) is built on first use, for the documentation pages and the routes declared
``framework=True``. The lifespan builds the runtime once and hands its services to every request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

import structlog
from starlette.datastructures import State
from starlette.types import Receive, Scope, Send

from app.dispatcher import Dispatcher
from app.middleware import SidecarMiddleware
from app.runtime import Runtime
from app.settings import Settings
from app.startup import StartupError
from mesh.tcpcopy import TcpCopy
from observability.recent_errors import RecentErrors
from routers.api import FALLBACK, ROUTES, UNCAPPED_UPLOADS
from routers.http import SIDECAR, Sidecar
from routers.table import Route
from services.lifecycle import Readiness, ShutdownSwitch

if TYPE_CHECKING:
    from fastapi import FastAPI

    from routers.grpc.server import GrpcApi

log = structlog.get_logger(__name__)

# FastAPI's own pages (app/framework.py PAGE_PATHS), known here without importing it.
_ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")
FRAMEWORK_PAGES = frozenset(
    {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
    | {f"/docs/assets/{name}" for name in _ASSETS}
)


class SidecarApp:
    """The ASGI application: HTTP through the middleware and the dispatcher; the lifespan as the
    ASGI lifespan protocol (uvicorn's) or :meth:`lifespan` (l8's server and the tests)."""

    def __init__(
        self, settings: Settings, routes: tuple[Route, ...], fallback: Route, tcp_copy: TcpCopy | None
    ):
        self.settings = settings
        self.state = State()
        """``state.runtime``: the started runtime, for tests and tools that look inside."""
        self.sidecar = Sidecar(Readiness(settings.app_id), ShutdownSwitch())
        self._routes = (*routes, fallback)
        self._tcp_copy = tcp_copy
        self._framework: FastAPI | None = None
        self.recent_errors = RecentErrors()
        """The last error answers, recorded by the middleware and the dispatcher (the dashboard's)."""
        self.dispatcher = Dispatcher(
            routes, fallback, self._serve_framework, FRAMEWORK_PAGES, recent_errors=self.recent_errors
        )
        self.sidecar_middleware: dict[str, Any] = {
            "api_token": settings.api_token.get_secret_value() if settings.api_token else None,
            "mesh_token": settings.mesh_token.get_secret_value() if settings.mesh_token else None,
            "max_body_size": settings.max_body_size,
            "uncapped": UNCAPPED_UPLOADS,
            "api_logging": settings.enable_api_logging,
        }
        self._entry = SidecarMiddleware(
            self.dispatcher, **self.sidecar_middleware, recent_errors=self.recent_errors
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[SIDECAR] = self.sidecar
            await self._entry(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan_protocol(receive, send)
        else:  # websockets: l8 serves none
            await self._serve_framework(scope, receive, send)

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        """Builds the runtime once, hands its services to every request, marks the sidecar ready;
        on exit, not ready first, then everything closed in reverse."""
        sidecar = self.sidecar
        async with Runtime(
            self.settings, tcp_copy=self._tcp_copy, recent_errors=self.recent_errors
        ) as runtime:
            self.state.runtime = runtime
            sidecar.services = runtime.services
            self.dispatcher.limits = runtime.rate_limits or None
            self.dispatcher.pipeline = runtime.http_pipeline or None
            self._entry.metrics = runtime.metrics.http_server if runtime.metrics else None
            self._entry.tracer = runtime.tracer
            grpc_api = None
            try:
                grpc_api = await self._start_grpc()
                sidecar.readiness.ready = True
                if grpc_api is not None:
                    await grpc_api.serving(True)
                yield
            finally:  # before anything closes: a late request gets "not ready", never a closed store
                sidecar.readiness.ready = False
                if grpc_api is not None:
                    await grpc_api.stop(self.settings.graceful_shutdown_seconds)
                    self.state.grpc_api = None
                sidecar.services = None
                self.dispatcher.limits = None
                self.dispatcher.pipeline = None
                self._entry.metrics = None
                self._entry.tracer = None
                del self.state.runtime

    async def _start_grpc(self) -> GrpcApi | None:
        """Dapr's gRPC API (routers/grpc/), unless switched off; ``state.grpc_api`` holds it, with
        the port it listens on."""
        settings, runtime = self.settings, self.state.runtime
        if not settings.enable_grpc:
            self.state.grpc_api = None
            return None
        from app.actor_assembly import sidecar_auth
        from routers.grpc.proxy import ProxySettings
        from routers.grpc.server import CannotListen, GrpcApi

        api_token = settings.api_token.get_secret_value() if settings.api_token else None
        proxy = ProxySettings(
            settings.app_id,
            app_address=settings.app_channel_address,
            app_port=settings.app_port if settings.app_protocol == "grpc" else None,
            app_token=settings.app_api_token.get_secret_value() if settings.app_api_token else None,
            peer_auth=("dapr-api-token", api_token) if api_token else None,
            lookup_auth=sidecar_auth(settings),
            max_message_size=min(settings.max_body_size, 2**31 - 1),
        )

        grpc_api = GrpcApi(
            self.sidecar,
            settings.host,
            settings.grpc_port,
            settings.max_body_size,
            api_token,
            api_logging=settings.enable_api_logging,
            tracer=runtime.tracer,
            metrics=runtime.metrics.grpc_server if runtime.metrics else None,
            proxy=proxy,
            proxy_metrics=runtime.metrics.grpc_client if runtime.metrics else None,
        )
        try:
            port = await grpc_api.start()
        except CannotListen as exc:
            raise StartupError(f"grpc_port (--dapr-grpc-port): {exc}") from None
        self.state.grpc_api = grpc_api
        runtime.services.metadata.grpc_port = port  # how other sidecars proxy gRPC calls to this app
        log.info("gRPC API listening", address=f"{settings.host}:{port}")
        return grpc_api

    def framework(self) -> FastAPI:
        if self._framework is None:
            from app.framework import build_framework

            self._framework = build_framework(self._routes)
        return self._framework

    def openapi(self) -> dict[str, Any]:
        document: dict[str, Any] = self.framework().openapi()
        return document

    async def _serve_framework(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.framework()(scope, receive, send)

    async def _lifespan_protocol(self, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "lifespan.startup":
            return
        context: AbstractAsyncContextManager[None] = self.lifespan()
        try:
            await context.__aenter__()
        except BaseException as exc:
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            raise
        await send({"type": "lifespan.startup.complete"})
        while (await receive())["type"] != "lifespan.shutdown":
            pass
        try:
            await context.__aexit__(None, None, None)
        except BaseException as exc:
            await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
            raise
        await send({"type": "lifespan.shutdown.complete"})


def create_app(settings: Settings | None = None, *, tcp_copy: TcpCopy | None = None) -> SidecarApp:
    """The app for ``settings``; nothing starts until its lifespan runs. ``tcp_copy`` is the copier
    the server's protocol feeds, when TCP copy is on."""
    return SidecarApp(settings or Settings.load(), ROUTES, FALLBACK, tcp_copy)
