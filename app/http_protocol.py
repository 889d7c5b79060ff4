"""The sidecar's HTTP/1.1 connections: uvicorn's httptools protocol with the limits a hostile or
unlucky client needs (issue 13, section 7), all settings (docs/configuration.md):

- a request head (request line and headers) must arrive whole within ``header_timeout`` of its
  first byte, as daprd's ``ReadHeaderTimeout``; a slow (slowloris) head is closed without an answer,
  as Go's server closes it;
- a connection with no request in progress is closed after ``idle_timeout``: from its opening
  until it sends a first byte (never-sending connections), and between requests (keep-alive);
  but not when a request is already waiting in the socket unread. On uvloop a due timer runs
  before the reads that came in during a long turn of the loop (libuv runs timers after the
  callbacks of one poll, before the next poll), so under load the idle timer could close a
  connection whose next request had arrived in time: the close with unread bytes sends a reset,
  the client gets no answer (httpx's ``ReadError``) and the sidecar logs nothing;
- a head larger than ``read_buffer_size`` plus 4Ki (daprd's ``--read-buffer-size``, which Go's
  ``MaxHeaderBytes`` reads with 4 KiB of slack) or with more than ``max_header_count`` headers is
  answered ``431`` in daprd's words (Go's net/http text, not a JSON error) and the connection closed;
- past ``max_connections`` open connections, a new connection is closed at once, before it is
  read; the connections already open are not touched. A 503 per request (uvicorn's
  ``limit_concurrency``) would keep accepting, and so keep spending file descriptors, which is
  what made every new request fail once the open-file limit was reached.

On the hot path a head that arrives in one read (nearly all of them) arms no timer and is measured
only when the read is larger than the limit; the count is one ``len``. Measured in process, the
whole costs about 0.4 us a request over uvicorn's own protocol (13.5 us a request without the app).
"""

from __future__ import annotations

import asyncio
import fcntl
import resource
import struct
import termios
import time
from dataclasses import dataclass
from typing import ClassVar

import httptools
import structlog
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

log = structlog.get_logger(__name__)

GO_READ_SLACK = 4096
"""Go's net/http reads a head up to MaxHeaderBytes plus this (its bufio slop): daprd's real limit."""
FD_RESERVE = 256
"""File descriptors kept for l8's own connections (stores, brokers, the app) and files."""
DRAIN_SECONDS = 0.5
"""After a 431, what the client still sends is read and dropped this long (Go waits as long before
its close) so that it reads the answer instead of a reset."""
_REFUSED_LOG_EVERY = 60.0

_TOO_LARGE = b"431 Request Header Fields Too Large"
_431 = (
    STATUS_LINE[431]
    + b"content-type: text/plain; charset=utf-8\r\ncontent-length: "
    + str(len(_TOO_LARGE)).encode()
    + b"\r\nconnection: close\r\n\r\n"
    + _TOO_LARGE
)


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float
    idle_timeout: float
    max_head_bytes: int
    max_header_count: int
    max_connections: int


class _HeadRefused(Exception):
    """Raised from a parser callback to stop httptools at a refused head (answered already)."""


