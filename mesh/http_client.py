"""A small HTTP/1.1 client for calls whose bodies fit in memory (pub/sub deliveries, subscription
discovery): keep-alive connections to one origin, requests written in one buffer, responses parsed
by httptools (uvicorn's parser), no redirects, no decompression, no headers of its own but
``Host`` and ``Content-Length``.

Why not aiohttp here: at a sidecar's usual rate, calls go one at a time, and aiohttp spends about
210 us of CPU on each against about 95 us for this client (docs/performance.md); a delivery is most
of a message's cost at 1,000 msg/s. Streaming bodies (service invocation) stay on aiohttp
(mesh/proxy.py).

A request that fails on a kept-alive connection before any byte of the answer arrived is sent once
more on a new connection: the server may have closed the idle connection just as it was reused.
(A delivery sent twice is within at-least-once; the app never saw the first one in that case.)
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import cast

import httptools


class HttpError(Exception):
    """The call could not be completed: refused, reset, closed early, timed out or unparsable."""


class Answer:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[None] | None = None
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.answered = False
        """Whether any byte of the current answer arrived."""

    # -- asyncio.Protocol --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass of it

    def data_received(self, data: bytes) -> None:
        self.answered = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HttpError(f"unparsable answer: {exc}"))
            if self.transport is not None:
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if exc is None and self.status and self._ends_at_close():
            self.on_message_complete()  # no length, not chunked: the body ended with the connection
            return
        self._fail(HttpError(f"connection closed: {exc}" if exc else "connection closed before the answer"))

    def _ends_at_close(self) -> bool:
        return not any(name.lower() in (b"content-length", b"transfer-encoding") for name, _ in self.headers)

    # -- httptools callbacks -----------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    # -- use ---------------------------------------------------------------------------------------

    @property
    def usable(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def send(self, data: bytes) -> asyncio.Future[None]:
        assert self.transport is not None
        self.status, self.headers, self.body, self.answered = 0, [], [], False
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _fail(self, error: HttpError) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(error)


class HttpClient:
    """Keep-alive connections to one origin (``http`` or ``https``; certificates are not verified,
    as Dapr's app channel does not verify the app's)."""

    def __init__(self, scheme: str, host: str, port: int, *, max_idle: int = 256) -> None:
        self._host, self._port = host, port
        self._host_header = f"{host}:{port}".encode("latin-1")
        self._ssl: ssl.SSLContext | None = None
        if scheme == "https":
            self._ssl = ssl.create_default_context()
            self._ssl.check_hostname = False
            self._ssl.verify_mode = ssl.CERT_NONE
        self._idle: deque[_Connection] = deque()
        self._max_idle = max_idle
        self._closed = False

    async def request(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
        timeout: float | None = None,  # noqa: ASYNC109 - the whole call's deadline
    ) -> Answer:
        """One call; ``target`` is the path and query, already escaped. Raises :class:`HttpError`."""
        data = self._encode(method, target, headers, body)
        try:
            async with asyncio.timeout(timeout):
                return await self._exchange(data)
        except TimeoutError:
            raise HttpError(f"no answer within {timeout:g}s") from None

    async def aclose(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop().close()

    def _encode(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes | None) -> bytes:
        lines = [f"{method} {target} HTTP/1.1\r\n".encode("latin-1"), b"Host: ", self._host_header, b"\r\n"]
        for name, value in headers:
            lines.append(f"{name}: {value}\r\n".encode("latin-1"))
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(b"Content-Length: %d\r\n" % len(body or b""))
        lines.append(b"\r\n")
        if body:
            lines.append(body)
        return b"".join(lines)

    async def _exchange(self, data: bytes) -> Answer:
        while self._idle:
            connection = self._idle.pop()
            if not connection.usable:
                continue
            try:
                return await self._on(connection, data)
            except HttpError:
                if connection.answered:
                    raise
                # The server closed the idle connection as it was reused: a new one below.
        return await self._on(await self._connect(), data)

    async def _connect(self) -> _Connection:
        if self._closed:
            raise HttpError("the client is closed")
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_connection(_Connection, self._host, self._port, ssl=self._ssl)
        except OSError as exc:
            raise HttpError(f"cannot connect to {self._host}:{self._port}: {exc.strerror or exc}") from None
        return connection

    async def _on(self, connection: _Connection, data: bytes) -> Answer:
        try:
            await connection.send(data)
        except BaseException:
            connection.close()  # an answer may still be on its way: the connection is not reusable
            raise
        answer = Answer(connection.status, connection.headers, b"".join(connection.body))
        if connection.parser.should_keep_alive() and not self._closed and len(self._idle) < self._max_idle:
            self._idle.append(connection)
        else:
            connection.close()
        return answer
