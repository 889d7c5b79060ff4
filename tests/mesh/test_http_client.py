"""l8's HTTP/1.1 client (mesh/http_client.py) against real servers on loopback: keep-alive reuse,
a connection the server closed while idle, chunked and close-delimited answers, timeouts, refused
connections and garbage."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from mesh.http_client import HttpClient, HttpError
from tests.echo_app import echo_app
from tests.servers import LOOPBACK, free_port

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[Handler], Awaitable[int]]]:
    servers: list[asyncio.Server] = []
    handlers: set[asyncio.Task[None]] = set()

    async def start(handler: Handler) -> int:
        async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            handlers.add(task)
            try:
                await handler(reader, writer)
            except asyncio.CancelledError:
                pass  # the test is over (ending normally keeps Python 3.11's stream callback quiet)
            finally:
                writer.close()  # a writer left open warns once collected, after the loop is gone

        server = await asyncio.start_server(tracked, LOOPBACK, 0)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start
    for server in servers:
        server.close()
    for task in handlers:
        task.cancel()
    await asyncio.gather(*handlers, return_exceptions=True)
    for server in servers:
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":")[1]))
    return head


async def test_calls_reuse_one_connection_and_send_exactly_what_was_asked() -> None:
    async with echo_app() as port:
        client = HttpClient("http", LOOPBACK, port)
        first = await client.request("POST", "/a%2Fb?x=1&x=2", [("content-type", "text/plain")], b"hello", 5)
        second = await client.request("GET", "/c", [], None, 5)
        await client.aclose()
    import orjson

    echoed = orjson.loads(first.body)
    assert first.status == 200
    assert (echoed["method"], echoed["path"], echoed["query"], echoed["body"]) == (
        "POST",
        "/a%2Fb",
        "x=1&x=2",
        "hello",
    )
    assert sorted(name.lower() for name, _ in echoed["headers"]) == ["content-length", "content-type", "host"]
    assert orjson.loads(second.body)["method"] == "GET"


async def test_keep_alive_connections_are_reused_buffered_and_streamed(
    raw_server: Callable[[Handler], Awaitable[int]],
) -> None:
    connections = 0

    async def keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                await read_request(reader)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()

    client = HttpClient("http", LOOPBACK, await raw_server(keep_alive))
    for _ in range(3):
        assert (await client.request("POST", "/", [], b"x", 5)).body == b"ok"
        stream = await client.open("GET", "/", [], None, 5)
        assert [chunk async for chunk in stream.chunks()] == [b"ok"]
        stream.release()
    assert connections == 1
    await client.aclose()


async def test_a_connection_closed_while_idle_is_replaced(
    raw_server: Callable[[Handler], Awaitable[int]],
) -> None:
    connections = 0

    async def one_answer_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()  # keep-alive promised, then closed while idle

    port = await raw_server(one_answer_then_close)
    client = HttpClient("http", LOOPBACK, port)
    assert (await client.request("GET", "/", [], None, 5)).body == b"ok"
    await asyncio.sleep(0.2)
    assert (await client.request("GET", "/", [], None, 5)).body == b"ok"
    assert connections == 2
    await client.aclose()


async def test_chunked_and_close_delimited_answers(raw_server: Callable[[Handler], Awaitable[int]]) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await read_request(reader)
            if b"/chunked" in head:
                writer.write(
                    b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n"
                    b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
                )
                await writer.drain()
                continue
            writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
            writer.close()
            return

    port = await raw_server(answer)
    client = HttpClient("http", LOOPBACK, port)
    chunked = await client.request("GET", "/chunked", [], None, 5)
    assert (chunked.status, chunked.body, (b"X-A", b"1") in chunked.headers) == (201, b"abcde", True)
    closing = await client.request("GET", "/close", [], None, 5)
    assert closing.body == b"until the end"
    await client.aclose()


async def test_no_answer_in_time_is_an_error(raw_server: Callable[[Handler], Awaitable[int]]) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    client = HttpClient("http", LOOPBACK, await raw_server(silent))
    with pytest.raises(HttpError, match=r"no answer within 0\.2s"):
        await client.request("GET", "/", [], None, 0.2)
    await client.aclose()


async def test_refused_and_garbage_are_errors(raw_server: Callable[[Handler], Awaitable[int]]) -> None:
    with pytest.raises(HttpError, match="cannot connect"):
        await HttpClient("http", LOOPBACK, free_port()).request("GET", "/", [], None, 5)

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()

    client = HttpClient("http", LOOPBACK, await raw_server(garbage))
    with pytest.raises(HttpError, match="unparsable"):
        await client.request("GET", "/", [], None, 5)
    await client.aclose()


async def test_a_connection_reset_after_the_answer_began_is_not_retried(
    raw_server: Callable[[Handler], Awaitable[int]],
) -> None:
    calls = 0

    async def half(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal calls
        while True:
            await read_request(reader)
            calls += 1
            if calls == 1:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
                continue
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\npart")
            await writer.drain()
            writer.close()
            return

    client = HttpClient("http", LOOPBACK, await raw_server(half))
    await client.request("GET", "/", [], None, 5)
    with pytest.raises(HttpError, match="closed"):
        await client.request("POST", "/", [], b"x", 5)
    assert calls == 2  # the app saw it once: not sent again
    await client.aclose()


async def test_a_connection_idle_past_the_expiry_is_not_reused(
    raw_server: Callable[[Handler], Awaitable[int]],
) -> None:
    connections = 0

    async def keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        with contextlib.suppress(asyncio.IncompleteReadError):
            while True:
                await read_request(reader)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()

    port = await raw_server(keep_alive)
    client = HttpClient("http", LOOPBACK, port, idle_expiry=0.2)
    for _ in range(2):
        assert (await client.request("PUT", "/", [], b"x", 5)).body == b"ok"
    assert connections == 1  # reused while fresh
    await asyncio.sleep(0.3)
    assert (await client.request("PUT", "/", [], b"x", 5)).body == b"ok"
    assert connections == 2  # idle past the expiry: a new connection, the old one closed
    await client.aclose()
