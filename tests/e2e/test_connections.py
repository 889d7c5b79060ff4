"""Connections at the door of a real l8 process (app/http_protocol.py): slow heads and silent
connections are closed on time, oversized heads are answered 431, connections past the limit are
closed while the open ones keep working, and the open-file limit is raised at start-up. Each test
sets short limits through the settings so that it takes a few seconds."""

from __future__ import annotations

import re
import resource
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.e2e.process import L8Launcher, L8Process
from tests.servers import LOOPBACK

pytestmark = pytest.mark.e2e

HEALTH = b"GET /v1.0/healthz HTTP/1.1\r\nHost: l8\r\n"
TOO_LARGE = b"431 Request Header Fields Too Large"


def connect(sidecar: L8Process) -> socket.socket:
    connection = socket.create_connection((LOOPBACK, sidecar.port), timeout=5)
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return connection


@contextmanager
def connections(sidecar: L8Process, count: int) -> Iterator[list[socket.socket]]:
    opened = [connect(sidecar) for _ in range(count)]
    try:
        yield opened
    finally:
        for connection in opened:
            connection.close()


def closed_by_peer(connection: socket.socket) -> bool:
    """True once l8 has closed the connection (EOF or reset), without waiting; l8 must have sent
    nothing (these connections are closed without an answer)."""
    connection.setblocking(False)
    try:
        data = connection.recv(4096)
        assert data == b"", f"unexpected answer: {data[:200]!r}"
        return True
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    finally:
        connection.setblocking(True)


def answer(connection: socket.socket) -> bytes:
    """Everything l8 sends until it closes the connection (or stops sending for 5 s)."""
    chunks = []
    while chunk := connection.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def status_of(connection: socket.socket, head: bytes = HEALTH) -> int:
    """One request on a kept-alive connection; its status (healthz answers without a body)."""
    connection.sendall(head + b"\r\n")
    reply = connection.recv(4096)
    match = re.match(rb"HTTP/1.1 (\d{3}) ", reply)
    assert match, reply
    return int(match.group(1))


def test_slow_heads_are_closed_after_the_header_timeout(l8: L8Launcher) -> None:
    sidecar = l8(args=["--header-timeout", "1"])
    with connections(sidecar, 50) as slow:
        started = time.monotonic()
        for step in range(8):  # one byte a connection every 0.2 s: a head that would take 8 s
            for connection in slow:
                if not closed_by_peer(connection):
                    connection.send(HEALTH[step : step + 1])
            time.sleep(0.2)
            if time.monotonic() - started < 0.8:
                assert not any(closed_by_peer(c) for c in slow)
                assert httpx.get(f"{sidecar.url}/v1.0/healthz").status_code == 204  # others are served
        assert all(closed_by_peer(c) for c in slow)
        assert time.monotonic() - started < 4.0  # generous: the machine may be busy


