"""Resiliency for components, proved on real ``l8 run`` processes against a Redis of the test's own
that it stops, restarts and freezes (SIGSTOP):

* a component's outbound retry policy carries a save across a Redis restart;
* its circuit breaker opens after failures, then answers at once, then half-opens;
* with Redis frozen, every block answers its Dapr error within ``component_timeout`` (or the
  Resiliency timeout that replaces it), and no publish lands twice once Redis thaws.

Delivery (the inbound direction) is proved in tests/e2e/test_pubsub_guarantees.py.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio
import yaml

from tests.e2e.process import L8Launcher, L8Process, write_component
from tests.servers import RedisServer

pytestmark = pytest.mark.e2e

DEADLINE = 1.5
MARGIN = 1.0
"""Start-up of the call, the deadline's tick, a loaded machine."""


def resiliency(folder: Path, policies: dict[str, Any], outbound: dict[str, str]) -> None:
    document = {
        "apiVersion": "dapr.io/v1alpha1",
        "kind": "Resiliency",
        "metadata": {"name": "stores"},
        "spec": {"policies": policies, "targets": {"components": {"statestore": {"outbound": outbound}}}},
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "resiliency.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")


async def started(l8: L8Launcher, folder: Path, *args: str) -> L8Process:
    process = l8.create(app_id=f"res-{uuid.uuid4().hex[:8]}", resources=[folder], args=list(args))
    await asyncio.to_thread(process.start)
    return process


async def timed(call: Any) -> tuple[httpx.Response, float]:
    started_at = time.monotonic()
    answer = await call
    return answer, time.monotonic() - started_at


def failed(answer: httpx.Response, code: str, *words: str) -> None:
    assert answer.status_code == 500, answer.text
    body = answer.json()
    assert body["errorCode"] == code, body
    for word in words:
        assert word in body["message"], body


def event(event_id: str) -> bytes:
    return orjson.dumps(
        {"specversion": "1.0", "id": event_id, "source": "test", "type": "t", "data": {"id": event_id}}
    )


CLOUDEVENT = {"content-type": "application/cloudevents+json"}


async def test_an_outbound_retry_policy_carries_a_save_across_a_redis_restart(
    l8: L8Launcher, tmp_path: Path, own_redis: RedisServer
) -> None:
    folder = tmp_path / "resources"
    write_component(folder, "statestore", "state.redis", {"redisHost": own_redis.address})
    write_component(folder, "plain", "state.redis", {"redisHost": own_redis.address})
    resiliency(
        folder,
        {"retries": {"patient": {"policy": "constant", "duration": "200ms", "maxRetries": 40}}},
        {"retry": "patient"},
    )
    process = await started(l8, folder)
    async with httpx.AsyncClient(base_url=process.url, timeout=30) as client:
        assert (
            await client.post("/v1.0/state/statestore", json=[{"key": "k", "value": 1}])
        ).status_code == 204
        await asyncio.to_thread(own_redis.stop)
        restart = threading.Timer(1.5, own_redis.start)
        try:
            # Without a policy, one attempt: the store is down, the save fails at once.
            answer, elapsed = await timed(client.post("/v1.0/state/plain", json=[{"key": "k", "value": 2}]))
            failed(answer, "ERR_STATE_SAVE")
            assert elapsed < DEADLINE
            restart.start()
            answer, elapsed = await timed(
                client.post("/v1.0/state/statestore", json=[{"key": "k", "value": 2}])
            )
        finally:
            # The restart finishes before the fixture stops the server (its thread polls it).
            if restart.is_alive():
                await asyncio.to_thread(restart.join)
        assert answer.status_code == 204, answer.text
        assert elapsed > 1.0, "saved only once Redis was back"
        assert (await client.get("/v1.0/state/statestore/k")).json() == 2


