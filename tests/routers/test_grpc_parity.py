"""The same scenarios over both transports, against one sidecar per test and every state backend:
what the HTTP routes answer, the gRPC API answers too (the same values, the same error codes and
messages), each in its own transport's terms (an HTTP status, a gRPC status code).

The state conformance suite (tests/conformance/) drives the stores' contract below the
transports, so parity lives here: each scenario is written once against :class:`Transport`, and
runs with ``transport`` = ``http`` (the route table over ASGI) and ``grpc`` (Dapr's stub on the
sidecar's gRPC port).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
import orjson
import pytest
from dapr.proto.common.v1 import common_pb2
from dapr.proto.runtime.v1 import dapr_pb2_grpc, lock_pb2, pubsub_pb2, secret_pb2, state_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.routers.conftest import Backend, Sidecar, StartSidecar, claiming, component

# The gRPC code each HTTP status of these scenarios goes with (daprd's pairs).
PAIRS = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.INVALID_ARGUMENT,  # an unknown secret store
    404: grpc.StatusCode.INVALID_ARGUMENT,  # an unknown pub/sub
    409: grpc.StatusCode.ABORTED,
    500: grpc.StatusCode.INTERNAL,
}


@dataclass
class Refused(Exception):
    """An error answer, transport-neutral: the ErrorInfo reason (else the errorCode), the message,
    and the HTTP status it has (the gRPC code is checked against it through PAIRS)."""

    reason: str
    message: str
    status: int


class Transport:
    name: str

    async def save(self, key: str, value: Any, etag: str | None = None, first_write: bool = False) -> None:
        raise NotImplementedError

    async def get(self, key: str) -> tuple[Any, str | None]:
        raise NotImplementedError

    async def delete(self, key: str, etag: str | None = None) -> None:
        raise NotImplementedError

    async def bulk_get(self, keys: list[str]) -> list[tuple[str, Any]]:
        raise NotImplementedError

    async def transact(self, operations: list[tuple[str, str, Any, str | None]]) -> None:
        raise NotImplementedError

    async def query(self, document: dict[str, Any]) -> list[tuple[str, Any]]:
        raise NotImplementedError

    async def publish(self, pubsub: str, topic: str, data: Any) -> None:
        raise NotImplementedError

    async def try_lock(self, store: str, resource: str, owner: str, expiry: int) -> bool:
        raise NotImplementedError

    async def secret(self, store: str, key: str) -> dict[str, str]:
        raise NotImplementedError

    store = "statestore"


def _http_refusal(response: Any) -> Refused:
    body = response.json()
    reason = body["errorCode"]
    for detail in body.get("details") or ():
        if detail.get("@type", "").endswith("ErrorInfo"):
            reason = detail["reason"]
    return Refused(reason, body["message"], response.status_code)


class Http(Transport):
    name = "http"

    def __init__(self, sidecar: Sidecar) -> None:
        self.sidecar = sidecar

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.sidecar.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise _http_refusal(response)
        return response

    async def save(self, key: str, value: Any, etag: str | None = None, first_write: bool = False) -> None:
        item: dict[str, Any] = {"key": key, "value": value}
        if etag is not None:
            item["etag"] = etag
        if first_write:
            item["options"] = {"concurrency": "first-write"}
        await self._call("POST", f"/v1.0/state/{self.store}", json=[item])

    async def get(self, key: str) -> tuple[Any, str | None]:
        response = await self._call("GET", f"/v1.0/state/{self.store}/{key}")
        if response.status_code == 204:
            return None, None
        return orjson.loads(response.content), response.headers.get("etag")

    async def delete(self, key: str, etag: str | None = None) -> None:
        headers = {"if-match": etag} if etag else {}
        await self._call("DELETE", f"/v1.0/state/{self.store}/{key}", headers=headers)

    async def bulk_get(self, keys: list[str]) -> list[tuple[str, Any]]:
        response = await self._call("POST", f"/v1.0/state/{self.store}/bulk", json={"keys": keys})
        return [(entry["key"], entry.get("data")) for entry in response.json()]

    async def transact(self, operations: list[tuple[str, str, Any, str | None]]) -> None:
        shaped = []
        for kind, key, value, etag in operations:
            request: dict[str, Any] = {"key": key}
            if kind == "upsert":
                request["value"] = value
            if etag is not None:
                request["etag"] = etag
            shaped.append({"operation": kind, "request": request})
        await self._call("POST", f"/v1.0/state/{self.store}/transaction", json={"operations": shaped})

    async def query(self, document: dict[str, Any]) -> list[tuple[str, Any]]:
        response = await self._call("POST", f"/v1.0-alpha1/state/{self.store}/query", json=document)
        if response.status_code == 204:
            return []
        return [(entry["key"], entry["data"]) for entry in response.json()["results"]]

    async def publish(self, pubsub: str, topic: str, data: Any) -> None:
        await self._call("POST", f"/v1.0/publish/{pubsub}/{topic}", json=data)

    async def try_lock(self, store: str, resource: str, owner: str, expiry: int) -> bool:
        body = {"resourceId": resource, "lockOwner": owner, "expiryInSeconds": expiry}
        response = await self._call("POST", f"/v1.0-alpha1/lock/{store}", json=body)
        acquired: bool = response.json()["success"]
        return acquired

    async def secret(self, store: str, key: str) -> dict[str, str]:
        found: dict[str, str] = (await self._call("GET", f"/v1.0/secrets/{store}/{key}")).json()
        return found


def _grpc_refusal(error: grpc.aio.AioRpcError) -> Refused:
    status = rpc_status.from_call(error)
    assert status is not None, error
    reason = ""
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
    http = next((code for code, paired in PAIRS.items() if paired == error.code()), 0)
    return Refused(reason, error.details() or "", http)


class Grpc(Transport):
    name = "grpc"

    def __init__(self, stub: dapr_pb2_grpc.DaprStub) -> None:
        self.stub = stub

    async def _call(self, rpc: str, request: Any) -> Any:
        try:
            return await getattr(self.stub, rpc)(request)
        except grpc.aio.AioRpcError as exc:
            raise _grpc_refusal(exc) from None

    @staticmethod
    def _item(key: str, value: Any = None, etag: str | None = None, first_write: bool = False) -> Any:
        item = common_pb2.StateItem(key=key, value=orjson.dumps(value) if value is not None else b"")
        if etag is not None:
            item.etag.value = etag
        if first_write:
            item.options.concurrency = common_pb2.StateOptions.CONCURRENCY_FIRST_WRITE
        return item

    async def save(self, key: str, value: Any, etag: str | None = None, first_write: bool = False) -> None:
        request = state_pb2.SaveStateRequest(
            store_name=self.store, states=[self._item(key, value, etag, first_write)]
        )
        await self._call("SaveState", request)

    async def get(self, key: str) -> tuple[Any, str | None]:
        found = await self._call("GetState", state_pb2.GetStateRequest(store_name=self.store, key=key))
        if not found.data:
            return None, None
        return orjson.loads(found.data), found.etag or None

    async def delete(self, key: str, etag: str | None = None) -> None:
        request = state_pb2.DeleteStateRequest(store_name=self.store, key=key)
        if etag is not None:
            request.etag.value = etag
        await self._call("DeleteState", request)

    async def bulk_get(self, keys: list[str]) -> list[tuple[str, Any]]:
        found = await self._call(
            "GetBulkState", state_pb2.GetBulkStateRequest(store_name=self.store, keys=keys)
        )
        return [(item.key, orjson.loads(item.data) if item.data else None) for item in found.items]

    async def transact(self, operations: list[tuple[str, str, Any, str | None]]) -> None:
        request = state_pb2.ExecuteStateTransactionRequest(
            storeName=self.store,
            operations=[
                state_pb2.TransactionalStateOperation(
                    operationType=kind, request=self._item(key, value, etag)
                )
                for kind, key, value, etag in operations
            ],
        )
        await self._call("ExecuteStateTransaction", request)

    async def query(self, document: dict[str, Any]) -> list[tuple[str, Any]]:
        request = state_pb2.QueryStateRequest(store_name=self.store, query=orjson.dumps(document).decode())
        found = await self._call("QueryStateAlpha1", request)
        return [(item.key, orjson.loads(item.data)) for item in found.results]

    async def publish(self, pubsub: str, topic: str, data: Any) -> None:
        request = pubsub_pb2.PublishEventRequest(
            pubsub_name=pubsub, topic=topic, data=orjson.dumps(data), data_content_type="application/json"
        )
        await self._call("PublishEvent", request)

    async def try_lock(self, store: str, resource: str, owner: str, expiry: int) -> bool:
        request = lock_pb2.TryLockRequest(
            store_name=store, resource_id=resource, lock_owner=owner, expiry_in_seconds=expiry
        )
        acquired: bool = (await self._call("TryLockAlpha1", request)).success
        return acquired

    async def secret(self, store: str, key: str) -> dict[str, str]:
        found = await self._call("GetSecret", secret_pb2.GetSecretRequest(store_name=store, key=key))
        return dict(found.data)


@pytest.fixture(params=["http", "grpc"])
async def transport(request: pytest.FixtureRequest, start_sidecar: StartSidecar, backend: Backend) -> Any:
    sidecar = await start_sidecar(
        backend.component("statestore", request),
        component("pubsub", "pubsub.in-memory"),
        component("lockstore", "lock.in-memory"),
    )
    if request.param == "http":
        yield Http(sidecar)
        return
    port = sidecar.app.state.grpc_api.port
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield Grpc(dapr_pb2_grpc.DaprStub(channel))


def _status_of(transport: Transport, refused: Refused, http_status: int) -> None:
    """The refusal has the HTTP status over HTTP, and its paired gRPC code over gRPC."""
    if transport.name == "http":
        assert refused.status == http_status, refused
    else:
        assert refused.status == next(s for s, c in PAIRS.items() if c == PAIRS[http_status]), refused


async def test_save_get_and_delete_with_etags(transport: Transport) -> None:
    await transport.save("order", {"qty": 1})
    value, etag = await transport.get("order")
    assert value == {"qty": 1} and etag
    await transport.save("order", {"qty": 2}, etag=etag)
    with pytest.raises(Refused) as stale:
        await transport.save("order", {"qty": 3}, etag=etag)
    assert stale.value.reason == "ERR_STATE_SAVE"
    assert stale.value.message.startswith("failed saving state in state store statestore: ")
    _status_of(transport, stale.value, 409)
    assert (await transport.get("order"))[0] == {"qty": 2}

    with pytest.raises(Refused) as stale_delete:
        await transport.delete("order", etag=etag)
    assert stale_delete.value.reason == "ERR_STATE_DELETE"
    _status_of(transport, stale_delete.value, 409)
    current = (await transport.get("order"))[1]
    await transport.delete("order", etag=current)
    assert await transport.get("order") == (None, None)
    await transport.delete("never-there")  # a missing key deletes fine


async def test_first_write_refuses_an_existing_key_without_its_etag(transport: Transport) -> None:
    await transport.save("slot", {"n": 1}, first_write=True)
    with pytest.raises(Refused) as taken:
        await transport.save("slot", {"n": 2}, first_write=True)
    assert taken.value.reason == "ERR_STATE_SAVE"
    _status_of(transport, taken.value, 409)


async def test_bulk_get_answers_in_request_order(transport: Transport) -> None:
    await transport.save("a", {"n": 1})
    await transport.save("b", {"n": 2})
    assert await transport.bulk_get(["b", "missing", "a"]) == [
        ("b", {"n": 2}),
        ("missing", None),
        ("a", {"n": 1}),
    ]


@claiming("TRANSACTIONAL")
async def test_transactions_apply_all_or_nothing(transport: Transport) -> None:
    await transport.save("t1", {"n": 1})
    await transport.transact([("upsert", "t2", {"n": 2}, None), ("delete", "t1", None, None)])
    assert await transport.bulk_get(["t1", "t2"]) == [("t1", None), ("t2", {"n": 2})]
    with pytest.raises(Refused) as failed:
        await transport.transact([("upsert", "t3", {"n": 3}, None), ("upsert", "t2", {"n": 9}, "999")])
    assert failed.value.reason == "ERR_STATE_TRANSACTION"
    _status_of(transport, failed.value, 500)
    assert await transport.bulk_get(["t2", "t3"]) == [("t2", {"n": 2}), ("t3", None)]

    with pytest.raises(Refused) as unknown:
        await transport.transact([("merge", "t2", {"n": 1}, None)])
    assert (unknown.value.reason, unknown.value.message) == (
        "ERR_NOT_SUPPORTED_STATE_OPERATION",
        "operation type merge not supported",
    )
    _status_of(transport, unknown.value, 400)


@claiming("QUERY_API")
async def test_query_filters_and_sorts(transport: Transport) -> None:
    for index, city in enumerate(["Oslo", "Lima", "Oslo"]):
        await transport.save(f"city-{index}", {"city": city, "n": index})
    found = await transport.query(
        {"filter": {"EQ": {"city": "Oslo"}}, "sort": [{"key": "n", "order": "DESC"}]}
    )
    assert found == [("city-2", {"city": "Oslo", "n": 2}), ("city-0", {"city": "Oslo", "n": 0})]


async def test_errors_have_the_same_reason_and_message(transport: Transport) -> None:
    transport.store = "nostore"
    with pytest.raises(Refused) as missing:
        await transport.get("k")
    assert (missing.value.reason, missing.value.message) == (
        "DAPR_STATE_NOT_FOUND",
        "state store nostore is not found",
    )
    _status_of(transport, missing.value, 400)
    transport.store = "statestore"

    with pytest.raises(Refused) as illegal:
        await transport.save("a||b", {"n": 1})
    assert (illegal.value.reason, illegal.value.message) == (
        "DAPR_STATE_ILLEGAL_KEY",
        "input key/keyPrefix 'a||b' can't contain '||'",
    )
    _status_of(transport, illegal.value, 400)

    with pytest.raises(Refused) as no_pubsub:
        await transport.publish("nopubsub", "orders", {"n": 1})
    assert (no_pubsub.value.reason, no_pubsub.value.message) == (
        "DAPR_PUBSUB_NOT_FOUND",
        "pubsub nopubsub is not found",
    )
    _status_of(transport, no_pubsub.value, 404)

    with pytest.raises(Refused) as no_vault:
        await transport.secret("novault", "k")
    assert (no_vault.value.reason, no_vault.value.message) == (
        "ERR_SECRET_STORES_NOT_CONFIGURED",
        "secret store is not configured",
    )


async def test_publish_and_lock(transport: Transport) -> None:
    await transport.publish("pubsub", "orders", {"n": 1})
    assert await transport.try_lock("lockstore", "printer", "alice", 10)
    assert not await transport.try_lock("lockstore", "printer", "bob", 10)
    with pytest.raises(Refused) as no_store:
        await transport.try_lock("nolocks", "printer", "bob", 10)
    assert (no_store.value.reason, no_store.value.message) == (
        "ERR_LOCK_STORE_NOT_FOUND",
        "lock store nolocks not found",
    )
    _status_of(transport, no_store.value, 400)
