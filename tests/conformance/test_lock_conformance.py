"""Every lock store against the contract in components/lock/base.py.

What is specific to a backend lives in BACKENDS only: its component type, its metadata, how long a
lock may outlive its expiry (etcd grants leases of at least 2 s), and how to read its storage
directly. Redis runs twice: on one server, and as Redlock over three independent redis-server
processes (the session's plus two of this module). The Redlock-only tests at the end stop or stall
some of those servers to prove the majority rule; with a majority of servers down, every operation
raises BackendError (the store failing), never answers "held by others".
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aetcd
import pytest
from redis.asyncio import Redis

from components import registry
from components.errors import BackendError, ComponentInitError, MetadataError
from components.lock.base import LockStatus, RenewRequest, TryLockRequest, UnlockRequest
from tests.servers import LOOPBACK, EtcdServer, RedisServer, SubprocessServer, free_port

Metadata = Callable[[pytest.FixtureRequest], dict[str, str]]
Stored = Callable[[pytest.FixtureRequest, str], Awaitable[list[tuple[bytes | None, float]]]]
"""(owner, seconds left) of a storage key, read straight from each server holding it."""

ETCD_PREFIX = "/l8-conformance/lock/"


async def _redis_stored(servers: list[RedisServer], key: str) -> list[tuple[bytes | None, float]]:
    found = []
    for server in servers:
        client = Redis.from_url(server.url)
        try:
            found.append((await client.get(key), await client.pttl(key) / 1000))
        finally:
            await client.aclose()
    return found


async def _etcd_stored(request: pytest.FixtureRequest, key: str) -> list[tuple[bytes | None, float]]:
    host, _, port = request.getfixturevalue("etcd_server").address.rpartition(":")
    async with aetcd.Client(host=host, port=int(port)) as client:
        kv = await client.get((ETCD_PREFIX + key).encode())
        if kv is None:
            return [(None, -2.0)]
        lease = await client.get_lease_info(kv.lease, keys=False)
        return [(kv.value, float(lease.TTL))]


def _redlock_hosts(request: pytest.FixtureRequest) -> str:
    return ",".join(server.address for server in request.getfixturevalue("redlock_servers"))


@dataclass(frozen=True, slots=True)
class Backend:
    id: str
    type: str
    metadata: Metadata
    """Built per test, from the test's fixtures."""
    overstay: float
    """Seconds a lock may outlive its expiry (the store's granularity)."""
    bad_metadata: tuple[tuple[str, str | None, str], ...] = ()
    """(field, value, field named by the MetadataError); value None: the field left out."""
    unreachable: Metadata | None = None
    """Metadata pointing at a closed port; init must fail with a ComponentInitError naming ..."""
    server_field: str = ""
    """... this field."""
    stored: Stored | None = None
    """Reads the storage layout; None for a store with no server (whose locks are per instance)."""
    private: tuple[type[SubprocessServer], Callable[[str], dict[str, str]]] | None = None
    """A server of its own, for a test that stops it, and the metadata naming its address."""


