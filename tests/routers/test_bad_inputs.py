"""Bad requests to the state and metadata APIs: one table, each row the request, Dapr's status and
error code, and the keys it touches. Every answer must be Dapr's error shape (never FastAPI's 422
``{"detail"}``), and afterwards nothing may have been written: a key seeded before the request keeps
its value and ETag, a fresh key is still missing.

The sidecar has a SQLite store ``statestore`` (l8's default kind), a Redis store ``redisstore`` and
a 1 KiB --max-body-size; rows marked ``empty`` go to a sidecar with no state store at all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from tests.routers.conftest import BY_ID, Sidecar, StartSidecar, assert_error, detail

MAX_BODY = 1024
SEEDED = "seeded"
SEED_VALUE = {"v": 1}
FRESH = "fresh"
NO_BODY = object()

SQL = "/v1.0/state/statestore"
RDS = "/v1.0/state/redisstore"
NOPE = "/v1.0/state/nope"
QRY = "/v1.0-alpha1/state/statestore/query"
BIG = "x" * (MAX_BODY + 10)

ILLEGAL = ["ErrorInfo", "ResourceInfo", "BadRequest"]
STORE_ERROR = ["ErrorInfo"]


@dataclass(frozen=True)
class Bad:
    method: str
    path: str
    status: int
    code: str
    body: Any = NO_BODY
    """bytes are sent as they are; anything else as JSON."""
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    chunked: bool = False
    """Stream the body without a content-length."""
    touches: tuple[str, ...] = (SEEDED, FRESH)
    """Keys of the addressed store that must be as they were."""
    message: str | None = None
    details: list[str] | None = None
    empty: bool = False


def save(status: int, code: str, *items: Any, path: str = SQL, **row: Any) -> Bad:
    return Bad("POST", path, status, code, body=list(items), **row)


def upsert(key: Any, **request: Any) -> dict[str, Any]:
    return {"operation": "upsert", "request": {"key": key, "value": 1, **request}}


def txn(status: int, code: str, *operations: Any, path: str = SQL, **row: Any) -> Bad:
    return Bad("POST", f"{path}/transaction", status, code, body={"operations": list(operations)}, **row)


OK = {"key": FRESH, "value": 1}
MALFORMED = "ERR_MALFORMED_REQUEST"
SAVE = "ERR_STATE_SAVE"
TXN = "ERR_STATE_TRANSACTION"
QUERY = "ERR_STATE_QUERY"
NOT_FOUND = "ERR_STATE_STORE_NOT_FOUND"
NOT_CONFIGURED = "ERR_STATE_STORE_NOT_CONFIGURED"
KEY_REQUIRED = '"key" is a required field'
QUERY_DETAILS = ["ErrorInfo", "ResourceInfo"]

ROWS = {
    # -- save ------------------------------------------------------------------------------------------
    "save-malformed-json": Bad("POST", SQL, 400, MALFORMED, body=b'[{"key": "fresh", "value": 1'),
    "save-empty-body": Bad("POST", SQL, 400, MALFORMED, body=b""),
    "save-object-not-array": Bad(
        "POST", SQL, 400, MALFORMED, body=OK,
        message="json: cannot unmarshal object into Go value of type []state.SetRequest",
    ),
    "save-item-not-object": save(400, MALFORMED, FRESH),
    "save-key-number": save(400, MALFORMED, {"key": 5, "value": 1}),
    "save-etag-number": save(400, MALFORMED, {"key": SEEDED, "value": 2, "etag": 1}),
    "save-metadata-value-number": save(400, MALFORMED, {**OK, "metadata": {"ttlInSeconds": 5}}),
    "save-metadata-not-object": save(400, MALFORMED, {**OK, "metadata": ["a"]}),
    "save-options-not-object": save(400, MALFORMED, {**OK, "options": "strong"}),
    "save-missing-key": save(400, MALFORMED, {"value": 1}, message=KEY_REQUIRED),
    "save-empty-key": save(400, MALFORMED, {"key": "", "value": 1}, message=KEY_REQUIRED),
    "save-illegal-key-after-valid": save(
        400, MALFORMED, OK, {"key": "a||b", "value": 2},
        message="input key/keyPrefix 'a||b' can't contain '||'", details=ILLEGAL,
    ),
    "save-valid-then-missing-key": save(400, MALFORMED, OK, {"key": SEEDED, "value": 9}, {"value": 2}),
    "save-valid-then-etag-number": save(400, MALFORMED, OK, {"key": SEEDED, "value": 9, "etag": 7}),
    "save-bad-concurrency": save(500, SAVE, {**OK, "options": {"concurrency": "sometimes"}}),
    "save-valid-then-bad-consistency": save(
        500, SAVE, OK, {"key": SEEDED, "value": 2, "options": {"consistency": "maybe"}}
    ),
    "save-bad-ttl": save(500, SAVE, {**OK, "metadata": {"ttlInSeconds": "soon"}}),
    "save-bad-ttl-in-query": save(500, SAVE, OK, params={"metadata.ttlInSeconds": "1.5"}),
    "save-redis-etag-not-a-number": save(400, SAVE, {"key": SEEDED, "value": 2, "etag": "nan"}, path=RDS),
    "save-redis-valid-then-etag-not-a-number": save(
        400, SAVE, OK, {"key": SEEDED, "value": 2, "etag": "x1"}, path=RDS
    ),
    "save-redis-valid-then-missing-key": save(400, MALFORMED, OK, {"value": 2}, path=RDS),
    "save-unknown-store": save(
        400, NOT_FOUND, OK, path=NOPE, message="state store nope is not found", details=STORE_ERROR
    ),
    "save-unknown-store-checked-before-body": Bad(
        "POST", NOPE, 400, NOT_FOUND, body=b"{", details=STORE_ERROR
    ),
    "save-no-store-configured": save(
        500, NOT_CONFIGURED, OK, empty=True,
        message="state store statestore is not configured", details=STORE_ERROR,
    ),
    "save-too-large": save(400, MALFORMED, {"key": FRESH, "value": BIG}),
    "save-too-large-chunked": save(400, MALFORMED, {"key": FRESH, "value": BIG}, chunked=True),
    # -- get -------------------------------------------------------------------------------------------
    "get-illegal-key": Bad("GET", f"{SQL}/a||b", 400, MALFORMED, details=ILLEGAL),
    "get-unknown-store": Bad("GET", f"{NOPE}/k", 400, NOT_FOUND, details=STORE_ERROR),
    "get-no-store-configured": Bad(
        "GET", f"{SQL}/k", 500, NOT_CONFIGURED, details=STORE_ERROR, empty=True
    ),
    # -- delete ----------------------------------------------------------------------------------------
    "delete-illegal-key": Bad("DELETE", f"{SQL}/a||b", 400, MALFORMED, details=ILLEGAL),
    "delete-bad-concurrency": Bad(
        "DELETE", f"{SQL}/{SEEDED}", 500, "ERR_STATE_DELETE", params={"concurrency": "sometimes"}
    ),
    "delete-redis-etag-not-a-number": Bad(
        "DELETE", f"{RDS}/{SEEDED}", 400, "ERR_STATE_DELETE", headers={"If-Match": "not-a-number"}
    ),
    "delete-unknown-store": Bad("DELETE", f"{NOPE}/{SEEDED}", 400, NOT_FOUND, details=STORE_ERROR),
    # -- bulk get --------------------------------------------------------------------------------------
    "bulk-malformed-json": Bad("POST", f"{SQL}/bulk", 400, MALFORMED, body=b'{"keys": ['),
    "bulk-empty-body": Bad("POST", f"{SQL}/bulk", 400, MALFORMED, body=b""),
    "bulk-array-not-object": Bad("POST", f"{SQL}/bulk", 400, MALFORMED, body=[SEEDED]),
    "bulk-keys-not-array": Bad("POST", f"{SQL}/bulk", 400, MALFORMED, body={"keys": SEEDED}),
    "bulk-key-number": Bad("POST", f"{SQL}/bulk", 400, MALFORMED, body={"keys": [SEEDED, 1]}),
    "bulk-metadata-value-number": Bad(
        "POST", f"{SQL}/bulk", 400, MALFORMED, body={"keys": [SEEDED], "metadata": {"a": 1}}
    ),
    "bulk-parallelism-string": Bad(
        "POST", f"{SQL}/bulk", 400, MALFORMED, body={"keys": [], "parallelism": "2"}
    ),
    "bulk-illegal-key": Bad(
        "POST", f"{SQL}/bulk", 400, MALFORMED, body={"keys": [SEEDED, "a||b"]}, details=ILLEGAL
    ),
    "bulk-unknown-store": Bad(
        "POST", f"{NOPE}/bulk", 400, NOT_FOUND, body={"keys": []}, details=STORE_ERROR
    ),
    "bulk-too-large": Bad("POST", f"{SQL}/bulk", 400, MALFORMED, body={"keys": [BIG]}),
    # -- transaction -----------------------------------------------------------------------------------
    "txn-malformed-json": Bad("POST", f"{SQL}/transaction", 400, MALFORMED, body=b'{"operations": [}'),
    "txn-array-not-object": Bad("POST", f"{SQL}/transaction", 400, MALFORMED, body=[upsert(FRESH)]),
    "txn-operations-not-array": Bad(
        "POST", f"{SQL}/transaction", 400, MALFORMED, body={"operations": upsert(FRESH)}
    ),
    "txn-operation-not-object": txn(400, MALFORMED, upsert(FRESH), "upsert"),
    "txn-request-not-object": txn(400, MALFORMED, upsert(FRESH), {"operation": "upsert", "request": "x"}),
    "txn-unknown-operation": txn(
        400, "ERR_NOT_SUPPORTED_STATE_OPERATION", upsert(FRESH), {"operation": "merge", "request": OK},
        message="operation type merge not supported",
    ),
    "txn-missing-key": txn(
        400, MALFORMED, upsert(FRESH), {"operation": "upsert", "request": {"value": 1}}, message=KEY_REQUIRED
    ),
    "txn-key-number": txn(400, MALFORMED, upsert(FRESH), upsert(5)),
    "txn-etag-number": txn(400, MALFORMED, upsert(FRESH), upsert(SEEDED, etag=3)),
    "txn-illegal-key-in-delete": txn(
        400, MALFORMED, upsert(FRESH), {"operation": "delete", "request": {"key": "a||b"}}, details=ILLEGAL
    ),
    "txn-metadata-value-number": Bad(
        "POST", f"{SQL}/transaction", 400, MALFORMED,
        body={"operations": [upsert(FRESH)], "metadata": {"a": 1}},
    ),
    "txn-bad-concurrency": txn(500, TXN, upsert(FRESH), upsert(SEEDED, options={"concurrency": "often"})),
    "txn-bad-ttl": txn(500, TXN, upsert(FRESH), upsert(SEEDED, metadata={"ttlInSeconds": "x"})),
    "txn-redis-etag-not-a-number": txn(500, TXN, upsert(FRESH), upsert(SEEDED, etag="abc"), path=RDS),
    "txn-unknown-store": txn(400, NOT_FOUND, upsert(FRESH), path=NOPE, details=STORE_ERROR),
    "txn-too-large": txn(400, MALFORMED, upsert(FRESH, value=BIG)),
    "txn-too-large-chunked": txn(400, MALFORMED, upsert(FRESH, value=BIG), chunked=True),
    # -- query: Dapr parses the body as part of the query, so unparseable is 500 ERR_STATE_QUERY ---------
    "query-malformed-json": Bad("POST", QRY, 500, QUERY, body=b'{"filter": ', details=QUERY_DETAILS),
    "query-unknown-operator": Bad(
        "POST", QRY, 500, QUERY, body={"filter": {"LIKE": {"a": "b%"}}}, details=QUERY_DETAILS
    ),
    "query-array-not-object": Bad("POST", QRY, 500, QUERY, body=[{"filter": {}}], details=QUERY_DETAILS),
    "query-redis-unsupported": Bad(
        "POST", "/v1.0-alpha1/state/redisstore/query", 500, "ERR_STATE_STORE_NOT_SUPPORTED", body={},
        message="state store does not support querying", details=QUERY_DETAILS,
    ),
    "query-unknown-store": Bad(
        "POST", "/v1.0-alpha1/state/nope/query", 400, NOT_FOUND, body={}, details=STORE_ERROR
    ),
    # Dapr's universal handlers read the body first: a body over the limit is 400 ERR_BODY_READ.
    "query-too-large": Bad("POST", QRY, 400, "ERR_BODY_READ", body={"filter": {"EQ": {"a": BIG}}}),
    # -- metadata --------------------------------------------------------------------------------------
    "metadata-put-too-large": Bad("PUT", "/v1.0/metadata/bigkey", 400, "ERR_BODY_READ", body=BIG.encode()),
    "metadata-put-too-large-chunked": Bad(
        "PUT", "/v1.0/metadata/bigkey", 400, "ERR_BODY_READ", body=BIG.encode(), chunked=True
    ),
}  # fmt: skip


@dataclass
class Sidecars:
    main: Sidecar
    empty: Sidecar


@pytest.fixture
async def sidecars(start_sidecar: StartSidecar, request: pytest.FixtureRequest) -> Sidecars:
    main = await start_sidecar(
        BY_ID["sqlite"].component("statestore", request),
        BY_ID["redis"].component("redisstore", request),
        max_body_size=MAX_BODY,
    )
    return Sidecars(main, await start_sidecar(max_body_size=MAX_BODY))


def store_of(row: Bad) -> str | None:
    """The loaded store a row addresses (None for an unknown store or another API)."""
    name = row.path.split("/")[3]
    return name if name in ("statestore", "redisstore") and not row.empty else None


async def snapshot(
    sidecar: Sidecar, store: str | None, keys: tuple[str, ...]
) -> dict[str, tuple[int, bytes, str | None]]:
    found = {}
    for key in keys:
        assert store is not None
        response = await sidecar.get(store, key)
        found[key] = (response.status_code, response.content, response.headers.get("etag"))
    return found


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 256):
        yield data[start : start + 256]


@pytest.mark.parametrize("row", list(ROWS.values()), ids=list(ROWS))
async def test_bad_input_is_refused_and_writes_nothing(sidecars: Sidecars, row: Bad) -> None:
    sidecar = sidecars.empty if row.empty else sidecars.main
    store = store_of(row)
    touches = row.touches if store else ()
    if store:
        await sidecar.saved(store, SEEDED, SEED_VALUE)
    before = await snapshot(sidecar, store, touches)
    assert before.get(FRESH, (204,))[0] == 204

    content: Any = None
    if row.body is not NO_BODY:
        content = row.body if isinstance(row.body, bytes) else orjson.dumps(row.body)
    if row.chunked:
        content = chunks(content)
    headers = {"content-type": "application/json", **row.headers} if content is not None else row.headers
    response = await sidecar.request(
        row.method, row.path, content=content, params=row.params, headers=headers
    )
    if row.chunked:
        assert "content-length" not in response.request.headers

    body = assert_error(response, row.status, row.code, message=row.message, details=row.details)
    assert "detail" not in body
    if row.code in ("ERR_STATE_STORE_NOT_FOUND", "ERR_STATE_STORE_NOT_CONFIGURED"):
        reason = "DAPR_STATE_NOT_FOUND" if row.code.endswith("FOUND") else "DAPR_STATE_NOT_CONFIGURED"
        error_info = detail(body, "ErrorInfo")
        assert (error_info["reason"], error_info["metadata"]) == (reason, {"appID": sidecar.app_id})
    if row.details == ILLEGAL:
        assert detail(body, "ErrorInfo")["reason"] == "DAPR_STATE_ILLEGAL_KEY"
        assert detail(body, "ResourceInfo")["resource_type"] == "state"
        assert detail(body, "ResourceInfo")["resource_name"] == store
        [violation] = detail(body, "BadRequest")["field_violations"]
        assert violation["field"] == "a||b"

    assert await snapshot(sidecar, store, touches) == before
    if row.path.startswith("/v1.0/metadata/"):
        assert "bigkey" not in (await sidecar.metadata())["extended"]
