"""The gRPC front door: a grpcio asyncio server in l8's own event loop, beside the HTTP one, on
``--dapr-grpc-port`` (daprd's 50001; 0: a port the system picks, logged). It serves Dapr's
service (routers/grpc/api.py) and Layotto's runtime service beside it (routers/grpc/layotto/),
``grpc.health.v1`` (SERVING once the sidecar is ready) and server
reflection (for grpcurl), with messages up to ``--max-body-size`` both ways, and the API token
checked on every call of either service (``dapr-api-token`` metadata) when one is set."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc
import structlog
from dapr.proto.runtime.v1 import dapr_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from routers.grpc.api import SERVICE, Door, dapr_servicer
from routers.grpc.layotto.api import SERVICE as LAYOTTO_SERVICE
from routers.grpc.layotto.api import layotto_servicer
from routers.grpc.layotto.proto import runtime_pb2_grpc
from routers.grpc.proxy import APP_ID, GrpcProxy, ProxySettings
from routers.grpc.proxy_observer import ProxyObserver
from routers.http import Sidecar

if TYPE_CHECKING:
    from observability.metrics import GrpcClientMetrics, GrpcServerMetrics
    from observability.tracing.tracer import Tracer

log = structlog.get_logger(__name__)

TOKEN_HEADER = "dapr-api-token"
MAX_MESSAGE_LIMIT = 2**31 - 1
"""grpcio takes a message size as a C int: a larger --max-body-size (2Gi) caps gRPC messages at it."""
_GUARDED = (f"/{SERVICE}/", f"/{LAYOTTO_SERVICE}/")
"""The API services; health and reflection stay open."""


class CannotListen(Exception):
    """The gRPC port is taken or the address cannot be bound."""


class _TokenCheck(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpcio is untyped
    """daprd's API token on Dapr's and Layotto's services: a call without the token is UNAUTHENTICATED. Health
    and reflection stay open, as probes and tools call them without one."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()

        async def refuse(_request: Any, context: Any) -> None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "authentication error: api token mismatch")

        async def missing(_request: Any, context: Any) -> None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing api token in request metadata")

        self._refuse = grpc.unary_unary_rpc_method_handler(refuse)
        self._missing = grpc.unary_unary_rpc_method_handler(missing)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        metadata = details.invocation_metadata or ()
        if not details.method.startswith(_GUARDED) and not any(key == APP_ID for key, _ in metadata):
            return await continuation(details)  # a proxied call (dapr-app-id) needs the token too
        for key, value in metadata:
            if key == TOKEN_HEADER:
                sent = value.encode() if isinstance(value, str) else value
                if hmac.compare_digest(sent, self._token):
                    return await continuation(details)
                return self._refuse
        return self._missing


class GrpcApi:
    """The server of one sidecar: started by the lifespan once the services are built, stopped
    before they close."""

    def __init__(
        self,
        sidecar: Sidecar,
        host: str,
        port: int,
        max_message_size: int,
        api_token: str | None,
        *,
        api_logging: bool = False,
        tracer: Tracer | None = None,
        metrics: GrpcServerMetrics | None = None,
        proxy: ProxySettings | None = None,
        proxy_metrics: GrpcClientMetrics | None = None,
    ) -> None:
        self.sidecar = sidecar
        self.address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"  # an IPv6 address
        self.port = port
        """The port listened on, once started (the one the system picked for 0)."""
        self._door = Door(sidecar, api_logging=api_logging, tracer=tracer, metrics=metrics)
        interceptors = [_TokenCheck(api_token)] if api_token else []
        limit = min(max_message_size, MAX_MESSAGE_LIMIT)
        self._server = grpc.aio.server(
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                ("grpc.so_reuseport", 0),  # a taken port is an error, not a second listener
            ],
        )
        self._health = health.aio.HealthServicer()
        self._proxy = None
        if proxy is not None:
            observer = ProxyObserver(
                proxy.app_id,
                tracer=tracer,
                server_metrics=metrics,
                client_metrics=proxy_metrics,
                api_logging=api_logging,
            )
            self._proxy = GrpcProxy(sidecar, proxy, observer)
        self._started = False

    async def start(self) -> int:
        server = self._server
        servicer = dapr_servicer(self._door)
        dapr_pb2_grpc.add_DaprServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
        runtime_pb2_grpc.add_RuntimeServicer_to_server(layotto_servicer(self._door), server)  # type: ignore[no-untyped-call]
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        served = (SERVICE, LAYOTTO_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME)
        reflection.enable_server_reflection(served, server)
        if self._proxy is not None:  # after the services: only other methods reach it
            server.add_generic_rpc_handlers((self._proxy,))
        try:
            self.port = server.add_insecure_port(self.address)
        except RuntimeError as exc:
            raise CannotListen(f"cannot listen on {self.address}: {exc}") from None
        if self.port == 0:
            raise CannotListen(f"cannot listen on {self.address}")
        await server.start()
        self._started = True
        await self.serving(False)
        return self.port

    async def serving(self, ready: bool) -> None:
        """What health checks answer: SERVING while the sidecar is ready."""
        state = (
            health_pb2.HealthCheckResponse.SERVING if ready else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in (SERVICE, LAYOTTO_SERVICE, ""):
            await self._health.set(name, state)

    async def stop(self, grace: float) -> None:
        """Ends the open streams (a configuration subscription never ends by itself), then lets
        the calls in flight finish within ``grace`` seconds."""
        if not self._started:
            return
        self._started = False
        await self._health.enter_graceful_shutdown()
        for task in list(self._door.streams):
            task.cancel()
        await self._server.stop(grace)
        if self._proxy is not None:
            await self._proxy.aclose()