def test_a_head_that_keeps_coming_is_closed_without_an_answer(l8: L8Launcher) -> None:
    sidecar = l8(args=["--header-timeout", "1"])
    with connections(sidecar, 1) as (connection,):
        started = time.monotonic()
        for byte in HEALTH + b"X-Slow: " + b"a" * 40:
            try:
                connection.send(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            if closed_by_peer(connection):
                break
            time.sleep(0.05)
        waited = time.monotonic() - started
        assert 0.9 < waited < 3.0, waited  # no answer: Go's server closes a timed-out head too


def test_connections_that_never_send_are_closed_after_the_idle_timeout(l8: L8Launcher) -> None:
    sidecar = l8(args=["--idle-timeout", "1"])
    with connections(sidecar, 200) as silent:
        started = time.monotonic()
        time.sleep(0.6)
        assert not any(closed_by_peer(c) for c in silent)
        while not all(closed_by_peer(c) for c in silent) and time.monotonic() - started < 5:
            time.sleep(0.1)
        assert all(closed_by_peer(c) for c in silent)
        assert 0.9 < time.monotonic() - started < 3.5
    with connections(sidecar, 1) as (kept,):  # a kept-alive connection idles as long
        assert status_of(kept) == 204
        time.sleep(0.5)
        assert status_of(kept) == 204
        time.sleep(1.5)
        assert closed_by_peer(kept)


def test_oversized_heads_get_431_and_heads_within_the_limits_are_served(l8: L8Launcher) -> None:
    sidecar = l8()
    with httpx.Client(base_url=sidecar.url, timeout=10) as client:
        big = client.get("/v1.0/healthz", headers={"X-Big": "a" * 1_000_000})
        assert big.status_code == 431
        assert big.headers["content-type"] == "text/plain; charset=utf-8"  # daprd's (Go's) answer
        assert big.content == TOO_LARGE
        flood = client.get("/v1.0/healthz", headers=[(f"X-H{i}", "a") for i in range(10_000)])
        assert (flood.status_code, flood.content) == (431, TOO_LARGE)
        # Within 4Ki (--read-buffer-size) plus Go's 4Ki of slack, as daprd accepts.
        assert client.get("/v1.0/healthz", headers={"X-Big": "a" * 7_900}).status_code == 204
        assert client.get("/v1.0/healthz", headers={"X-Big": "a" * 8_200}).status_code == 431
        # A POST whose head is fine is not refused for its body, however it is read.
        saved = client.post("/v1.0/state/statestore", json=[{"key": "k", "value": "v" * 300_000}])
        assert saved.status_code == 204, saved.text
    headers = b"".join(b"X-H%d: a\r\n" % i for i in range(99))  # with Host: 100 headers
    with connections(sidecar, 1) as (connection,):
        assert status_of(connection, HEALTH + headers) == 204
    with connections(sidecar, 1) as (connection,):
        connection.sendall(HEALTH + headers + b"X-One-Too-Many: a\r\n\r\n")
        reply = answer(connection)
        assert reply.startswith(b"HTTP/1.1 431 ") and reply.endswith(TOO_LARGE)


def test_a_head_over_the_limit_in_slow_reads_is_refused(l8: L8Launcher) -> None:
    sidecar = l8(args=["--read-buffer-size", "1Ki"])
    with connections(sidecar, 1) as (connection,):
        connection.sendall(HEALTH)
        for _ in range(6):  # 6 reads of 1,000 bytes: past 1Ki + 4Ki before the head ends
            time.sleep(0.05)
            connection.sendall(b"X-Part: " + b"a" * 990 + b"\r\n")
        reply = answer(connection)
        assert reply.startswith(b"HTTP/1.1 431 ") and reply.endswith(TOO_LARGE)


def test_connections_past_the_limit_are_closed_and_open_ones_keep_working(l8: L8Launcher) -> None:
    sidecar = l8(args=["--max-connections", "10"])
    time.sleep(0.3)  # the readiness probe's connection is gone
    with connections(sidecar, 10) as kept:
        assert [status_of(c) for c in kept] == [204] * 10
        with connections(sidecar, 5) as excess:
            time.sleep(0.3)
            assert all(closed_by_peer(c) for c in excess)
        assert [status_of(c) for c in kept] == [204] * 10  # the open ones were not touched
    time.sleep(0.3)
    with connections(sidecar, 10) as fresh:
        assert [status_of(c) for c in fresh] == [204] * 10


class _LimitedL8(L8Process):
    """l8 started with a low soft open-file limit (and optionally a hard one)."""

    def __init__(self, workdir: Path, *, soft: int, hard: int | None = None) -> None:
        super().__init__(workdir)
        self.soft = soft
        self.hard = hard

    def command(self) -> list[str]:
        lower = (
            "import os, resource, sys; hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]; "
            f"resource.setrlimit(resource.RLIMIT_NOFILE, ({self.soft}, {self.hard or 'hard'})); "
            "os.execv(sys.argv[1], sys.argv[1:])"
        )
        return [sys.executable, "-c", lower, *super().command()]


def _open_files_limit(pid: int) -> tuple[int, int]:
    with open(f"/proc/{pid}/limits") as limits:
        line = next(line for line in limits if line.startswith("Max open files"))
    soft, hard = line.split()[3:5]
    return int(soft), int(hard)


def test_the_soft_open_file_limit_is_raised_and_bounds_the_connections(l8: L8Launcher) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    raised = _LimitedL8(l8.workdir, soft=256)
    l8.processes.append(raised)
    raised.start()
    assert _open_files_limit(raised.pid) == (hard, hard)  # as Go's runtime does for daprd
    assert "connection limit lowered" not in raised.stderr
    # With a hard limit of 512 the connection limit leaves a quarter of it to l8's own files.
    capped = _LimitedL8(l8.workdir, soft=512, hard=512)
    l8.processes.append(capped)
    capped.start()
    assert _open_files_limit(capped.pid) == (512, 512)
    assert re.search(r"connection limit lowered .*limit=384", capped.stderr), capped.stderr


def test_the_limits_hold_while_tcp_copy_is_on(l8: L8Launcher, tmp_path: Path) -> None:
    config = tmp_path / "copy.yaml"
    config.write_text(f"tcp_copy:\n  switch: ON\n  dir: {tmp_path / 'dump'}\n")
    sidecar = l8(args=["--config", str(config), "--idle-timeout", "1"])
    big = httpx.get(f"{sidecar.url}/v1.0/healthz", headers={"X-Big": "a" * 100_000})
    assert (big.status_code, big.content) == (431, TOO_LARGE)
    with connections(sidecar, 1) as (silent,):
        time.sleep(1.5)
        assert closed_by_peer(silent)
