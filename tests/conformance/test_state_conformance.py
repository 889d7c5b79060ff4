"""Every state store against the contract in components/state/base.py.

What is specific to a backend lives in BACKENDS only: its component type, its metadata and the
features it must claim. A test needing features (``@needs``) runs against the backends expected to
claim them; test_features_are_exactly_the_expected_ones keeps the table and the stores in step.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from components import registry
from components.errors import ETagInvalidError, ETagMismatchError, QueryError
from components.state.base import (
    Concurrency,
    DeleteRequest,
    Feature,
    GetRequest,
    QueryRequest,
    SetRequest,
    StateItem,
)
from components.state.query import parse_query


@dataclass(frozen=True, slots=True)
class Backend:
    type: str
    metadata: Callable[[pytest.FixtureRequest], dict[str, str]]
    """Built per test, from the test's fixtures (tmp_path, redis_server...)."""
    features: frozenset[Feature]

    @property
    def id(self) -> str:
        return self.type.removeprefix("state.")


BACKENDS = (
    Backend(
        "state.in-memory",
        lambda request: {},
        frozenset({Feature.ETAG, Feature.TRANSACTIONAL, Feature.QUERY_API, Feature.TTL}),
    ),
    Backend(
        "state.sqlite",
        lambda request: {"connectionString": str(request.getfixturevalue("tmp_path") / "state.db")},
        frozenset({Feature.ETAG, Feature.TRANSACTIONAL, Feature.QUERY_API, Feature.TTL}),
    ),
    Backend(
        "state.redis",
        lambda request: {"redisHost": request.getfixturevalue("redis_server").address},
        frozenset({Feature.ETAG, Feature.TRANSACTIONAL, Feature.TTL}),
    ),
    # A third-party store through its entry point (tests/plugins/l8-example-store): the same suite.
    Backend("state.example", lambda request: {}, frozenset({Feature.ETAG})),
)


def needs(*features: Feature) -> Callable[[Any], Any]:
    def mark(test: Any) -> Any:
        test.needed_features = frozenset(features)
        return test

    return mark


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        needed = getattr(metafunc.function, "needed_features", frozenset())
        chosen = [pytest.param(b, id=b.id) for b in BACKENDS if needed <= b.features]
        metafunc.parametrize("backend", chosen)


@pytest.fixture
async def store(backend: Backend, request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    instance = registry.create(backend.type)
    await instance.init(backend.metadata(request))
    try:
        missing = getattr(request.function, "needed_features", frozenset()) - instance.features()
        assert not missing, f"{backend.id} does not claim {sorted(missing)}"
        yield instance
    finally:
        await instance.close()


def doc(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


async def read(store: Any, key: str) -> StateItem | None:
    return await store.get(GetRequest(key))


async def etag_of(store: Any, key: str) -> str:
    item = await read(store, key)
    assert item is not None and item.etag, f"{key} should exist and carry an etag, got {item!r}"
    return item.etag


async def stale_etag(store: Any, key: str) -> str:
    """An etag the store really produced for ``key``, superseded by a later write."""
    await store.set(SetRequest(key, b'"first"'))
    old = await etag_of(store, key)
    await store.set(SetRequest(key, b'"second"'))
    return old


async def eventually(probe: Callable[[], Awaitable[bool]], seconds: float = 3.5) -> bool:
    """Poll ``probe`` until it holds (True) or ``seconds`` have passed (False)."""
    deadline = time.monotonic() + seconds
    while not await probe():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


MISMATCH_OR_INVALID = (ETagMismatchError, ETagInvalidError)

# -- features, life ---------------------------------------------------------------------------------


async def test_features_are_exactly_the_expected_ones(store, backend):
    assert store.features() == backend.features
    if Feature.TRANSACTIONAL in backend.features:
        assert callable(getattr(store, "transact", None))
    if Feature.QUERY_API in backend.features:
        assert callable(getattr(store, "query", None))


async def test_close_twice_is_fine(store):
    await store.close()
    await store.close()


# -- get, set, delete -------------------------------------------------------------------------------

VALUES = {
    "string": b'"hello"',
    "verbatim-spacing": b'{"a": 1,   "b": [1, 2] }',
    "unicode": doc({"name": "Zoë", "city": "Zürich", "emoji": "🚀", "cjk": "漢字", "n": 1.5, "none": None}),
    "100KB": doc({"blob": "ascii-and-é漢🚀" * 5500}),
}


@pytest.mark.parametrize("value", VALUES.values(), ids=VALUES.keys())
async def test_set_then_get_returns_the_bytes(store, keys, value):
    await store.set(SetRequest(keys("k"), value))
    item = await read(store, keys("k"))
    assert item is not None and item.value == value


async def test_hundreds_of_concurrent_operations_all_succeed(store, keys):
    # A sidecar under load has many commands in flight at once; none may fail for lack of a
    # connection (redis-py's unbounded-looking pool stops at 100 connections).
    await asyncio.gather(*(store.set(SetRequest(keys(f"k{n}"), b"%d" % n)) for n in range(300)))
    items = await asyncio.gather(*(read(store, keys(f"k{n}")) for n in range(300)))
    assert [item.value for item in items if item is not None] == [b"%d" % n for n in range(300)]


async def test_missing_key_reads_none(store, keys):
    assert await read(store, keys("never-written")) is None


async def test_delete_of_missing_key_succeeds(store, keys):
    await store.delete(DeleteRequest(keys("never-written")))
    assert await read(store, keys("never-written")) is None


async def test_delete_removes_the_key(store, keys):
    await store.set(SetRequest(keys("k"), b"1"))
    await store.delete(DeleteRequest(keys("k")))
    assert await read(store, keys("k")) is None


async def test_last_write_overwrites(store, keys):
    await store.set(SetRequest(keys("k"), b"1"))
    await store.set(SetRequest(keys("k"), b"2", concurrency=Concurrency.LAST_WRITE))
    item = await read(store, keys("k"))
    assert item is not None and item.value == b"2"


@needs(Feature.ETAG)
async def test_every_write_gets_a_new_etag(store, keys):
    etags = []
    for n in range(3):
        await store.set(SetRequest(keys("k"), doc(n)))
        etags.append(await etag_of(store, keys("k")))
    await store.set(SetRequest(keys("k"), b"3", etag=etags[-1]))
    etags.append(await etag_of(store, keys("k")))
    assert len(set(etags)) == len(etags), etags


@needs(Feature.ETAG)
async def test_set_with_current_etag_succeeds(store, keys):
    await store.set(SetRequest(keys("k"), b"1"))
    await store.set(SetRequest(keys("k"), b"2", etag=await etag_of(store, keys("k"))))
    item = await read(store, keys("k"))
    assert item is not None and item.value == b"2"


@needs(Feature.ETAG)
async def test_set_with_stale_etag_is_a_mismatch(store, keys):
    old = await stale_etag(store, keys("k"))
    with pytest.raises(ETagMismatchError):
        await store.set(SetRequest(keys("k"), b'"third"', etag=old))
    item = await read(store, keys("k"))
    assert item is not None and item.value == b'"second"'


@needs(Feature.ETAG)
async def test_etag_on_missing_key_is_a_mismatch(store, keys):
    await store.set(SetRequest(keys("k"), b"1"))
    old = await etag_of(store, keys("k"))
    await store.delete(DeleteRequest(keys("k")))
    with pytest.raises(ETagMismatchError):
        await store.set(SetRequest(keys("k"), b"2", etag=old))
    with pytest.raises(ETagMismatchError):
        await store.delete(DeleteRequest(keys("k"), etag=old))
    assert await read(store, keys("k")) is None


@needs(Feature.ETAG)
@pytest.mark.parametrize("existing", [True, False], ids=["existing-key", "missing-key"])
async def test_etag_the_store_could_not_produce_is_refused(store, keys, existing):
    if existing:
        await store.set(SetRequest(keys("k"), b"1"))
    with pytest.raises(MISMATCH_OR_INVALID):
        await store.set(SetRequest(keys("k"), b"2", etag="not-a-number"))
    with pytest.raises(MISMATCH_OR_INVALID):
        await store.delete(DeleteRequest(keys("k"), etag="not-a-number"))
    item = await read(store, keys("k"))
    assert (item.value if item else None) == (b"1" if existing else None)


@needs(Feature.ETAG)
async def test_first_write_without_etag_on_existing_key_is_a_mismatch(store, keys):
    await store.set(SetRequest(keys("k"), b"1"))
    with pytest.raises(ETagMismatchError):
        await store.set(SetRequest(keys("k"), b"2", concurrency=Concurrency.FIRST_WRITE))
    item = await read(store, keys("k"))
    assert item is not None and item.value == b"1"


@needs(Feature.ETAG)
async def test_first_write_on_new_key_succeeds(store, keys):
    await store.set(SetRequest(keys("k"), b"1", concurrency=Concurrency.FIRST_WRITE))
    item = await read(store, keys("k"))
    assert item is not None and item.value == b"1"


@needs(Feature.ETAG)
async def test_first_write_with_current_etag_succeeds(store, keys):
    await store.set(SetRequest(keys("k"), b"1"))
    etag = await etag_of(store, keys("k"))
    await store.set(SetRequest(keys("k"), b"2", etag=etag, concurrency=Concurrency.FIRST_WRITE))
    item = await read(store, keys("k"))
    assert item is not None and item.value == b"2"


@needs(Feature.ETAG)
async def test_delete_with_stale_etag_is_a_mismatch_and_keeps_the_key(store, keys):
    old = await stale_etag(store, keys("k"))
    with pytest.raises(ETagMismatchError):
        await store.delete(DeleteRequest(keys("k"), etag=old))
    item = await read(store, keys("k"))
    assert item is not None and item.value == b'"second"'


@needs(Feature.ETAG)
async def test_delete_with_current_etag_removes_the_key(store, keys):
    await store.set(SetRequest(keys("k"), b"1"))
    await store.delete(DeleteRequest(keys("k"), etag=await etag_of(store, keys("k"))))
    assert await read(store, keys("k")) is None


@needs(Feature.ETAG)
@pytest.mark.parametrize("contest", ["same-etag", "first-write-of-new-key"])
async def test_one_of_fifty_concurrent_conditional_writes_wins(store, keys, contest):
    if contest == "same-etag":
        await store.set(SetRequest(keys("k"), b"0"))
        before: str | None = await etag_of(store, keys("k"))
        writes = [SetRequest(keys("k"), doc(n), etag=before) for n in range(1, 51)]
    else:
        before = None
        writes = [SetRequest(keys("k"), doc(n), concurrency=Concurrency.FIRST_WRITE) for n in range(1, 51)]
    results = await asyncio.gather(*(store.set(w) for w in writes), return_exceptions=True)
    winners = [w for w, result in zip(writes, results, strict=True) if result is None]
    losers = [result for result in results if result is not None]
    assert len(winners) == 1, f"{len(winners)} writes succeeded"
    assert all(isinstance(e, ETagMismatchError) for e in losers), {type(e).__name__ for e in losers}
    item = await read(store, keys("k"))
    assert item is not None and item.value == winners[0].value and item.etag != before


# -- expiry -----------------------------------------------------------------------------------------


@needs(Feature.TTL)
async def test_ttl_expires_the_key(store, keys):
    await store.set(SetRequest(keys("k"), b"1", ttl=1))
    assert await read(store, keys("k")) is not None

    async def gone() -> bool:
        return await read(store, keys("k")) is None

    assert await eventually(gone), "the key outlived its 1 s TTL by more than 2.5 s"


@needs(Feature.TTL)
async def test_get_reports_when_the_key_expires(store, keys):
    before = datetime.now(UTC)
    await store.set(SetRequest(keys("k"), b"1", ttl=100))
    after = datetime.now(UTC)
    item = await read(store, keys("k"))
    assert item is not None and item.expires_at is not None and item.expires_at.tzinfo is not None
    ttl = timedelta(seconds=100)
    assert before + ttl - timedelta(seconds=2) <= item.expires_at <= after + ttl + timedelta(seconds=1)


@needs(Feature.TTL)
async def test_key_written_without_ttl_reports_no_expiry(store, keys):
    await store.set(SetRequest(keys("k"), b"1"))
    item = await read(store, keys("k"))
    assert item is not None and item.expires_at is None


@needs(Feature.TTL)
@pytest.mark.parametrize("ttl", [None, 0, -1], ids=["no-ttl", "ttl-0", "ttl-minus-1"])
async def test_write_without_expiry_clears_an_earlier_ttl(store, keys, ttl):
    written = time.monotonic()
    await store.set(SetRequest(keys("k"), b"1", ttl=1))
    await store.set(SetRequest(keys("k"), b"2", ttl=ttl))
    item = await read(store, keys("k"))
    assert item is not None and item.expires_at is None
    await asyncio.sleep(1.6 - (time.monotonic() - written))
    item = await read(store, keys("k"))
    assert item is not None and item.value == b"2", "the key expired with the TTL of an earlier write"


# -- bulk -------------------------------------------------------------------------------------------


async def test_bulk_get_answers_in_request_order(store, keys):
    await store.set(SetRequest(keys("a"), b'"A"'))
    await store.set(SetRequest(keys("c"), b'"C"'))
    names = ["c", "missing", "a", "c"]
    items = await store.bulk_get([GetRequest(keys(name)) for name in names])
    assert [item.value if item else None for item in items] == [b'"C"', None, b'"A"', b'"C"']
    assert await store.bulk_get([]) == []


async def test_bulk_set_writes_every_item(store, keys):
    await store.bulk_set([SetRequest(keys(f"k{n}"), doc({"n": n})) for n in range(10)])
    for n in range(10):
        item = await read(store, keys(f"k{n}"))
        assert item is not None and item.value == doc({"n": n})


# -- transactions -----------------------------------------------------------------------------------


@needs(Feature.TRANSACTIONAL)
async def test_transaction_applies_upserts_and_deletes_together(store, keys):
    await store.set(SetRequest(keys("a"), b"1"))
    await store.set(SetRequest(keys("b"), b"2"))
    await store.set(SetRequest(keys("c"), b"3"))
    await store.transact(
        [
            SetRequest(keys("a"), b"10"),
            DeleteRequest(keys("b")),
            SetRequest(keys("c"), b"30", etag=await etag_of(store, keys("c"))),
            SetRequest(keys("d"), b"40"),
            DeleteRequest(keys("never-written")),
        ],
        {},
    )
    items = await store.bulk_get([GetRequest(keys(name)) for name in "abcd"])
    assert [item.value if item else None for item in items] == [b"10", None, b"30", b"40"]


FAILING_LAST_OPERATIONS = {
    "set-with-stale-etag": lambda key, stale: SetRequest(key, b'"third"', etag=stale),
    "delete-with-stale-etag": lambda key, stale: DeleteRequest(key, etag=stale),
    "first-write-of-existing-key": lambda key, _: SetRequest(key, b"0", concurrency=Concurrency.FIRST_WRITE),
}


@needs(Feature.TRANSACTIONAL, Feature.ETAG)
@pytest.mark.parametrize("failing", FAILING_LAST_OPERATIONS.values(), ids=FAILING_LAST_OPERATIONS.keys())
async def test_a_failing_last_operation_leaves_every_key_untouched(store, keys, failing):
    await store.set(SetRequest(keys("a"), b"1"))
    await store.set(SetRequest(keys("b"), b"2"))
    stale = await stale_etag(store, keys("c"))
    current = await etag_of(store, keys("c"))
    with pytest.raises(ETagMismatchError):
        await store.transact(
            [
                SetRequest(keys("a"), b"10"),
                DeleteRequest(keys("b")),
                SetRequest(keys("d"), b"40"),
                failing(keys("c"), stale),
            ],
            {},
        )
    items = await store.bulk_get([GetRequest(keys(name)) for name in "abcd"])
    assert [item.value if item else None for item in items] == [b"1", b"2", b'"second"', None]
    assert await etag_of(store, keys("c")) == current


@needs(Feature.TRANSACTIONAL)
async def test_first_write_inside_a_transaction_creates_a_new_key(store, keys):
    await store.transact([SetRequest(keys("k"), b"1", concurrency=Concurrency.FIRST_WRITE)], {})
    item = await read(store, keys("k"))
    assert item is not None and item.value == b"1"


# -- query ------------------------------------------------------------------------------------------

PEOPLE = {
    "a": {"name": "ann", "age": 31, "city": "oslo", "address": {"zip": 300}},
    "b": {"name": "bob", "age": 25, "city": "rome", "address": {"zip": 100}},
    "c": {"name": "cid", "age": 40, "city": "oslo", "address": {"zip": 200}},
    "d": {"name": "dan", "age": 25, "city": "paris", "address": {"zip": 100}},
    "e": {"name": "eve", "age": 52, "city": "rome", "address": {"zip": 200}},
    "f": {"name": "fay", "age": 19, "city": "lima", "address": {"zip": 100}},
}


async def seed(store: Any, keys: Any) -> str:
    """Write PEOPLE under the test's prefix and look-alikes under another; return the other prefix."""
    other = keys.prefix.replace("||", "-other||")
    for name, person in PEOPLE.items():
        await store.set(SetRequest(keys(name), doc(person)))
        await store.set(SetRequest(other + name, doc(person)))
    return other


async def query(store: Any, prefix: str, document: dict[str, Any]) -> tuple[list[str], str | None]:
    response = await store.query(QueryRequest(parse_query(document), prefix))
    names = [item.key.removeprefix(prefix) for item in response.results]
    assert all(prefix + name == item.key for name, item in zip(names, response.results, strict=True))
    return names, response.token


FILTERS = {
    "EQ": ({"EQ": {"city": "oslo"}}, "ac"),
    "EQ-nested-path": ({"EQ": {"address.zip": 200}}, "ce"),
    "NEQ": ({"NEQ": {"city": "oslo"}}, "bdef"),
    "IN": ({"IN": {"city": ["rome", "lima"]}}, "bef"),
    "GT": ({"GT": {"age": 30}}, "ace"),
    "LT": ({"LT": {"age": 25}}, "f"),
    "AND": ({"AND": [{"EQ": {"city": "rome"}}, {"GT": {"age": 30}}]}, "e"),
    "OR-nested": (
        {"OR": [{"EQ": {"city": "paris"}}, {"AND": [{"EQ": {"city": "oslo"}}, {"LT": {"age": 35}}]}]},
        "ad",
    ),
}


@needs(Feature.QUERY_API)
@pytest.mark.parametrize(("query_filter", "expected"), FILTERS.values(), ids=FILTERS.keys())
async def test_query_filters(store, keys, query_filter, expected):
    await seed(store, keys)
    names, token = await query(store, keys.prefix, {"filter": query_filter})
    assert sorted(names) == list(expected)
    assert token is None


@needs(Feature.QUERY_API)
@pytest.mark.parametrize(("order", "expected"), [("ASC", "bdfcea"), ("DESC", "acebdf")])
async def test_query_sorts_on_a_nested_path_with_ties_broken_by_key(store, keys, order, expected):
    await seed(store, keys)
    names, _ = await query(store, keys.prefix, {"sort": [{"key": "address.zip", "order": order}]})
    assert names == list(expected)


@needs(Feature.QUERY_API)
@pytest.mark.parametrize("limit", [1, 2, 4])
async def test_query_pages_walk_every_result_exactly_once(store, keys, limit):
    await seed(store, keys)
    walked: list[str] = []
    token: str | None = None
    for _ in range(len(PEOPLE) + 1):
        page = {"limit": limit, "token": token} if token else {"limit": limit}
        names, token = await query(store, keys.prefix, {"sort": [{"key": "age"}], "page": page})
        assert 0 < len(names) <= limit
        walked += names
        if token is None:
            break
    assert walked == list("fbdace")


@needs(Feature.QUERY_API)
async def test_query_searches_only_under_the_key_prefix(store, keys):
    other = await seed(store, keys)
    await store.set(SetRequest(keys("g"), doc({"city": "oslo"})))
    names, _ = await query(store, keys.prefix, {"filter": {"EQ": {"city": "oslo"}}})
    assert sorted(names) == ["a", "c", "g"]
    names, _ = await query(store, other, {"filter": {"EQ": {"city": "oslo"}}})
    assert sorted(names) == ["a", "c"]
    response = await store.query(QueryRequest(parse_query({"filter": {"EQ": {"name": "ann"}}}), keys.prefix))
    [item] = response.results
    assert (item.key, item.value, item.etag) == (keys("a"), doc(PEOPLE["a"]), await etag_of(store, keys("a")))


@needs(Feature.QUERY_API, Feature.TTL)
async def test_query_skips_expired_keys(store, keys):
    await seed(store, keys)
    await store.set(SetRequest(keys("g"), doc({"city": "oslo"}), ttl=1))
    oslo = {"filter": {"EQ": {"city": "oslo"}}}
    names, _ = await query(store, keys.prefix, oslo)
    assert sorted(names) == ["a", "c", "g"]

    async def expired() -> bool:
        return sorted((await query(store, keys.prefix, oslo))[0]) == ["a", "c"]

    assert await eventually(expired), "an expired key is still returned by queries"


@needs(Feature.QUERY_API)
@pytest.mark.parametrize(
    "document",
    [{"filter": {"LIKE": {"city": "o%"}}}, {"filter": {"EQ": {"city": "oslo"}}, "page": {"token": "x"}}],
    ids=["unknown-operator", "bad-page-token"],
)
async def test_a_query_that_cannot_run_is_a_query_error(store, keys, document):
    with pytest.raises(QueryError):
        await store.query(QueryRequest(parse_query(document), keys.prefix))
