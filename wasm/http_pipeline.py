"""Dapr's ``middleware.http.wasm`` in a Configuration's ``spec.httpPipeline``: each handler of that
type runs its http-wasm guest (wasm/http_wasm.py) on every request the sidecar serves, in the
pipeline's order, after the rate limits and before the route is matched, so a guest can rewrite
the method, URI (path and query), headers or body the router then sees, answer the request itself
(``next=0``), or pass it on and see (with ``buffer_response``, rewrite) the answer.

In ``spec.appHttpPipeline`` the same guests run on the calls this sidecar makes to its own app
(:class:`AppHttpPipeline`, applied by mesh/app_pipeline.py on the app channel and on service
invocation delivered to the app): in the pipeline's order on the request, in reverse on the
answer, as Dapr does; a guest that answers keeps the call from reaching the app. A guest that
fails answers 500 with Dapr's error body, as the app would have been seen to fail.

Metadata (Dapr's): ``url`` (``file://path`` or a plain path; ``http(s)://`` refused: l8 fetches no
code over the network), ``guestConfig`` (the bytes ``get_config`` answers). l8's: ``timeout`` (a
Go duration, default ``1s``: a guest call past it is stopped and the request answered 500),
``maxMemory`` (default ``64Mi``), ``poolSize`` (idle instances kept, default ``8``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import unquote

import structlog
from pydantic import ValidationError

from components.errors import MetadataError
from components.metadata import Duration, decode
from mesh.asgi import ASGIApp, Message, Receive, Scope, Send, read_body, request_target
from mesh.errors import SettingsError
from services import errors
from services.errors import ApiError
from wasm.http_wasm import FEATURE_BUFFER_RESPONSE, Exchange, GuestError, HttpWasmGuest
from wasm.module_metadata import WasmModuleMetadata
from wasm.wasi_command import module_file

WASM_MIDDLEWARE = "middleware.http.wasm"
log = structlog.get_logger("l8.wasm.http")


class WasmMiddlewareMetadata(WasmModuleMetadata):
    guestConfig: str = ""
    timeout: Duration = timedelta(seconds=1)
    maxMemory: str = "64Mi"
    poolSize: int = 8


def load_guests(
    configurations: Iterable[tuple[Mapping[str, Any], str]],
    middleware: Mapping[str, tuple[str, Mapping[str, str], str]],
    pipeline: str = "httpPipeline",
) -> list[HttpWasmGuest]:
    """The guests of every wasm handler in the configurations' ``pipeline`` (``httpPipeline`` or
    ``appHttpPipeline``), in order, each compiled and instantiated once (blocking: run it in a
    worker thread). SettingsError names the component and what is wrong. Handler names were
    checked by the rate limits' reader already."""
    guests: list[HttpWasmGuest] = []
    for spec, _ in configurations:
        for handler in (spec.get(pipeline) or {}).get("handlers") or []:
            found = middleware.get(str(handler.get("name", ""))) if isinstance(handler, Mapping) else None
            if found is None or found[0] != WASM_MIDDLEWARE:
                continue
            guests.append(_guest(str(handler["name"]), found[1], found[2]))
    return guests


def _guest(name: str, metadata: Mapping[str, str], source: str) -> HttpWasmGuest:
    where = f"{source}: component {name!r}"
    try:
        settings = decode(WasmMiddlewareMetadata, metadata)
        path = module_file(settings.url)
        with open(path, "rb") as file:
            binary = file.read()
        guest = HttpWasmGuest(
            name, binary, settings.guestConfig.encode(), settings.limits, max(0, settings.poolSize)
        )
        guest.warm_up()
    except MetadataError as exc:
        raise SettingsError(f"{where}: {exc}") from None
    except (ValueError, ValidationError) as exc:
        raise SettingsError(f"{where}: metadata field 'url': {exc}") from None
    except OSError as exc:
        raise SettingsError(
            f"{where}: metadata field 'url': {exc.strerror or exc}: {metadata.get('url')}"
        ) from None
    except GuestError as exc:
        raise SettingsError(f"{where}: metadata field 'url': {exc}") from None
    return guest


