"""Every scheduler store against the contract in components/scheduler/base.py, on real servers.

What is specific to a backend lives in BACKENDS only: how to build a store from the test's
fixtures. Several instances of one backend stand for several sidecars sharing the store (for SQLite:
several connections to one file).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from components.etcd_connection import EtcdConnectionMetadata
from components.metadata import decode
from components.redis_metadata import RedisConnectionMetadata
from components.scheduler.base import Claim, SchedulerStore, StoredJob
from components.scheduler.etcd import EtcdSchedulerStore
from components.scheduler.redis import RedisSchedulerStore
from components.scheduler.sqlite import SQLiteSchedulerStore

Factory = Callable[[], SchedulerStore]


def _sqlite(request: pytest.FixtureRequest) -> Factory:
    path = str(Path(request.getfixturevalue("tmp_path")) / "scheduler.db")
    return lambda: SQLiteSchedulerStore(path)


def _redis(request: pytest.FixtureRequest) -> Factory:
    address = request.getfixturevalue("redis_server").address
    settings = decode(RedisConnectionMetadata, {"redisHost": address})
    return lambda: RedisSchedulerStore(settings, prefix="l8-conformance||sched||")


def _etcd(request: pytest.FixtureRequest) -> Factory:
    address = request.getfixturevalue("etcd_server").address
    settings = decode(EtcdConnectionMetadata, {"endpoints": address})
    return lambda: EtcdSchedulerStore(settings, prefix="/l8-conformance/sched/")


BACKENDS = {"sqlite": _sqlite, "redis": _redis, "etcd": _etcd}


@pytest.fixture(params=list(BACKENDS))
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[Callable[[], SchedulerStore]]:
    """Opens stores of one backend (all sharing its data); closes them after the test."""
    factory = BACKENDS[request.param](request)
    opened: list[SchedulerStore] = []

    def make() -> SchedulerStore:
        store = factory()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


@pytest.fixture
async def store(stores: Callable[[], SchedulerStore]) -> SchedulerStore:
    found = stores()
    await found.open()
    return found


@pytest.fixture
def scope() -> tuple[str, str]:
    """A (kind, app id) of the test's own: tests share the servers."""
    return "job", f"app-{uuid.uuid4().hex[:8]}"


def _job(scope: tuple[str, str], name: str, ready: float, spec: bytes = b"{}") -> StoredJob:
    return StoredJob(scope[0], scope[1], name, spec, due=ready, ready=ready)


async def _claim(
    store: SchedulerStore, scope: tuple[str, str], name: str, lease: float = 30.0
) -> Claim | None:
    return await store.claim(scope[0], scope[1], name, uuid.uuid4().hex, lease)


async def test_clock_is_near_the_local_one(store: SchedulerStore) -> None:
    assert abs(await store.now() - time.time()) < 5


async def test_put_get_and_refusal_to_overwrite(store: SchedulerStore, scope: tuple[str, str]) -> None:
    now = await store.now()
    assert await store.get(*scope, "a") is None
    assert await store.put(_job(scope, "a", now + 60, b'{"v":1}'), overwrite=False)
    assert not await store.put(_job(scope, "a", now + 90, b'{"v":2}'), overwrite=False)
    found = await store.get(*scope, "a")
    assert found is not None
    assert (found.spec, found.attempt, found.ticks, found.token) == (b'{"v":1}', 1, 0, "")
    assert found.due == pytest.approx(now + 60, abs=0.002)
    assert await store.put(_job(scope, "a", now + 90, b'{"v":2}'), overwrite=True)
    found = await store.get(*scope, "a")
    assert found is not None and found.spec == b'{"v":2}' and found.due == pytest.approx(now + 90, abs=0.002)


async def test_overwrite_takes_the_job_from_its_claimer(
    store: SchedulerStore, scope: tuple[str, str]
) -> None:
    now = await store.now()
    await store.put(_job(scope, "a", now - 1), overwrite=False)
    claim = await _claim(store, scope, "a")
    assert claim is not None
    await store.put(_job(scope, "a", now - 1, b'{"new":true}'), overwrite=True)
    assert not await store.complete(claim, now + 10)
    assert not await store.release(claim, now + 10)
    fresh = await _claim(store, scope, "a")  # the new version is ready, unclaimed
    assert fresh is not None and fresh.job.spec == b'{"new":true}'