BACKENDS = (
    Backend("in-memory", "lock.in-memory", lambda request: {}, overstay=0.0),
    Backend(
        "redis",
        "lock.redis",
        lambda request: {"redisHost": request.getfixturevalue("redis_server").address},
        overstay=0.0,
        bad_metadata=(
            ("redisHost", None, "redisHost"),
            ("redisHost", "no-port", "redisHost"),
            ("redisHosts", f"{LOOPBACK}:1,{LOOPBACK}:2", "redisHosts"),  # both given
            ("dialTimeout", "soon", "dialTimeout"),
            ("maxRetries", "-2", "maxRetries"),
        ),
        unreachable=lambda request: {"redisHost": f"{LOOPBACK}:{free_port()}", "dialTimeout": "1s"},
        server_field="redisHost",
        stored=lambda request, key: _redis_stored([request.getfixturevalue("redis_server")], key),
        private=(RedisServer, lambda address: {"redisHost": address}),
    ),
    Backend(
        "redlock",
        "lock.redis",
        lambda request: {"redisHosts": _redlock_hosts(request)},
        overstay=0.0,
        bad_metadata=(
            ("redisHosts", None, "redisHost"),  # neither given
            ("redisHosts", "", "redisHosts"),
            ("redisHosts", f"{LOOPBACK}:1,no-port", "redisHosts"),
            ("redisHosts", f"{LOOPBACK}:1,{LOOPBACK}:2,{LOOPBACK}:1", "redisHosts"),  # one counted twice
            ("redisHost", f"{LOOPBACK}:1", "redisHosts"),  # both given
        ),
        # One server up, one not: every server must answer at start-up.
        unreachable=lambda request: {
            "redisHosts": f"{request.getfixturevalue('redis_server').address},{LOOPBACK}:{free_port()}",
            "dialTimeout": "1s",
        },
        server_field="redisHosts",
        stored=lambda request, key: _redis_stored(request.getfixturevalue("redlock_servers"), key),
    ),
    Backend(
        "etcd",
        "lock.etcd",
        lambda request: {
            "endpoints": request.getfixturevalue("etcd_server").address,
            "keyPrefixPath": ETCD_PREFIX,
        },
        # etcd's minimum lease is 2 s, and its lessor deletes expired keys every 500 ms.
        overstay=1.6,
        bad_metadata=(
            ("endpoints", None, "endpoints"),
            ("endpoints", "no-port", "endpoints"),
            ("dialTimeout", "soon", "dialTimeout"),
        ),
        unreachable=lambda request: {"endpoints": f"{LOOPBACK}:{free_port()}", "dialTimeout": "1s"},
        server_field="endpoints",
        stored=_etcd_stored,
        private=(EtcdServer, lambda address: {"endpoints": address, "keyPrefixPath": ETCD_PREFIX}),
    ),
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    if "bad_field" in metafunc.fixturenames:
        cases = [
            pytest.param(b, field, value, named, id=f"{b.id}-{field}-{'missing' if value is None else value}")
            for b in BACKENDS
            for field, value, named in b.bad_metadata
        ]
        metafunc.parametrize(("backend", "bad_field", "bad_value", "named_field"), cases)
        return
    wanted: Callable[[Backend], bool] = getattr(metafunc.function, "wanted", lambda backend: True)
    metafunc.parametrize("backend", [pytest.param(b, id=b.id) for b in BACKENDS if wanted(b)])


def only(wanted: Callable[[Backend], bool]) -> Callable[[Any], Any]:
    """Run a test against the backends of which ``wanted`` holds."""

    def mark(test: Any) -> Any:
        test.wanted = wanted
        return test

    return mark


with_server = only(lambda backend: backend.stored is not None)


@pytest.fixture(scope="module")
def redlock_servers(redis_server: RedisServer) -> Iterator[list[RedisServer]]:
    """Three independent redis-server processes: the session's and two of this module's."""
    with RedisServer() as second, RedisServer() as third:
        yield [redis_server, second, third]


async def create(backend: Backend, request: pytest.FixtureRequest) -> Any:
    instance = registry.create(backend.type)
    await instance.init(backend.metadata(request))
    return instance


@pytest.fixture
async def store(backend: Backend, request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    instance = await create(backend, request)
    try:
        yield instance
    finally:
        await instance.close()


def owner() -> str:
    return str(uuid.uuid4())


async def lock(store: Any, resource: str, who: str, expiry: int = 30) -> bool:
    return bool(await store.try_lock(TryLockRequest(resource, who, expiry)))


async def unlock(store: Any, resource: str, who: str) -> LockStatus:
    return LockStatus(await store.unlock(UnlockRequest(resource, who)))


async def renew(store: Any, resource: str, who: str, expiry: int = 30) -> LockStatus:
    return LockStatus(await store.renew(RenewRequest(resource, who, expiry)))


async def eventually(probe: Callable[[], Awaitable[bool]], seconds: float) -> bool:
    """Poll ``probe`` until it holds (True) or ``seconds`` have passed (False)."""
    deadline = time.monotonic() + seconds
    while not await probe():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def expiry_wait(backend: Backend, expiry: float) -> float:
    """How long a lock of ``expiry`` seconds may take to be freed, with a margin for a busy host."""
    return expiry + backend.overstay + 1.5


# -- features, life ---------------------------------------------------------------------------------


async def test_no_optional_features_are_claimed(store):
    assert store.features() == frozenset()


async def test_close_twice_is_fine(store):
    await store.close()
    await store.close()


async def test_bad_metadata_names_the_field(backend, request, bad_field, bad_value, named_field):
    metadata = backend.metadata(request)
    metadata.pop(bad_field, None)
    if bad_value is not None:
        metadata[bad_field] = bad_value
    component = registry.create(backend.type)
    with pytest.raises(MetadataError) as caught:
        await component.init(metadata)
    assert caught.value.field == named_field
    await component.close()


@only(lambda backend: backend.unreachable is not None)
async def test_unreachable_server_fails_init(backend, request):
    assert backend.unreachable is not None
    component = registry.create(backend.type)
    started = time.monotonic()
    with pytest.raises(ComponentInitError) as caught:
        await component.init(backend.unreachable(request))
    assert caught.value.field == backend.server_field
    assert time.monotonic() - started < 10
    await component.close()
    await component.close()


# -- acquire, contend, unlock -----------------------------------------------------------------------


async def test_lock_excludes_others_until_unlocked(store, keys):
    alice, bob = owner(), owner()
    assert await lock(store, keys("r"), alice)
    assert not await lock(store, keys("r"), bob)
    assert await unlock(store, keys("r"), alice) is LockStatus.SUCCESS
    assert await lock(store, keys("r"), bob)
    assert not await lock(store, keys("r"), alice)


async def test_locks_on_different_resources_are_independent(store, keys):
    alice, bob = owner(), owner()
    assert await lock(store, keys("a"), alice)
    assert await lock(store, keys("b"), bob)
    assert await unlock(store, keys("a"), alice) is LockStatus.SUCCESS
    assert not await lock(store, keys("b"), alice)


async def test_second_try_lock_by_the_holder_fails_and_keeps_the_lock(store, keys):
    alice, bob = owner(), owner()
    assert await lock(store, keys("r"), alice)
    assert not await lock(store, keys("r"), alice), "locks are not reentrant"
    assert not await lock(store, keys("r"), bob), "the failed retry released the holder's lock"
    assert await unlock(store, keys("r"), alice) is LockStatus.SUCCESS


async def test_unlock_and_renew_answer_the_status(store, keys):
    alice, bob = owner(), owner()
    assert await unlock(store, keys("r"), alice) is LockStatus.LOCK_DOES_NOT_EXIST
    assert await renew(store, keys("r"), alice) is LockStatus.LOCK_DOES_NOT_EXIST
    assert await lock(store, keys("r"), alice)
    assert await unlock(store, keys("r"), bob) is LockStatus.LOCK_BELONGS_TO_OTHERS
    assert await renew(store, keys("r"), bob) is LockStatus.LOCK_BELONGS_TO_OTHERS
    assert not await lock(store, keys("r"), bob), "another owner's unlock or renew touched the lock"
    assert await renew(store, keys("r"), alice) is LockStatus.SUCCESS
    assert await unlock(store, keys("r"), alice) is LockStatus.SUCCESS
    assert await unlock(store, keys("r"), alice) is LockStatus.LOCK_DOES_NOT_EXIST
    assert await renew(store, keys("r"), alice) is LockStatus.LOCK_DOES_NOT_EXIST


async def test_resource_ids_are_taken_verbatim(store, keys):
    alice, bob = owner(), owner()
    odd = keys("with spaces/slashes:colons/ünïcødé/🚀")
    assert await lock(store, odd, alice)
    assert await lock(store, keys("with spaces"), bob)
    assert await unlock(store, odd, alice) is LockStatus.SUCCESS


# -- expiry -----------------------------------------------------------------------------------------


async def test_expiry_frees_the_resource(store, backend, keys):
    alice, bob = owner(), owner()
    assert await lock(store, keys("r"), alice, expiry=1)
    assert not await lock(store, keys("r"), bob)
    assert await eventually(lambda: lock(store, keys("r"), bob, expiry=30), expiry_wait(backend, 1))
    assert not await lock(store, keys("r"), alice)
    assert await unlock(store, keys("r"), bob) is LockStatus.SUCCESS


async def test_stale_owner_cannot_unlock_or_renew_the_new_holders_lock(store, backend, keys):
    stale, holder = owner(), owner()
    assert await lock(store, keys("r"), stale, expiry=1)
    assert await eventually(lambda: lock(store, keys("r"), holder, expiry=30), expiry_wait(backend, 1))
    assert await unlock(store, keys("r"), stale) is LockStatus.LOCK_BELONGS_TO_OTHERS
    assert await renew(store, keys("r"), stale) is LockStatus.LOCK_BELONGS_TO_OTHERS
    assert not await lock(store, keys("r"), stale), "the stale owner's calls released the new lock"
    assert await unlock(store, keys("r"), holder) is LockStatus.SUCCESS


async def test_stale_owner_finds_no_lock_once_it_expired(store, backend, keys):
    stale = owner()
    assert await lock(store, keys("r"), stale, expiry=1)

    async def expired() -> bool:  # asked by someone else, so the probe changes nothing
        return await unlock(store, keys("r"), owner()) is LockStatus.LOCK_DOES_NOT_EXIST

    assert await eventually(expired, expiry_wait(backend, 1))
    assert await unlock(store, keys("r"), stale) is LockStatus.LOCK_DOES_NOT_EXIST
    assert await renew(store, keys("r"), stale) is LockStatus.LOCK_DOES_NOT_EXIST
    assert await lock(store, keys("r"), owner())


async def test_renew_extends_the_lock_past_its_first_expiry(store, backend, keys):
    alice, bob = owner(), owner()
    assert await lock(store, keys("r"), alice, expiry=1)
    assert await renew(store, keys("r"), bob, expiry=30) is LockStatus.LOCK_BELONGS_TO_OTHERS
    assert await renew(store, keys("r"), alice, expiry=30) is LockStatus.SUCCESS
    await asyncio.sleep(1 + backend.overstay + 0.5)
    assert not await lock(store, keys("r"), bob), "the lock expired despite its renewal"
    assert await unlock(store, keys("r"), alice) is LockStatus.SUCCESS


async def test_renew_can_shorten_the_lock(store, backend, keys):
    alice, bob = owner(), owner()
    assert await lock(store, keys("r"), alice, expiry=300)
    assert await renew(store, keys("r"), alice, expiry=1) is LockStatus.SUCCESS
    assert await eventually(lambda: lock(store, keys("r"), bob), expiry_wait(backend, 1))


@only(lambda backend: backend.private is not None)
async def test_a_server_gone_away_raises_backend_error_until_it_is_back(backend, keys):
    assert backend.private is not None
    kind, metadata = backend.private
    alice = owner()
    with kind() as server:
        store = registry.create(backend.type)
        await store.init(metadata(server.address))
        try:
            assert await lock(store, keys("r"), alice)
            server.stop()
            with pytest.raises(BackendError):
                await lock(store, keys("r"), owner())
            with pytest.raises(BackendError):
                await unlock(store, keys("r"), alice)
            with pytest.raises(BackendError):
                await renew(store, keys("r"), alice)
            server.start()

            async def works_again() -> bool:
                try:
                    return await lock(store, keys("other"), owner())
                except BackendError:
                    return False

            assert await eventually(works_again, 15)
        finally:
            await store.close()


# -- concurrency, sidecars --------------------------------------------------------------------------

CONTENDERS = 50


async def test_fifty_contenders_never_hold_the_resource_together(store, keys):
    holders = 0
    most = 0
    statuses: list[LockStatus] = []

    async def contender() -> None:
        nonlocal holders, most
        me = owner()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if await lock(store, keys("r"), me, expiry=30):
                holders += 1
                most = max(most, holders)
                await asyncio.sleep(0.002)
                holders -= 1
                statuses.append(await unlock(store, keys("r"), me))
                return
            await asyncio.sleep(random.uniform(0.001, 0.01))

    await asyncio.gather(*(contender() for _ in range(CONTENDERS)))
    assert most == 1, f"{most} owners held the resource at once"
    assert statuses == [LockStatus.SUCCESS] * CONTENDERS, (
        "a contender never got the lock, or its unlock failed"
    )
    assert await lock(store, keys("r"), owner()), "the resource was left locked"


@with_server
async def test_two_components_on_one_server_exclude_each_other(store, backend, request, keys):
    sidecar = await create(backend, request)
    try:
        alice, bob = owner(), owner()
        assert await lock(store, keys("r"), alice)
        assert not await lock(sidecar, keys("r"), bob)
        assert await unlock(sidecar, keys("r"), bob) is LockStatus.LOCK_BELONGS_TO_OTHERS
        assert await renew(sidecar, keys("r"), alice) is LockStatus.SUCCESS, "owners span sidecars"
        assert await unlock(sidecar, keys("r"), alice) is LockStatus.SUCCESS
        assert await lock(sidecar, keys("r"), bob)
        assert not await lock(store, keys("r"), alice)
    finally:
        await sidecar.close()


# -- storage layout ---------------------------------------------------------------------------------


@with_server
async def test_a_held_lock_is_the_owner_at_the_key_with_its_expiry(store, backend, request, keys):
    assert backend.stored is not None
    alice = owner()
    assert await lock(store, keys("r"), alice, expiry=30)
    for value, seconds_left in await backend.stored(request, keys("r")):
        assert value == alice.encode()
        assert 25 < seconds_left <= 30
    assert await unlock(store, keys("r"), alice) is LockStatus.SUCCESS
    assert all(value is None for value, _ in await backend.stored(request, keys("r")))


# -- Redlock ----------------------------------------------------------------------------------------

REDLOCK = next(backend for backend in BACKENDS if backend.id == "redlock")


@pytest.fixture
async def redlock(request: pytest.FixtureRequest, redlock_servers: list[RedisServer]) -> AsyncIterator[Any]:
    instance = await create(REDLOCK, request)
    try:
        yield instance
    finally:
        for server in redlock_servers:
            server.start()  # a no-op unless the test stopped it
        await instance.close()


async def test_redlock_holds_with_one_of_three_servers_down(redlock, redlock_servers, keys):
    alice, bob = owner(), owner()
    redlock_servers[2].stop()
    assert await lock(redlock, keys("r"), alice)
    assert not await lock(redlock, keys("r"), bob)
    assert await renew(redlock, keys("r"), alice) is LockStatus.SUCCESS
    assert await unlock(redlock, keys("r"), bob) is LockStatus.LOCK_BELONGS_TO_OTHERS
    assert await unlock(redlock, keys("r"), alice) is LockStatus.SUCCESS
    assert await unlock(redlock, keys("r"), alice) is LockStatus.LOCK_DOES_NOT_EXIST
    redlock_servers[2].start()
    assert await lock(redlock, keys("r"), bob), "the restarted server is used again"
    assert await unlock(redlock, keys("r"), bob) is LockStatus.SUCCESS


async def test_redlock_with_two_of_three_servers_down_raises_backend_error(
    redlock, redlock_servers, request, keys
):
    # Decided: a majority of servers failing is the store failing (BackendError), not "held".
    alice = owner()
    redlock_servers[1].stop()
    redlock_servers[2].stop()
    with pytest.raises(BackendError):
        await lock(redlock, keys("r"), alice)
    [(left_behind, _)] = await _redis_stored(redlock_servers[:1], keys("r"))
    assert left_behind is None, "the key set on the one live server was not released"
    with pytest.raises(BackendError):
        await unlock(redlock, keys("r"), alice)
    with pytest.raises(BackendError):
        await renew(redlock, keys("r"), alice)
    redlock_servers[1].start()
    redlock_servers[2].start()
    assert await lock(redlock, keys("r"), alice)
    assert await unlock(redlock, keys("r"), alice) is LockStatus.SUCCESS


async def test_redlock_does_not_wait_for_a_stalled_server(redlock, redlock_servers, keys):
    alice, bob = owner(), owner()
    stalled = Redis.from_url(redlock_servers[2].url)
    try:
        await stalled.execute_command("CLIENT", "PAUSE", 5000, "WRITE")
        started = time.monotonic()
        assert await lock(redlock, keys("r"), alice, expiry=2)
        assert time.monotonic() - started < 1, "the lock waited for the stalled server"
        assert await renew(redlock, keys("r"), alice, expiry=2) is LockStatus.SUCCESS
        assert not await lock(redlock, keys("r"), bob, expiry=2)
    finally:
        await stalled.execute_command("CLIENT", "UNPAUSE")
        await stalled.aclose()
    assert await unlock(redlock, keys("r"), alice) is LockStatus.SUCCESS
    assert await lock(redlock, keys("r"), bob)


async def test_redlock_refuses_a_lock_acquired_too_late_to_be_valid(redlock, redlock_servers, keys):
    # The process stalls (a blocked loop, a GC pause, a swapped-out VM) between sending the SETs
    # and reading their answers: every server says yes, but most of the expiry is gone.
    asyncio.get_running_loop().call_soon(time.sleep, 1.1)
    assert not await lock(redlock, keys("r"), owner(), expiry=1)
    left = await _redis_stored(redlock_servers, keys("r"))
    assert all(value is None for value, _ in left), "the late lock's keys were not released"


async def test_redlock_needs_a_majority_of_servers(redlock, redlock_servers, keys):
    alice, bob = owner(), owner()
    first, second, third = (Redis.from_url(server.url) for server in redlock_servers)
    try:
        await first.set(keys("minority"), bob, px=30_000)
        assert await lock(redlock, keys("minority"), alice), "one server of three cannot block a lock"
        assert await unlock(redlock, keys("minority"), alice) is LockStatus.SUCCESS
        assert await first.get(keys("minority")) == bob.encode(), "unlock touched another owner's key"

        await first.set(keys("majority"), bob, px=30_000)
        await second.set(keys("majority"), bob, px=30_000)
        assert not await lock(redlock, keys("majority"), alice)
        assert await third.get(keys("majority")) is None, "the failed attempt left its key behind"
        assert await unlock(redlock, keys("majority"), alice) is LockStatus.LOCK_BELONGS_TO_OTHERS
        assert await renew(redlock, keys("majority"), bob) is LockStatus.SUCCESS
        assert await unlock(redlock, keys("majority"), bob) is LockStatus.SUCCESS
    finally:
        for client in (first, second, third):
            await client.aclose()