class HttpPipeline:
    """The wasm handlers of ``httpPipeline`` around the rest of the request's way."""

    def __init__(self, guests: Iterable[HttpWasmGuest]) -> None:
        self.guests = tuple(guests)

    def __bool__(self) -> bool:
        return bool(self.guests)

    async def __call__(self, scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
        for guest in reversed(self.guests):
            app = _wrapped(guest, app)
        await app(scope, receive, send)


class AppHttpPipeline(HttpPipeline):
    """The wasm handlers of ``appHttpPipeline`` around a call to the app. A failing guest answers
    the call 500 with Dapr's error body (there is no client to render it for: the caller is this
    sidecar's own delivery or invocation, which handles a 500 as the app's)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await super().__call__(scope, receive, tracked, app)
        except ApiError as exc:
            if started:
                raise
            log.warning("wasm middleware failed on a call to the app", error=exc.message)
            body = exc.body()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": exc.status, "headers": headers})
            await send({"type": "http.response.body", "body": body})


def _wrapped(guest: HttpWasmGuest, app: ASGIApp) -> ASGIApp:
    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        await _run(guest, app, scope, receive, send)

    return handle


async def _run(guest: HttpWasmGuest, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    exchange = Exchange(
        method=scope["method"],
        uri=request_target(scope),
        protocol=f"HTTP/{scope.get('http_version', '1.1')}",
        source=_source(scope),
        request_headers=list(scope["headers"]),
        request_body=await read_body(receive),
    )
    instance = guest.idle()  # a pooled one without a thread hop; a new one is made in a thread
    try:
        if instance is None:
            instance = await asyncio.to_thread(guest.acquire)
        go_on, ctx = await asyncio.to_thread(instance.handle_request, exchange)
    except GuestError as exc:
        raise errors.wasm_middleware_failed(guest.name, str(exc)) from None
    if not go_on:
        guest.give_back(instance)
        await _answer(send, exchange)
        return
    inner = _rewritten(scope, exchange) if exchange.changed else scope
    buffered = bool(exchange.features & FEATURE_BUFFER_RESPONSE)
    recorder = _Recorder(exchange, None if buffered else send)
    failed = True
    try:
        await app(inner, _replay(exchange.request_body, receive), recorder.send)
        failed = False
    finally:
        try:
            await asyncio.to_thread(instance.handle_response, exchange, ctx, failed)
        except GuestError as exc:
            if not failed and (buffered or not recorder.started):
                raise errors.wasm_middleware_failed(guest.name, str(exc)) from None
            log.warning("wasm middleware failed after the answer was sent", guest=guest.name, error=str(exc))
        else:
            guest.give_back(instance)
    if buffered:
        await _answer(send, exchange)


class _Recorder:
    """Keeps the next handler's status, headers (and, buffered, body) in the exchange; passes the
    messages on unless buffering."""

    def __init__(self, exchange: Exchange, send: Send | None) -> None:
        self.exchange = exchange
        self.forward = send
        self.started = False
        self.chunks: list[bytes] = []

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            self.exchange.status = message["status"]
            self.exchange.response_headers = list(message.get("headers", ()))
        elif message["type"] == "http.response.body" and self.forward is None:
            self.chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                self.exchange.response_body = b"".join(self.chunks)
        if self.forward is not None:
            await self.forward(message)


async def _answer(send: Send, exchange: Exchange) -> None:
    headers = [
        (k, v)
        for k, v in exchange.response_headers
        if k.lower() not in (b"content-length", b"transfer-encoding")
    ]
    headers.append((b"content-length", str(len(exchange.response_body)).encode()))
    await send({"type": "http.response.start", "status": exchange.status, "headers": headers})
    await send({"type": "http.response.body", "body": exchange.response_body})


def _rewritten(scope: Scope, exchange: Exchange) -> Scope:
    path, _, query = exchange.uri.partition("?")
    headers = [
        (k, v)
        for k, v in exchange.request_headers
        if k.lower() not in (b"content-length", b"transfer-encoding")
    ]
    if exchange.request_body or exchange.method not in ("GET", "HEAD"):
        headers.append((b"content-length", str(len(exchange.request_body)).encode()))
    return {
        **scope,
        "method": exchange.method,
        "raw_path": path.encode("latin-1"),
        "path": unquote(path),
        "query_string": query.encode("latin-1"),
        "headers": headers,
    }


def _source(scope: Scope) -> str:
    client = scope.get("client")
    if not client:
        return ""
    host, port = client[0], client[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _replay(body: bytes, receive_more: Receive) -> Receive:
    """The (possibly rewritten) body once, then the connection's own receive (which waits for the
    client to go away, as a handler watching for a disconnect expects)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return await receive_more()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive
