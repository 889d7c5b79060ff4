"""The sequencer API through the app: Layotto's GetNextId as proto3 JSON (nextId an int64 string),
WEAK ids from reserved blocks and STRONG ones from the store, biggerThan, and the error codes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from app.startup import StartupError
from tests.routers.conftest import Sidecar, StartSidecar, assert_error, component

SEQUENCER = "/v1.0-alpha1/sequencer"


async def next_id(sidecar: Sidecar, key: str, increment: Any = None, store: str = "sequencer") -> int:
    body: dict[str, Any] = {"key": key}
    if increment is not None:
        body["options"] = {"increment": increment}
    response = await sidecar.request("POST", f"{SEQUENCER}/{store}", json=body)
    assert response.status_code == 200, response.text
    payload = response.json()
    assert set(payload) == {"nextId"} and isinstance(payload["nextId"], str), payload
    return int(payload["nextId"])


@pytest.fixture
async def sidecar(start_sidecar: StartSidecar, tmp_path: Path) -> Sidecar:
    database = str(tmp_path / "sequencer.db")
    return await start_sidecar(component("sequencer", "sequencer.sqlite", connectionString=database))


async def test_strong_ids_increase_by_one(sidecar: Sidecar) -> None:
    ids = [await next_id(sidecar, "orders", "STRONG") for _ in range(5)]
    assert ids == [1, 2, 3, 4, 5]
    assert await next_id(sidecar, "orders", 1) == 6  # the enum by number
    assert await next_id(sidecar, "other", "STRONG") == 1


async def test_weak_ids_are_unique_and_increasing_from_blocks(sidecar: Sidecar) -> None:
    first = [await next_id(sidecar, "weak") for _ in range(120)]  # more than two blocks of 50
    assert first == sorted(set(first))
    concurrent = await asyncio.gather(*(next_id(sidecar, "weak", "WEAK") for _ in range(200)))
    assert len(set(concurrent) | set(first)) == 320
    assert min(concurrent) > max(first)
    # STRONG on the same key comes from the same counter: above every block reserved so far.
    assert await next_id(sidecar, "weak", "STRONG") > max(concurrent)


async def test_segment_step_and_disabled_cache(start_sidecar: StartSidecar, tmp_path: Path) -> None:
    sidecar = await start_sidecar(
        component("big", "sequencer.in-memory", segmentStep="1000"),
        component("direct", "sequencer.in-memory", segmentCacheEnable="false"),
    )
    assert await next_id(sidecar, "k", store="big") == 1
    assert await next_id(sidecar, "k", "STRONG", store="big") == 1001  # a block of 1000 is reserved
    assert [await next_id(sidecar, "k", store="direct") for _ in range(3)] == [1, 2, 3]


async def test_bigger_than(start_sidecar: StartSidecar, tmp_path: Path) -> None:
    sidecar = await start_sidecar(
        component(
            "sequencer",
            "sequencer.sqlite",
            connectionString=str(tmp_path / "floor.db"),
            **{"biggerThan.orders": "1000"},
        )
    )
    assert await next_id(sidecar, "orders", "STRONG") == 1001
    assert await next_id(sidecar, "orders") > 1001
    assert await next_id(sidecar, "others", "STRONG") == 1


@pytest.mark.parametrize(
    ("metadata", "field"),
    [({"segmentStep": "0"}, "segmentStep"), ({"biggerThan.k": "x"}, "biggerThan.k"),
     ({"segmentCacheEnable": "maybe"}, "segmentCacheEnable"), ({"segmentStep": "²"}, "segmentStep"),
     ({"biggerThan.k": "--5"}, "biggerThan.k"), ({"biggerThan.k": str(2**63)}, "biggerThan.k")],
)  # fmt: skip
async def test_bad_sequencer_metadata_fails_start_up(
    start_sidecar: StartSidecar, metadata: dict[str, str], field: str
) -> None:
    with pytest.raises(StartupError, match=field):
        await start_sidecar(component("sequencer", "sequencer.in-memory", **metadata))


async def test_errors(sidecar: Sidecar) -> None:
    post = sidecar.request
    assert_error(await post("POST", f"{SEQUENCER}/sequencer", json={}), 400, "ERR_MALFORMED_REQUEST",
                 message="Key is empty in sequencer store sequencer")  # fmt: skip
    assert_error(
        await post("POST", f"{SEQUENCER}/sequencer", json={"key": "a||b"}), 400, "ERR_MALFORMED_REQUEST"
    )
    assert_error(await post("POST", f"{SEQUENCER}/sequencer", content=b"[1"), 400, "ERR_MALFORMED_REQUEST")
    bad = {"key": "k", "options": {"increment": "SOMETIMES"}}
    assert_error(await post("POST", f"{SEQUENCER}/sequencer", json=bad), 400, "ERR_MALFORMED_REQUEST")
    assert_error(await post("POST", f"{SEQUENCER}/sequencer", json={"key": 7}), 400, "ERR_MALFORMED_REQUEST")
    assert_error(
        await post("POST", f"{SEQUENCER}/nope", json={"key": "k"}),
        400,
        "ERR_SEQUENCER_STORE_NOT_FOUND",
        message="sequencer store nope not found",
    )


async def test_no_sequencer_configured(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar()
    response = await sidecar.request("POST", f"{SEQUENCER}/any", json={"key": "k"})
    assert_error(response, 500, "ERR_SEQUENCER_STORE_NOT_CONFIGURED")


async def test_redis_keys(start_sidecar: StartSidecar, redis_server: Any) -> None:
    import redis.asyncio as redis

    sidecar = await start_sidecar(component("seq", "sequencer.redis", redisHost=redis_server.address))
    assert await next_id(sidecar, "k", "STRONG", store="seq") == 1
    client = redis.Redis.from_url(redis_server.url)
    try:
        assert await client.get(f"sequencer||{sidecar.app_id}||k") == b"1"
    finally:
        await client.aclose()


async def test_many_keys_evict_blocks_without_failing_a_waiting_caller(
    start_sidecar: StartSidecar, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services import sequencer

    monkeypatch.setattr(sequencer, "MAX_BUFFERED_KEYS", 2)
    sidecar = await start_sidecar(component("sequencer", "sequencer.in-memory"))
    # Every first call of a key waits for its block while others push it out of the buffer.
    ids = await asyncio.gather(*(next_id(sidecar, f"key-{index % 5}") for index in range(40)))
    assert all(value >= 1 for value in ids)
    for key in range(5):
        mine = [value for index, value in enumerate(ids) if index % 5 == key]
        assert len(set(mine)) == len(mine)  # evicted blocks are skipped, never reused
