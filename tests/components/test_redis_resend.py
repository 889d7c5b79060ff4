"""What the Redis client resends (components/redis_connection.py), checked against a Redis of the
test's own that it freezes (SIGSTOP) and stops: a command whose reply was lost is never resent (an
INCRBY or XADD would run twice), a command that could not be sent is (``maxRetries``)."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable

import redis.asyncio

from components.errors import BackendError, OutcomeUnknownError
from components.metadata import decode
from components.pubsub.base import PublishRequest
from components.pubsub.redis import RedisPubSub
from components.redis_connection import REDIS_ERRORS, RedisConnectionMetadata, connect
from components.sequencer.redis import RedisSequencer
from tests.servers import RedisServer


async def _read_back(server: RedisServer, *command: str) -> object:
    client = redis.asyncio.Redis.from_url(server.url)
    try:
        return await client.execute_command(*command)
    finally:
        await client.aclose()


async def test_a_command_whose_reply_was_lost_is_not_resent(own_redis: RedisServer) -> None:
    """Redis thaws just after the reply timed out, while a resend would be on its way."""
    settings = decode(RedisConnectionMetadata, {"redisHost": own_redis.address, "readTimeout": "300ms"})
    client = await connect(settings, max_retries=3)
    try:
        own_redis.send_signal(signal.SIGSTOP)
        started = time.monotonic()
        call = asyncio.create_task(_translated(client.incrby("counter", 1)))
        await asyncio.sleep(0.45)
        own_redis.send_signal(signal.SIGCONT)
        [outcome] = await asyncio.gather(call, return_exceptions=True)
        assert isinstance(outcome, OutcomeUnknownError), outcome
        assert "may have been applied" in str(outcome)
        assert time.monotonic() - started < 1.0
        await asyncio.sleep(0.2)
        assert await _read_back(own_redis, "GET", "counter") == b"1", "applied once, never resent"
    finally:
        await client.aclose()


async def test_a_read_whose_reply_was_lost_is_resent(own_redis: RedisServer) -> None:
    settings = decode(RedisConnectionMetadata, {"redisHost": own_redis.address, "readTimeout": "300ms"})
    client = await connect(settings, max_retries=3)
    try:
        await client.set("k", "v")
        own_redis.send_signal(signal.SIGSTOP)
        call = asyncio.create_task(_translated(client.get("k")))
        await asyncio.sleep(0.45)
        own_redis.send_signal(signal.SIGCONT)
        assert await call == b"v"
    finally:
        await client.aclose()


async def test_a_command_that_could_not_be_sent_is_resent(own_redis: RedisServer) -> None:
    """Redis restarts between two commands: the pooled connection is dead, the command is sent
    again on a new one (maxRetries), and the caller never sees the restart."""
    settings = decode(RedisConnectionMetadata, {"redisHost": own_redis.address})
    client = await connect(settings, max_retries=3)
    try:
        await client.set("k", "before")
        await asyncio.to_thread(own_redis.restart)
        assert await client.set("k", "after")
        assert await client.get("k") == b"after"
    finally:
        await client.aclose()


async def test_a_sequencer_reservation_is_not_resent_after_a_lost_reply(own_redis: RedisServer) -> None:
    sequencer = RedisSequencer()
    await sequencer.init({"redisHost": own_redis.address, "readTimeout": "300ms"})
    try:
        own_redis.send_signal(signal.SIGSTOP)
        call = asyncio.create_task(sequencer.allocate("seq", 10))
        await asyncio.sleep(0.45)
        own_redis.send_signal(signal.SIGCONT)
        [outcome] = await asyncio.gather(call, return_exceptions=True)
        assert isinstance(outcome, BackendError), outcome
        await asyncio.sleep(0.2)
        assert await sequencer.allocate("seq", 1) == 11, "the lost reservation ran once: one gap of 10"
    finally:
        await sequencer.close()


async def test_a_publish_whose_reply_was_lost_is_in_the_stream_once(own_redis: RedisServer) -> None:
    pubsub = RedisPubSub()
    # The publish pool's socket timeout is 2 x readTimeout + 1 s: 2 s here.
    await pubsub.init({"redisHost": own_redis.address, "readTimeout": "500ms", "consumerID": "g"})
    try:
        own_redis.send_signal(signal.SIGSTOP)
        started = time.monotonic()
        publish = pubsub.publish(PublishRequest("frozen", b'{"id":"one"}', "application/json"))
        call = asyncio.create_task(publish)
        await asyncio.sleep(2.3)  # the reply timed out; a resend would now be on its way
        own_redis.send_signal(signal.SIGCONT)
        [outcome] = await asyncio.gather(call, return_exceptions=True)
        assert isinstance(outcome, OutcomeUnknownError), outcome
        assert time.monotonic() - started < 3.0
        await asyncio.sleep(0.3)
        assert await _read_back(own_redis, "XLEN", "frozen") == 1
    finally:
        await pubsub.close()


async def _translated(call: Awaitable[object]) -> object:
    with REDIS_ERRORS:
        return await call