async def test_the_circuit_breaker_opens_answers_at_once_and_half_opens(
    l8: L8Launcher, tmp_path: Path, own_redis: RedisServer
) -> None:
    folder = tmp_path / "resources"
    write_component(folder, "statestore", "state.redis", {"redisHost": own_redis.address})
    resiliency(
        folder,
        {
            "timeouts": {"short": "300ms"},
            "circuitBreakers": {"cb": {"trip": "consecutiveFailures >= 2", "timeout": "2s"}},
        },
        {"timeout": "short", "circuitBreaker": "cb"},
    )
    # A long deadline: the Resiliency timeout replaces it.
    process = await started(l8, folder, "--component-timeout", "20")
    async with httpx.AsyncClient(base_url=process.url, timeout=30) as client:
        assert (
            await client.post("/v1.0/state/statestore", json=[{"key": "k", "value": 1}])
        ).status_code == 204
        own_redis.send_signal(signal.SIGSTOP)
        try:
            for _ in range(2):
                answer, elapsed = await timed(client.get("/v1.0/state/statestore/k"))
                failed(answer, "ERR_STATE_GET", "did not answer within 0.3s (resiliency timeout)")
                assert elapsed < 0.3 + MARGIN
            answer, elapsed = await timed(client.get("/v1.0/state/statestore/k"))
            failed(answer, "ERR_STATE_GET", "circuit breaker 'cb-statestore-outbound' is open")
            assert elapsed < 0.25, "an open breaker answers without calling Redis"
        finally:
            own_redis.send_signal(signal.SIGCONT)
        answer = await client.get("/v1.0/state/statestore/k")
        failed(answer, "ERR_STATE_GET", "is open")  # still open for its 2s, Redis or not
        await asyncio.sleep(2.2)
        answer = await client.get("/v1.0/state/statestore/k")  # half-open: the probe goes through
        assert answer.status_code == 200, answer.text
        assert (await client.get("/v1.0/state/statestore/k")).json() == 1


async def test_a_frozen_redis_answers_within_the_deadline_and_publishes_once(
    l8: L8Launcher, tmp_path: Path, own_redis: RedisServer
) -> None:
    folder = tmp_path / "resources"
    address = own_redis.address
    write_component(folder, "statestore", "state.redis", {"redisHost": address})
    # The publish pool's socket timeout is 2 x readTimeout + 1 s = 2 s: the XADD's reply is lost
    # while Redis is frozen, where the client used to resend it.
    write_component(folder, "pubsub", "pubsub.redis", {"redisHost": address, "readTimeout": "500ms"})
    write_component(folder, "lockstore", "lock.redis", {"redisHost": address})
    write_component(folder, "sequencer", "sequencer.redis", {"redisHost": address})
    write_component(folder, "configstore", "configuration.redis", {"redisHost": address})
    process = await started(l8, folder, "--component-timeout", str(DEADLINE))
    topic = f"orders-{uuid.uuid4().hex[:8]}"
    acknowledged: list[str] = []
    async with httpx.AsyncClient(base_url=process.url, timeout=30) as client:

        async def publish(event_id: str) -> httpx.Response:
            answer = await client.post(
                f"/v1.0/publish/pubsub/{topic}", content=event(event_id), headers=CLOUDEVENT
            )
            if answer.status_code == 204:
                acknowledged.append(event_id)
            return answer

        assert (
            await client.post("/v1.0/state/statestore", json=[{"key": "k", "value": 1}])
        ).status_code == 204
        assert (await publish("before")).status_code == 204
        own_redis.send_signal(signal.SIGSTOP)
        try:
            calls = {
                "ERR_STATE_GET": client.get("/v1.0/state/statestore/k"),
                "ERR_STATE_SAVE": client.post("/v1.0/state/statestore", json=[{"key": "k", "value": 2}]),
                "ERR_PUBSUB_PUBLISH_MESSAGE": publish("frozen"),
                "ERR_TRY_LOCK": client.post(
                    "/v1.0-alpha1/lock/lockstore",
                    json={"resourceId": "r", "lockOwner": "o", "expiryInSeconds": 10},
                ),
                "ERR_SEQUENCER_GET_NEXT_ID": client.post(
                    "/v1.0-alpha1/sequencer/sequencer", json={"key": "s", "options": {"increment": "STRONG"}}
                ),
                "ERR_CONFIGURATION_GET": client.get("/v1.0/configuration/configstore", params={"key": "c"}),
            }
            for code, call in calls.items():
                answer, elapsed = await timed(call)
                failed(answer, code)
                assert elapsed < DEADLINE + MARGIN, (code, elapsed)
            await asyncio.sleep(1.5)  # past the publish's socket timeout, still frozen
        finally:
            own_redis.send_signal(signal.SIGCONT)
        deadline = time.monotonic() + 10
        while (await client.get("/v1.0/state/statestore/k")).status_code != 200:
            assert time.monotonic() < deadline, "the store did not come back"
            await asyncio.sleep(0.1)
        assert (await publish("after")).status_code == 204

    await asyncio.sleep(0.5)
    raw = redis.asyncio.Redis.from_url(own_redis.url)
    try:
        entries = await raw.xrange(topic)
    finally:
        await raw.aclose()
    ids = [orjson.loads(fields[b"data"])["id"] for _, fields in entries]
    assert len(ids) == len(set(ids)), f"an event landed twice: {ids}"
    assert acknowledged == ["before", "after"]
    assert set(acknowledged) <= set(ids) <= {"before", "frozen", "after"}, ids
