"""Every sequencer against the contract in components/sequencer/base.py.

What is specific to a backend lives in the tables only: BACKENDS (component type, metadata, whether
a second instance or process shares the counters, how to read a counter straight from the store),
BAD_METADATA and UNUSABLE. A test marked ``@shared_store`` runs against the backends whose
instances share one store (the durable ones); the others run against all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aetcd
import pytest
from redis.asyncio import Redis

from components import registry
from components.errors import BackendError, ComponentInitError, MetadataError
from tests.servers import free_port

MAX_ID = 2**63 - 1
ROOT = Path(__file__).resolve().parents[2]

Metadata = Callable[[pytest.FixtureRequest], dict[str, str]]
StoredReader = Callable[[pytest.FixtureRequest, str], Awaitable[str | None]]


def sqlite_file(request: pytest.FixtureRequest) -> Path:
    return request.getfixturevalue("tmp_path") / "sequencer.db"


async def stored_in_sqlite(request: pytest.FixtureRequest, key: str) -> str | None:
    def read() -> Any:
        with contextlib.closing(sqlite3.connect(sqlite_file(request))) as conn:
            return conn.execute("SELECT last_id FROM sequencer WHERE key = ?", (key,)).fetchone()

    row = await asyncio.to_thread(read)
    if row is None:
        return None
    assert isinstance(row[0], int), f"last_id should be an INTEGER, got {row[0]!r}"
    return str(row[0])


async def stored_in_redis(request: pytest.FixtureRequest, key: str) -> str | None:
    client = Redis.from_url(request.getfixturevalue("redis_server").url)
    try:
        value = await client.get(key)
    finally:
        await client.aclose()
    return value.decode() if isinstance(value, bytes) else value


async def stored_in_etcd(request: pytest.FixtureRequest, key: str) -> str | None:
    host, _, port = request.getfixturevalue("etcd_server").address.rpartition(":")
    client = aetcd.Client(host=host, port=int(port))
    try:
        found = await client.get(b"/l8/sequencer/" + key.encode())
    finally:
        await client.close()
    return None if found is None else found.value.decode()


@dataclass(frozen=True, slots=True)
class Backend:
    type: str
    metadata: Metadata
    """Built per test, from the test's fixtures (tmp_path, redis_server...)."""
    stored: StoredReader | None
    """Reads a counter straight from the store (the documented layout), for stores that are shared
    by every instance and process using the same metadata; None for process-local ones."""

    @property
    def id(self) -> str:
        return self.type.removeprefix("sequencer.")

    @property
    def shared(self) -> bool:
        return self.stored is not None


BACKENDS = (
    Backend("sequencer.in-memory", lambda request: {}, None),
    Backend(
        "sequencer.sqlite", lambda request: {"connectionString": str(sqlite_file(request))}, stored_in_sqlite
    ),
    Backend(
        "sequencer.redis",
        lambda request: {"redisHost": request.getfixturevalue("redis_server").address},
        stored_in_redis,
    ),
    Backend(
        "sequencer.etcd",
        lambda request: {"endpoints": request.getfixturevalue("etcd_server").address},
        stored_in_etcd,
    ),
)

# (type, metadata, the field MetadataError must name). Decoding fails before anything connects.
BAD_METADATA = [
    ("sequencer.sqlite", {}, "connectionString"),
    ("sequencer.sqlite", {"connectionString": "  "}, "connectionString"),
    ("sequencer.sqlite", {"connectionString": "x.db", "tableName": "drop table"}, "tableName"),
    ("sequencer.sqlite", {"connectionString": "x.db", "tableName": "sqlite_master"}, "tableName"),
    ("sequencer.sqlite", {"connectionString": "x.db", "busyTimeout": "soon"}, "busyTimeout"),
    ("sequencer.redis", {}, "redisHost"),
    ("sequencer.redis", {"redisHost": "localhost"}, "redisHost"),
    ("sequencer.redis", {"redisHost": "127.0.0.1:1", "redisDB": "-1"}, "redisDB"),
    ("sequencer.redis", {"redisHost": "127.0.0.1:1", "dialTimeout": "a while"}, "dialTimeout"),
    ("sequencer.etcd", {}, "endpoints"),
    ("sequencer.etcd", {"endpoints": "etcd"}, "endpoints"),
    ("sequencer.etcd", {"endpoints": "127.0.0.1:1", "keyPrefixPath": ""}, "keyPrefixPath"),
    ("sequencer.etcd", {"endpoints": "127.0.0.1:1", "dialTimeout": "a while"}, "dialTimeout"),
]


def _under_a_regular_file(request: pytest.FixtureRequest) -> dict[str, str]:
    blocker = request.getfixturevalue("tmp_path") / "not-a-directory"
    blocker.write_text("")
    return {"connectionString": str(blocker / "sequencer.db")}


