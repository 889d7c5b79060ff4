"""The channel to this sidecar's own app (``--app-port``), owned by the runtime: pub/sub delivery,
subscription discovery, input binding events and health probes go through it (service invocation
of an HTTP app streams through mesh/proxy.py).

:class:`AppConnection` is what the services need of it, one method per kind of call, each answered
in the HTTP contract's shape (a status and a body as the app's HTTP routes answer them): l8's own
HTTP channel below, or the gRPC one (routers/grpc/app_callback.py, ``--app-protocol grpc``), which
calls the app's ``AppCallback`` service and answers in the same shape, so the services read one
contract whatever the app speaks.

Its calls are small and mostly one at a time, so it uses l8's own keep-alive HTTP/1.1 client
(mesh/http_client.py: about 95 us of CPU a call against aiohttp's 210 us, docs/performance.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote

from multidict import CIMultiDict, CIMultiDictProxy

from mesh.app_pipeline import AppPipeline, Headers, through
from mesh.http_client import Answer, HttpClient, HttpError
from observability.metrics import HttpClientMetrics


class AppUnreachable(Exception):
    """The app could not be reached or did not answer (refused, reset, timed out)."""


@dataclass(slots=True, frozen=True)
class BindingAnswer:
    """What a gRPC app's ``OnBindingEvent`` answer asks beyond taking the event (daprd's
    ``bindings.AppResponse`` as its gRPC channel fills it): send ``data`` to the output bindings
    ``to``, one after the other or all at once (``parallel``). An HTTP app's answer asks nothing:
    daprd reads no instructions from its body."""

    to: tuple[str, ...]
    data: bytes
    parallel: bool


@dataclass(slots=True, frozen=True)
class AppResponse:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    binding: BindingAnswer | None = None
    """An input binding event's answer from a gRPC app that names output bindings."""


SUBSCRIBE_PATH = "/dapr/subscribe"


class AppConnection(Protocol):
    """What the services call on the app; every method raises :class:`AppUnreachable` when the app
    could not be reached or did not answer."""

    app_id: str
    port: int | None
    base_url: str | None

    @property
    def configured(self) -> bool: ...

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the whole call's deadline
    ) -> AppResponse:
        """A call of one of the app's methods (``path``, with its query), as an invocation."""
        ...

    async def read_subscriptions(self, headers: Mapping[str, str], timeout: float) -> AppResponse:  # noqa: ASYNC109
        """The app's programmatic subscriptions: ``GET /dapr/subscribe``'s answer."""
        ...

    async def deliver_event(
        self, path: str, body: bytes, headers: Mapping[str, str], topic: str = ""
    ) -> AppResponse:
        """One pub/sub message (``body``: the CloudEvent JSON) for the route ``path`` of the
        subscription to ``topic`` (a dead-letter copy still says its first topic inside)."""
        ...

    async def deliver_bulk(self, path: str, body: bytes, headers: Mapping[str, str]) -> AppResponse:
        """A batch of a bulk subscription (``body``: Dapr's bulk envelope JSON)."""
        ...

    async def binding_wanted(self, name: str, route: str, timeout: float) -> AppResponse:  # noqa: ASYNC109
        """Whether the app reads the input binding: ``OPTIONS route``'s answer."""
        ...

    async def deliver_binding(
        self, name: str, route: str, body: bytes, headers: Mapping[str, str]
    ) -> AppResponse:
        """One input binding event for the binding ``name`` (``route`` over HTTP)."""
        ...

    async def deliver_job(self, name: str, data: bytes, timeout: float | None) -> AppResponse:  # noqa: ASYNC109
        """A job's trigger (``data``: its data as JSON)."""
        ...

    async def probe(self, path: str, timeout: float) -> int:  # noqa: ASYNC109 - the probe's deadline
        """A health probe: an HTTP status."""
        ...

    async def listening(self, timeout: float = 0.5) -> bool:  # noqa: ASYNC109 - a connect deadline
        """Whether the app's port accepts TCP connections right now."""
        ...


