"""Request bodies at their limits, on a real SQLite store, a real Redis store and the in-memory
broker: JSON as deep as Go's encoding/json reads (10,000 levels) is taken whole and kept byte for
byte, deeper JSON and invalid UTF-8 are refused with 400 ERR_MALFORMED_REQUEST in well under a
second, the --max-request-items cap refuses a request whole before anything is written, and a big
request does not hold the event loop."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest

from components.pubsub.base import Message, SubscribeRequest
from tests.routers.conftest import JSON, Sidecar, StartSidecar, assert_error, component

MALFORMED = "ERR_MALFORMED_REQUEST"
EVENTS_SER = "ERR_PUBSUB_EVENTS_SER"
CE = "application/cloudevents+json"


def nested(depth: int, leaf: bytes = b'"x"') -> bytes:
    """A JSON value ``depth`` levels deep, objects and arrays in turn."""
    opening = b"".join(b'{"a":' if level % 2 else b"[" for level in range(depth))
    closing = b"".join(b"}" if level % 2 else b"]" for level in reversed(range(depth)))
    return opening + leaf + closing


@pytest.fixture
async def sidecar(start_sidecar: StartSidecar, redis_server: Any, tmp_path: Any) -> Sidecar:
    return await start_sidecar(
        component("statestore", "state.sqlite", connectionString=str(tmp_path / "state.db")),
        component("redisstore", "state.redis", redisHost=redis_server.address),
        component("pubsub", "pubsub.in-memory"),
        max_body_size="16Mi",
        max_request_items=0,
        # No deadline: four 150,000-item saves queue on one SQLite file, and on a loaded machine
        # the last would pass component_timeout (5 s); these tests measure memory and the loop.
        component_timeout=0,
    )


async def subscribed(sidecar: Sidecar, topic: str) -> list[Message]:
    got: list[Message] = []

    async def handler(message: Message) -> None:
        got.append(message)

    instance = sidecar.app.state.runtime.components.of("pubsub")["pubsub"].instance
    await instance.subscribe(SubscribeRequest(topic), handler)
    return got


# -- nesting and UTF-8 in state --------------------------------------------------------------------


@pytest.mark.parametrize("store", ["statestore", "redisstore"])
@pytest.mark.parametrize("depth", [900, 1025, 9_998])  # the body adds two levels: 10,000 in all
async def test_a_value_as_deep_as_dapr_reads_is_saved_and_read_back(
    sidecar: Sidecar, store: str, depth: int
) -> None:
    value, in_transaction = nested(depth), nested(depth - 2)  # a transaction adds four levels
    for path, body in [
        (f"/v1.0/state/{store}", b'[{"key":"deep","value":' + value + b"}]"),
        (
            f"/v1.0/state/{store}/transaction",
            b'{"operations":[{"operation":"upsert","request":{"key":"deep2","value":'
            + in_transaction
            + b"}}]}",
        ),
    ]:
        response = await sidecar.request("POST", path, content=body)
        assert response.status_code == 204, response.text
    assert (await sidecar.get(store, "deep")).content == value
    assert (await sidecar.get(store, "deep2")).content == in_transaction


@pytest.mark.parametrize(
    ("path", "wrap"),
    [
        ("/v1.0/state/statestore", lambda v: b'[{"key":"fresh","value":' + v + b"}]"),
        ("/v1.0/state/redisstore", lambda v: b'[{"key":"fresh","value":' + v + b"}]"),
        (
            "/v1.0/state/statestore/transaction",
            lambda v: b'{"operations":[{"operation":"upsert","request":{"key":"fresh","value":' + v + b"}}]}",
        ),
        ("/v1.0/state/statestore/bulk", lambda v: b'{"keys":["fresh"],"metadata":' + v + b"}"),
    ],
    ids=["save-sqlite", "save-redis", "transaction", "bulk-get"],
)
@pytest.mark.parametrize(
    "value",
    [nested(9_999), nested(100_000), b'"caf\xe9"', b'{"k":"\xff\xfe"}'],
    ids=["one-level-too-deep", "100000-deep", "latin-1", "invalid-utf8"],
)
async def test_json_dapr_refuses_is_refused_quickly_and_writes_nothing(
    sidecar: Sidecar, path: str, wrap: Any, value: bytes
) -> None:
    started = time.process_time()
    response = await sidecar.request("POST", path, content=wrap(value))
    assert time.process_time() - started < 1.0  # CPU time: other processes' load does not count
    assert_error(response, 400, MALFORMED)
    store = path.split("/")[3]
    assert (await sidecar.get(store, "fresh")).status_code == 204


# -- nesting and UTF-8 in publish ------------------------------------------------------------------


@pytest.mark.parametrize("depth", [900, 1025, 10_000])
async def test_a_json_event_as_deep_as_dapr_reads_is_published_as_sent(sidecar: Sidecar, depth: int) -> None:
    got = await subscribed(sidecar, "deep")
    value = nested(depth)
    response = await sidecar.request(
        "POST", "/v1.0/publish/pubsub/deep", content=value, headers={"content-type": JSON}
    )
    assert response.status_code == 204, response.text
    # A user CloudEvent is one level itself, and is decoded and written again.
    event = b'{"id":"1","data":' + nested(depth - 1) + b"}"
    response = await sidecar.request(
        "POST", "/v1.0/publish/pubsub/deep", content=event, headers={"content-type": CE}
    )
    assert response.status_code == 204, response.text
    for _ in range(100):
        if len(got) == 2:
            break
        await asyncio.sleep(0.01)
    assert got[0].data.startswith(b'{"data":' + value + b',"datacontenttype":"application/json"')
    assert got[1].data.startswith(b'{"data":' + nested(depth - 1) + b',"id":"1"')


@pytest.mark.parametrize("content_type", [JSON, CE])
@pytest.mark.parametrize(
    "body",
    [nested(10_001), nested(100_000), b'{"a":"caf\xe9"}', b"\xff"],
    ids=["one-level-too-deep", "100000-deep", "latin-1", "not-utf8"],
)
async def test_a_json_publish_dapr_refuses_is_a_malformed_request(
    sidecar: Sidecar, content_type: str, body: bytes
) -> None:
    got = await subscribed(sidecar, "orders")
    started = time.process_time()
    response = await sidecar.request(
        "POST", "/v1.0/publish/pubsub/orders", content=body, headers={"content-type": content_type}
    )
    assert time.process_time() - started < 1.0  # CPU time: other processes' load does not count
    assert_error(response, 400, MALFORMED)
    await asyncio.sleep(0.05)
    assert got == []


async def test_ten_deep_publishes_at_once_are_refused_within_a_second(sidecar: Sidecar) -> None:
    """Each took 0.57 s of blocked loop and answered 500 RecursionError with a 345-line traceback."""
    body = nested(100_000)
    publishes = [
        sidecar.request("POST", "/v1.0/publish/pubsub/orders", content=body, headers={"content-type": JSON})
        for _ in range(10)
    ]
    started = time.process_time()
    answers = await asyncio.gather(*publishes)
    assert time.process_time() - started < 1.0  # CPU time: other processes' load does not count
    assert {a.status_code for a in answers} == {400}


@pytest.mark.parametrize("body", [b"[" + nested(10_000) + b"]", b"[" * 100_000 + b"]" * 100_000])
async def test_a_bulk_publish_too_deep_is_refused_with_its_own_code(sidecar: Sidecar, body: bytes) -> None:
    got = await subscribed(sidecar, "orders")
    response = await sidecar.request("POST", "/v1.0-alpha1/publish/bulk/pubsub/orders", content=body)
    assert_error(response, 400, EVENTS_SER, details=["ResourceInfo", "ErrorInfo"])
    assert got == []


async def test_a_bulk_publish_entry_as_deep_as_dapr_reads_is_published(sidecar: Sidecar) -> None:
    got = await subscribed(sidecar, "orders")
    event = nested(9_997)  # inside the array and the entry object: 9,999 levels
    body = b'[{"entryId":"1","contentType":"application/json","event":' + event + b"}]"
    response = await sidecar.request("POST", "/v1.0-alpha1/publish/bulk/pubsub/orders", content=body)
    assert response.status_code == 204, response.text
    for _ in range(100):
        if got:
            break
        await asyncio.sleep(0.01)
    assert got[0].data.startswith(b'{"data":' + event + b",")


# -- the item cap ----------------------------------------------------------------------------------


@pytest.fixture
async def capped(start_sidecar: StartSidecar, tmp_path: Any) -> Sidecar:
    return await start_sidecar(
        component("statestore", "state.sqlite", connectionString=str(tmp_path / "capped.db")),
        component("pubsub", "pubsub.in-memory"),
        max_request_items=3,
    )


async def test_the_item_cap_refuses_a_request_whole(capped: Sidecar) -> None:
    got = await subscribed(capped, "orders")
    four = [f"k{n}" for n in range(4)]
    response = await capped.save("statestore", [{"key": key, "value": 1} for key in four])
    body = assert_error(response, 400, MALFORMED)
    assert body["message"] == "too many items in one request: 4 (the limit is 3, --max-request-items)"
    response = await capped.transact(
        "statestore", [{"operation": "upsert", "request": {"key": key, "value": 1}} for key in four]
    )
    assert_error(
        response,
        400,
        MALFORMED,
        message="too many operations in one request: 4 (the limit is 3, --max-request-items)",
    )
    for key in four:
        assert (await capped.get("statestore", key)).status_code == 204
    assert_error(await capped.bulk("statestore", four), 400, MALFORMED)
    entries = [{"entryId": key, "event": "x", "contentType": "text/plain"} for key in four]
    response = await capped.request("POST", "/v1.0-alpha1/publish/bulk/pubsub/orders", json=entries)
    body = assert_error(response, 400, EVENTS_SER, details=["ResourceInfo", "ErrorInfo"])
    assert "too many entries in one request: 4 (the limit is 3" in body["message"]
    await asyncio.sleep(0.05)
    assert got == []

    # At the cap, everything goes through.
    assert (
        await capped.save("statestore", [{"key": key, "value": 1} for key in four[:3]])
    ).status_code == 204
    assert (await capped.bulk("statestore", four[:3])).status_code == 200
    response = await capped.request("POST", "/v1.0-alpha1/publish/bulk/pubsub/orders", json=entries[:3])
    assert response.status_code == 204


# -- big requests and the event loop ---------------------------------------------------------------


async def test_big_requests_leave_the_event_loop_free(sidecar: Sidecar) -> None:
    """Four 3.7 MB saves of 150,000 items and a 100,000-operation transaction at once: before, the
    loop stood still for seconds; now decoding and converting run in worker threads."""
    save = orjson.dumps([{"key": f"{n:x}", "value": 1} for n in range(150_000)])
    transaction = orjson.dumps(
        {
            "operations": [
                {"operation": "upsert", "request": {"key": f"t{n:x}", "value": 1}} for n in range(100_000)
            ]
        }
    )
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        loop = asyncio.get_running_loop()
        while not done.is_set():
            before = loop.time()
            await asyncio.sleep(0.01)
            gaps.append(loop.time() - before - 0.01)

    ticking = asyncio.create_task(ticker())
    answers = await asyncio.gather(
        *(sidecar.request("POST", "/v1.0/state/statestore", content=save) for _ in range(4)),
        sidecar.request("POST", "/v1.0/state/statestore/transaction", content=transaction),
    )
    done.set()
    await ticking
    assert [a.status_code for a in answers] == [204] * 5
    assert max(gaps) < 0.5, f"the event loop stood still for {max(gaps):.2f} s"
    assert (await sidecar.value("statestore", "249ef")) == 1
    assert (await sidecar.value("statestore", "t1869f")) == 1
