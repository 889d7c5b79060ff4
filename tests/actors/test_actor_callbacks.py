"""The correlation of an actor host stream (services/actors/callbacks.py): ids, concurrent calls
answered out of order, an answer nobody waits for, a stream that ends mid-call, and which of
several open streams serves."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from services.actors.callbacks import HostConnection, HostDisconnected, HostNotConnected, HostStreams
from services.actors.config import NO_ACTORS, ActorConfig, TypeConfig

Request = tuple[str, str]
"""(id, what): what the test's requests look like."""


def asking(what: str) -> Callable[[str], Request]:
    return lambda request_id: (request_id, what)


async def written(connection: HostConnection[Request, str], count: int) -> list[Request]:
    """The next ``count`` requests the stream's writer takes."""
    found: list[Request] = []
    for _ in range(count):
        request = await asyncio.wait_for(connection.next_request(), 1)
        assert request is not None
        found.append(request)
    return found


async def test_each_request_gets_its_own_id_and_its_own_answer() -> None:
    streams: HostStreams[Request, str] = HostStreams()
    connection = streams.open(NO_ACTORS)
    calls = [asyncio.create_task(streams.send(asking(what))) for what in ("a", "b", "c")]
    requests = await written(connection, 3)
    assert requests == [("1", "a"), ("2", "b"), ("3", "c")]
    assert connection.in_flight == 3
    # Answered out of order, each caller still gets the answer to its own request.
    for request_id, what in reversed(requests):
        assert connection.deliver(request_id, f"answer to {what}")
    assert await asyncio.gather(*calls) == ["answer to a", "answer to b", "answer to c"]
    assert connection.in_flight == 0


async def test_an_answer_no_request_waits_for_is_dropped() -> None:
    streams: HostStreams[Request, str] = HostStreams()
    connection = streams.open(NO_ACTORS)
    call = asyncio.create_task(streams.send(asking("a")))
    [(request_id, _)] = await written(connection, 1)
    assert not connection.deliver("99", "stray")
    assert not call.done()
    assert connection.deliver(request_id, "mine")
    assert await call == "mine"
    assert not connection.deliver(request_id, "twice")  # answered already


async def test_a_late_answer_to_a_caller_that_gave_up_is_dropped() -> None:
    streams: HostStreams[Request, str] = HostStreams()
    connection = streams.open(NO_ACTORS)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(streams.send(asking("slow")), 0.05)
    [(request_id, _)] = await written(connection, 1)
    assert connection.in_flight == 0
    assert not connection.deliver(request_id, "too late")


async def test_a_stream_that_ends_fails_the_calls_in_flight_and_stops_its_writer() -> None:
    streams: HostStreams[Request, str] = HostStreams()
    connection = streams.open(NO_ACTORS)
    calls = [asyncio.create_task(streams.send(asking(what))) for what in ("a", "b")]
    await written(connection, 2)
    writer = asyncio.create_task(connection.next_request())
    await asyncio.sleep(0)
    streams.close(connection)
    for call in calls:
        with pytest.raises(HostDisconnected, match="actor host disconnected before responding"):
            await call
    assert await writer is None
    with pytest.raises(HostNotConnected, match="actor host is not connected"):
        await streams.send(asking("after"))
    with pytest.raises(HostDisconnected):
        await connection.send(asking("on the closed one"))
    streams.close(connection)  # again: nothing happens


async def test_the_newest_stream_serves_and_the_one_before_takes_over_when_it_closes() -> None:
    streams: HostStreams[Request, str] = HostStreams()
    first = streams.open(ActorConfig({"cart": TypeConfig()}))
    second = streams.open(ActorConfig({"order": TypeConfig()}))
    assert streams.latest is second and len(streams) == 2
    call = asyncio.create_task(streams.send(asking("a")))
    [(request_id, _)] = await written(second, 1)
    second.deliver(request_id, "from the second")
    assert await call == "from the second"

    streams.close(second)
    assert streams.latest is first and streams.latest.config.hosted == {"cart"}
    call = asyncio.create_task(streams.send(asking("b")))
    [(request_id, _)] = await written(first, 1)
    assert request_id == "1"  # ids are the connection's own
    first.deliver(request_id, "from the first")
    assert await call == "from the first"
    streams.close_all()
    assert streams.latest is None