async def test_delete(store: SchedulerStore, scope: tuple[str, str]) -> None:
    now = await store.now()
    await store.put(_job(scope, "a", now), overwrite=False)
    assert await store.delete(*scope, "a")
    assert not await store.delete(*scope, "a")
    assert await store.get(*scope, "a") is None
    assert await store.upcoming(*scope, now + 60, 10) == []


async def test_delete_prefix_matches_the_start_exactly(store: SchedulerStore, scope: tuple[str, str]) -> None:
    now = await store.now()
    names = ["T||1||r1", "T||1||r2", "T||10||r1", "t||1||r1", "T||1%||x", "T_1||x", "other"]
    for name in names:
        await store.put(_job(scope, name, now + 60), overwrite=False)
    await store.put(StoredJob("reminder", scope[1], "T||1||r3", b"{}", now, now), overwrite=False)
    assert await store.delete_prefix(*scope, "T||1||") == 2
    left = {slot.name for slot in await store.upcoming(*scope, now + 120, 100)}
    assert left == {"T||10||r1", "t||1||r1", "T||1%||x", "T_1||x", "other"}
    assert await store.delete_prefix(*scope, "T||1%") == 1
    assert await store.delete_prefix(*scope, "T_") == 1
    assert await store.get("reminder", scope[1], "T||1||r3") is not None  # another kind: untouched
    assert await store.delete_prefix(*scope, "nothing") == 0


async def test_upcoming_lists_one_scope_earliest_first(store: SchedulerStore, scope: tuple[str, str]) -> None:
    now = await store.now()
    for offset, name in ((30, "c"), (10, "a"), (20, "b"), (500, "late")):
        await store.put(_job(scope, name, now + offset), overwrite=False)
    await store.put(StoredJob(scope[0], "another-app", "x", b"{}", now, now), overwrite=True)
    await store.put(StoredJob("reminder", scope[1], "y", b"{}", now, now), overwrite=True)
    slots = await store.upcoming(*scope, now + 60, 10)
    assert [slot.name for slot in slots] == ["a", "b", "c"]
    assert slots[0].ready == pytest.approx(now + 10, abs=0.002)
    assert [slot.name for slot in await store.upcoming(*scope, now + 60, 2)] == ["a", "b"]
    await store.delete(scope[0], "another-app", "x")


async def test_a_tick_is_claimed_only_when_due_and_only_once(
    store: SchedulerStore, scope: tuple[str, str]
) -> None:
    now = await store.now()
    await store.put(_job(scope, "later", now + 60), overwrite=False)
    await store.put(_job(scope, "due", now - 0.5), overwrite=False)
    assert await _claim(store, scope, "later") is None
    assert await _claim(store, scope, "missing") is None
    claim = await _claim(store, scope, "due", lease=30)
    assert claim is not None
    assert claim.job.token and claim.job.attempt == 1 and claim.job.due == pytest.approx(now - 0.5, abs=0.002)
    assert await _claim(store, scope, "due") is None
    slots = await store.upcoming(*scope, claim.now + 60, 10)  # claimed: listed at the lease's end
    assert [slot.name for slot in slots] == ["due", "later"]
    assert slots[0].ready == pytest.approx(claim.now + 30, abs=0.01)


async def test_concurrent_claimers_of_one_tick_one_wins(
    stores: Callable[[], SchedulerStore], scope: tuple[str, str]
) -> None:
    sidecars = [stores() for _ in range(8)]
    for sidecar in sidecars:
        await sidecar.open()
    now = await sidecars[0].now()
    for index in range(10):
        await sidecars[0].put(_job(scope, f"tick-{index}", now - 0.1), overwrite=False)

    async def claim_all(sidecar: SchedulerStore) -> list[Claim | None]:
        return list(await asyncio.gather(*(_claim(sidecar, scope, f"tick-{i}") for i in range(10))))

    rounds = await asyncio.gather(*(claim_all(sidecar) for sidecar in sidecars))
    for index in range(10):
        winners = [found[index] for found in rounds if found[index] is not None]
        assert len(winners) == 1, f"tick-{index} claimed {len(winners)} times"


