"""Every configuration store against the contract in components/configuration/base.py.

What is specific to a backend lives in BACKENDS only: its component type, its metadata, whether a
second instance over the same metadata shares its items, how to change an item directly in the
backend (redis-cli's SET, an etcd put, an editor writing the YAML file), how to cut the store's live
link to it (CLIENT KILL of the pub/sub connections, an etcd restart), and the metadata it must
refuse. A test needing one of those (``@needs``) runs against the backends that have it.

Keys are private to each test (``cfg-<hex>-<name>``: no ``||``, which Redis's layout reserves), and
so are the groups of the tests that list a whole group, so the suites can share one server.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest
import yaml

from components import registry
from components.configuration.base import (
    DEFAULT_GROUP,
    DEFAULT_LABEL,
    ConfigurationItem,
    DeleteRequest,
    GetRequest,
    SaveRequest,
)
from components.errors import BackendError, ComponentInitError, MetadataError
from tests.servers import free_port

PAUSE = 0.2
"""Between changes that must be seen one by one (a watcher groups what lands within ~50 ms)."""
GRACE = 0.5
"""How long nothing more may arrive once the expected changes have."""

ETCD_PREFIX = "/l8/configuration/"


class Backdoor(Protocol):
    """Changes items of the default group and label straight in the backend, as an operator would."""

    async def put(self, key: str, value: str, version: str) -> None: ...

    async def remove(self, key: str) -> None: ...

    async def close(self) -> None: ...


class RedisBackdoor:
    def __init__(self, request: pytest.FixtureRequest) -> None:
        from redis.asyncio import Redis

        self._client = Redis.from_url(request.getfixturevalue("redis_server").url)

    async def put(self, key: str, value: str, version: str) -> None:
        await self._client.set(key, f"{value}||{version}")

    async def remove(self, key: str) -> None:
        await self._client.delete(key)

    async def close(self) -> None:
        await self._client.aclose()


class EtcdBackdoor:
    def __init__(self, request: pytest.FixtureRequest) -> None:
        import aetcd

        host, _, port = request.getfixturevalue("etcd_server").address.rpartition(":")
        self._client = aetcd.Client(host=host, port=int(port))

    async def put(self, key: str, value: str, version: str) -> None:
        await self._client.put(f"{ETCD_PREFIX}default/default/{key}".encode(), value.encode())

    async def remove(self, key: str) -> None:
        await self._client.delete(f"{ETCD_PREFIX}default/default/{key}".encode())

    async def close(self) -> None:
        await self._client.close()


class FileBackdoor:
    """Rewrites the YAML file in place with open(), as a text editor saving without a rename does."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self._path = _config_file(request)

    def _edit(self, change: Callable[[dict[str, Any]], None]) -> None:
        with open(self._path, encoding="utf-8") as current:
            document = yaml.safe_load(current) or {}
        change(document)
        with open(self._path, "w", encoding="utf-8") as out:
            yaml.safe_dump(document, out, sort_keys=False)

    async def put(self, key: str, value: str, version: str) -> None:
        await asyncio.to_thread(
            self._edit, lambda doc: doc.update({key: {"value": value, "version": version}})
        )

    async def remove(self, key: str) -> None:
        await asyncio.to_thread(self._edit, lambda doc: doc.pop(key, None))

    async def close(self) -> None:
        pass


async def _kill_redis_subscribers(request: pytest.FixtureRequest) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(request.getfixturevalue("redis_server").url)
    try:
        await client.client_kill_filter(_type="pubsub")
    finally:
        await client.aclose()


async def _restart_etcd(request: pytest.FixtureRequest) -> None:
    await asyncio.to_thread(request.getfixturevalue("etcd_server").restart)


def _config_file(request: pytest.FixtureRequest) -> Path:
    return Path(request.getfixturevalue("tmp_path")) / "configuration.yaml"


