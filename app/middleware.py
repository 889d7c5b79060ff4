"""The sidecar's single ASGI middleware (one layer, because every layer costs on the hot path):
path clean-up as Dapr's router does it, the request id and trace id, ``dapr-api-token`` auth, the
body size limit and the last-resort error answer.

Every log line written while a request is served carries its ``request_id`` and ``trace_id``. A
request without a valid W3C ``traceparent`` is given one here (a new sampled trace, its invalid
``tracestate`` dropped), so the trace id in its log lines is the one its outgoing calls, events and
bindings carry on. With tracing on (a ``spec.tracing`` sampling rate above 0) it opens the call's
server span instead (observability/tracing), makes it current, answers its ``traceparent``, and
refuses an invalid ``baggage`` header as daprd does; with tracing off none of that runs. It wraps
the whole FastAPI stack (see app/factory.py), so a refused request costs no framework work at all."""

from __future__ import annotations

import hmac
import itertools
import logging
import os
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import internal, send_error
from mesh.proxy import FORWARDED_BY, MESH_TOKEN, VOUCHED
from observability.metrics import HttpServerMetrics
from observability.recent_errors import RecentErrors
from observability.tracing import server_span_attributes, server_span_name, valid_baggage
from routers.dashboard import PAGE_PATHS
from services.errors import BodyTooLarge
from services.log_levels import PROCESS_LEVELS
from services.random_ids import random_hex
from services.trace_context import parse_traceparent

if TYPE_CHECKING:
    from observability.tracing.tracer import ServerSpan, Tracer

API_LOGGER = "l8.api"
log = structlog.get_logger(API_LOGGER)

DAPR_PROBES = frozenset({"/v1.0/healthz", "/v1.0/healthz/outbound"})
ACTUATOR_PROBES = frozenset({"/actuator/health/liveness", "/actuator/health/readiness"})
_NAMING_AN_APP = (b"dapr-app-id", b"authorization")


def names_an_app(scope: Scope) -> bool:
    """A request that names an app to invoke (``dapr-app-id``, or basic auth's form of it)."""
    return any(name in _NAMING_AN_APP for name, _ in scope["headers"])


def is_probe(scope: Scope) -> bool:
    """GET on a health probe: no API token (Dapr exempts its healthz, and Kubernetes probes send
    none), no wasm pipeline. The actuator's paths are an app's own too (Spring Boot's): a request
    there naming an app is an invocation like any other, token and pipeline included."""
    if scope["method"] != "GET":
        return False
    path = scope["path"]
    return path in DAPR_PROBES or (path in ACTUATOR_PROBES and not names_an_app(scope))


def is_public_page(scope: Scope) -> bool:
    """GET on the dashboard's page or its files: they hold no data (the page asks for the token
    and sends it with the JSON it polls), so a browser can load them before it has the token."""
    return scope["method"] == "GET" and scope["path"] in PAGE_PATHS and not names_an_app(scope)


ROUTE_TEMPLATE = "l8.route"
"""Scope key: the template of the route that took the request (set by the dispatcher), the
``path`` label of the HTTP server metrics."""
_MESH_TOKEN = MESH_TOKEN.encode()
_FORWARDED_BY = FORWARDED_BY.encode()
_UNAUTHORIZED = b"invalid api token\n"
_TRACE_HEADERS = (b"traceparent", b"tracestate")
_INVALID_BAGGAGE = b"invalid baggage header\n"
_TWICE = b""  # a token header sent more than once: never equal to a configured token


class RequestIds:
    """Ids unique across processes and restarts: a random per-process prefix and a counter
    (uuid4 per request cost 11 us, 4% of a state GET)."""

    def __init__(self) -> None:
        self._prefix = os.urandom(6).hex()
        self._next = itertools.count(1).__next__

    def __call__(self) -> str:
        return f"{self._prefix}-{self._next():x}"


def clean_path(path: str) -> str:
    """``//a///b/`` -> ``/a/b``, as Dapr's router sees it; never a redirect."""
    if "//" in path:
        path = "/" + "/".join(part for part in path.split("/") if part)
    if len(path) > 1 and path.endswith("/"):
        path = path.rstrip("/") or "/"
    return path


class SidecarMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        api_token: str | None,
        max_body_size: int,
        api_logging: bool = False,
        mesh_token: str | None = None,
        uncapped: tuple[tuple[str, str], ...] = (),
        recent_errors: RecentErrors | None = None,
    ) -> None:
        self.app = app
        self.recent_errors = recent_errors if recent_errors is not None else RecentErrors()
        """The refusals and last-resort errors answered here, for the dashboard."""
        self.api_token = api_token.encode() if api_token else None
        self.mesh_token = mesh_token.encode() if mesh_token else None
        self.max_body_size = max_body_size
        self.uncapped = uncapped
        """(verb, path prefix) of requests whose bodies stream to a store, uncapped (file uploads)."""
        self.api_logging = api_logging
        self.new_request_id = RequestIds()
        self.metrics: HttpServerMetrics | None = None
        """The started runtime's HTTP server metrics; set by the lifespan when metrics are on."""
        self.tracer: Tracer | None = None
        """The started runtime's tracer; set by the lifespan when tracing is on (``spec.tracing``
        with a sampling rate above 0). None: no span, no context, one check per request."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Cleaned on the escaped path, as Dapr does: an encoded slash (%2F) is part of a key.
        raw_path = scope.get("raw_path")
        if raw_path and (b"//" in raw_path or (raw_path.endswith(b"/") and len(raw_path) > 1)):
            cleaned = clean_path(raw_path.decode("latin-1"))
            scope["raw_path"] = cleaned.encode("latin-1")
            scope["path"] = unquote(cleaned)

        request_id = token = length = mesh = traceparent = tracestate = baggage = None
        for name, value in scope["headers"]:
            if name == b"traceparent":
                traceparent = value
            elif name == b"tracestate":
                tracestate = value
            elif name == b"x-request-id":
                request_id = value.decode("latin-1")
            elif name == b"dapr-api-token":
                # Sent twice, neither counts: the last one winning let (wrong, right) through.
                token = value if token is None else _TWICE
            elif name == b"content-length":
                length = value
            elif name == _MESH_TOKEN:
                mesh = value if mesh is None else _TWICE
            elif name == b"baggage":
                baggage = value if baggage is None else baggage + b"," + value
        vouched = False
        if self.mesh_token is not None:  # another sidecar of the fleet, or not
            vouched = mesh is not None and hmac.compare_digest(mesh, self.mesh_token)
            scope[VOUCHED] = vouched
        request_id = request_id or self.new_request_id()
        tracer = self.tracer
        server_span: ServerSpan | None = None
        if tracer is not None and not is_probe(scope):  # probes make no spans (daprd: healthz)
            if baggage is not None and not valid_baggage(baggage.decode("latin-1")):
                await _plain(send, 400, _INVALID_BAGGAGE)
                return
            server_span = _start_server_span(tracer, scope, traceparent, tracestate)
            trace_id = server_span.ids[0]
        elif (
            parent := parse_traceparent(traceparent.decode("latin-1")) if traceparent is not None else None
        ) is None:  # a new sampled trace, as services/trace_context.py starts one
            ids = random_hex(24)
            trace_id = ids[:32]
            new_parent = (b"traceparent", f"00-{trace_id}-{ids[32:]}-01".encode())
            headers = scope["headers"]
            if traceparent is None and tracestate is None:
                scope["headers"] = [*headers, new_parent]
            else:  # an invalid parent's tracestate goes with it (W3C)
                scope["headers"] = [*((n, v) for n, v in headers if n not in _TRACE_HEADERS), new_parent]
        else:
            trace_id = parent[0]
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id, trace_id=trace_id)

        status = 0
        added = [(b"x-request-id", request_id.encode("latin-1"))]
        if server_span is not None:  # daprd answers with the traceparent of the call's span
            added.append((b"traceparent", _traceparent(server_span.ids)))

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), *added]
            await send(message)

        # Dapr exempts only GET on the health paths (isRouteExcludedFromAPITokenAuth).
        # Each call is logged at info with --enable-api-logging, else at debug once the l8.api
        # logger is set to debug (POST /actuator/logger).
        logged = self.api_logging or PROCESS_LEVELS.threshold(API_LOGGER) <= logging.DEBUG
        metrics = self.metrics
        started = time.perf_counter() if logged or metrics is not None else 0.0
        if self.api_token is not None and not vouched and not is_probe(scope) and not is_public_page(scope):
            if token is None or not hmac.compare_digest(token, self.api_token):
                self.recent_errors.record(401, "", "invalid api token", scope["method"], scope["path"])
                await _plain(send_with_id, 401, _UNAUTHORIZED)
                if metrics is not None:
                    metrics.record(scope["method"], None, scope["path"], 401, time.perf_counter() - started)
                if server_span is not None:
                    server_span.finish(401)
                return
            scope["headers"] = [(n, v) for n, v in scope["headers"] if n != b"dapr-api-token"]

        limit = self.max_body_size
        if self.uncapped and _uncapped(scope, self.uncapped):
            pass
        elif length is not None and length.isdigit() and int(length) > limit:
            receive = _refuse(limit)
        elif scope["method"] not in ("GET", "HEAD"):
            receive = _limited(receive, limit)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            log.exception("unhandled error", method=scope["method"], path=scope["path"])
            if status == 0:
                error = internal(exc)
                route = scope.get(ROUTE_TEMPLATE) or scope["path"]
                self.recent_errors.record(error.status, error.code, error.message, scope["method"], route)
                await send_error(send_with_id, error)
        finally:
            if server_span is not None:
                server_span.finish(status)
        if metrics is not None:
            metrics.record(
                scope["method"],
                scope.get(ROUTE_TEMPLATE),
                scope["path"],
                status,
                time.perf_counter() - started,
            )
        if logged:
            (log.info if self.api_logging else log.debug)(
                "api call",
                method=scope["method"],
                path=scope["path"],
                status=status,
                ms=round((time.perf_counter() - started) * 1000, 3),
            )


def _start_server_span(
    tracer: Tracer, scope: Scope, traceparent: bytes | None, tracestate: bytes | None
) -> ServerSpan:
    """The call's server span, under the caller's trace context; the request's ``traceparent``
    (and ``tracestate``) become the span's, so whatever the request calls continues under it."""
    carrier = {}
    if traceparent is not None:
        carrier["traceparent"] = traceparent.decode("latin-1")
        if tracestate is not None:
            carrier["tracestate"] = tracestate.decode("latin-1")
    method, path = scope["method"], scope["path"]
    forwarded = any(name == _FORWARDED_BY for name, _ in scope["headers"])
    span = tracer.server(
        server_span_name(path, forwarded),
        carrier,
        server_span_attributes(method, path, forwarded, scope["headers"]),
        "server" if forwarded else "client",
    )
    headers = [(n, v) for n, v in scope["headers"] if n not in _TRACE_HEADERS]
    headers.append((b"traceparent", _traceparent(span.ids)))
    if span.ids[3]:
        headers.append((b"tracestate", span.ids[3].encode("latin-1")))
    scope["headers"] = headers
    return span


def _traceparent(ids: tuple[str, str, str, str]) -> bytes:
    return f"00-{ids[0]}-{ids[1]}-{ids[2]}".encode()


def _uncapped(scope: Scope, uncapped: tuple[tuple[str, str], ...]) -> bool:
    method, path = scope["method"], scope["path"]
    return any(method == verb and path.startswith(prefix) for verb, prefix in uncapped)


def _refuse(limit: int) -> Receive:
    async def receive() -> Message:
        raise BodyTooLarge(limit)

    return receive


def _limited(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def limited() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge(limit)
        return message

    return limited


async def _plain(send: Send, status: int, body: bytes) -> None:
    await _answer(send, status, body, b"text/plain; charset=utf-8")


async def _answer(send: Send, status: int, body: bytes, content_type: bytes) -> None:
    headers: list[Any] = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