class SidecarProtocol(HttpToolsProtocol):
    limits: ClassVar[ConnectionLimits]  # set on the subclass sidecar_protocol() makes

    _refused_since: ClassVar[int] = 0
    _refused_logged: ClassVar[float] = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._measure = False
        self._draining = False
        self._max_head = self.limits.max_head_bytes  # read per request: an instance attribute is cheaper
        self._max_count = self.limits.max_header_count
        over = len(self.connections) >= self.limits.max_connections
        super().connection_made(transport)
        if over:
            _count_refused(len(self.connections) - 1)
            transport.close()
            return
        # uvicorn's keep-alive slot: its handler closes the connection, its first read cancels it.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.limits.idle_timeout, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # uvicorn's data_received, with the head's limits and its answer to a refused head.
        if self._draining:
            return
        if self._head_timer is not None:  # a head is still arriving, read by read
            self._head_bytes += len(data)
        elif len(data) > self._max_head:
            self._measure = True
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self._draining:
                return  # a refused head: the 431 is written
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._head_timer is None:
            cycle = self.cycle
            if cycle is not None and cycle.scope is self.scope:
                return  # a request runs (the bytes of a body, even one sent after its answer)
            # A head began and goes on in a later read.
            self._head_bytes = len(data)
            self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_expired)
            self._measure = True
        if self._head_bytes > self._max_head:
            # Still no whole head: every byte so far was head (memory: the limit and one read).
            self._refuse_head()

    def on_headers_complete(self) -> None:
        if self._measure or len(self.headers) > self._max_count:
            self._check_head()
        # Called directly: super() costs a tenth of a microsecond a request, and no protocol class
        # between this one and uvicorn's (TCP copy's included) has an on_headers_complete.
        HttpToolsProtocol.on_headers_complete(self)

    def _check_head(self) -> None:
        """A head that came in several reads, or in a large one, or with many headers: measured,
        and refused past a limit (raising stops the parser)."""
        measure = self._measure
        self._measure = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        # The request line and header lines as sent, CR LF included (values lose trailing blanks).
        size = len(self.url) + 16 + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if len(self.headers) > self._max_count or (measure and size > self._max_head):
            self._refuse_head()
            raise _HeadRefused

    def timeout_keep_alive_handler(self) -> None:
        transport = self.transport
        if transport.is_closing():
            return
        unread = _unread(transport)
        if unread:
            # The next request came in time and waits for the next poll, which reads it (and
            # cancels this slot); if it is only the start of a head, the head's timer takes over.
            log.debug("idle close put off: a request came in time", unread=unread)
            return
        transport.close()

    def _head_expired(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and cycle.scope is not self.scope and not cycle.response_complete:
            # The next head is pipelined behind a request still being answered: its time starts
            # when that answer is written.
            self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_expired)
            return
        self.transport.close()

    def _refuse_head(self) -> None:
        self._draining = True
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        transport = self.transport
        if transport.is_closing():
            return
        transport.write(_431)
        if transport.can_write_eof():
            transport.write_eof()
        self.flow.resume_reading()
        self.loop.call_later(DRAIN_SECONDS, transport.close)


def _unread(transport: asyncio.Transport) -> int:
    """Bytes received on the connection's socket and not yet read (0 when it cannot be told)."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return 0
    try:
        answer = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return 0
    unread: int = struct.unpack("i", answer)[0]
    return unread


def _count_refused(open_connections: int) -> None:
    SidecarProtocol._refused_since += 1
    now = time.monotonic()
    if now - SidecarProtocol._refused_logged >= _REFUSED_LOG_EVERY:
        log.warning(
            "connection limit reached: new connections closed",
            open=open_connections,
            refused=SidecarProtocol._refused_since,
        )
        SidecarProtocol._refused_logged = now
        SidecarProtocol._refused_since = 0


def sidecar_protocol(limits: ConnectionLimits) -> type[SidecarProtocol]:
    """The protocol class uvicorn is given (``http=``), holding these limits."""
    return type("SidecarProtocol", (SidecarProtocol,), {"limits": limits})


def raise_open_file_limit() -> int:
    """Raise the soft open-file limit to the hard one (as Go's runtime does at start for daprd);
    the soft limit in force afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:  # a sandbox may refuse: keep the limit there is
            log.warning("cannot raise the open-file limit", soft=soft, hard=hard, error=str(exc))
        else:
            soft = hard
    return soft


def connection_cap(wanted: int, open_file_limit: int) -> int:
    """The connection limit in force: the setting, kept below the open-file limit so that l8 can
    still open its own connections and files (and accept() never fails with EMFILE)."""
    if open_file_limit == resource.RLIM_INFINITY:
        return wanted
    reserve = min(FD_RESERVE, open_file_limit // 4)
    return max(1, min(wanted, open_file_limit - reserve))


def connection_limits(
    *,
    header_timeout: float,
    idle_timeout: float,
    read_buffer_size: int,
    max_header_count: int,
    max_connections: int,
) -> ConnectionLimits:
    """The limits from their settings, after raising the open-file limit (once, at start-up)."""
    open_files = raise_open_file_limit()
    cap = connection_cap(max_connections, open_files)
    if cap < max_connections:
        log.info("connection limit lowered to fit the open-file limit", limit=cap, open_files=open_files)
    return ConnectionLimits(
        header_timeout=header_timeout,
        idle_timeout=idle_timeout,
        max_head_bytes=read_buffer_size + GO_READ_SLACK,
        max_header_count=max_header_count,
        max_connections=cap,
    )