def _redis(request: pytest.FixtureRequest) -> dict[str, str]:
    return {"redisHost": request.getfixturevalue("redis_server").address}


def _etcd(request: pytest.FixtureRequest) -> dict[str, str]:
    return {"endpoints": request.getfixturevalue("etcd_server").address}


@dataclass(frozen=True, slots=True)
class Backend:
    type: str
    metadata: Callable[[pytest.FixtureRequest], dict[str, str]]
    """Built per test, from the test's fixtures (tmp_path, redis_server...)."""
    shared: bool = False
    """A second instance with the same metadata reads and follows the same items."""
    backdoor: Callable[[pytest.FixtureRequest], Backdoor] | None = None
    bad_metadata: Callable[[pytest.FixtureRequest], list[tuple[dict[str, str], str]]] | None = None
    """Metadata init must refuse, each with the field the MetadataError names."""
    unreachable: Callable[[pytest.FixtureRequest], tuple[dict[str, str], str]] | None = None
    """Metadata naming a backend that is not there, with the field ComponentInitError names."""
    version_of_backdoor_writes: bool = False
    """The version a backdoor write gives is the one it names (Redis's ``value||version``)."""
    interrupt: Callable[[pytest.FixtureRequest], Awaitable[None]] | None = None
    """Cuts the store's live link to the backend (its notifications, its watch), items unchanged."""

    @property
    def id(self) -> str:
        return self.type.removeprefix("configuration.")


BACKENDS = (
    Backend("configuration.in-memory", lambda request: {}),
    Backend(
        "configuration.file",
        lambda request: {"path": str(_config_file(request)), "create": "true"},
        shared=True,
        backdoor=FileBackdoor,
        bad_metadata=lambda request: [
            ({}, "path"),
            ({"path": " "}, "path"),
            ({"path": str(_config_file(request)), "create": "maybe"}, "create"),
        ],
        unreachable=lambda request: ({"path": str(_config_file(request).with_name("missing.yaml"))}, "path"),
        version_of_backdoor_writes=True,
    ),
    Backend(
        "configuration.redis",
        _redis,
        shared=True,
        backdoor=RedisBackdoor,
        bad_metadata=lambda request: [
            ({}, "redisHost"),
            ({"redisHost": "no-port"}, "redisHost"),
            ({**_redis(request), "maxRetries": "many"}, "maxRetries"),
        ],
        unreachable=lambda request: (
            {"redisHost": f"127.0.0.1:{free_port()}", "dialTimeout": "1s", "maxRetries": "0"},
            "redisHost",
        ),
        version_of_backdoor_writes=True,
        interrupt=_kill_redis_subscribers,
    ),
    Backend(
        "configuration.etcd",
        _etcd,
        shared=True,
        backdoor=EtcdBackdoor,
        bad_metadata=lambda request: [
            ({}, "endpoints"),
            ({"endpoints": "no-port"}, "endpoints"),
            ({**_etcd(request), "keyPrefixPath": " "}, "keyPrefixPath"),
        ],
        unreachable=lambda request: (
            {"endpoints": f"127.0.0.1:{free_port()}", "dialTimeout": "1s"},
            "endpoints",
        ),
        interrupt=_restart_etcd,
    ),
)


def needs(capability: str) -> Callable[[Any], Any]:
    """Run the test against the backends whose ``capability`` field is set."""

    def mark(test: Any) -> Any:
        test.needed_capability = capability
        return test

    return mark


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        needed = getattr(metafunc.function, "needed_capability", None)
        chosen = [pytest.param(b, id=b.id) for b in BACKENDS if needed is None or getattr(b, needed)]
        metafunc.parametrize("backend", chosen)


@pytest.fixture
async def open_store(backend: Backend, request: pytest.FixtureRequest) -> AsyncIterator[Callable[[], Any]]:
    """Opens instances of the backend over the test's metadata; all closed at the end."""
    opened = []

    async def opener() -> Any:
        instance = registry.create(backend.type)
        await instance.init(backend.metadata(request))
        opened.append(instance)
        return instance

    try:
        yield opener
    finally:
        for instance in reversed(opened):
            await instance.close()


