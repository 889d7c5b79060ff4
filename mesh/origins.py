"""l8's HTTP/1.1 clients under invocation, one per origin (host and port), bounded.

A sidecar that calls URLs from its callers (``/v1.0/invoke/http%3A%2F%2F...``) or many apps would
otherwise keep a client, and its idle keep-alive connections, for every origin it ever reached. At
most ``max_origins`` are kept, the least recently used closed first, and a client unused for
``idle_timeout`` seconds is closed by a sweep. Closing a client in use is safe: its calls finish,
and their connections are closed instead of kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable

import structlog

from mesh.http_client import ConnectError, HttpClient

log = structlog.get_logger(__name__)


class OriginClients:
    def __init__(
        self,
        *,
        max_origins: int = 256,
        idle_timeout: float = 60.0,
        max_idle_connections: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_origins < 1 or idle_timeout <= 0:
            raise ValueError("max_origins must be at least 1 and idle_timeout positive")
        self.max_origins = max_origins
        self.idle_timeout = idle_timeout
        self._max_idle_connections = max_idle_connections
        self._clock = clock
        # Least recently used first: the oldest entry is the first to evict and to time out.
        self._clients: OrderedDict[tuple[str, int], tuple[HttpClient, float]] = OrderedDict()
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False

    def __len__(self) -> int:
        return len(self._clients)

    def __contains__(self, origin: object) -> bool:
        return origin in self._clients

    async def client(self, host: str, port: int) -> HttpClient:
        """The client of ``host:port``, made on first use; marks it used now. Once closed, none is
        made (a call at shutdown fails as an unreachable target would)."""
        if self._closed:
            raise ConnectError(f"{host}:{port}: the sidecar is shutting down")
        now = self._clock()
        key = (host, port)
        entry = self._clients.pop(key, None)
        client = (
            entry[0]
            if entry is not None
            else HttpClient("http", host, port, max_idle=self._max_idle_connections)
        )
        self._clients[key] = (client, now)
        await self._evict(now)
        if self._sweeper is None and not self._closed:
            self._sweeper = asyncio.create_task(self._sweep(), name="origin clients sweep")
        return client

    async def _evict(self, now: float) -> None:
        while self._clients:
            key, (client, used) = next(iter(self._clients.items()))
            if len(self._clients) <= self.max_origins and now - used < self.idle_timeout:
                return
            del self._clients[key]
            try:
                await client.aclose()
            except Exception as exc:  # the sweep goes on past one client that fails to close
                log.warning("origin client close failed", origin=f"{key[0]}:{key[1]}", error=str(exc))

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.idle_timeout / 2)
            await self._evict(self._clock())

    async def aclose(self) -> None:
        self._closed = True
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        clients, self._clients = self._clients, OrderedDict()
        for client, _ in clients.values():
            await client.aclose()
