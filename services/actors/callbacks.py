"""The actor host streams an app opened (``SubscribeActorEventsAlpha1``): the sidecar's requests to
the app and the app's answers, correlated by id, as daprd's pkg/actors/callbackstream does it.

Transport-neutral: a request is whatever the transport builds from the id it is given, an answer
whatever it reads back; routers/grpc/actor_host.py puts the protobuf messages in. Each connection
numbers its requests ``"1"``, ``"2"``, ... (daprd's per-connection sequence) and keeps one future
per request in flight. An answer whose id no request waits for (already answered, given up, or
never sent) is dropped with a warning, as daprd drops it. When the stream ends, every request still
waiting fails at once with :class:`HostDisconnected`.

Several streams may be open at once (an app that reconnects before its old stream is seen to
end, or two processes): requests go to the one opened last, and when it closes, to the newest one
left, as daprd's manager picks its ``latestConn``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Generic, TypeVar

import structlog

from services.actors.config import ActorConfig

log = structlog.get_logger(__name__)

Request = TypeVar("Request")
Answer = TypeVar("Answer")


class HostNotConnected(Exception):
    """No app has an actor host stream open (daprd's ``ErrNoConnection``)."""

    def __init__(self) -> None:
        super().__init__("actor host is not connected")


class HostDisconnected(Exception):
    """The stream ended before the app answered (daprd's ``ErrDisconnected``)."""

    def __init__(self) -> None:
        super().__init__("actor host disconnected before responding")


class HostConnection(Generic[Request, Answer]):
    """One open stream: the requests waiting to be written, and those waiting for an answer."""

    def __init__(self, number: int, config: ActorConfig) -> None:
        self.number = number
        self.config = config
        """What the app registered when it opened the stream."""
        self._outbox: asyncio.Queue[Request | None] = asyncio.Queue()
        """The requests to write, then None once the stream has ended (wakes the writer)."""
        self._pending: dict[str, asyncio.Future[Answer]] = {}
        self._ids = itertools.count(1)
        self.closed = False

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    async def send(self, build: Callable[[str], Request]) -> Answer:
        """Queue the request ``build`` makes with its id and wait for the app's answer. Raises
        :class:`HostDisconnected` when the stream ends first. A caller that gives up (cancelled,
        its deadline passed) forgets its id: a late answer is then dropped."""
        if self.closed:
            raise HostDisconnected()
        request_id = str(next(self._ids))
        answer: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = answer
        try:
            self._outbox.put_nowait(build(request_id))
            return await answer
        finally:
            self._pending.pop(request_id, None)

    def deliver(self, request_id: str, answer: Answer) -> bool:
        """The app's answer to request ``request_id``; False (and a warning) when none waits for it."""
        waiting = self._pending.pop(request_id, None)
        if waiting is None or waiting.done():
            log.warning("dropped an actor host answer with an unknown id", id=request_id)
            return False
        waiting.set_result(answer)
        return True

    async def next_request(self) -> Request | None:
        """The next request to write to the stream; None once the stream has ended (what was
        still queued then has failed already)."""
        request = await self._outbox.get()
        return None if self.closed else request

    def end(self) -> None:
        """The stream is over: fail every request still waiting, and stop the writer."""
        if self.closed:
            return
        self.closed = True
        self._outbox.put_nowait(None)
        pending, self._pending = self._pending, {}
        for waiting in pending.values():
            if not waiting.done():
                waiting.set_exception(HostDisconnected())


class HostStreams(Generic[Request, Answer]):
    """Every actor host stream open on this sidecar, newest last."""

    def __init__(self) -> None:
        self._open: list[HostConnection[Request, Answer]] = []
        self._numbers = itertools.count(1)

    def open(self, config: ActorConfig) -> HostConnection[Request, Answer]:
        connection: HostConnection[Request, Answer] = HostConnection(next(self._numbers), config)
        self._open.append(connection)
        log.info("actor host stream opened", stream=connection.number, types=sorted(config.hosted))
        return connection

    def close(self, connection: HostConnection[Request, Answer]) -> None:
        """End ``connection`` (its waiting requests fail) and forget it; idempotent."""
        connection.end()
        if connection in self._open:
            self._open.remove(connection)
            log.info("actor host stream closed", stream=connection.number)

    @property
    def latest(self) -> HostConnection[Request, Answer] | None:
        return self._open[-1] if self._open else None

    def __len__(self) -> int:
        return len(self._open)

    async def send(self, build: Callable[[str], Request]) -> Answer:
        """A request on the newest stream. Raises :class:`HostNotConnected` or
        :class:`HostDisconnected`."""
        connection = self.latest
        if connection is None:
            raise HostNotConnected()
        return await connection.send(build)

    def close_all(self) -> None:
        for connection in list(self._open):
            self.close(connection)
