"""Discovery of the app's subscriptions against a real HTTP app on a free port: an app that starts
late, answers 404 or 500, restarts with other subscriptions, or never answers HTTP at all."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from mesh.app_channel import AppChannel
from services.pubsub.discovery import SubscriptionDiscovery
from services.pubsub.subscriptions import Subscription
from tests.servers import LOOPBACK, free_port

PROBE = 0.02
WAIT = 5.0

ORDERS = [{"pubsubname": "pubsub", "topic": "orders", "route": "/orders"}]
ORDERS_AND_PAYMENTS = [*ORDERS, {"pubsubname": "pubsub", "topic": "payments", "routes": {"default": "pay"}}]


class App:
    """A tiny app whose ``GET /dapr/subscribe`` answer can change between its starts."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.status = 200
        self.body: bytes = b"[]"
        self.delay = 0.0
        self.requests: list[dict[str, str]] = []
        self._runner: web.AppRunner | None = None

    def answer(self, subscriptions: Any, status: int = 200) -> None:
        self.body, self.status = orjson.dumps(subscriptions), status

    async def start(self) -> None:
        app = web.Application()
        if self.status != 404:
            app.router.add_get("/dapr/subscribe", self._subscribe)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, LOOPBACK, self.port).start()

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _subscribe(self, request: web.Request) -> web.Response:
        self.requests.append(dict(request.headers))
        await asyncio.sleep(self.delay)
        return web.Response(status=self.status, body=self.body, content_type="application/json")


