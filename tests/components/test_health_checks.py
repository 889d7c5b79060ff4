"""Every component type whose backend can fail has a health check (components/health.py): it
answers while its real server does, and fails with BackendError when the server is gone or the
component closed. The in-memory and local types have none (they are up once started)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from components import registry
from components.errors import BackendError
from components.health import HealthCheck
from tests.s3_buckets import new_bucket, s3_metadata
from tests.servers import RedisServer

Metadata = Callable[[pytest.FixtureRequest], Any]


def _redis(request: pytest.FixtureRequest) -> dict[str, str]:
    return {"redisHost": request.getfixturevalue("redis_server").address, "consumerID": "health"}


def _etcd(request: pytest.FixtureRequest) -> dict[str, str]:
    return {"endpoints": request.getfixturevalue("etcd_server").address}


def _sqlite(request: pytest.FixtureRequest) -> dict[str, str]:
    return {"connectionString": str(request.getfixturevalue("tmp_path") / "health.db")}


def _kafka(request: pytest.FixtureRequest) -> dict[str, str]:
    return {"brokers": request.getfixturevalue("kafka_server").address, "consumerID": "health"}


def _kafka_binding(request: pytest.FixtureRequest) -> dict[str, str]:
    return {
        "brokers": request.getfixturevalue("kafka_server").address,
        "publishTopic": f"h-{uuid.uuid4().hex[:8]}",
    }


def _postgres(request: pytest.FixtureRequest) -> dict[str, str]:
    return {"connectionString": request.getfixturevalue("postgres_server").dsn}


async def _s3(request: pytest.FixtureRequest) -> dict[str, str]:
    server = request.getfixturevalue("s3_server")
    return s3_metadata(server, await new_bucket(server))


CHECKED: dict[str, Metadata] = {
    "state.redis": _redis,
    "pubsub.redis": _redis,
    "lock.redis": _redis,
    "configuration.redis": _redis,
    "sequencer.redis": _redis,
    "secretstores.redis": _redis,
    "bindings.redis": _redis,
    "lock.etcd": _etcd,
    "configuration.etcd": _etcd,
    "sequencer.etcd": _etcd,
    "state.sqlite": _sqlite,
    "sequencer.sqlite": _sqlite,
    "pubsub.kafka": _kafka,
    "bindings.kafka": _kafka_binding,
    "bindings.postgresql": _postgres,
    "bindings.aws.s3": _s3,
    "file.s3": _s3,
}
UNCHECKED = (
    "state.in-memory",
    "pubsub.in-memory",
    "lock.in-memory",
    "configuration.in-memory",
    "secretstores.local.env",
)
REDIS_TYPES = [name for name, metadata in CHECKED.items() if metadata is _redis]


async def _metadata(request: pytest.FixtureRequest, component_type: str) -> dict[str, str]:
    found = CHECKED[component_type](request)
    return dict(await found if asyncio.iscoroutine(found) else found)


@pytest.mark.parametrize("component_type", list(CHECKED))
async def test_the_health_check_answers_while_the_server_does(
    request: pytest.FixtureRequest, component_type: str
) -> None:
    instance: Any = registry.create(component_type)
    assert isinstance(instance, HealthCheck)
    await instance.init(await _metadata(request, component_type))
    try:
        await asyncio.wait_for(instance.ping(), 5)
    finally:
        await instance.close()
    with pytest.raises(BackendError):
        await asyncio.wait_for(instance.ping(), 5)


@pytest.mark.parametrize("component_type", UNCHECKED)
def test_backends_that_cannot_fail_have_none(component_type: str) -> None:
    assert not isinstance(registry.create(component_type), HealthCheck)


@pytest.mark.parametrize("component_type", REDIS_TYPES)
async def test_a_stopped_redis_fails_the_health_check(component_type: str, own_redis: RedisServer) -> None:
    instance: Any = registry.create(component_type)
    await instance.init({"redisHost": own_redis.address, "consumerID": "health"})
    try:
        own_redis.stop()
        with pytest.raises((BackendError, TimeoutError)):
            await asyncio.wait_for(instance.ping(), 3)
        own_redis.start()
        await asyncio.wait_for(instance.ping(), 5)
    finally:
        await instance.close()


def test_every_type_with_a_health_check_is_checked_here() -> None:
    """A new backend that adds ping() joins CHECKED (and so runs against its real server)."""
    checked = {type(registry.create(name)) for name in CHECKED}
    pingable = {
        name
        for name in registry.component_types()
        if isinstance(instance := registry.create(name), HealthCheck) and type(instance) not in checked
    }
    assert not pingable, f"types with a health check that this suite does not run: {sorted(pingable)}"
