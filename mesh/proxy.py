"""The reverse proxy under service invocation: one pooled aiohttp client that streams a request to
its target and the target's answer back, bodies never held whole in memory.

What crosses it, as Dapr forwards (dapr-http-api.md section 5): the verb, the path and the raw
query string; every header but the hop-by-hop ones (``Connection`` and those it names,
``Keep-Alive``, ``Transfer-Encoding``, ``Upgrade``, ``TE``, ``Trailer``, ``Proxy-*``,
``HTTP2-Settings``), ``dapr-app-id``, ``dapr-api-token``, ``destination-app-id`` and ``*-bin``
keys; the body as it arrives (its ``Content-Length`` kept, or chunked). Back: the status, the
headers less hop-by-hop ones and the body, for every status; redirects are not followed, bodies are
not decompressed. aiohttp adds none of its own headers (no User-Agent, Accept or
Accept-Encoding the caller did not send).

aiohttp, not httpx: httpx 0.28's pool costs about 0.5 ms per request and collapses under
concurrency (../shared/reference/platform-notes.md).
"""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import TYPE_CHECKING, Protocol

from mesh.asgi import Receive
from mesh.http_client import ConnectError, HttpError
from mesh.origins import OriginClients
from observability.metrics import HttpClientMetrics

if TYPE_CHECKING:
    import aiohttp

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"upgrade",
        b"http2-settings",
        b"te",
        b"trailer",
        b"proxy-authorization",
        b"proxy-authenticate",
    }
)
DROPPED_INBOUND = frozenset(
    {b"dapr-app-id", b"dapr-api-token", b"destination-app-id", b"host", b"l8-mesh-token"}
)
_SKIP_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")


FORWARDED_BY = "l8-forwarded-by"
"""Set on a call one l8 forwards to another: the caller app id it carries is the sender's word."""
MESH_TOKEN = "l8-mesh-token"
"""The fleet's shared secret (setting ``mesh_token``), sent by a sidecar to another one: it proves
the call comes from a sidecar, so the caller id it carries is believed and no API token is asked."""
VOUCHED = "l8.vouched"
"""Scope key set by the middleware when ``mesh_token`` is configured: whether the request carried it.
Absent: no mesh token is configured, and a forwarded caller id is believed as sent."""


class TargetUnreachable(Exception):
    """The target could not be reached or did not answer in time (the message says how)."""


class NotConnected(TargetUnreachable):
    """No connection to the target could be made, so nothing of the request was sent."""


def _connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> frozenset[bytes]:
    named: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            named.update(token.strip().lower() for token in value.split(b","))
    return frozenset(named)


def outbound_headers(
    raw: Iterable[tuple[bytes, bytes]], extra: Mapping[str, str], drop: frozenset[bytes] = frozenset()
) -> list[tuple[str, str]]:
    """The caller's headers as the target gets them: hop-by-hop, Dapr's own and ``drop`` removed,
    ``extra`` set (replacing any copy the caller sent). Multi-valued headers stay separate."""
    raw = list(raw)
    skipped = HOP_BY_HOP | DROPPED_INBOUND | drop | _connection_tokens(raw)
    replaced = {name.lower().encode("latin-1") for name in extra}
    headers = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in raw
        if (lowered := name.lower()) not in skipped
        and lowered not in replaced
        and not lowered.endswith(b"-bin")
    ]
    headers.extend(extra.items())
    return headers