class Changes:
    """What ``on_change`` received, to wait on."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[list[Subscription]] = asyncio.Queue()
        self.calls = 0

    async def __call__(self, subscriptions: list[Subscription]) -> None:
        self.calls += 1
        self.queue.put_nowait(subscriptions)

    async def next(self) -> list[tuple[str, str]]:
        subscriptions = await asyncio.wait_for(self.queue.get(), WAIT)
        return [s.key for s in subscriptions]


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
async def app(port: int) -> AsyncIterator[App]:
    app = App(port)
    yield app
    await app.stop()


async def make_channel(port: int | None, app_api_token: str | None = None) -> AppChannel:
    channel = AppChannel("x", port, token=app_api_token)
    await channel.start()
    return channel


@contextlib.asynccontextmanager
async def discovering(
    port: int | None,
    on_change: Callable[[list[Subscription]], Awaitable[None]],
    *,
    read_timeout: float = WAIT,
    app_api_token: str | None = None,
) -> AsyncIterator[tuple[SubscriptionDiscovery, asyncio.Task[None]]]:
    channel = await make_channel(port, app_api_token)
    discovery = SubscriptionDiscovery(
        channel, "x", on_change, probe_interval=PROBE, read_timeout=read_timeout
    )
    task = asyncio.create_task(discovery.run())
    try:
        yield discovery, task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await channel.aclose()


async def eventually(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not condition():  # noqa: ASYNC110 - the condition is state of a real server, no event to wait on
            await asyncio.sleep(PROBE)


async def test_the_app_starts_after_discovery_began(app: App, port: int) -> None:
    changes = Changes()
    app.answer(ORDERS_AND_PAYMENTS)
    async with discovering(port, changes) as (discovery, _):
        await asyncio.sleep(10 * PROBE)
        assert changes.calls == 0 and discovery.current == []
        await app.start()
        assert await changes.next() == [("pubsub", "orders"), ("pubsub", "payments")]
        assert [s.rules[-1].path for s in discovery.current] == ["/orders", "/pay"]
        assert [s.key for s in await discovery.first_read()] == [("pubsub", "orders"), ("pubsub", "payments")]
    [headers] = app.requests
    assert headers["Content-Type"] == "application/json"
    assert headers["dapr-app-id"] == "x"
    assert "dapr-api-token" not in headers


async def test_the_app_token_is_sent(app: App, port: int) -> None:
    changes = Changes()
    app.answer(ORDERS)
    await app.start()
    async with discovering(port, changes, app_api_token="s3cret"):
        assert await changes.next() == [("pubsub", "orders")]
    assert app.requests[0]["dapr-api-token"] == "s3cret"


@pytest.mark.parametrize(
    ("status", "level"), [(404, "debug"), (500, "error"), (503, "error"), (302, "error")]
)
async def test_an_error_status_means_no_subscriptions(app: App, port: int, status: int, level: str) -> None:
    changes = Changes()
    app.answer(ORDERS, status=status)
    await app.start()
    with capture_logs() as logs:
        async with discovering(port, changes) as (discovery, _):
            assert await changes.next() == []
            assert discovery.current == []
    [entry] = [entry for entry in logs if "/dapr/subscribe" in entry["event"]]
    assert entry["log_level"] == level
    assert entry.get("status", 404) == status


async def test_a_restart_with_other_subscriptions_is_read_again(app: App, port: int) -> None:
    changes = Changes()
    app.answer(ORDERS)
    await app.start()
    async with discovering(port, changes) as (discovery, _):
        assert await changes.next() == [("pubsub", "orders")]

        await app.stop()
        await asyncio.sleep(10 * PROBE)
        app.answer(ORDERS_AND_PAYMENTS)
        await app.start()
        assert await changes.next() == [("pubsub", "orders"), ("pubsub", "payments")]
        assert [s.key for s in discovery.current] == [("pubsub", "orders"), ("pubsub", "payments")]

        # Same subscriptions after a restart: read again, nothing to change.
        await app.stop()
        await asyncio.sleep(10 * PROBE)
        await app.start()
        await eventually(lambda: len(app.requests) == 3)
        await asyncio.sleep(10 * PROBE)
        assert changes.calls == 2

        # An app that comes back without subscriptions empties the list.
        await app.stop()
        await asyncio.sleep(10 * PROBE)
        app.answer([])
        await app.start()
        assert await changes.next() == []
        assert discovery.current == []


async def test_a_failing_on_change_is_logged_and_watching_goes_on(app: App, port: int) -> None:
    seen: list[list[Subscription]] = []

    async def on_change(subscriptions: list[Subscription]) -> None:
        seen.append(subscriptions)
        if len(seen) == 1:
            raise RuntimeError("broker down")

    app.answer(ORDERS)
    await app.start()
    with capture_logs() as logs:
        async with discovering(port, on_change) as (discovery, _):
            await eventually(lambda: len(seen) == 1)
            assert [s.key for s in await discovery.first_read()] == [("pubsub", "orders")]
            await app.stop()
            await asyncio.sleep(10 * PROBE)
            app.answer(ORDERS_AND_PAYMENTS)
            await app.start()
            await eventually(lambda: len(seen) == 2)
    [failure] = [entry for entry in logs if entry["log_level"] == "error"]
    assert failure["event"] == "applying the app's subscriptions failed"


async def test_transport_failures_are_retried_three_times(port: int) -> None:
    """An app whose first requests time out: 1 try + 3 retries, then a pause and a fresh read."""
    attempts = 0
    hang = 2
    answer = orjson.dumps(ORDERS)

    handlers: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal attempts
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            await reader.readuntil(b"\r\n\r\n")
            attempts += 1
            if attempts <= hang:
                await reader.read()  # no answer; the client times out and hangs up
            else:
                head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(answer)}\r\n\r\n"
                writer.write(head.encode() + answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # a listening probe: it connected and sent nothing
        except asyncio.CancelledError:
            pass  # the test is over (ending normally keeps Python 3.11's stream callback quiet)
        finally:
            writer.close()  # also when the test ends first: a writer left open warns once collected

    server = await asyncio.start_server(serve, LOOPBACK, port)
    changes = Changes()
    try:
        async with discovering(port, changes, read_timeout=0.1):
            assert await changes.next() == [("pubsub", "orders")]
        assert attempts == hang + 1

        # Never an answer: 4 attempts, one error log, no call; the read is tried again later.
        attempts, hang = 0, 1000
        with capture_logs() as logs:
            async with discovering(port, changes, read_timeout=0.1):
                await eventually(lambda: attempts >= 5)
                errors = [entry for entry in logs if entry["log_level"] == "error"]
        assert changes.calls == 1
        assert [(entry["event"], entry["attempts"]) for entry in errors] == [
            ("cannot read the app's subscriptions", 4)
        ]
    finally:
        server.close()
        for handler in handlers:
            handler.cancel()
        await asyncio.gather(*handlers)
        await server.wait_closed()


async def test_cancellation_while_waiting_for_the_app(port: int) -> None:
    changes = Changes()
    async with discovering(port, changes) as (_, task):
        await asyncio.sleep(5 * PROBE)
        assert not task.done()
    assert task.cancelled()
    assert changes.calls == 0


async def test_cancellation_during_a_read(app: App, port: int) -> None:
    changes = Changes()
    app.answer(ORDERS)
    app.delay = 60
    await app.start()
    async with discovering(port, changes) as (_, task):
        await eventually(lambda: len(app.requests) == 1)
    assert task.cancelled()
    assert changes.calls == 0


async def test_cancellation_while_watching(app: App, port: int) -> None:
    changes = Changes()
    app.answer(ORDERS)
    await app.start()
    async with discovering(port, changes) as (_, task):
        assert await changes.next() == [("pubsub", "orders")]
        await asyncio.sleep(5 * PROBE)
    assert task.cancelled()


async def test_without_an_app_port_run_returns_at_once() -> None:
    changes = Changes()
    channel = await make_channel(None)
    try:
        discovery = SubscriptionDiscovery(channel, "x", changes, probe_interval=PROBE)
        await asyncio.wait_for(discovery.run(), 1)
        assert (changes.calls, discovery.current) == (0, [])
    finally:
        await channel.aclose()
