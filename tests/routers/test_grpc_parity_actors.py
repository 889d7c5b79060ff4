"""The actor API over both transports, each scenario written once against :class:`Actors` and run
with ``http`` (the route table over ASGI) and ``grpc`` (Dapr's stub on the sidecar's gRPC port), on a
sidecar whose app is a recording actor app (tests/actor_app.py): the app sees the same calls, state
and reminders read back the same, and a refusal has the same reason and message (an HTTP status, or
daprd's gRPC code of it)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import orjson
import pytest
from dapr.proto.runtime.v1 import actors_pb2, dapr_pb2_grpc
from google.protobuf import any_pb2, json_format, wrappers_pb2

from tests.actor_app import ActorTestApp
from tests.routers.conftest import Sidecar, StartSidecar
from tests.routers.test_actors_api import until_hosting
from tests.routers.test_grpc_parity import Refused, _grpc_refusal, _http_refusal

ACTORS = "/v1.0/actors"
# daprd's gRPC code of each HTTP status these scenarios meet.
CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ALREADY_EXISTS,
    500: grpc.StatusCode.INTERNAL,
}


class Actors:
    name: str

    async def invoke(self, actor: str, method: str, body: bytes) -> bytes:
        raise NotImplementedError

    async def transact(self, actor: str, operations: list[tuple[str, str, Any]]) -> None:
        """(operation, key, JSON value) each."""
        raise NotImplementedError

    async def state(self, actor: str, key: str) -> Any:
        """The stored JSON, None when there is none."""
        raise NotImplementedError

    async def create_reminder(self, actor: str, name: str, body: dict[str, Any]) -> None:
        raise NotImplementedError

    async def get_reminder(self, actor: str, name: str) -> dict[str, Any]:
        """``dueTime``, ``period``, ``data``."""
        raise NotImplementedError

    async def delete_reminder(self, actor: str, name: str) -> None:
        raise NotImplementedError

    async def create_timer(self, actor: str, name: str, body: dict[str, Any]) -> None:
        raise NotImplementedError

    async def delete_timer(self, actor: str, name: str) -> None:
        raise NotImplementedError

    async def list_timers(self, actor: str) -> list[dict[str, Any]]:
        """Each running timer as the HTTP API lists it (``name``, ``actorType``, ``actorID`` and the
        fields it has)."""
        raise NotImplementedError

    async def get_timer(self, actor: str, name: str) -> dict[str, Any]:
        raise NotImplementedError


def _parts(actor: str) -> tuple[str, str]:
    actor_type, _, actor_id = actor.partition("/")
    return actor_type, actor_id


class Http(Actors):
    name = "http"

    def __init__(self, sidecar: Sidecar) -> None:
        self.sidecar = sidecar

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.sidecar.request(method, f"{ACTORS}/{path}", **kwargs)
        if response.status_code >= 400:
            raise _http_refusal(response)
        return response

    async def invoke(self, actor: str, method: str, body: bytes) -> bytes:
        content: bytes = (await self._call("PUT", f"{actor}/method/{method}", content=body)).content
        return content

    async def transact(self, actor: str, operations: list[tuple[str, str, Any]]) -> None:
        shaped = [{"operation": op, "request": {"key": key, "value": value}} for op, key, value in operations]
        await self._call("POST", f"{actor}/state", json=shaped)

    async def state(self, actor: str, key: str) -> Any:
        response = await self._call("GET", f"{actor}/state/{key}")
        return None if response.status_code == 204 else response.json()

    async def create_reminder(self, actor: str, name: str, body: dict[str, Any]) -> None:
        await self._call("POST", f"{actor}/reminders/{name}", json=body)

    async def get_reminder(self, actor: str, name: str) -> dict[str, Any]:
        found = (await self._call("GET", f"{actor}/reminders/{name}")).json()
        return {k: found.get(k) for k in ("dueTime", "period", "data")}

    async def delete_reminder(self, actor: str, name: str) -> None:
        await self._call("DELETE", f"{actor}/reminders/{name}")

    async def create_timer(self, actor: str, name: str, body: dict[str, Any]) -> None:
        await self._call("POST", f"{actor}/timers/{name}", json=body)

    async def delete_timer(self, actor: str, name: str) -> None:
        await self._call("DELETE", f"{actor}/timers/{name}")

    async def list_timers(self, actor: str) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = (await self._call("GET", f"{actor}/timers")).json()["timers"]
        return listed

    async def get_timer(self, actor: str, name: str) -> dict[str, Any]:
        found: dict[str, Any] = (await self._call("GET", f"{actor}/timers/{name}")).json()
        return found


class Grpc(Actors):
    name = "grpc"

    def __init__(self, stub: dapr_pb2_grpc.DaprStub) -> None:
        self.stub = stub

    async def _call(self, rpc: str, request: Any) -> Any:
        try:
            return await getattr(self.stub, rpc)(request)
        except grpc.aio.AioRpcError as exc:
            refused = _grpc_refusal(exc)
            status = next(s for s, c in CODES.items() if c == exc.code())
            raise Refused(refused.reason, refused.message, status) from None

    async def invoke(self, actor: str, method: str, body: bytes) -> bytes:
        actor_type, actor_id = _parts(actor)
        request = actors_pb2.InvokeActorRequest(
            actor_type=actor_type, actor_id=actor_id, method=method, data=body
        )
        data: bytes = (await self._call("InvokeActor", request)).data
        return data

    async def transact(self, actor: str, operations: list[tuple[str, str, Any]]) -> None:
        actor_type, actor_id = _parts(actor)
        shaped = [
            actors_pb2.TransactionalActorStateOperation(
                operationType=op, key=key, value=any_pb2.Any(value=orjson.dumps(value))
            )
            for op, key, value in operations
        ]
        request = actors_pb2.ExecuteActorStateTransactionRequest(
            actor_type=actor_type, actor_id=actor_id, operations=shaped
        )
        await self._call("ExecuteActorStateTransaction", request)

    async def state(self, actor: str, key: str) -> Any:
        actor_type, actor_id = _parts(actor)
        request = actors_pb2.GetActorStateRequest(actor_type=actor_type, actor_id=actor_id, key=key)
        found = await self._call("GetActorState", request)
        return orjson.loads(found.data) if found.data else None

    async def create_reminder(self, actor: str, name: str, body: dict[str, Any]) -> None:
        actor_type, actor_id = _parts(actor)
        request = actors_pb2.RegisterActorReminderRequest(
            actor_type=actor_type,
            actor_id=actor_id,
            name=name,
            due_time=body.get("dueTime", ""),
            period=body.get("period", ""),
            data=orjson.dumps(body["data"]) if "data" in body else b"",
        )
        if "overwrite" in body:
            request.overwrite = body["overwrite"]
        await self._call("RegisterActorReminder", request)

    async def get_reminder(self, actor: str, name: str) -> dict[str, Any]:
        actor_type, actor_id = _parts(actor)
        request = actors_pb2.GetActorReminderRequest(actor_type=actor_type, actor_id=actor_id, name=name)
        found = await self._call("GetActorReminder", request)
        data = json_format.MessageToDict(found.data)["value"] if found.HasField("data") else None
        return {"dueTime": found.due_time, "period": found.period, "data": data}

    async def delete_reminder(self, actor: str, name: str) -> None:
        actor_type, actor_id = _parts(actor)
        request = actors_pb2.UnregisterActorReminderRequest(
            actor_type=actor_type, actor_id=actor_id, name=name
        )
        await self._call("UnregisterActorReminder", request)

    async def create_timer(self, actor: str, name: str, body: dict[str, Any]) -> None:
        actor_type, actor_id = _parts(actor)
        request = actors_pb2.RegisterActorTimerRequest(
            actor_type=actor_type,
            actor_id=actor_id,
            name=name,
            due_time=body.get("dueTime", ""),
            period=body.get("period", ""),
            callback=body.get("callback", ""),
            ttl=body.get("ttl", ""),
            data=orjson.dumps(body["data"]) if "data" in body else b"",
        )
        await self._call("RegisterActorTimer", request)

    async def delete_timer(self, actor: str, name: str) -> None:
        actor_type, actor_id = _parts(actor)
        request = actors_pb2.UnregisterActorTimerRequest(actor_type=actor_type, actor_id=actor_id, name=name)
        await self._call("UnregisterActorTimer", request)

    async def list_timers(self, actor: str) -> list[dict[str, Any]]:
        actor_type, actor_id = _parts(actor)
        request = actors_pb2.ListActorTimersRequest(actor_type=actor_type, actor_id=actor_id)
        listed = (await self._call("ListActorTimers", request)).timers
        return [{"name": named.name, **_timer_json(named.timer)} for named in listed]

    async def get_timer(self, actor: str, name: str) -> dict[str, Any]:
        actor_type, actor_id = _parts(actor)
        request = actors_pb2.GetActorTimerRequest(actor_type=actor_type, actor_id=actor_id, name=name)
        return _timer_json(await self._call("GetActorTimer", request))


def _timer_json(timer: Any) -> dict[str, Any]:
    """An ActorTimer (or GetActorTimerResponse) in the HTTP API's names; its data, a BytesValue of
    the JSON as daprd sends it, as that JSON."""
    found: dict[str, Any] = json_format.MessageToDict(timer)  # the proto's JSON names: actorID
    if timer.HasField("data"):
        value = wrappers_pb2.BytesValue()
        assert timer.data.Unpack(value)
        found["data"] = orjson.loads(value.value)
    return found


@pytest.fixture
async def app() -> AsyncIterator[ActorTestApp]:
    async with ActorTestApp(["counter"], actorIdleTimeout="1h") as test_app:
        yield test_app


@pytest.fixture
async def sidecar(app: ActorTestApp, start_sidecar: StartSidecar) -> Sidecar:
    started = await start_sidecar(resources_paths=[], app_port=app.port)
    await until_hosting(started)
    return started


@pytest.fixture(params=["http", "grpc"])
async def actors(request: pytest.FixtureRequest, sidecar: Sidecar) -> AsyncIterator[Actors]:
    if request.param == "http":
        yield Http(sidecar)
        return
    async with grpc.aio.insecure_channel(f"127.0.0.1:{sidecar.app.state.grpc_api.port}") as channel:
        yield Grpc(dapr_pb2_grpc.DaprStub(channel))


async def refusal(call: Any) -> Refused:
    with pytest.raises(Refused) as refused:
        await call
    return refused.value


async def test_invoke_state_and_a_transaction(actors: Actors, app: ActorTestApp) -> None:
    assert await actors.invoke("counter/c1", "echo", b"hello") == b"hello"
    [call] = app.of("echo")
    assert (call.actor_type, call.actor_id, call.body) == ("counter", "c1", b"hello")

    await actors.transact("counter/c1", [("upsert", "a", {"n": 1}), ("upsert", "b", [1, "x"])])
    await actors.transact("counter/c1", [("delete", "b", None), ("upsert", "a", {"n": 2})])
    assert await actors.state("counter/c1", "a") == {"n": 2}
    assert await actors.state("counter/c1", "b") is None


async def test_reminders_and_timers_reach_the_app_the_same(actors: Actors, app: ActorTestApp) -> None:
    await actors.create_reminder("counter/c1", "r", {"dueTime": "0s", "period": "1h", "data": {"x": [1]}})
    await actors.create_timer(
        "counter/c1", "t", {"dueTime": "0s", "period": "1h", "callback": "cb", "data": "y"}
    )
    [reminder] = await app.wait_for(1, "remind/r")
    [timer] = await app.wait_for(1, "timer/t")
    assert reminder.json == {"data": {"x": [1]}, "dueTime": "0s", "period": "1h"}
    assert timer.json == {"callback": "cb", "data": "y", "dueTime": "0s", "period": "1h"}
    assert await actors.get_reminder("counter/c1", "r") == {
        "dueTime": "0s",
        "period": "1h",
        "data": {"x": [1]},
    }
    await actors.delete_timer("counter/c1", "t")
    await actors.delete_reminder("counter/c1", "r")
    missing = await refusal(actors.get_reminder("counter/c1", "r"))
    assert (missing.reason, missing.message, missing.status) == (
        "ERR_ACTOR_REMINDER_NOT_FOUND",
        "actor reminder not found: r",
        404,
    )


async def test_refusals_have_the_same_reason_message_and_status(actors: Actors) -> None:
    await actors.create_reminder("counter/c1", "kept", {"dueTime": "1h"})
    cases: list[tuple[Any, str, int]] = [
        (lambda: actors.state("counter/never", "k"), "ERR_ACTOR_INSTANCE_MISSING", 400),
        (lambda: actors.invoke("counter/c1", "fail", b""), "ERR_ACTOR_INVOKE_METHOD", 500),
        (lambda: actors.invoke("dapr.internal.wf/w", "echo", b""), "ERR_ACTOR_TYPE_RESERVED", 403),
        (
            lambda: actors.create_reminder("other/o", "r", {"dueTime": "1h"}),
            "ERR_ACTOR_REMINDER_NON_HOSTED",
            403,
        ),
        (
            lambda: actors.create_reminder("counter/c1", "kept", {"dueTime": "2h", "overwrite": False}),
            "ERR_ACTOR_REMINDER_ALREADY_EXISTS",
            409,
        ),
        (lambda: actors.create_timer("counter/c1", "t", {"dueTime": "soon"}), "ERR_ACTOR_TIMER_CREATE", 500),
        (
            lambda: actors.transact("counter/c1", [("merge", "k", 1)]),
            "ERR_NOT_SUPPORTED_STATE_OPERATION",
            400,
        ),
    ]
    messages = []
    for call, reason, status in cases:
        refused = await refusal(call())
        assert (refused.reason, refused.status) == (reason, status), refused
        messages.append(refused.message)
    assert messages[0] == "actor instance is missing"
    assert messages[4] == "actor reminder already exists: kept"
    assert "boom" in messages[1]


async def test_timers_read_back_the_same(actors: Actors, app: ActorTestApp) -> None:
    """daprd's list and get of timers (host-local: this sidecar alone owns every actor): by name,
    the fields each was given, ``ttl`` as the time it ends; gone once deleted."""
    assert await actors.list_timers("counter/c1") == []  # not even active
    due = {"dueTime": "1000s"}
    await actors.create_timer(
        "counter/c1",
        "t1",
        {**due, "period": "10s", "ttl": "2552-01-01T00:00:00Z", "callback": "cb", "data": "hello"},
    )
    await actors.create_timer("counter/c1", "t0", {**due, "data": {"k": [1, None]}})
    await actors.create_timer("counter/c2", "other", due)
    actor = {"actorType": "counter", "actorID": "c1"}
    t0 = {**actor, **due, "data": {"k": [1, None]}}
    t1 = {**actor, **due, "period": "10s", "ttl": "2552-01-01T00:00:00Z", "callback": "cb", "data": "hello"}
    assert await actors.list_timers("counter/c1") == [{"name": "t0", **t0}, {"name": "t1", **t1}]
    assert await actors.get_timer("counter/c1", "t1") == t1

    await actors.delete_timer("counter/c1", "t1")
    assert await actors.list_timers("counter/c1") == [{"name": "t0", **t0}]
    missing = await refusal(actors.get_timer("counter/c1", "t1"))
    assert (missing.reason, missing.message, missing.status) == (
        "ERR_ACTOR_TIMER_NOT_FOUND",
        "actor timer not found: t1",
        404,
    )
    cases: list[tuple[Any, str, int]] = [
        (lambda: actors.list_timers("other/o"), "ERR_ACTOR_TIMER_NON_HOSTED", 403),
        (lambda: actors.get_timer("other/o", "t"), "ERR_ACTOR_TIMER_NON_HOSTED", 403),
        (lambda: actors.list_timers("dapr.internal.wf/w"), "ERR_ACTOR_TYPE_RESERVED", 403),
        (lambda: actors.get_timer("counter/c\\d", "t"), "ERR_BAD_REQUEST", 400),
    ]
    for call, reason, status in cases:
        refused = await refusal(call())
        assert (refused.reason, refused.status) == (reason, status), refused


async def test_a_timer_that_ended_is_not_listed(actors: Actors, app: ActorTestApp) -> None:
    await actors.create_timer("counter/c1", "once", {"dueTime": "0s"})
    await app.wait_for(1, "timer/once")
    for _ in range(100):
        if await actors.list_timers("counter/c1") == []:
            break
        await asyncio.sleep(0.02)
    assert await actors.list_timers("counter/c1") == []


async def test_list_reminders_of_an_actor_or_of_its_type(sidecar: Sidecar) -> None:
    """ListActorReminders (gRPC only: daprd has no HTTP route for it): one actor's, or with no id
    (or an empty one) every reminder of the type, by actor id then name, each as GetActorReminder
    answers it."""
    http = Http(sidecar)
    await http.create_reminder("counter/c1", "r2", {"dueTime": "1h", "period": "PT1H", "data": {"n": 2}})
    await http.create_reminder("counter/c1", "r1", {"dueTime": "1h", "ttl": "2552-01-01T00:00:00Z"})
    await http.create_reminder("counter/c1||x", "r3", {"dueTime": "1h"})
    await http.create_reminder("counter/c2", "r1", {"dueTime": "2h"})
    async with grpc.aio.insecure_channel(f"127.0.0.1:{sidecar.app.state.grpc_api.port}") as channel:
        stub = dapr_pb2_grpc.DaprStub(channel)

        async def listed(**request: Any) -> list[tuple[str, str, str]]:
            answer = await stub.ListActorReminders(actors_pb2.ListActorRemindersRequest(**request))
            return [(r.reminder.actor_id, r.name, r.reminder.due_time) for r in answer.reminders]

        assert await listed(actor_type="counter", actor_id="c1") == [("c1", "r1", "1h"), ("c1", "r2", "1h")]
        everything = [("c1", "r1", "1h"), ("c1", "r2", "1h"), ("c1||x", "r3", "1h"), ("c2", "r1", "2h")]
        assert await listed(actor_type="counter") == everything
        assert await listed(actor_type="counter", actor_id="") == everything
        assert await listed(actor_type="counter", actor_id="nobody") == []

        answer = await stub.ListActorReminders(
            actors_pb2.ListActorRemindersRequest(actor_type="counter", actor_id="c1")
        )
        for named in answer.reminders:
            got = await stub.GetActorReminder(
                actors_pb2.GetActorReminderRequest(actor_type="counter", actor_id="c1", name=named.name)
            )
            assert json_format.MessageToDict(named.reminder) == json_format.MessageToDict(got)
        assert answer.reminders[0].reminder.ttl.startswith("2552-01-01T00:00:00")
        assert json_format.MessageToDict(answer.reminders[1].reminder.data)["value"] == {"n": 2}

        for request, code, reason in [
            ({"actor_type": "other"}, grpc.StatusCode.PERMISSION_DENIED, "ERR_ACTOR_REMINDER_NON_HOSTED"),
            (
                {"actor_type": "dapr.internal.wf"},
                grpc.StatusCode.PERMISSION_DENIED,
                "ERR_ACTOR_TYPE_RESERVED",
            ),
            ({"actor_type": ""}, grpc.StatusCode.INVALID_ARGUMENT, "ERR_BAD_REQUEST"),
        ]:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.ListActorReminders(actors_pb2.ListActorRemindersRequest(**request))
            assert refused.value.code() == code
            assert _grpc_refusal(refused.value).reason == reason