async def test_a_claim_whose_lease_ends_is_claimed_again(
    store: SchedulerStore, scope: tuple[str, str]
) -> None:
    now = await store.now()
    await store.put(_job(scope, "a", now - 0.1), overwrite=False)
    first = await _claim(store, scope, "a", lease=0.3)
    assert first is not None
    assert await _claim(store, scope, "a") is None
    await asyncio.sleep(0.45)
    second = await _claim(store, scope, "a", lease=30)
    assert second is not None and second.job.due == first.job.due and second.job.attempt == 1
    assert not await store.complete(first, now + 100)  # the dead claimer's outcome counts for nothing
    assert not await store.extend(first, 30)
    assert await store.complete(second, now + 100)


async def test_extend_keeps_the_claim(store: SchedulerStore, scope: tuple[str, str]) -> None:
    now = await store.now()
    await store.put(_job(scope, "a", now - 0.1), overwrite=False)
    claim = await _claim(store, scope, "a", lease=0.3)
    assert claim is not None
    assert await store.extend(claim, 30)
    await asyncio.sleep(0.45)
    assert await _claim(store, scope, "a") is None


async def test_complete_moves_to_the_next_tick_or_ends_the_job(
    store: SchedulerStore, scope: tuple[str, str]
) -> None:
    now = await store.now()
    await store.put(_job(scope, "a", now - 0.1), overwrite=False)
    claim = await _claim(store, scope, "a")
    assert claim is not None
    assert await store.complete(claim, now - 0.05)
    found = await store.get(*scope, "a")
    assert found is not None
    assert (found.ticks, found.attempt, found.token) == (1, 1, "")
    assert found.due == pytest.approx(now - 0.05, abs=0.002) and found.ready == found.due
    again = await _claim(store, scope, "a")
    assert again is not None and again.job.ticks == 1
    assert not await store.complete(claim, None)  # an old claim
    assert await store.complete(again, None)
    assert await store.get(*scope, "a") is None
    assert not await store.complete(again, None)


async def test_release_retries_the_same_tick_later(store: SchedulerStore, scope: tuple[str, str]) -> None:
    now = await store.now()
    await store.put(_job(scope, "a", now - 0.1), overwrite=False)
    claim = await _claim(store, scope, "a")
    assert claim is not None
    assert await store.release(claim, now + 0.4)
    assert not await store.release(claim, now)  # released: the token is gone
    assert await _claim(store, scope, "a") is None
    await asyncio.sleep(max(0.0, now + 0.45 - await store.now()))
    retry = await _claim(store, scope, "a")
    assert retry is not None
    assert (retry.job.attempt, retry.job.ticks) == (2, 0)
    assert retry.job.due == pytest.approx(now - 0.1, abs=0.002)


async def test_close_is_idempotent(stores: Callable[[], SchedulerStore]) -> None:
    store = stores()
    await store.open()
    await store.close()
    await store.close()


async def test_claim_many_takes_the_due_ones_once(
    stores: Callable[[], SchedulerStore], scope: tuple[str, str]
) -> None:
    sidecars = [stores() for _ in range(4)]
    for sidecar in sidecars:
        await sidecar.open()
    first = sidecars[0]
    now = await first.now()
    names = [f"n{index}" for index in range(30)]
    for name in names:
        await first.put(_job(scope, name, now - 0.1, spec=name.encode()), overwrite=False)
    await first.put(_job(scope, "later", now + 60), overwrite=False)
    assert await first.claim_many(*scope, [], "t", 30) == []
    found = await asyncio.gather(
        *(
            sidecar.claim_many(*scope, [*names, "later", "missing"], uuid.uuid4().hex, 30)
            for sidecar in sidecars
        )
    )
    claimed = [claim.job.name for claims in found for claim in claims]
    assert sorted(claimed) == sorted(names)  # each due one once; not the later one, not the missing one
    claim = next(claim for claims in found for claim in claims if claim.job.name == "n3")
    assert claim.job.spec == b"n3" and claim.job.attempt == 1 and claim.job.token
    assert await first.complete(claim, None)
    assert await first.get(*scope, "n3") is None


async def _listing(
    store: SchedulerStore, scope: tuple[str, str], prefix: str, limit: int
) -> list[list[StoredJob]]:
    """Every page of a listing, in the order read."""
    pages: list[list[StoredJob]] = []
    cursor: str | None = None
    while True:
        page = await store.list_jobs(*scope, prefix, cursor, limit)
        pages.append(page.jobs)
        if page.cursor is None:
            return pages
        cursor = page.cursor