class AppChannel:
    def __init__(
        self,
        app_id: str,
        port: int | None,
        *,
        protocol: str = "http",
        address: str = "127.0.0.1",
        token: str | None = None,
        max_connections: int = 256,
        pipeline: AppPipeline | None = None,
    ) -> None:
        self.app_id = app_id
        self.port = port
        self.base_url = f"{protocol}://{address}:{port}" if port is not None else None
        self._token = token
        self._max_connections = max_connections
        self._client: HttpClient | None = None
        self.pipeline = pipeline
        """The ``appHttpPipeline`` every call goes through (None: none configured)."""
        self.metrics: HttpClientMetrics | None = None
        """Set by the runtime when metrics are on: each call's status and round trip."""

    @property
    def configured(self) -> bool:
        """Whether l8 has an app to talk to (``--app-port`` given)."""
        return self.base_url is not None

    async def start(self) -> None:
        if self._client is None and self.configured:
            assert self.port is not None
            scheme = self.base_url.split("://", 1)[0] if self.base_url else "http"
            self._client = HttpClient(scheme, self._host(), self.port, max_idle=self._max_connections)

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the whole call's deadline
    ) -> AppResponse:
        """One call to the app; ``path`` gets a leading ``/`` if it lacks one. Adds
        ``dapr-api-token`` when APP_API_TOKEN is set. Raises :class:`AppUnreachable` on any
        transport failure or timeout; every HTTP status is a response."""
        if self._client is None or self.base_url is None:
            raise AppUnreachable("no app channel: l8 was started without --app-port")
        outgoing = list((headers or {}).items())
        if self._token is not None:
            outgoing = [(name, value) for name, value in outgoing if name.lower() != "dapr-api-token"]
            outgoing.append(("dapr-api-token", self._token))
        if not path.startswith("/"):
            path = "/" + path
        if self.pipeline is not None:
            return await self._through_pipeline(self.pipeline, method, path, outgoing, body or b"", timeout)
        answer = await self._exchange(self._client, method, path, outgoing, body, timeout)
        received = CIMultiDict((n.decode("latin-1"), v.decode("latin-1")) for n, v in answer.headers)
        return AppResponse(answer.status, CIMultiDictProxy(received), answer.body)

    async def read_subscriptions(self, headers: Mapping[str, str], timeout: float) -> AppResponse:  # noqa: ASYNC109
        return await self.request("GET", SUBSCRIBE_PATH, headers=headers, timeout=timeout)

    async def deliver_event(
        self, path: str, body: bytes, headers: Mapping[str, str], topic: str = ""
    ) -> AppResponse:
        return await self.request("POST", path, body=body, headers=headers)

    async def deliver_bulk(self, path: str, body: bytes, headers: Mapping[str, str]) -> AppResponse:
        return await self.request("POST", path, body=body, headers=headers)

    async def binding_wanted(self, name: str, route: str, timeout: float) -> AppResponse:  # noqa: ASYNC109
        return await self.request("OPTIONS", route, timeout=timeout)

    async def deliver_binding(
        self, name: str, route: str, body: bytes, headers: Mapping[str, str]
    ) -> AppResponse:
        return await self.request("POST", route, body=body, headers=headers)

    async def deliver_job(self, name: str, data: bytes, timeout: float | None) -> AppResponse:  # noqa: ASYNC109
        path = "/job/" + quote(name, safe="!$&'()*+,;=:@-._~")
        headers = {"content-type": "application/json"}
        return await self.request("POST", path, body=data, headers=headers, timeout=timeout)

    async def _exchange(
        self,
        client: HttpClient,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
        timeout: float | None,  # noqa: ASYNC109 - the call's deadline
    ) -> Answer:
        """One exchange with the app, recorded in the client metrics; AppUnreachable when it fails."""
        started = time.perf_counter()
        try:
            answer = await client.request(method, target, headers, body, timeout)
        except HttpError as exc:
            if self.metrics is not None:
                self.metrics.record(method, target, 0, time.perf_counter() - started)
            raise AppUnreachable(f"app at {self.base_url} did not answer {method} {target}: {exc}") from None
        if self.metrics is not None:
            self.metrics.record(method, target, answer.status, time.perf_counter() - started)
        return answer

    async def _through_pipeline(
        self,
        pipeline: AppPipeline,
        method: str,
        path: str,
        headers: list[tuple[str, str]],
        body: bytes,
        timeout: float | None,  # noqa: ASYNC109 - the app's deadline, as without a pipeline
    ) -> AppResponse:
        client = self._client
        assert client is not None

        async def call(method: str, target: str, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
            outgoing = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in headers]
            answer = await self._exchange(client, method, target, outgoing, body or None, timeout)
            return answer.status, list(answer.headers), answer.body

        raw = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]
        status, answer_headers, content = await through(pipeline, method, path, raw, body, call)
        received = CIMultiDict((n.decode("latin-1"), v.decode("latin-1")) for n, v in answer_headers)
        return AppResponse(status, CIMultiDictProxy(received), content)

    async def probe(self, path: str, timeout: float) -> int:  # noqa: ASYNC109 - the probe's deadline
        """A health probe, ``GET path``: the status. As daprd's, it carries no app token and skips
        the app pipeline. Raises :class:`AppUnreachable` when no answer came within ``timeout``."""
        if self._client is None or self.base_url is None:
            raise AppUnreachable("no app channel: l8 was started without --app-port")
        target = path if path.startswith("/") else "/" + path
        return (await self._exchange(self._client, "GET", target, [], None, timeout)).status

    async def listening(self, timeout: float = 0.5) -> bool:  # noqa: ASYNC109 - a connect deadline
        """Whether the app's port accepts TCP connections right now."""
        if self.port is None:
            return False
        return await port_open(self._host(), self.port, timeout)

    def _host(self) -> str:
        assert self.base_url is not None
        return self.base_url.split("://", 1)[1].rsplit(":", 1)[0]


async def port_open(host: str, port: int, timeout: float) -> bool:  # noqa: ASYNC109 - a connect deadline
    """Whether ``host:port`` accepts a TCP connection within ``timeout`` (closed at once)."""
    # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that
    # arrives as the connect completes, and a poller built on it then never stops.
    with contextlib.suppress(OSError, TimeoutError):
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True
    return False
