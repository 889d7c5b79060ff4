"""The idle timer against a request already in the socket (app/http_protocol.py), on uvloop as
l8 serves: libuv runs a due timer after the callbacks of one poll and before the next poll, so
when the loop is busy past the idle deadline, the timer runs before the read of a request that
arrived in time. The sidecar must answer that request, not close the connection under it (a
close with unread bytes sends a reset: the client's ``httpx.ReadError``, with nothing logged)."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import uvicorn
import uvloop
from uvicorn.server import ServerState

from app.http_protocol import ConnectionLimits, sidecar_protocol

IDLE = 0.3
REQUEST = b"GET /ok HTTP/1.1\r\nHost: l8\r\n\r\n"
LAG = b"LAG\r\n"
"""Bytes that make the test's protocol hold the loop past the idle deadline (a loaded sidecar)."""


async def ok(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


async def read_answer(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> bytes:
    received = b""
    while not received.endswith(b"\r\n\r\nok"):
        try:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), 5)
        except ConnectionResetError:
            return received + b"<reset>"
        if not chunk:
            return received + b"<closed>"
        received += chunk
    return received


async def keep_alive_request_during_a_lag() -> bytes:
    """A request sent on a kept-alive connection before its idle deadline, while the sidecar's
    loop is busy in a read callback until after that deadline: what the client receives."""
    loop = asyncio.get_running_loop()
    base = sidecar_protocol(_limits())
    client = socket.socket()

    class Lagging(base):  # type: ignore[valid-type, misc]
        def data_received(self, data: bytes) -> None:
            if data == LAG:
                client.send(REQUEST)  # in time: the idle deadline is IDLE after the first answer
                time.sleep(IDLE * 2)  # the loop is busy past it (a long batch of reads)
                return
            super().data_received(data)

    config = uvicorn.Config(ok, http=Lagging, timeout_keep_alive=IDLE, log_config=None)  # type: ignore[arg-type]
    config.load()
    state = ServerState()
    server = await loop.create_server(
        lambda: Lagging(config=config, server_state=state, app_state={}), "127.0.0.1", 0
    )
    lagger = socket.socket()
    try:
        address = server.sockets[0].getsockname()
        client.setblocking(False)
        lagger.setblocking(False)
        await loop.sock_connect(client, address)
        await loop.sock_connect(lagger, address)
        await loop.sock_sendall(client, REQUEST)
        first = await read_answer(loop, client)
        assert first.startswith(b"HTTP/1.1 200"), first
        await loop.sock_sendall(lagger, LAG)
        return await read_answer(loop, client)
    finally:
        client.close()
        lagger.close()
        server.close()
        for connection in list(state.connections):
            connection.transport.close()
        await server.wait_closed()


def test_a_request_that_arrived_before_the_idle_deadline_is_answered_on_uvloop() -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        answer = runner.run(keep_alive_request_during_a_lag())
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"ok"), answer


def test_an_idle_connection_is_still_closed_after_the_idle_timeout() -> None:
    async def idle() -> bytes:
        loop = asyncio.get_running_loop()
        config = uvicorn.Config(ok, timeout_keep_alive=IDLE, log_config=None)  # type: ignore[arg-type]
        config.load()
        state = ServerState()
        protocol = sidecar_protocol(_limits())
        server = await loop.create_server(
            lambda: protocol(config=config, server_state=state, app_state={}), "127.0.0.1", 0
        )
        sock = socket.socket()
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, server.sockets[0].getsockname())
            await loop.sock_sendall(sock, REQUEST)
            answer = await read_answer(loop, sock)
            started = time.monotonic()
            rest = await asyncio.wait_for(loop.sock_recv(sock, 1024), 5)
            assert IDLE * 0.8 <= time.monotonic() - started < IDLE * 5
            return answer + rest
        finally:
            sock.close()
            server.close()
            await server.wait_closed()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        got = runner.run(idle())
    assert got.startswith(b"HTTP/1.1 200") and got.endswith(b"ok"), got  # then closed: b"" read


def _limits() -> ConnectionLimits:
    return ConnectionLimits(
        header_timeout=10, idle_timeout=IDLE, max_head_bytes=8192, max_header_count=100, max_connections=100
    )
