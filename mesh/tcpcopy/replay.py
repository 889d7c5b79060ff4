"""``l8 tcpcopy replay DUMP --target URL [--rate N]``: the requests of a dump, sent again.

Each copied connection's request bytes are parsed back into HTTP requests (method, path and query as
sent, headers with their original case, body), which are sent to the target in their order:
connections side by side, the requests of one connection one after another, and with ``--rate`` no
more than N requests a second in all. When the dump holds the answers too (``responses: true``),
each replayed status is compared with the recorded one, so a new version can be checked against
captured production traffic. ``Host``, framing and hop-by-hop headers are the replaying client's.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httptools

from mesh.http_client import HttpClient, HttpError
from mesh.tcpcopy.dumpfile import OPENED, REQUEST, RESPONSE, dump_files, read_records

_SKIP = {b"host", b"content-length", b"transfer-encoding", b"connection", b"keep-alive", b"expect"}


@dataclass(slots=True)
class Request:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    recorded_status: int | None = None


@dataclass
class _Parsed:
    """httptools callbacks collecting whole messages."""

    messages: list[tuple[bytes, list[tuple[bytes, bytes]], bytes]] = field(default_factory=list)
    url: bytes = b""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: list[bytes] = field(default_factory=list)

    def on_message_begin(self) -> None:
        self.url, self.headers, self.body = b"", [], []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.messages.append((self.url, self.headers, b"".join(self.body)))


def load_connections(paths: Iterable[Path]) -> list[list[Request]]:
    """The requests of every copied connection in the dumps, in the order they were received."""
    streams: dict[int, tuple[bytearray, bytearray]] = {}
    ordered: list[tuple[bytearray, bytearray]] = []
    for path in paths:
        for record in read_records(path):
            if record.kind == OPENED or record.connection not in streams:
                streams[record.connection] = (bytearray(), bytearray())
                ordered.append(streams[record.connection])
            if record.kind == REQUEST:
                streams[record.connection][0].extend(record.payload)
            elif record.kind == RESPONSE:
                streams[record.connection][1].extend(record.payload)
    return [requests for sent, answered in ordered if (requests := _requests(bytes(sent), bytes(answered)))]


def _requests(sent: bytes, answered: bytes) -> list[Request]:
    messages, methods = _parse(httptools.HttpRequestParser, sent, lambda p: p.get_method().decode("latin-1"))
    if "HEAD" in methods:
        # httptools cannot be told an answer to HEAD has no body: its Content-Length would swallow
        # the next answer, so this connection's statuses are not compared.
        statuses: list[int] = []
    else:
        statuses = _parse(httptools.HttpResponseParser, answered, lambda p: p.get_status_code())[1]
        statuses = [status for status in statuses if status >= 200]  # 100 Continue is not the answer
    found = []
    for index, (url, headers, body) in enumerate(messages):
        kept = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in headers if n.lower() not in _SKIP]
        status = statuses[index] if index < len(statuses) else None
        found.append(Request(methods[index], url.decode("latin-1"), kept, body, status))
    return found


def _parse(parser_class: Any, data: bytes, head: Callable[[Any], Any]) -> tuple[list[Any], list[Any]]:
    """The whole messages of ``data`` and ``head(parser)`` of each (its method or status); a
    copy that ends mid-message, or bytes that are not HTTP, end it."""
    collected = _Parsed()
    heads: list[Any] = []
    complete = collected.on_message_complete

    def on_message_complete() -> None:
        heads.append(head(parser))
        complete()

    collected.on_message_complete = on_message_complete  # type: ignore[method-assign]
    parser = parser_class(collected)  # it takes the callbacks it finds now
    with contextlib.suppress(httptools.HttpParserError, httptools.HttpParserUpgrade):
        parser.feed_data(data)  # an upgrade (WebSocket, h2c) ends the HTTP part of a connection
    return collected.messages, heads


@dataclass(slots=True)
class ReplayReport:
    sent: int = 0
    failed: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    compared: int = 0
    same: int = 0
    differences: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        found = [f"replayed {self.sent} requests in {self.seconds:.2f} s; {self.failed} failed to send"]
        found.append("statuses: " + ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items())))
        if self.compared:
            found.append(f"same status as recorded: {self.same} of {self.compared}")
            found += [f"  {difference}" for difference in self.differences[:20]]
        return found


async def replay(
    dump: Path,
    target: str,
    rate: float | None = None,
    timeout: float = 30.0,  # noqa: ASYNC109 - each request's deadline, not the replay's
) -> ReplayReport:
    connections = load_connections(dump_files(dump))
    split = urlsplit(target)
    if split.scheme not in ("http", "https") or not split.hostname:
        raise ValueError(f"--target: {target!r} is not an http(s) URL")
    port = split.port or (443 if split.scheme == "https" else 80)
    prefix = split.path.rstrip("/")
    client = HttpClient(split.scheme, split.hostname, port)
    report = ReplayReport()
    began = time.monotonic()
    turn = 0

    async def paced() -> None:
        nonlocal turn
        if rate:
            due = began + turn / rate
            turn += 1
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

    async def one_connection(requests: list[Request]) -> None:
        for request in requests:
            await paced()
            try:
                if request.method == "HEAD":
                    status = await _head(target, prefix + request.target, request.headers, timeout)
                    _count(report, request, status)
                    continue
                answer = await client.request(request.method, prefix + request.target, request.headers,
                                              request.body or None, timeout)  # fmt: skip
            except HttpError as exc:
                report.failed += 1
                report.differences.append(f"{request.method} {request.target}: not sent: {exc}")
                continue
            _count(report, request, answer.status)

    try:
        await asyncio.gather(*(one_connection(requests) for requests in connections))
    finally:
        await client.aclose()
    report.seconds = time.monotonic() - began
    return report


def _count(report: ReplayReport, request: Request, status: int) -> None:
    report.sent += 1
    report.statuses[status] += 1
    if request.recorded_status is not None:
        report.compared += 1
        if status == request.recorded_status:
            report.same += 1
        else:
            was = request.recorded_status
            report.differences.append(f"{request.method} {request.target}: {was} recorded, {status} now")


async def _head(base: str, target: str, headers: list[tuple[str, str]], timeout: float) -> int:  # noqa: ASYNC109
    """A HEAD through httpx (l8's client reads an answer's body by its Content-Length)."""
    import httpx

    split = urlsplit(base)
    try:
        async with httpx.AsyncClient(timeout=timeout) as http:
            answer = await http.head(f"{split.scheme}://{split.netloc}{target}", headers=headers)
    except httpx.HTTPError as exc:
        raise HttpError(str(exc) or type(exc).__name__) from None
    return answer.status_code
