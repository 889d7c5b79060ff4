"""A recording subscriber app for tests: a real HTTP server that l8 delivers messages to.

It serves ``GET /dapr/subscribe`` with the list it was given (and 404 to ``GET /dapr/config``: it
hosts no actors), records every other request as a :class:`Delivery` (path, headers, body, parsed
JSON, arrival time) and answers each route as
programmed: a fixed response, a sequence of them (``[500, 500, 200]``: the last one repeats), and
an optional delay before answering. Unprogrammed routes answer ``200`` with an empty body.

Used in-process (the server runs on the test's event loop) and by end-to-end tests that start real
l8 processes pointing ``--app-port`` at it::

    async with SubscriberApp(subscriptions=[{"pubsubname": "pubsub", "topic": "orders",
                                             "route": "/orders"}]) as app:
        app.respond("/orders", [500, 200])             # first delivery fails, the retry succeeds
        app.respond("/slow", 200, delay=0.5)
        app.respond("/bulk", {"statuses": [...]})      # a dict is a 200 JSON answer
        app.respond("/later", Response.json({"status": "RETRY"}, delay=0.1))
        app.respond_with("/bulk", lambda d: {"statuses": [...computed from d.json...]})
        ...  # point l8 at app.port
        [first, second] = await app.wait_for(2, path="/orders", timeout=5)
        assert first.json["data"] == {"id": 1}

Importing this module starts nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDict

from tests.servers import LOOPBACK, free_port


@dataclass(frozen=True)
class Response:
    """One programmed answer."""

    status: int = 200
    body: bytes = b""
    content_type: str | None = None
    delay: float = 0.0

    @classmethod
    def json(cls, value: Any, status: int = 200, delay: float = 0.0) -> Response:
        """An answer with a JSON body (``{"status": "RETRY"}``, a bulk ``{"statuses": [...]}``)."""
        return cls(status, orjson.dumps(value), "application/json", delay)


Answer = int | Response | dict[str, Any]
"""A status, a full :class:`Response`, or a dict sent as a 200 JSON body."""


def _answer(value: Answer, delay: float) -> Response:
    if isinstance(value, Response):
        return Response(value.status, value.body, value.content_type, delay or value.delay)
    if isinstance(value, int):
        return Response(value, delay=delay)
    return Response.json(value, delay=delay)


@dataclass(frozen=True)
class Delivery:
    """One request the app received."""

    method: str
    path: str
    headers: CIMultiDict[str]
    body: bytes
    arrived: float
    """``time.monotonic()`` when the request arrived."""

    @property
    def json(self) -> Any:
        """The body parsed as JSON (None when it is not JSON)."""
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return None


Responder = Callable[["Delivery"], "Answer"]
"""Computes the answer from the request (e.g. a bulk answer naming the entry ids received)."""


@dataclass
class _Route:
    responses: list[Response]
    responder: Responder | None = None
    served: int = 0

    def next(self, delivery: Delivery) -> Response:
        if self.responder is not None:
            return _answer(self.responder(delivery), 0.0)
        response = self.responses[min(self.served, len(self.responses) - 1)]
        self.served += 1
        return response


@dataclass
class SubscriberApp:
    """The app. ``subscriptions`` is what ``GET /dapr/subscribe`` returns (``subscribe_status``
    other than 200 answers that status instead)."""

    subscriptions: list[dict[str, Any]] = field(default_factory=list)
    subscribe_status: int = 200
    host: str = LOOPBACK
    port: int = 0
    deliveries: list[Delivery] = field(default_factory=list)
    subscribe_calls: int = 0
    _routes: dict[str, _Route] = field(default_factory=dict)
    _runner: web.AppRunner | None = None
    _arrived: asyncio.Condition | None = None

    # -- programming -----------------------------------------------------------------------------

    def respond(self, path: str, answers: Answer | Sequence[Answer] = 200, *, delay: float = 0.0) -> None:
        """Program ``path``: one answer, or a sequence of them whose last one repeats
        (``[500, 500, 200]``); ``delay`` holds every answer back that many seconds."""
        sequence = list(answers) if isinstance(answers, list | tuple) else [answers]
        if not sequence:
            raise ValueError("respond() needs at least one answer")
        self._routes[_normal(path)] = _Route([_answer(item, delay) for item in sequence])

    def respond_with(self, path: str, responder: Responder) -> None:
        """Program ``path`` with a function of the request that returns the answer."""
        self._routes[_normal(path)] = _Route([], responder)

    def received(self, path: str | None = None) -> list[Delivery]:
        """Deliveries so far, to ``path`` if given, in arrival order."""
        if path is None:
            return list(self.deliveries)
        path = _normal(path)
        return [delivery for delivery in self.deliveries if delivery.path == path]

    async def wait_for(
        self,
        count: int,
        *,
        path: str | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109 - a deadline whose error says what was missing
    ) -> list[Delivery]:
        """Wait until at least ``count`` deliveries (to ``path``) arrived; returns them. Raises
        ``TimeoutError`` saying how many arrived."""
        assert self._arrived is not None, "the app is not running"
        try:
            async with asyncio.timeout(timeout), self._arrived:
                await self._arrived.wait_for(lambda: len(self.received(path)) >= count)
        except TimeoutError:
            raise TimeoutError(
                f"expected {count} deliveries to {path or 'any path'} within {timeout}s, "
                f"got {len(self.received(path))}: {[d.path for d in self.deliveries]}"
            ) from None
        return self.received(path)

    async def quiet(self, seconds: float = 0.2) -> list[Delivery]:
        """Wait ``seconds`` and return everything received (to check nothing more arrives)."""
        await asyncio.sleep(seconds)
        return self.received()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @contextlib.asynccontextmanager
    async def channel(
        self, app_id: str = "subscriber", app_api_token: str | None = None
    ) -> AsyncIterator[Any]:
        """An in-process l8 ``AppChannel`` pointed at this app (started, closed on exit)."""
        from mesh.app_channel import AppChannel  # l8's code is only needed by in-process tests

        channel = AppChannel(app_id, self.port, token=app_api_token)
        await channel.start()
        try:
            yield channel
        finally:
            await channel.aclose()

    # -- life ------------------------------------------------------------------------------------

    async def start(self) -> SubscriberApp:
        self._arrived = asyncio.Condition()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._serve)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        attempts = 3 if self.port == 0 else 1
        for attempt in range(attempts):
            port = self.port or free_port(self.host)
            try:
                await web.TCPSite(runner, self.host, port).start()
            except OSError:
                if attempt == attempts - 1:
                    await runner.cleanup()
                    raise
                continue
            self.port = port
            break
        self._runner = runner
        return self

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> SubscriberApp:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        if request.method == "GET" and request.path == "/dapr/config":
            return web.Response(status=404)  # no actors here (l8 asks every app, as daprd does)
        if request.method == "GET" and request.path == "/dapr/subscribe":
            self.subscribe_calls += 1
            if self.subscribe_status != 200:
                return web.Response(status=self.subscribe_status)
            return web.Response(body=orjson.dumps(self.subscriptions), content_type="application/json")
        body = await request.read()
        delivery = Delivery(
            request.method, request.path, CIMultiDict(request.headers), body, time.monotonic()
        )
        route = self._routes.get(request.path)
        answer = route.next(delivery) if route is not None else Response()
        assert self._arrived is not None
        async with self._arrived:
            self.deliveries.append(delivery)
            self._arrived.notify_all()
        if answer.delay:
            await asyncio.sleep(answer.delay)
        headers = {"Content-Type": answer.content_type} if answer.content_type else None
        return web.Response(status=answer.status, body=answer.body, headers=headers)


def _normal(path: str) -> str:
    return path if path.startswith("/") else "/" + path