def _names(pages: list[list[StoredJob]]) -> list[str]:
    return sorted({job.name for page in pages for job in page})


async def test_listing_an_empty_scope(store: SchedulerStore, scope: tuple[str, str]) -> None:
    page = await store.list_jobs(*scope, "", None, 10)
    assert (page.jobs, page.cursor) == ([], None)


async def test_listing_matches_the_prefix_byte_for_byte(
    store: SchedulerStore, scope: tuple[str, str]
) -> None:
    now = await store.now()
    names = ["T||1||a", "T||1||ab", "T||10||a", "T||1", "t||1||a", "T/1/a", "T||1||%_*?[x]\\", "Té||1||a"]
    for name in names:
        assert await store.put(_job(scope, name, now + 60, f'{{"n":"{name}"}}'.encode()), overwrite=False)
    await store.put(_job(("reminder", scope[1]), "T||1||other-kind", now + 60), overwrite=False)
    await store.put(_job((scope[0], scope[1] + "-other"), "T||1||other-app", now + 60), overwrite=False)

    assert _names(await _listing(store, scope, "", 100)) == sorted(names)
    assert _names(await _listing(store, scope, "T||1||", 100)) == ["T||1||%_*?[x]\\", "T||1||a", "T||1||ab"]
    assert _names(await _listing(store, scope, "T||1", 100)) == sorted(
        ["T||1||a", "T||1||ab", "T||10||a", "T||1", "T||1||%_*?[x]\\"]
    )
    assert _names(await _listing(store, scope, "T||1||%", 100)) == ["T||1||%_*?[x]\\"]
    assert _names(await _listing(store, scope, "T||1||%_*?[", 100)) == ["T||1||%_*?[x]\\"]
    assert _names(await _listing(store, scope, "T/", 100)) == ["T/1/a"]
    assert _names(await _listing(store, scope, "Té", 100)) == ["Té||1||a"]
    assert _names(await _listing(store, scope, "T||1||ab", 100)) == ["T||1||ab"]
    assert _names(await _listing(store, scope, "T||2", 100)) == []
    assert _names(await _listing(store, scope, "t", 100)) == ["t||1||a"]


async def test_listing_gives_each_job_as_stored(store: SchedulerStore, scope: tuple[str, str]) -> None:
    now = await store.now()
    await store.put(_job(scope, "a", now - 1, b'{"v":1}'), overwrite=False)
    claim = await _claim(store, scope, "a")
    assert claim is not None
    [page] = await _listing(store, scope, "a", 10)
    [found] = page
    assert (found.kind, found.app_id, found.name, found.spec) == (*scope, "a", b'{"v":1}')
    assert found.due == pytest.approx(now - 1, abs=0.002)
    assert found.token == claim.job.token


async def test_listing_many_jobs_a_page_at_a_time(store: SchedulerStore, scope: tuple[str, str]) -> None:
    now = await store.now()
    names = [f"job-{n:04d}" for n in range(1000)]
    await asyncio.gather(*(store.put(_job(scope, name, now + 600), overwrite=False) for name in names))
    await store.put(_job(scope, "other", now + 600), overwrite=False)

    pages = await _listing(store, scope, "job-", 100)
    assert _names(pages) == names
    assert len(pages) >= 5, "a listing of 1000 jobs by 100 must take pages"
    assert max(len(page) for page in pages) <= 200, "a page holds about the limit, never the whole scope"
    seen = [job.name for page in pages for job in page]
    assert len(seen) - len(set(seen)) <= 10, "a job is given more than once only by a rehashing Redis"


async def test_listing_goes_on_while_jobs_are_deleted(store: SchedulerStore, scope: tuple[str, str]) -> None:
    now = await store.now()
    names = [f"n{n:03d}" for n in range(300)]
    await asyncio.gather(*(store.put(_job(scope, name, now + 600), overwrite=False) for name in names))
    first = await store.list_jobs(*scope, "", None, 50)
    assert first.cursor is not None
    gone = {job.name for job in first.jobs}
    for name in gone:
        await store.delete(*scope, name)
    rest: list[StoredJob] = []
    cursor: str | None = first.cursor
    while cursor is not None:
        page = await store.list_jobs(*scope, "", cursor, 50)
        rest.extend(page.jobs)
        cursor = page.cursor
    assert {job.name for job in rest} == set(names) - gone
