"""The state API over HTTP, against every backend in conftest.BACKENDS: what a Dapr app sees on
its main flows (save, get, delete, bulk get, transactions, TTL, key prefixes, queries)."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio

from components.state.base import GetRequest
from tests.routers.conftest import (
    BY_ID,
    QUERY,
    STATE,
    Backend,
    Sidecar,
    StartSidecar,
    assert_error,
    claiming,
    detail,
    lacking,
)

S = "statestore"
RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


@pytest.fixture
async def sidecar(start_sidecar: StartSidecar, backend: Backend, request: pytest.FixtureRequest) -> Sidecar:
    return await start_sidecar(backend.component(S, request))


async def test_metadata_reports_the_capabilities_of_the_table(sidecar: Sidecar, backend: Backend) -> None:
    components = (await sidecar.metadata())["components"]
    assert [(c["name"], c["type"], c["version"]) for c in components] == [(S, backend.type, "v1")]
    assert set(components[0]["capabilities"]) == backend.capabilities


# -- save and get ----------------------------------------------------------------------------------

VALUES = [
    pytest.param("DeathStar", b'"DeathStar"', id="string-quoted"),
    pytest.param("", b'""', id="empty-string"),
    pytest.param(42, b"42", id="int"),
    pytest.param(1.5, b"1.5", id="float"),
    pytest.param(True, b"true", id="bool"),
    pytest.param(None, b"null", id="null"),
    pytest.param([1, "two", {"three": 3}], b'[1,"two",{"three":3}]', id="array"),
    pytest.param({"name": "Luke", "tags": ["jedi"]}, b'{"name":"Luke","tags":["jedi"]}', id="object"),
    pytest.param("héllo ☃", '"héllo ☃"'.encode(), id="unicode"),
]


@pytest.mark.parametrize("method", ["POST", "PUT"])
@pytest.mark.parametrize(("value", "stored"), VALUES)
async def test_saved_value_comes_back_as_its_json_text(
    sidecar: Sidecar, method: str, value: Any, stored: bytes
) -> None:
    response = await sidecar.save(S, [{"key": "k", "value": value}], method=method)
    assert (response.status_code, response.content) == (204, b""), response.text
    assert "content-type" not in response.headers

    got = await sidecar.get(S, "k")
    assert (got.status_code, got.headers["content-type"], got.content) == (200, "application/json", stored)
    assert got.headers["etag"]
    assert "metadata.ttlExpireTime" not in got.headers


async def test_several_items_in_one_save_and_none(sidecar: Sidecar) -> None:
    # Field names match case-insensitively, as Go's JSON decoder does.
    items = [{"key": "a", "value": {"n": 1}}, {"key": "b", "value": "two"}, {"Key": "c", "VALUE": 3}]
    assert (await sidecar.save(S, items)).status_code == 204
    assert [await sidecar.value(S, key) for key in "abc"] == [{"n": 1}, "two", 3]
    response = await sidecar.save(S, [])
    assert (response.status_code, response.content) == (204, b"")


async def test_missing_key_is_204_without_body_or_etag(sidecar: Sidecar) -> None:
    response = await sidecar.get(S, "never-written")
    assert (response.status_code, response.content) == (204, b"")
    assert "etag" not in response.headers
    assert "content-type" not in response.headers


# -- ETags and concurrency -------------------------------------------------------------------------


async def test_save_with_the_current_etag_succeeds_and_changes_it(sidecar: Sidecar) -> None:
    first = await sidecar.saved(S, "k", 1)
    response = await sidecar.save(S, [{"key": "k", "value": 2, "etag": first}])
    assert response.status_code == 204, response.text
    got = await sidecar.get(S, "k")
    assert got.json() == 2
    assert got.headers["etag"] != first


async def test_save_with_a_stale_etag_is_409_and_keeps_the_value(sidecar: Sidecar) -> None:
    stale = await sidecar.saved(S, "k", 1)
    current = await sidecar.saved(S, "k", 2)
    response = await sidecar.save(S, [{"key": "k", "value": 3, "etag": stale}])
    body = assert_error(response, 409, "ERR_STATE_SAVE")
    assert body["message"].startswith(f"failed saving state in state store {S}: possible etag mismatch")
    got = await sidecar.get(S, "k")
    assert (got.json(), got.headers["etag"]) == (2, current)


async def test_save_with_an_etag_on_a_missing_key_is_409(sidecar: Sidecar) -> None:
    etag = await sidecar.saved(S, "other", 1)
    response = await sidecar.save(S, [{"key": "k", "value": 1, "etag": etag}])
    assert_error(response, 409, "ERR_STATE_SAVE")
    assert await sidecar.value(S, "k") is None


async def test_first_write_refuses_an_existing_key(sidecar: Sidecar) -> None:
    first_write = {"concurrency": "first-write", "consistency": "strong"}
    response = await sidecar.save(S, [{"key": "k", "value": 1, "options": first_write}])
    assert response.status_code == 204, response.text
    response = await sidecar.save(S, [{"key": "k", "value": 2, "options": first_write}])
    assert_error(response, 409, "ERR_STATE_SAVE")
    assert await sidecar.value(S, "k") == 1


async def test_multi_item_save_is_all_or_nothing(sidecar: Sidecar) -> None:
    # Dapr's bulk save is not atomic; l8 saves all items or none on transactional stores.
    assert "TRANSACTIONAL" in await sidecar.capabilities(S)
    stale = await sidecar.saved(S, "second", "old")
    await sidecar.saved(S, "second", "current")
    items = [{"key": "first", "value": 1}, {"key": "second", "value": 2, "etag": stale}]
    assert_error(await sidecar.save(S, items), 409, "ERR_STATE_SAVE")
    assert await sidecar.value(S, "first") is None
    assert await sidecar.value(S, "second") == "current"


async def test_delete_with_a_stale_if_match_is_409_then_the_right_one_deletes(sidecar: Sidecar) -> None:
    stale = await sidecar.saved(S, "k", 1)
    current = await sidecar.saved(S, "k", 2)
    response = await sidecar.delete(S, "k", headers={"If-Match": stale})
    body = assert_error(response, 409, "ERR_STATE_DELETE")
    assert body["message"].startswith("failed deleting state with key k: ")
    assert await sidecar.value(S, "k") == 2

    response = await sidecar.delete(S, "k", headers={"If-Match": current})
    assert response.status_code == 204
    assert response.content == b""
    assert await sidecar.value(S, "k") is None


async def test_delete_without_etag_and_of_a_missing_key(sidecar: Sidecar) -> None:
    await sidecar.saved(S, "k", 1)
    assert (await sidecar.delete(S, "k")).status_code == 204
    assert await sidecar.value(S, "k") is None
    await sidecar.saved(S, "k", 2)
    assert (await sidecar.delete(S, "k", headers={"If-Match": ""})).status_code == 204  # empty: no etag
    assert await sidecar.value(S, "k") is None
    response = await sidecar.delete(S, "never-written")
    assert response.status_code == 204
    assert response.content == b""


# -- TTL ---------------------------------------------------------------------------------------------


async def test_ttl_from_item_metadata_and_from_the_query(sidecar: Sidecar) -> None:
    before = time.time()
    by_item = [{"key": "by-item", "value": 1, "metadata": {"ttlInSeconds": "1"}}]
    assert (await sidecar.save(S, by_item)).status_code == 204
    by_query = [{"key": "by-query", "value": 2}]
    response = await sidecar.save(S, by_query, params={"metadata.ttlInSeconds": "1"})
    assert response.status_code == 204
    await sidecar.saved(S, "forever", 3, metadata={"ttlInSeconds": "-1"})
    assert "metadata.ttlExpireTime" not in (await sidecar.get(S, "forever")).headers

    for key in ("by-item", "by-query"):
        got = await sidecar.get(S, key)
        assert got.status_code == 200
        expiry = got.headers["metadata.ttlExpireTime"]
        assert RFC3339_Z.match(expiry), expiry
        when = datetime.strptime(expiry[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
        assert before - 1 <= when <= time.time() + 2

    deadline = time.monotonic() + 6
    while {await sidecar.value(S, "by-item"), await sidecar.value(S, "by-query")} != {None}:
        assert time.monotonic() < deadline, "the keys did not expire"
        await asyncio.sleep(0.1)
    assert await sidecar.value(S, "forever") == 3


# -- bulk get ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT"])
async def test_bulk_get_answers_in_request_order(sidecar: Sidecar, method: str) -> None:
    etag_a = await sidecar.saved(S, "a", {"x": 1})
    etag_b = await sidecar.saved(S, "b", "text")
    response = await sidecar.request(method, f"{STATE}/{S}/bulk", json={"keys": ["b", "missing", "a"]})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == [
        {"key": "b", "data": "text", "etag": etag_b},
        {"key": "missing"},
        {"key": "a", "data": {"x": 1}, "etag": etag_a},
    ]


async def test_bulk_get_with_no_keys_is_an_empty_array(sidecar: Sidecar) -> None:
    for body in ({"keys": []}, {}):
        response = await sidecar.request("POST", f"{STATE}/{S}/bulk", json=body)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.json() == []


async def test_bulk_get_reports_ttl_in_entry_metadata(sidecar: Sidecar) -> None:
    await sidecar.saved(S, "k", 1, metadata={"ttlInSeconds": "100"})
    [entry] = (await sidecar.bulk(S, ["k"])).json()
    assert set(entry) == {"key", "data", "etag", "metadata"}
    assert RFC3339_Z.match(entry["metadata"]["ttlExpireTime"])


# -- transactions ------------------------------------------------------------------------------------


def upsert(key: str, value: Any, **request: Any) -> dict[str, Any]:
    return {"operation": "upsert", "request": {"key": key, "value": value, **request}}


def delete(key: str, **request: Any) -> dict[str, Any]:
    return {"operation": "delete", "request": {"key": key, **request}}


@pytest.mark.parametrize("method", ["POST", "PUT"])
async def test_transaction_applies_upserts_and_deletes(sidecar: Sidecar, method: str) -> None:
    await sidecar.saved(S, "gone", 1)
    etag = await sidecar.saved(S, "updated", 1)
    operations = [upsert("new", {"a": 1}), upsert("updated", 2, etag=etag), delete("gone")]
    response = await sidecar.request(
        method, f"{STATE}/{S}/transaction", json={"operations": operations, "metadata": {"k": "v"}}
    )
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert await sidecar.value(S, "new") == {"a": 1}
    assert await sidecar.value(S, "updated") == 2
    assert await sidecar.value(S, "gone") is None


async def test_transaction_with_a_stale_etag_in_the_last_operation_applies_nothing(sidecar: Sidecar) -> None:
    stale = await sidecar.saved(S, "guarded", "old")
    await sidecar.saved(S, "guarded", "current")
    await sidecar.saved(S, "doomed", 1)
    operations = [upsert("first", 1), delete("doomed"), upsert("guarded", "new", etag=stale)]
    body = assert_error(await sidecar.transact(S, operations), 500, "ERR_STATE_TRANSACTION")
    assert body["message"].startswith("error while executing state transaction: ")
    assert await sidecar.value(S, "first") is None
    assert await sidecar.value(S, "doomed") == 1
    assert await sidecar.value(S, "guarded") == "current"


async def test_transaction_delete_with_a_stale_etag_is_500_not_409(sidecar: Sidecar) -> None:
    stale = await sidecar.saved(S, "k", 1)
    await sidecar.saved(S, "k", 2)
    assert_error(await sidecar.transact(S, [delete("k", etag=stale)]), 500, "ERR_STATE_TRANSACTION")
    assert await sidecar.value(S, "k") == 2


async def test_empty_transaction_is_204(sidecar: Sidecar) -> None:
    for body in ({"operations": []}, {}):
        response = await sidecar.request("POST", f"{STATE}/{S}/transaction", json=body)
        assert response.status_code == 204, response.text


# -- key prefixes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("strategy", "prefix"),
    [
        (None, "{app_id}||"),
        ("appid", "{app_id}||"),
        ("name", "statestore||"),
        ("none", ""),
        ("custom", "custom||"),
        ("Name", "statestore||"),
    ],
)
async def test_key_prefix_strategies_on_in_memory(
    start_sidecar: StartSidecar, request: pytest.FixtureRequest, strategy: str | None, prefix: str
) -> None:
    extra = {} if strategy is None else {"keyPrefix": strategy}
    sidecar = await start_sidecar(BY_ID["in-memory"].component(S, request, **extra))
    prefix = prefix.format(app_id=sidecar.app_id)
    await sidecar.saved(S, "k1", {"n": 1})
    await sidecar.saved(S, "k2", {"n": 2})

    store = sidecar.store_instance(S)
    assert (await store.get(GetRequest(f"{prefix}k1"))).value == b'{"n":1}'
    results = (await sidecar.query(S, {})).json()["results"]
    assert sorted(item["key"] for item in results) == ["k1", "k2"]
    assert [entry["key"] for entry in (await sidecar.bulk(S, ["k2", "k1"])).json()] == ["k2", "k1"]


async def test_custom_key_prefix_is_lower_cased_like_dapr(
    start_sidecar: StartSidecar, request: pytest.FixtureRequest
) -> None:
    # Dapr lower-cases keyPrefix before using it (reference 3.1): "Shared" stores under "shared||".
    sidecar = await start_sidecar(BY_ID["in-memory"].component(S, request, keyPrefix="Shared"))
    await sidecar.saved(S, "k1", 1)
    assert (await sidecar.store_instance(S).get(GetRequest("shared||k1"))) is not None
    assert [item["key"] for item in (await sidecar.query(S, {})).json()["results"]] == ["k1"]


async def test_stores_prefixed_by_name_do_not_share_keys_in_one_redis(
    start_sidecar: StartSidecar, request: pytest.FixtureRequest, redis_server: Any
) -> None:
    redis_backend = BY_ID["redis"]
    suffix = uuid.uuid4().hex[:8]
    left, right = f"left-{suffix}", f"right-{suffix}"
    sidecar = await start_sidecar(
        redis_backend.component(left, request, keyPrefix="name"),
        redis_backend.component(right, request, keyPrefix="name"),
    )
    await sidecar.saved(left, "k", "from-left")
    await sidecar.saved(right, "k", "from-right")
    await sidecar.saved(left, "only-left", 1)

    assert await sidecar.value(left, "k") == "from-left"
    assert await sidecar.value(right, "k") == "from-right"
    assert (await sidecar.bulk(right, ["only-left"])).json() == [{"key": "only-left"}]
    assert (await sidecar.delete(right, "only-left")).status_code == 204
    assert await sidecar.value(left, "only-left") == 1

    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        assert await client.hget(f"{left}||k", "data") == b'"from-left"'
        assert await client.hget(f"{right}||k", "data") == b'"from-right"'
    finally:
        await client.aclose()


# -- query -------------------------------------------------------------------------------------------

PEOPLE = {
    "p1": {"person": {"id": 1, "org": "dev"}, "city": "Seattle"},
    "p2": {"person": {"id": 2, "org": "ops"}, "city": "Portland"},
    "p3": {"person": {"id": 3, "org": "dev"}, "city": "Portland"},
    "p4": {"person": {"id": 4, "org": "qa"}, "city": "Seattle"},
}


@pytest.fixture
async def people(sidecar: Sidecar) -> Sidecar:
    assert "QUERY_API" in await sidecar.capabilities(S)
    items = [{"key": key, "value": value} for key, value in PEOPLE.items()]
    assert (await sidecar.save(S, items)).status_code == 204
    return sidecar


async def keys_of(sidecar: Sidecar, query: dict[str, Any], method: str = "POST") -> list[str]:
    response = await sidecar.request(method, f"{QUERY}/{S}/query", json=query)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return [item["key"] for item in response.json()["results"]]


@claiming("QUERY_API")
@pytest.mark.parametrize("method", ["POST", "PUT"])
@pytest.mark.parametrize(
    ("query_filter", "expected"),
    [
        ({"EQ": {"person.org": "dev"}}, ["p1", "p3"]),
        ({"IN": {"person.org": ["ops", "qa"]}}, ["p2", "p4"]),
        ({"AND": [{"EQ": {"person.org": "dev"}}, {"EQ": {"city": "Portland"}}]}, ["p3"]),
        ({"OR": [{"EQ": {"person.id": 1}}, {"EQ": {"city": "Portland"}}]}, ["p1", "p2", "p3"]),
    ],
    ids=["EQ", "IN", "AND", "OR"],
)
async def test_query_filters(
    people: Sidecar, method: str, query_filter: dict[str, Any], expected: list[str]
) -> None:
    assert sorted(await keys_of(people, {"filter": query_filter}, method)) == expected


@claiming("QUERY_API")
async def test_query_results_carry_data_and_etag_and_no_match_is_204(people: Sidecar) -> None:
    etag = (await people.get(S, "p1")).headers["etag"]
    response = await people.query(S, {"filter": {"EQ": {"person.id": 1}}})
    assert response.json() == {"results": [{"key": "p1", "data": PEOPLE["p1"], "etag": etag}]}
    response = await people.query(S, {"filter": {"EQ": {"person.org": "nobody"}}})
    assert (response.status_code, response.content) == (204, b"")


@claiming("QUERY_API")
async def test_query_sorts_and_pages(people: Sidecar) -> None:
    descending = {"sort": [{"key": "person.id", "order": "DESC"}]}
    assert await keys_of(people, descending) == ["p4", "p3", "p2", "p1"]

    query: dict[str, Any] = {"sort": [{"key": "person.id"}], "page": {"limit": 3}}
    first = (await people.query(S, query)).json()
    assert [item["key"] for item in first["results"]] == ["p1", "p2", "p3"]
    assert isinstance(first["token"], str)
    query["page"]["token"] = first["token"]
    last = (await people.query(S, query)).json()
    assert [item["key"] for item in last["results"]] == ["p4"]
    assert "token" not in last


@lacking("QUERY_API")
async def test_query_on_a_store_without_query_support_is_500(sidecar: Sidecar) -> None:
    assert "QUERY_API" not in await sidecar.capabilities(S)
    response = await sidecar.query(S, {"filter": {"EQ": {"a": 1}}})
    message = "state store does not support querying"
    details = ["ErrorInfo", "ResourceInfo"]
    body = assert_error(response, 500, "ERR_STATE_STORE_NOT_SUPPORTED", message=message, details=details)
    assert detail(body, "ErrorInfo")["reason"] == "DAPR_STATE_QUERYING_NOT_SUPPORTED"