@pytest.fixture
async def store(open_store: Callable[[], Awaitable[Any]]) -> Any:
    return await open_store()


@pytest.fixture
async def backdoor(backend: Backend, request: pytest.FixtureRequest) -> AsyncIterator[Backdoor]:
    assert backend.backdoor is not None
    door = backend.backdoor(request)
    try:
        yield door
    finally:
        await door.close()


class Names:
    """Keys and groups private to one test."""

    def __init__(self) -> None:
        self._hex = uuid.uuid4().hex[:8]

    def key(self, name: str) -> str:
        return f"cfg-{self._hex}-{name}"

    def group(self, name: str) -> str:
        return f"grp-{self._hex}-{name}"


@pytest.fixture
def names() -> Names:
    return Names()


class Changes:
    """A handler that records every call."""

    def __init__(self) -> None:
        self.calls: list[list[ConfigurationItem]] = []

    async def __call__(self, items: list[ConfigurationItem]) -> None:
        self.calls.append(list(items))

    @property
    def items(self) -> list[ConfigurationItem]:
        return [item for call in self.calls for item in call]

    async def wait_for(self, count: int, seconds: float = 5.0) -> list[ConfigurationItem]:
        """At least ``count`` items have arrived (else fail), and nothing more for GRACE seconds."""
        deadline = time.monotonic() + seconds
        while len(self.items) < count:
            assert time.monotonic() < deadline, f"{count} changes expected, got {self.summary()}"
            await asyncio.sleep(0.02)
        await asyncio.sleep(GRACE)
        return self.items

    def summary(self) -> list[tuple[str, str, bool]]:
        return [(item.key, item.value, item.deleted) for item in self.items]


def item(key: str, value: str, group: str = DEFAULT_GROUP, label: str = DEFAULT_LABEL,
         tags: dict[str, str] | None = None) -> ConfigurationItem:  # fmt: skip
    return ConfigurationItem(key, value, group=group, label=label, tags=tags or {})


async def save(store: Any, *items: ConfigurationItem) -> None:
    await store.save(SaveRequest(list(items)))