def response_headers(raw: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    raw = list(raw)
    skipped = HOP_BY_HOP | _connection_tokens(raw)
    return [(name.lower(), value) for name, value in raw if name.lower() not in skipped]


async def request_body(receive: Receive) -> AsyncIterator[bytes]:
    """The ASGI request body as it arrives, chunk by chunk."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise TargetUnreachable("the caller went away while sending the body")
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


def client_session(max_connections: int, skip_auto_headers: tuple[str, ...]) -> aiohttp.ClientSession:
    """A pooled aiohttp client (keep-alive 30 s) that decompresses nothing and adds none of
    ``skip_auto_headers``: the one shape of HTTP client l8 uses."""
    import aiohttp

    connector = aiohttp.TCPConnector(limit=max_connections, keepalive_timeout=30)
    return aiohttp.ClientSession(
        connector=connector, skip_auto_headers=skip_auto_headers, auto_decompress=False
    )


SMALL_BODY = 1 << 20
"""Request bodies up to this size (known from Content-Length) are read first and sent with l8's
own HTTP/1.1 client; larger, chunked or TLS calls stream through aiohttp."""
_FRAMING = frozenset({"content-length", "transfer-encoding"})


class Upstream(Protocol):
    """The target's answer: status and headers in, the body read as it arrives."""

    status: int
    headers: list[tuple[bytes, bytes]]

    def chunks(self) -> AsyncIterator[bytes]: ...

    def release(self) -> None: ...


class _AiohttpUpstream:
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.headers = list(response.raw_headers)

    def chunks(self) -> AsyncIterator[bytes]:
        return self._response.content.iter_any()

    def release(self) -> None:
        self._response.release()


class Proxy:
    """The pooled clients of one sidecar, owned by the runtime (``aclose`` at the end): l8's own
    HTTP/1.1 client per origin for calls with small bodies (about 95 us of CPU a call against
    aiohttp's 210 us, docs/performance.md), aiohttp for streamed bodies and TLS. Both are made at
    the first call, so a sidecar that never invokes loads neither. The per-origin clients are
    bounded (``max_origins``, least recently used closed first; ``origin_idle_timeout``)."""

    def __init__(
        self,
        *,
        max_connections: int = 1024,
        connect_timeout: float = 5.0,
        max_origins: int = 256,
        origin_idle_timeout: float = 60.0,
    ) -> None:
        self._max_connections = max_connections
        self._connect_timeout = connect_timeout
        self._session: aiohttp.ClientSession | None = None
        self._origins = OriginClients(
            max_origins=max_origins, idle_timeout=origin_idle_timeout, max_idle_connections=max_connections
        )
        self._closed = False
        self.metrics: HttpClientMetrics | None = None
        """Set by the runtime when metrics are on: each call's status and time to its answer's head."""

    async def aclose(self) -> None:
        self._closed = True
        session, self._session = self._session, None
        await self._origins.aclose()
        if session is not None:
            await session.close()

    async def open(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: AsyncIterator[bytes] | bytes | None,
        timeout: float | None,  # noqa: ASYNC109 - the deadline until the answer's head
        tls: ssl.SSLContext | None = None,
    ) -> Upstream:
        """Send the request and read the target's status and headers; the body is left to stream
        (the caller must ``release()`` the answer). ``tls``: the authorities and client
        certificate for an https target (default: the system's). Raises :class:`TargetUnreachable`."""
        if self._closed:
            raise TargetUnreachable("the sidecar is shutting down")
        metrics = self.metrics
        if metrics is None:
            return await self._open(method, url, headers, body, timeout, tls)
        started = time.perf_counter()
        path = "/" + url.partition("://")[2].partition("/")[2].partition("?")[0]
        try:
            upstream = await self._open(method, url, headers, body, timeout, tls)
        except TargetUnreachable:
            metrics.record(method, path, 0, time.perf_counter() - started)
            raise
        metrics.record(method, path, upstream.status, time.perf_counter() - started)
        return upstream

    async def _open(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: AsyncIterator[bytes] | bytes | None,
        timeout: float | None,  # noqa: ASYNC109
        tls: ssl.SSLContext | None,
    ) -> Upstream:
        if url.startswith("http://") and method != "HEAD" and not isinstance(body, AsyncIterator):
            return await self._open_small(method, url, headers, body, timeout)
        return await self._open_streamed(method, url, headers, body, timeout, tls)

    async def _open_small(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
        timeout: float | None,  # noqa: ASYNC109
    ) -> Upstream:
        origin, slash, target = url[len("http://") :].partition("/")
        host, _, port = origin.rpartition(":")
        client = await self._origins.client(host, int(port) if port.isdigit() else 80)
        framed = [(name, value) for name, value in headers if name.lower() not in _FRAMING]
        try:
            return await client.open(method, slash + target, framed, body, timeout)
        except ConnectError as exc:
            raise NotConnected(str(exc)) from None
        except HttpError as exc:
            raise TargetUnreachable(str(exc)) from None

    async def _open_streamed(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: AsyncIterator[bytes] | bytes | None,
        timeout: float | None,  # noqa: ASYNC109
        tls: ssl.SSLContext | None = None,
    ) -> Upstream:
        import aiohttp
        from multidict import CIMultiDict
        from yarl import URL

        if self._session is None:
            self._session = client_session(self._max_connections, _SKIP_AUTO_HEADERS)
        try:
            response = await self._session.request(
                method,
                URL(url, encoded=True),  # the path and query exactly as escaped by the caller
                data=body,
                headers=CIMultiDict(headers),
                timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=self._connect_timeout),
                allow_redirects=False,
                skip_auto_headers=_SKIP_AUTO_HEADERS,
                ssl=tls if tls is not None else True,
            )
        except aiohttp.ClientConnectorError as exc:
            raise NotConnected(_describe(exc)) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise TargetUnreachable(_describe(exc)) from None
        return _AiohttpUpstream(response)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "context deadline exceeded"
    return str(exc) or type(exc).__name__


def header_value(raw: Iterable[tuple[bytes, bytes]], wanted: bytes) -> str | None:
    for name, value in raw:
        if name.lower() == wanted:
            return value.decode("latin-1")
    return None
