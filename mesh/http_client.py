"""l8's own HTTP/1.1 client, for the app channel (pub/sub deliveries, subscription discovery) and
for service invocation with small request bodies: keep-alive connections to one origin, a request
written in one buffer, answers parsed by httptools (uvicorn's parser) and read as they arrive
(:class:`Stream`, with back-pressure past 1 MiB) or whole (:meth:`HttpClient.request`). No
redirects, no decompression, no headers of its own but ``Host`` and ``Content-Length``.

Why not aiohttp on these paths: at a sidecar's usual rate calls go one at a time, and aiohttp
spends about 210 us of CPU on each against about 95 us for this client (docs/performance.md).
Request bodies that must stream (large or chunked uploads) and TLS targets other than the app stay
on aiohttp (mesh/proxy.py).

A request that fails on a kept-alive connection before any byte of the answer arrived is sent once
more on a new connection: the server may have closed the idle connection just as it was reused.
(A delivery sent twice is within at-least-once; the app never saw the first one in that case. An
l8 sidecar never closes an idle connection with a request unread, app/http_protocol.py, so a call
to one that fails so was not received.) With ``idle_expiry``, a connection idle longer than that is
closed rather than reused, so that a client whose server closes idle connections after a known time
(l8's ``idle_timeout``) does not race that close at all, as Go's ``IdleConnTimeout`` and httpx's
``keepalive_expiry`` do.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import cast

import httptools


class HttpError(Exception):
    """The call could not be completed: refused, reset, closed early, timed out or unparsable."""


class ConnectError(HttpError):
    """No connection could be made: nothing of the request was sent, so another server may take it."""


class Answer:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


_STREAM_BUFFER = 1 << 20
"""Bytes of a streamed answer held before reading from the server pauses."""


class _Connection(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop  # asyncio.get_running_loop() costs a getpid() call per use on 3.11
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[None] | None = None
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.answered = False
        """Whether any byte of the current answer arrived."""
        self.keep_alive = False
        self.complete = False
        self.error: HttpError | None = None
        self.readable = asyncio.Event()
        self.buffered = 0
        self.idle_since = 0.0
        """When it was last given back to the pool (``time.monotonic()``)."""

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
        self.keep_alive = self.parser.should_keep_alive()  # llhttp forgets it once the message ends
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        self.buffered += len(body)
        self.readable.set()
        if self.buffered > _STREAM_BUFFER and self.transport is not None:
            self.transport.pause_reading()  # the reader is behind: the sender waits

    def on_message_complete(self) -> None:
        self.complete = True
        self.readable.set()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    # -- use ---------------------------------------------------------------------------------------

    @property
    def usable(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def send(self, data: bytes) -> asyncio.Future[None]:
        """Write a request; the future resolves once the answer's head is in (the body follows
        into ``body``, see Stream)."""
        assert self.transport is not None
        self.status, self.headers, self.body, self.answered = 0, [], [], False
        self.complete, self.error, self.buffered = False, None, 0
        self.keep_alive = False
        self.readable.clear()
        self.waiter = self.loop.create_future()
        self.transport.write(data)
        return self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _fail(self, error: HttpError) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(error)
        elif not self.complete:
            self.error = error
            self.readable.set()


class HttpClient:
    """Keep-alive connections to one origin (``http`` or ``https``; certificates are not verified,
    as Dapr's app channel does not verify the app's)."""

    def __init__(
        self, scheme: str, host: str, port: int, *, max_idle: int = 256, idle_expiry: float | None = None
    ) -> None:
        self._host, self._port = host, port
        self._host_header = f"{host}:{port}".encode("latin-1")
        self._ssl: ssl.SSLContext | None = None
        if scheme == "https":
            self._ssl = ssl.create_default_context()
            self._ssl.check_hostname = False
            self._ssl.verify_mode = ssl.CERT_NONE
        self._idle: deque[_Connection] = deque()
        self._max_idle = max_idle
        self._idle_expiry = idle_expiry
        self._closed = False

    async def request(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
        timeout: float | None = None,  # noqa: ASYNC109 - the whole call's deadline
    ) -> Answer:
        """One call, its answer read whole; ``target`` is the path and query, already escaped.
        Raises :class:`HttpError`."""
        data = self._encode(method, target, headers, body)
        try:
            async with asyncio.timeout(timeout):
                stream = await self._exchange(data)
                try:
                    content = b"".join([chunk async for chunk in stream.chunks()])
                finally:
                    stream.release()
        except TimeoutError:
            raise HttpError(f"no answer within {timeout:g}s") from None
        return Answer(stream.status, stream.headers, content)

    async def open(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
        timeout: float | None = None,  # noqa: ASYNC109 - the deadline until the answer's head
    ) -> Stream:
        """Send a call and return once the answer's status and headers are in; its body is read
        from the :class:`Stream`, which must be released. Not for HEAD (whose answer has no body
        whatever its Content-Length says). Raises :class:`HttpError`."""
        data = self._encode(method, target, headers, body)
        if timeout is None:
            return await self._exchange(data)
        try:
            async with asyncio.timeout(timeout):
                return await self._exchange(data)
        except TimeoutError:
            raise HttpError(f"no answer within {timeout:g}s") from None

    async def _exchange(self, data: bytes) -> Stream:
        while self._idle:
            connection = self._idle.pop()  # the most recently used
            if not connection.usable:
                continue
            if self._idle_expiry is not None and time.monotonic() - connection.idle_since > self._idle_expiry:
                connection.close()  # and every older one: the server may be closing them
                while self._idle:
                    self._idle.pop().close()
                break
            try:
                return await self._open_on(connection, data)
            except HttpError:
                if connection.answered:
                    raise
                # The server closed the idle connection as it was reused: a new one below.
        return await self._open_on(await self._connect(), data)

    async def _open_on(self, connection: _Connection, data: bytes) -> Stream:
        try:
            await connection.send(data)
        except BaseException:
            connection.close()  # an answer may still be on its way: the connection is not reusable
            raise
        return Stream(self, connection)

    def _give_back(self, connection: _Connection) -> None:
        if (
            connection.complete
            and connection.usable
            and connection.keep_alive
            and not self._closed
            and len(self._idle) < self._max_idle
        ):
            if self._idle_expiry is not None:
                connection.idle_since = time.monotonic()
            self._idle.append(connection)
        else:
            connection.close()

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

    async def _connect(self) -> _Connection:
        if self._closed:
            raise HttpError("the client is closed")
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_connection(
                lambda: _Connection(loop), self._host, self._port, ssl=self._ssl
            )
        except OSError as exc:
            reason = exc.strerror or exc
            raise ConnectError(f"cannot connect to {self._host}:{self._port}: {reason}") from None
        return connection


class Stream:
    """An answer whose body is read as it arrives (:meth:`chunks`); :meth:`release` hands the
    connection back (or closes it when the body was not read to its end)."""

    def __init__(self, client: HttpClient, connection: _Connection) -> None:
        self._client = client
        self._connection: _Connection | None = connection
        self.status = connection.status
        self.headers = connection.headers

    async def chunks(self) -> AsyncIterator[bytes]:
        connection = self._connection
        assert connection is not None, "released"
        while True:
            while connection.body:
                chunk = connection.body.pop(0)
                connection.buffered -= len(chunk)
                yield chunk
            if connection.complete:
                return
            if connection.error is not None:
                raise connection.error
            if connection.transport is not None and connection.buffered <= _STREAM_BUFFER // 2:
                connection.transport.resume_reading()
            connection.readable.clear()
            await connection.readable.wait()

    def release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            self._client._give_back(connection)