# (type, metadata of a store that cannot be used, the field ComponentInitError must name).
UNUSABLE: list[tuple[str, Metadata, str]] = [
    ("sequencer.sqlite", _under_a_regular_file, "connectionString"),
    (
        "sequencer.redis",
        lambda request: {"redisHost": f"127.0.0.1:{free_port()}", "dialTimeout": "1s"},
        "redisHost",
    ),
    (
        "sequencer.etcd",
        lambda request: {"endpoints": f"127.0.0.1:{free_port()}", "dialTimeout": "1s"},
        "endpoints",
    ),
]


def shared_store(test: Any) -> Any:
    """Runs ``test`` only against backends whose instances (and processes) share the counters."""
    test.needs_shared_store = True
    return test


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        only_shared = getattr(metafunc.function, "needs_shared_store", False)
        chosen = [pytest.param(b, id=b.id) for b in BACKENDS if b.shared or not only_shared]
        metafunc.parametrize("backend", chosen)


@contextlib.asynccontextmanager
async def opened(backend: Backend, request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    instance = registry.create(backend.type)
    await instance.init(backend.metadata(request))
    try:
        yield instance
    finally:
        await instance.close()


@pytest.fixture
async def sequencer(backend: Backend, request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    async with opened(backend, request) as instance:
        yield instance


async def allocate_all(sequencer: Any, key: str, counts: list[int]) -> list[int]:
    return [await sequencer.allocate(key, count) for count in counts]


# -- the contract -------------------------------------------------------------------------------------


async def test_no_optional_features_are_claimed(sequencer):
    assert sequencer.features() == frozenset()


async def test_first_id_of_a_new_key_is_one(sequencer, keys):
    assert await sequencer.allocate(keys("orders"), 1) == 1
    assert await sequencer.allocate(keys("invoices"), 7) == 7, "a first block of 7 is 1..7"


async def test_blocks_are_consecutive_and_strictly_increasing(sequencer, keys):
    counts = [1, 3, 1, 10, 2, 1]
    lasts = await allocate_all(sequencer, keys("orders"), counts)
    assert lasts == [1, 4, 5, 15, 17, 18]
    starts = [last - count + 1 for last, count in zip(lasts, counts, strict=True)]
    assert all(start == previous + 1 for start, previous in zip(starts[1:], lasts, strict=False))


async def test_a_block_of_fifty_then_one_gives_fifty_one(sequencer, keys):
    assert await sequencer.allocate(keys("orders"), 50) == 50
    assert await sequencer.allocate(keys("orders"), 1) == 51


async def test_keys_are_independent(sequencer, keys):
    assert await allocate_all(sequencer, keys("a"), [1, 1, 1]) == [1, 2, 3]
    assert await sequencer.allocate(keys("b"), 1) == 1
    assert await sequencer.allocate(keys("a"), 1) == 4
    assert await sequencer.allocate(keys("b"), 2) == 3


async def test_ensure_above_raises_the_floor(sequencer, keys):
    await sequencer.ensure_above(keys("new"), 41)
    assert await sequencer.allocate(keys("new"), 1) == 42
    assert await allocate_all(sequencer, keys("used"), [1, 1, 1]) == [1, 2, 3]
    await sequencer.ensure_above(keys("used"), 10)
    assert await sequencer.allocate(keys("used"), 5) == 15, "the block is 11..15"


async def test_ensure_above_never_lowers_a_counter(sequencer, keys):
    assert await sequencer.allocate(keys("orders"), 100) == 100
    await sequencer.ensure_above(keys("orders"), 5)
    assert await sequencer.allocate(keys("orders"), 1) == 101
    await sequencer.ensure_above(keys("orders"), 101)  # equal to the last id: nothing to do
    assert await sequencer.allocate(keys("orders"), 1) == 102
    await sequencer.ensure_above(keys("fresh"), 0)
    await sequencer.ensure_above(keys("fresh"), -5)
    assert await sequencer.allocate(keys("fresh"), 1) == 1


async def test_a_count_below_one_is_refused_and_reserves_nothing(sequencer, keys):
    for count in (0, -3):
        with pytest.raises(ValueError):
            await sequencer.allocate(keys("orders"), count)
    assert await sequencer.allocate(keys("orders"), 1) == 1


async def test_ids_are_64_bit_and_exhaustion_is_an_error(sequencer, keys):
    with pytest.raises(ValueError):
        await sequencer.ensure_above(keys("orders"), MAX_ID + 1)
    await sequencer.ensure_above(keys("orders"), MAX_ID - 2)
    assert await sequencer.allocate(keys("orders"), 1) == MAX_ID - 1
    with pytest.raises(BackendError):
        await sequencer.allocate(keys("orders"), 2)
    assert await sequencer.allocate(keys("orders"), 1) == MAX_ID, "a refused block reserves nothing"
    with pytest.raises(BackendError):
        await sequencer.allocate(keys("orders"), 1)


async def test_concurrent_callers_over_two_instances_get_unique_increasing_ids(
    sequencer, backend, request, keys
):
    """20 callers (asyncio tasks) take 10,000 ids in blocks of 1..7, alternating between two
    instances over the same store (the in-memory store has only one)."""
    callers, ids_per_caller, key = 20, 500, keys("orders")

    async def caller(instance: Any, number: int) -> list[range]:
        blocks: list[range] = []
        taken = 0
        while taken < ids_per_caller:
            count = min((number + len(blocks)) % 7 + 1, ids_per_caller - taken)
            last = await instance.allocate(key, count)
            blocks.append(range(last - count + 1, last + 1))
            taken += count
        return blocks

    async with contextlib.AsyncExitStack() as stack:
        second = await stack.enter_async_context(opened(backend, request)) if backend.shared else sequencer
        instances = (sequencer, second)
        per_caller = await asyncio.gather(*(caller(instances[n % 2], n) for n in range(callers)))

    for blocks in per_caller:
        ids = [i for block in blocks for i in block]
        assert all(a < b for a, b in itertools.pairwise(ids)), "a caller's ids must increase"
    every_id = [i for blocks in per_caller for block in blocks for i in block]
    assert len(every_id) == callers * ids_per_caller
    assert len(set(every_id)) == len(every_id), "an id was handed out twice"
    assert set(every_id) == set(range(1, len(every_id) + 1)), "nothing failed here, so no id is skipped"


@shared_store
async def test_a_reopened_store_continues_above_every_id_handed_out(backend, request, keys):
    async with opened(backend, request) as first:
        handed_out = await allocate_all(first, keys("orders"), [3, 1, 5])
        await first.ensure_above(keys("floored"), 500)
    async with opened(backend, request) as reopened:
        assert await reopened.allocate(keys("orders"), 1) > max(handed_out)
        assert await reopened.allocate(keys("floored"), 1) > 500


@shared_store
async def test_the_counter_is_stored_as_documented(sequencer, backend, request, keys):
    assert backend.stored is not None
    assert await backend.stored(request, keys("orders")) is None, "nothing is written before use"
    await allocate_all(sequencer, keys("orders"), [10, 7])
    assert await backend.stored(request, keys("orders")) == "17"
    await sequencer.ensure_above(keys("floored"), 41)
    assert await backend.stored(request, keys("floored")) == "41"


# -- kill -9 ------------------------------------------------------------------------------------------

# Allocates blocks of 1..3 ids forever, printing each block's last id once allocate returned.
_ALLOCATING_PROCESS = """
import asyncio, json, sys
from components import registry

async def main():
    sequencer = registry.create(sys.argv[1])
    await sequencer.init(json.loads(sys.argv[2]))
    count = 0
    while True:
        count = count % 3 + 1
        print(await sequencer.allocate(sys.argv[3], count), flush=True)

asyncio.run(main())
"""


@shared_store
async def test_ids_printed_before_kill_9_are_never_handed_out_again(sequencer, backend, request, keys):
    key = keys("orders")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _ALLOCATING_PROCESS, backend.type, json.dumps(backend.metadata(request)), key,
        stdout=asyncio.subprocess.PIPE, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert process.stdout is not None
    printed: list[int] = []
    try:
        while len(printed) < 300:  # well into its loop, allocating as fast as it can
            line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
            assert line.endswith(b"\n"), "the allocating process stopped before it was killed"
            printed.append(int(line))
    finally:
        process.send_signal(signal.SIGKILL)
    rest = await process.stdout.read()
    assert await process.wait() == -signal.SIGKILL
    printed += [int(line) for line in rest.split(b"\n")[:-1]]  # a cut-off last line is not an id

    assert all(a < b for a, b in itertools.pairwise(printed))
    after = await allocate_all(sequencer, key, [1, 1])
    assert min(after) > max(printed), f"{after} repeats ids the killed process printed (up to {max(printed)})"


# -- life cycle ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("component_type", "metadata", "field"), BAD_METADATA)
async def test_bad_metadata_raises_metadata_error_naming_the_field(component_type, metadata, field):
    instance = registry.create(component_type)
    with pytest.raises(MetadataError) as raised:
        await instance.init(metadata)
    assert raised.value.field == field
    await instance.close()


@pytest.mark.parametrize(("component_type", "metadata", "field"), UNUSABLE)
async def test_an_unusable_store_fails_init_naming_the_field(component_type, metadata, field, request):
    instance = registry.create(component_type)
    with pytest.raises(ComponentInitError) as raised:
        await asyncio.wait_for(instance.init(metadata(request)), timeout=15)
    assert raised.value.field == field
    await instance.close()


async def test_close_is_idempotent_and_later_calls_fail(sequencer, keys):
    assert await sequencer.allocate(keys("orders"), 1) == 1
    await sequencer.close()
    await sequencer.close()
    with pytest.raises(BackendError):
        await sequencer.allocate(keys("orders"), 1)
    with pytest.raises(BackendError):
        await sequencer.ensure_above(keys("orders"), 10)
