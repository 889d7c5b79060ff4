"""The metrics port: a small asyncio server in the sidecar's process answering ``GET /metrics``
(and ``/``) with the text format; started and stopped by the runtime.

It is not the API's server on purpose: the port is scraped from outside the pod, carries no API
token, and must answer while the API is busy or draining. Each connection gets one answer and is
closed (Prometheus opens one per scrape); a request head slower than the deadline is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

import structlog
from prometheus_client import CollectorRegistry

from observability.metrics.exposition import CONTENT_TYPE, render

log = structlog.get_logger(__name__)

_HEAD_LIMIT = 16 * 1024
_HEAD_TIMEOUT = 10.0
_PATHS = frozenset({b"/metrics", b"/"})


class MetricsServer:
    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        self._registry = registry
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen; an address in use (or any other bind failure) raises OSError at once."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(128)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]  # port 0: the one the system chose
        self._server = await asyncio.start_server(self._answer, sock=sock)
        log.info("metrics listening", address=f"http://{self.host}:{self.port}/metrics")

    async def aclose(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await server.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_HEAD_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
            method, _, rest = head.partition(b" ")
            target = rest.partition(b" ")[0].partition(b"?")[0]
            if method not in (b"GET", b"HEAD"):
                await _send(writer, b"405 Method Not Allowed", b"text/plain", b"method not allowed\n", True)
            elif target not in _PATHS:
                await _send(writer, b"404 Not Found", b"text/plain", b"not found: try /metrics\n", True)
            else:
                body = await asyncio.to_thread(render, self._registry)
                await _send(writer, b"200 OK", CONTENT_TYPE.encode(), body, method == b"GET")
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def _send(
    writer: asyncio.StreamWriter, status: bytes, content_type: bytes, body: bytes, with_body: bool
) -> None:
    head = (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: " + content_type
        + b"\r\ncontent-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n"
    )  # fmt: skip
    writer.write(head + body if with_body else head)
    await writer.drain()
