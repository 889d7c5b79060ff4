"""The proxy's per-origin clients are bounded (mesh/origins.py): at most ``max_origins``, the least
recently used closed first, and none kept past ``origin_idle_timeout``. Seen from real keep-alive
servers on loopback, which count the connections the sidecar holds open to them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from mesh.origins import OriginClients
from mesh.proxy import Proxy
from tests.servers import LOOPBACK


class _Answering(asyncio.Protocol):
    def __init__(self, server: KeepAliveServer) -> None:
        self.server = server
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.server.open += 1
        self.server.transports.add(transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:  # requests here have no body
            _, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.open -= 1
        self.server.transports.discard(self.transport)


class KeepAliveServer:
    """Answers 200 ``ok`` to every request and keeps the connection; ``open`` counts connections."""

    def __init__(self) -> None:
        self.open = 0
        self.port = 0
        self.transports: set[asyncio.BaseTransport] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Answering(self), LOOPBACK, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for transport in list(self.transports):
            transport.close()
        await self._server.wait_closed()


@pytest.fixture
async def servers() -> AsyncIterator[list[KeepAliveServer]]:
    started = [KeepAliveServer() for _ in range(3)]
    for server in started:
        await server.start()
    yield started
    for server in started:
        await server.stop()


async def _call(proxy: Proxy, server: KeepAliveServer) -> None:
    upstream = await proxy.open("GET", f"http://{LOOPBACK}:{server.port}/x", [], None, 5.0)
    try:
        assert upstream.status == 200
        assert b"".join([chunk async for chunk in upstream.chunks()]) == b"ok"
    finally:
        upstream.release()


async def _until(condition: Callable[[], bool], seconds: float = 2.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def test_the_least_recently_used_origin_is_closed_past_the_limit(
    servers: list[KeepAliveServer],
) -> None:
    a, b, c = servers
    proxy = Proxy(max_origins=2)
    try:
        await _call(proxy, a)
        await _call(proxy, b)
        await _call(proxy, a)  # a is now the most recently used
        assert (a.open, b.open, c.open) == (1, 1, 0)
        await _call(proxy, c)
        assert await _until(lambda: b.open == 0), "b's connection was kept"
        assert (a.open, c.open) == (1, 1)
        await _call(proxy, b)  # an evicted origin is simply reached again
        assert await _until(lambda: a.open == 0)
        assert (b.open, c.open) == (1, 1)
    finally:
        await proxy.aclose()
    assert await _until(lambda: (a.open, b.open, c.open) == (0, 0, 0))


async def test_an_origin_idle_past_the_timeout_is_closed(servers: list[KeepAliveServer]) -> None:
    a, b, _ = servers
    proxy = Proxy(origin_idle_timeout=0.3)
    try:
        await _call(proxy, a)
        started = time.monotonic()
        for _ in range(8):  # b stays in use while a sits idle
            await _call(proxy, b)
            await asyncio.sleep(0.05)
        assert await _until(lambda: a.open == 0), "a idle origin was kept"
        assert time.monotonic() - started >= 0.3
        assert b.open == 1
        assert await _until(lambda: b.open == 0)  # and b once it sits idle too
    finally:
        await proxy.aclose()


async def test_the_pool_counts_origins_and_closes_its_sweep() -> None:
    now = [0.0]
    origins = OriginClients(max_origins=3, idle_timeout=10, clock=lambda: now[0])
    for port in (1, 2, 3, 4):
        await origins.client(LOOPBACK, port)
        now[0] += 1
    assert len(origins) == 3 and (LOOPBACK, 1) not in origins
    now[0] = 12.5  # 2 was used at 1.0, 3 at 2.0, 4 at 3.0: the next call sweeps 2 only
    await origins.client(LOOPBACK, 3)
    assert [(LOOPBACK, port) in origins for port in (2, 3, 4)] == [False, True, True]
    await origins.aclose()
    assert len(origins) == 0
    with pytest.raises(ValueError):
        OriginClients(max_origins=0)