async def save_once_back(store: Any, *items: ConfigurationItem, seconds: float = 15.0) -> None:
    """Save, retrying while the backend is coming back (a refused save is fine, a lost one is not)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return await save(store, *items)
        except BackendError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def get(
    store: Any, *keys: str, group: str = DEFAULT_GROUP, label: str = DEFAULT_LABEL
) -> dict[str, Any]:
    return {found.key: found for found in await store.get(GetRequest(list(keys), group, label))}


# -- life -------------------------------------------------------------------------------------------


async def test_no_optional_feature_is_claimed(store):
    assert store.features() == frozenset()


async def test_close_twice_is_fine(store):
    await store.close()
    await store.close()


async def test_a_closed_store_refuses_operations(store, names):
    await store.close()
    with pytest.raises(BackendError):
        await store.get(GetRequest([names.key("a")]))


@needs("bad_metadata")
async def test_bad_metadata_is_refused_naming_the_field(backend, request):
    assert backend.bad_metadata is not None
    for metadata, field_name in backend.bad_metadata(request):
        instance = registry.create(backend.type)
        with pytest.raises(MetadataError) as refused:
            await instance.init(metadata)
        assert refused.value.field == field_name, metadata
        await instance.close()


@needs("unreachable")
async def test_a_backend_that_is_not_there_fails_init(backend, request):
    assert backend.unreachable is not None
    metadata, field_name = backend.unreachable(request)
    instance = registry.create(backend.type)
    started = time.monotonic()
    with pytest.raises(ComponentInitError) as failed:
        await instance.init(metadata)
    assert failed.value.field == field_name
    assert time.monotonic() - started < 10
    await instance.close()


# -- get, save, delete ------------------------------------------------------------------------------


async def test_save_then_get_one_key(store, names):
    key = names.key("greeting")
    await save(store, item(key, "hello, Zoë 🚀"))
    found = await get(store, key)
    assert list(found) == [key]
    assert found[key].value == "hello, Zoë 🚀"
    assert found[key].version
    assert (found[key].group, found[key].label, found[key].deleted) == (DEFAULT_GROUP, DEFAULT_LABEL, False)


async def test_get_several_keys_answers_those_that_exist(store, names):
    a, b, missing = names.key("a"), names.key("b"), names.key("missing")
    await save(store, item(a, "1"), item(b, ""))
    found = await get(store, a, missing, b)
    assert {key: found[key].value for key in found} == {a: "1", b: ""}
    assert await get(store, missing) == {}


async def test_get_without_keys_answers_every_item_of_the_group_and_label(store, names):
    group = names.group("g")
    a, b, c, d = (names.key(n) for n in "abcd")
    await save(store, item(a, "1", group, "blue"), item(b, "2", group, "blue"), item(c, "3", group, "red"))
    await save(store, item(d, "4"))
    assert {k: v.value for k, v in (await get(store, group=group, label="blue")).items()} == {a: "1", b: "2"}
    assert {k: v.value for k, v in (await get(store, group=group, label="red")).items()} == {c: "3"}
    assert await get(store, group=group, label="green") == {}
    every_default = await get(store)
    assert every_default[d].value == "4"
    assert not {a, b, c} & set(every_default)


async def test_every_save_gives_a_new_version(store, names):
    key = names.key("versioned")
    versions = []
    for value in ("1", "1", "2", "1"):  # an unchanged value still counts as a change
        await save(store, item(key, value))
        versions.append((await get(store, key))[key].version)
    assert all(versions) and len(set(versions)) == 4, versions


async def test_groups_and_labels_are_separate_namespaces(store, names):
    key, group = names.key("shared-name"), names.group("g")
    places = [
        (DEFAULT_GROUP, DEFAULT_LABEL),
        (group, DEFAULT_LABEL),
        (group, "canary"),
        (DEFAULT_GROUP, "canary"),
    ]
    await save(store, *(item(key, f"{g}/{label}", g, label) for g, label in places))
    for g, label in places:
        found = await get(store, key, group=g, label=label)
        assert found[key].value == f"{g}/{label}"
        assert (found[key].group, found[key].label) == (g, label)
    await store.delete(DeleteRequest([key], group, "canary"))
    assert await get(store, key, group=group, label="canary") == {}
    assert (await get(store, key, group=group))[key].value == f"{group}/{DEFAULT_LABEL}"


async def test_tags_round_trip(store, names):
    key = names.key("tagged")
    tags = {"team": "payments", "reviewed-by": "Zoë"}
    await save(store, item(key, "v", tags=tags))
    assert dict((await get(store, key))[key].tags) == tags
    listed = await get(store)
    assert dict(listed[key].tags) == tags
    await save(store, item(key, "v2"))
    assert dict((await get(store, key))[key].tags) == {}


async def test_delete_removes_the_keys_given_and_ignores_missing_ones(store, names):
    a, b, missing = names.key("a"), names.key("b"), names.key("missing")
    await save(store, item(a, "1"), item(b, "2"))
    await store.delete(DeleteRequest([a, missing]))
    assert {k: v.value for k, v in (await get(store, a, b)).items()} == {b: "2"}
    await store.delete(DeleteRequest([missing]))
    await save(store, item(a, "again"))
    assert (await get(store, a))[a].value == "again"


# -- subscriptions ----------------------------------------------------------------------------------


async def test_a_subscriber_gets_every_change_once_and_in_order(store, names):
    key = names.key("followed")
    changes = Changes()
    subscription = await store.subscribe(GetRequest([key]), changes)
    for value in ("1", "2", "3"):
        await save(store, item(key, value))
        await asyncio.sleep(PAUSE)
    await store.delete(DeleteRequest([key]))
    seen = await changes.wait_for(4)
    assert changes.summary() == [(key, "1", False), (key, "2", False), (key, "3", False), (key, "", True)]
    versions = [change.version for change in seen[:3]]
    assert all(versions) and len(set(versions)) == 3
    await subscription.close()


async def test_back_to_back_saves_each_arrive(store, names):
    """No pause between the changes: none may be coalesced into a later one or delivered twice."""
    key = names.key("burst")
    changes = Changes()
    subscription = await store.subscribe(GetRequest([key]), changes)
    for value in range(20):
        await save(store, item(key, str(value)))
    await store.delete(DeleteRequest([key]))
    await changes.wait_for(21)
    await asyncio.sleep(PAUSE)
    assert changes.summary() == [(key, str(value), False) for value in range(20)] + [(key, "", True)]
    await subscription.close()


async def test_every_item_of_a_multi_item_save_is_delivered(store, names):
    group = names.group("g")
    a, b = names.key("a"), names.key("b")
    changes = Changes()
    await store.subscribe(GetRequest([], group), changes)
    await save(store, item(a, "1", group), item(b, "2", group))
    await changes.wait_for(2)
    assert sorted(changes.summary()) == [(a, "1", False), (b, "2", False)]
    assert all((change.group, change.label) == (group, DEFAULT_LABEL) for change in changes.items)


async def test_a_subscription_by_key_sees_only_its_keys(store, names):
    mine, other = names.key("mine"), names.key("other")
    changes = Changes()
    await store.subscribe(GetRequest([mine]), changes)
    await save(store, item(other, "x"))
    await save(store, item(mine, "1"))
    await store.delete(DeleteRequest([other]))
    await changes.wait_for(1)
    assert changes.summary() == [(mine, "1", False)]


async def test_a_subscription_without_keys_sees_its_group_and_label_only(store, names):
    group = names.group("g")
    a, b = names.key("a"), names.key("b")
    changes = Changes()
    await store.subscribe(GetRequest([], group, "blue"), changes)
    await save(store, item(a, "elsewhere", group, "red"), item(a, "default"))
    await save(store, item(a, "1", group, "blue"))
    await asyncio.sleep(PAUSE)
    await save(store, item(b, "2", group, "blue"))
    await changes.wait_for(2)
    assert changes.summary() == [(a, "1", False), (b, "2", False)]
    assert all((change.group, change.label) == (group, "blue") for change in changes.items)


async def test_closing_a_subscription_stops_the_deliveries(store, names):
    key = names.key("closed")
    changes, other = Changes(), Changes()
    subscription = await store.subscribe(GetRequest([key]), changes)
    await store.subscribe(GetRequest([key]), other)
    await save(store, item(key, "1"))
    await changes.wait_for(1)
    await subscription.close()
    await subscription.close()
    await save(store, item(key, "2"))
    await other.wait_for(2)
    assert changes.summary() == [(key, "1", False)]
    assert other.summary() == [(key, "1", False), (key, "2", False)]


async def test_a_handler_that_raises_does_not_end_the_subscription(store, names):
    key = names.key("failing")
    changes = Changes()

    async def failing(items: list[ConfigurationItem]) -> None:
        await changes(items)
        raise RuntimeError("the handler failed")

    await store.subscribe(GetRequest([key]), failing)
    await save(store, item(key, "1"))
    await asyncio.sleep(PAUSE)
    await save(store, item(key, "2"))
    await changes.wait_for(2)
    assert changes.summary() == [(key, "1", False), (key, "2", False)]


async def test_a_slow_subscriber_does_not_block_the_writer(store, names):
    key = names.key("slow")
    release = asyncio.Event()
    changes = Changes()

    async def slow(items: list[ConfigurationItem]) -> None:
        await release.wait()
        await changes(items)

    await store.subscribe(GetRequest([key]), slow)
    started = time.monotonic()
    for value in ("1", "2", "3"):
        await save(store, item(key, value))
        await asyncio.sleep(PAUSE)
    assert time.monotonic() - started < 3 * PAUSE + 2
    assert changes.items == []
    release.set()
    await changes.wait_for(3)
    assert changes.summary() == [(key, "1", False), (key, "2", False), (key, "3", False)]


async def test_a_subscription_closed_by_its_own_handler_ends(store, names):
    key = names.key("self-closing")
    changes = Changes()
    subscription: Any = None

    async def closing(items: list[ConfigurationItem]) -> None:
        await changes(items)
        await subscription.close()

    subscription = await store.subscribe(GetRequest([key]), closing)
    await save(store, item(key, "1"))
    await asyncio.sleep(PAUSE)
    await save(store, item(key, "2"))
    await changes.wait_for(1)
    assert changes.summary() == [(key, "1", False)]


@needs("shared")
async def test_changes_by_a_second_instance_reach_the_subscribers(store, open_store, names):
    key = names.key("from-elsewhere")
    other = await open_store()
    changes = Changes()
    await store.subscribe(GetRequest([key]), changes)
    await save(other, item(key, "1", tags={"by": "other"}))
    await asyncio.sleep(PAUSE)
    await save(other, item(key, "2"))
    await asyncio.sleep(PAUSE)
    await other.delete(DeleteRequest([key]))
    seen = await changes.wait_for(3)
    assert changes.summary() == [(key, "1", False), (key, "2", False), (key, "", True)]
    assert dict(seen[0].tags) == {"by": "other"}
    await save(other, item(key, "3"))
    assert (await get(store, key))[key].value == "3"


@needs("backdoor")
async def test_changes_made_directly_in_the_backend_reach_the_subscribers(store, backend, backdoor, names):
    key = names.key("direct")
    changes = Changes()
    await store.subscribe(GetRequest([key]), changes)
    await backdoor.put(key, "1", "7")
    await asyncio.sleep(PAUSE)
    await backdoor.put(key, "2", "8")
    await asyncio.sleep(PAUSE)
    found = await get(store, key)
    assert found[key].value == "2"
    await backdoor.remove(key)
    seen = await changes.wait_for(3)
    assert changes.summary() == [(key, "1", False), (key, "2", False), (key, "", True)]
    if backend.version_of_backdoor_writes:
        assert [seen[0].version, seen[1].version, found[key].version] == ["7", "8", "8"]
    else:
        assert seen[0].version != seen[1].version == found[key].version


@needs("backdoor")
async def test_a_save_after_a_direct_write_still_changes_the_version(store, backdoor, names):
    key = names.key("direct-then-saved")
    await backdoor.put(key, "1", "7")
    await asyncio.sleep(PAUSE)
    before = (await get(store, key))[key].version
    await save(store, item(key, "1"))
    after = (await get(store, key))[key].version
    assert before and after and before != after


@needs("interrupt")
async def test_a_subscription_outlives_a_lost_link_to_the_backend(store, backend, request, names):
    key, steady = names.key("resilient"), names.key("steady")
    changes = Changes()
    await store.subscribe(GetRequest([key, steady]), changes)
    await save(store, item(steady, "s"))
    await save(store, item(key, "1"))
    await changes.wait_for(2)
    assert backend.interrupt is not None
    await backend.interrupt(request)
    await save_once_back(store, item(key, "2"))  # likely before the store listens again
    await asyncio.sleep(PAUSE)
    await save_once_back(store, item(key, "3"))
    await changes.wait_for(4, seconds=15)
    # Each change once: none lost while the link was down, none (``steady``) repeated after it.
    assert changes.summary() == [
        (steady, "s", False),
        (key, "1", False),
        (key, "2", False),
        (key, "3", False),
    ]
