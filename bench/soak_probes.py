"""The bad inputs of the soak (bench/soak.py), each sent to a running l8 while the load goes on:
oversized saves and transactions, deeply nested and invalid JSON in a publish, slow and silent
connections, header floods and a doubled API token. Each gives one row: l8's answer, how long it
took, the worst ``GET /v1.0/healthz`` latency meanwhile (a stalled event loop shows there) and l8's
peak RSS."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

MAX_BODY = 4 * 1024 * 1024
HEALTH_EVERY = 0.05
HEAD = b"GET /v1.0/healthz HTTP/1.1\r\nHost: l8\r\n"


@dataclass
class Row:
    name: str
    answer: str
    seconds: float
    worst_healthz_ms: float
    peak_rss_mb: float


def _outcome(response: httpx.Response | BaseException) -> str:
    if isinstance(response, BaseException):
        return type(response).__name__
    text = f"{response.status_code}"
    with contextlib.suppress(ValueError, TypeError, KeyError):
        text += f" {response.json()['errorCode']}"
    if response.status_code in (401, 431) and response.content:
        text += f" {response.content.decode(errors='replace').strip()!r}"
    return text


def _summary(outcomes: list[str]) -> str:
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome] = counts.get(outcome, 0) + 1
    return ", ".join(f"{n} x {o}" if n > 1 else o for o, n in counts.items())


def _items(count: int) -> bytes:
    """The largest save of ``count`` small items under the body limit (fewer if they do not fit)."""
    while True:
        body = orjson.dumps([{"key": f"{i:x}", "value": 0} for i in range(count)])
        if len(body) < MAX_BODY:
            return body
        count = count * 9 // 10


def _operations(count: int) -> bytes:
    while True:
        operations = [{"operation": "upsert", "request": {"key": f"t{i}", "value": 1}} for i in range(count)]
        body = orjson.dumps({"operations": operations})
        if len(body) < MAX_BODY:
            return body
        count = count * 9 // 10


class Probes:
    def __init__(self, base: str, token: str, rss: Callable[[], float], idle_timeout: float) -> None:
        self.base = base
        self.token = token
        self.rss = rss
        self.idle_timeout = idle_timeout
        self.port = int(base.rsplit(":", 1)[1])
        self.rows: list[Row] = []

    async def run_all(self) -> list[Row]:
        big = _items(150_000)
        transaction = _operations(100_000)
        state = f"{self.base}/v1.0/state/statestore"
        publish = f"{self.base}/v1.0/publish/pubsub/soak-bad"
        deep = b"[" * 100_000 + b"]" * 100_000
        json_type = {"content-type": "application/json"}
        async with httpx.AsyncClient(timeout=60, headers={"dapr-api-token": self.token}) as client:
            items = big.count(b'"key"')
            operations = transaction.count(b"upsert")
            for name, requests in (
                (f"save of {items:,} small items ({len(big) / 1e6:.1f} MB)", [("POST", state, big)]),
                ("four such saves at once", [("POST", state, big)] * 4),
                (f"transaction of {operations:,} operations ({len(transaction) / 1e6:.1f} MB)",
                 [("POST", f"{state}/transaction", transaction)]),
                ("publish of 100,000 nested arrays", [("POST", publish, deep)]),
                ("ten such publishes at once", [("POST", publish, deep)] * 10),
                ("publish of a valid 900-deep value", [("POST", publish, b"[" * 900 + b"]" * 900)]),
                ("publish with invalid UTF-8 in JSON", [("POST", publish, b'{"a":"\xff\xfe"}')]),
            ):  # fmt: skip
                await self._measured(name, self._send(client, requests, json_type))
            # Raw bytes from a thread: httpx takes seconds to check 10,000 headers, on the soak's loop.
            big_header = b"X-Big: " + b"a" * 1_000_000 + b"\r\n"
            await self._measured("a 1 MB header", asyncio.to_thread(self._raw_head, big_header))
            flood = b"".join(b"X-H%d: a\r\n" % i for i in range(10_000))
            await self._measured("10,000 headers", asyncio.to_thread(self._raw_head, flood))
            twice = [("dapr-api-token", "wrong"), ("dapr-api-token", self.token)]
            await self._measured("dapr-api-token twice (wrong, right)", self._bare(twice))
        await self._measured(
            "200 slowloris connections (1 byte/s)", asyncio.to_thread(self._slowloris, 200, 15)
        )
        await self._measured("1,100 connections that never send", asyncio.to_thread(self._silent, 1100))
        return self.rows

    async def _send(self, client: httpx.AsyncClient, requests: list[Any], headers: Any) -> str:
        async def one(method: str, url: str, body: bytes | None) -> str:
            try:
                return _outcome(await client.request(method, url, content=body, headers=headers))
            except httpx.HTTPError as exc:
                return _outcome(exc)

        return _summary(list(await asyncio.gather(*(one(*request) for request in requests))))

    async def _bare(self, headers: list[tuple[str, str]]) -> str:
        async with httpx.AsyncClient(timeout=10) as client:
            return _outcome(await client.get(f"{self.base}/v1.0/metadata", headers=headers))

    async def _measured(self, name: str, work: Awaitable[str]) -> None:
        done = threading.Event()
        worst = [0.0]
        peak = [self.rss()]

        def watch() -> None:
            # A thread with plain sockets: what it measures is l8, not the soak's busy event loop.
            while not done.is_set():
                started = time.perf_counter()
                with contextlib.suppress(OSError):
                    self._health()
                worst[0] = max(worst[0], time.perf_counter() - started)
                peak[0] = max(peak[0], self.rss())
                done.wait(HEALTH_EVERY)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        started = time.perf_counter()
        try:
            answer = await work
        except Exception as exc:  # a probe that fails is a figure, not the end of the soak
            answer = f"probe failed: {type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - started
        done.set()
        await asyncio.to_thread(watcher.join)
        self.rows.append(Row(name, answer, round(seconds, 2), round(worst[0] * 1000, 1), peak[0]))
        print(f"  {name}: {answer} ({seconds:.1f} s)", flush=True)

    # -- connections (in a thread: plain sockets, so that the load's event loop goes on) ------------

    def _connect(self) -> socket.socket | None:
        try:
            connection = socket.create_connection(("127.0.0.1", self.port), timeout=2)
        except OSError:
            return None
        connection.setblocking(False)
        return connection

    @staticmethod
    def _open(connection: socket.socket) -> bool:
        try:
            return connection.recv(4096) != b""
        except BlockingIOError:
            return True
        except OSError:
            return False

    def _health(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as connection:
            connection.sendall(HEAD + b"\r\n")
            connection.recv(4096)

    def _raw_head(self, headers: bytes) -> str:
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as connection:
            try:
                connection.sendall(HEAD + headers + b"\r\n")
            except OSError as exc:
                return f"{type(exc).__name__} while sending"
            chunks = []
            with contextlib.suppress(OSError):
                while chunk := connection.recv(65536):
                    chunks.append(chunk)
        reply = b"".join(chunks)
        if not reply:
            return "closed without an answer"
        status = reply.split(b"\r\n", 1)[0].decode(errors="replace").removeprefix("HTTP/1.1 ")
        body = reply.partition(b"\r\n\r\n")[2].decode(errors="replace")
        return f"{status.split(' ', 1)[0]} {body!r}" if body else status

    def _fresh_request(self) -> str:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=3) as connection:
                connection.sendall(HEAD + b"\r\n")
                reply = connection.recv(4096)
        except OSError as exc:
            return type(exc).__name__
        return reply.split(b"\r\n", 1)[0].decode(errors="replace") or "empty reply"

    def _slowloris(self, count: int, seconds: int) -> str:
        connections = [c for c in (self._connect() for _ in range(count)) if c is not None]
        try:
            for second in range(seconds):
                for connection in connections:
                    with contextlib.suppress(OSError):
                        connection.send(HEAD[second % len(HEAD) : second % len(HEAD) + 1])
                time.sleep(1)
            still = sum(self._open(c) for c in connections)
        finally:
            for connection in connections:
                connection.close()
        return f"{still} of {count} open after {seconds} s"

    def _silent(self, count: int) -> str:
        connections = [c for c in (self._connect() for _ in range(count)) if c is not None]
        try:
            time.sleep(1)
            accepted = sum(self._open(c) for c in connections)
            during = self._fresh_request()
            time.sleep(max(0.0, 7 - 1))
            still = sum(self._open(c) for c in connections)
            after = self._fresh_request()
        finally:
            for connection in connections:
                connection.close()
        return (
            f"{accepted} of {count} held after 1 s, a new request then: {during}; "
            f"{still} open after 7 s, a new request then: {after}"
        )
