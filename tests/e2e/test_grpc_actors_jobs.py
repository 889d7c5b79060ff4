"""The actor and job RPCs of Dapr's gRPC API on a real ``l8 run``: jobs through the **unmodified
Python SDK** (``DaprClient.schedule_job`` / ``get_job`` / ``delete_job``) firing as ``POST
/job/{name}`` on a recording app, a job scheduled over one transport read back the same over the
other; actors through the ``dapr`` package's grpcio stub against a recording actor app
(tests/actor_app.py): invoke, a state transaction read back over both transports, a timer and a
reminder firing on the app, and the errors with daprd's codes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import orjson
import pytest
from dapr.clients import DaprClient
from dapr.clients.exceptions import DaprGrpcError
from dapr.clients.grpc._jobs import ConstantFailurePolicy, Job
from dapr.proto.runtime.v1 import actors_pb2, dapr_pb2_grpc, jobs_pb2
from google.protobuf import any_pb2, json_format, struct_pb2, wrappers_pb2

from tests.actor_app import ActorTestApp
from tests.e2e.process import L8Launcher, L8Process
from tests.e2e.test_actors import hosting
from tests.servers import LOOPBACK
from tests.subscriber_app import SubscriberApp

pytestmark = pytest.mark.e2e

VALUE = "type.googleapis.com/google.protobuf.Value"


def value_any(value: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(json_format.ParseDict(value, struct_pb2.Value()))
    return packed


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


def sdk(sidecar: L8Process, monkeypatch: pytest.MonkeyPatch) -> DaprClient:
    for name in ("DAPR_API_TOKEN", "DAPR_GRPC_ENDPOINT", "DAPR_HTTP_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DAPR_RUNTIME_HOST", LOOPBACK)
    monkeypatch.setenv("DAPR_HTTP_PORT", str(sidecar.port))
    monkeypatch.setenv("DAPR_GRPC_PORT", str(sidecar.grpc_port))
    return DaprClient()


async def test_jobs_through_the_python_sdk(
    l8: L8Launcher, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with SubscriberApp() as app:
        sidecar = await asyncio.to_thread(l8, args=["--app-port", str(app.port)], app_id="grpcjobs")
        with sdk(sidecar, monkeypatch) as client:
            job = Job(name="tick", schedule="@every 1s", repeats=2, data=value_any({"order": 7}))
            await asyncio.to_thread(client.schedule_job, job)
            fired = await app.wait_for(2, path="/job/tick", timeout=15)
            assert [d.json for d in fired] == [{"order": 7}, {"order": 7}]

            # Over gRPC and HTTP alike.
            later = Job(
                name="later",
                due_time="1h",
                data=value_any(["a", 1]),
                failure_policy=ConstantFailurePolicy(max_retries=3, interval_seconds=2),
            )
            await asyncio.to_thread(client.schedule_job, later)
            found = await asyncio.to_thread(client.get_job, "later")
            assert (found.name, found.due_time, found.schedule) == ("later", "1h", None)
            assert found.data is not None and found.data.type_url == VALUE
            assert json_format.MessageToDict(found.data)["value"] == ["a", 1]
            over_http = (await http.get(f"{sidecar.url}/v1.0-alpha1/jobs/later")).json()
            assert over_http["data"] == {"@type": VALUE, "value": ["a", 1]}
            assert over_http["failurePolicy"] == {"constant": {"interval": "2s", "maxRetries": 3}}

            # Scheduled over HTTP, read over gRPC: the same JSON in a Value.
            answer = await http.post(
                f"{sidecar.url}/v1.0-alpha1/jobs/from-http", json={"dueTime": "1h", "data": {"k": "v"}}
            )
            assert answer.status_code == 204
            found = await asyncio.to_thread(client.get_job, "from-http")
            assert found.data is not None and found.data.type_url == VALUE
            assert json_format.MessageToDict(found.data)["value"] == {"k": "v"}

            # Another type of Any comes back as it went in; over HTTP it is its protojson.
            text = any_pb2.Any()
            text.Pack(wrappers_pb2.StringValue(value="hello"))
            await asyncio.to_thread(client.schedule_job, Job(name="text", due_time="1h", data=text))
            found = await asyncio.to_thread(client.get_job, "text")
            assert found.data == text
            over_http = (await http.get(f"{sidecar.url}/v1.0/jobs/text")).json()
            assert over_http["data"]["value"] == {
                "@type": "type.googleapis.com/google.protobuf.StringValue",
                "value": "hello",
            }

            # An existing job without overwrite, a missing job, an empty name: daprd's errors.
            with pytest.raises(DaprGrpcError) as refused:
                await asyncio.to_thread(client.schedule_job, Job(name="later", due_time="2h"))
            assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS
            assert refused.value.error_code() == "DAPR_SCHEDULER_SCHEDULE_JOB"
            assert "AlreadyExists" in (refused.value.details() or "")
            await asyncio.to_thread(client.schedule_job, Job(name="later", due_time="2h"), True)
            assert (await asyncio.to_thread(client.get_job, "later")).due_time == "2h"

            await asyncio.to_thread(client.delete_job, "later")
            with pytest.raises(DaprGrpcError) as missing:
                await asyncio.to_thread(client.get_job, "later")
            assert missing.value.error_code() == "DAPR_SCHEDULER_GET_JOB"
            assert (await http.get(f"{sidecar.url}/v1.0/jobs/later")).status_code == 500

        # The SDK checks a schedule itself; the stub shows the sidecar's answer without one.
        async with grpc.aio.insecure_channel(sidecar.grpc_address) as channel:
            stub = dapr_pb2_grpc.DaprStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as empty:
                await stub.ScheduleJobAlpha1(jobs_pb2.ScheduleJobRequest(job=jobs_pb2.Job(name="nothing")))
            assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "DAPR_SCHEDULER_SCHEDULE_EMPTY" in str(empty.value.trailing_metadata())


async def test_actors_over_grpc(l8: L8Launcher, http: httpx.AsyncClient) -> None:
    async with ActorTestApp(["counter"], actorIdleTimeout="1h") as app:
        sidecar = await asyncio.to_thread(l8, args=["--app-port", str(app.port)])
        await hosting(http, sidecar)
        async with grpc.aio.insecure_channel(sidecar.grpc_address) as channel:
            stub = dapr_pb2_grpc.DaprStub(channel)

            echoed = await stub.InvokeActor(
                actors_pb2.InvokeActorRequest(
                    actor_type="counter", actor_id="c1", method="echo", data=b"hi", metadata={"X-Id": "7"}
                )
            )
            assert echoed.data == b"hi"
            assert app.of("echo")[-1].headers["X-Id"] == "7"

            # A transaction over gRPC, read over both transports.
            operation = actors_pb2.TransactionalActorStateOperation
            await stub.ExecuteActorStateTransaction(
                actors_pb2.ExecuteActorStateTransactionRequest(
                    actor_type="counter",
                    actor_id="c1",
                    operations=[
                        operation(operationType="upsert", key="n", value=any_pb2.Any(value=b'{"n": 1}')),
                        operation(operationType="upsert", key="gone", value=any_pb2.Any(value=b"1")),
                        operation(operationType="delete", key="gone"),
                    ],
                )
            )
            state = await stub.GetActorState(
                actors_pb2.GetActorStateRequest(actor_type="counter", actor_id="c1", key="n")
            )
            assert orjson.loads(state.data) == {"n": 1}
            assert (await http.get(f"{sidecar.url}/v1.0/actors/counter/c1/state/n")).json() == {"n": 1}
            gone = await stub.GetActorState(
                actors_pb2.GetActorStateRequest(actor_type="counter", actor_id="c1", key="gone")
            )
            assert gone.data == b""

            # A timer and a reminder fire on the app with their data.
            await stub.RegisterActorTimer(
                actors_pb2.RegisterActorTimerRequest(
                    actor_type="counter", actor_id="c1", name="t", due_time="0s", period="1h", data=b'"tick"'
                )
            )
            await stub.RegisterActorReminder(
                actors_pb2.RegisterActorReminderRequest(
                    actor_type="counter",
                    actor_id="c1",
                    name="r",
                    due_time="0s",
                    period="1h",
                    data=b'{"x": 1}',
                )
            )
            for _ in range(200):
                if app.of("timer/t") and app.of("remind/r"):
                    break
                await asyncio.sleep(0.05)
            assert app.of("timer/t")[0].json["data"] == "tick"
            assert app.of("remind/r")[0].json["data"] == {"x": 1}

            reminder = await stub.GetActorReminder(
                actors_pb2.GetActorReminderRequest(actor_type="counter", actor_id="c1", name="r")
            )
            assert (reminder.due_time, reminder.period) == ("0s", "1h")
            assert json_format.MessageToDict(reminder.data)["value"] == {"x": 1}
            over_http = await http.get(f"{sidecar.url}/v1.0/actors/counter/c1/reminders/r")
            assert over_http.json()["data"] == {"x": 1}

            # A reminder that exists, with overwrite false: AlreadyExists.
            with pytest.raises(grpc.aio.AioRpcError) as exists:
                await stub.RegisterActorReminder(
                    actors_pb2.RegisterActorReminderRequest(
                        actor_type="counter", actor_id="c1", name="r", due_time="1h", overwrite=False
                    )
                )
            assert exists.value.code() == grpc.StatusCode.ALREADY_EXISTS

            await stub.UnregisterActorTimer(
                actors_pb2.UnregisterActorTimerRequest(actor_type="counter", actor_id="c1", name="t")
            )
            await stub.UnregisterActorReminder(
                actors_pb2.UnregisterActorReminderRequest(actor_type="counter", actor_id="c1", name="r")
            )
            with pytest.raises(grpc.aio.AioRpcError) as missing:
                await stub.GetActorReminder(
                    actors_pb2.GetActorReminderRequest(actor_type="counter", actor_id="c1", name="r")
                )
            assert missing.value.code() == grpc.StatusCode.NOT_FOUND

            # An actor method that fails; state of an actor not active here; an unhosted type.
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await stub.InvokeActor(
                    actors_pb2.InvokeActorRequest(actor_type="counter", actor_id="c1", method="fail")
                )
            assert failed.value.code() == grpc.StatusCode.INTERNAL
            assert "boom" in (failed.value.details() or "")
            with pytest.raises(grpc.aio.AioRpcError) as inactive:
                await stub.GetActorState(
                    actors_pb2.GetActorStateRequest(actor_type="counter", actor_id="never", key="n")
                )
            assert inactive.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            with pytest.raises(grpc.aio.AioRpcError) as unhosted:
                await stub.RegisterActorReminder(
                    actors_pb2.RegisterActorReminderRequest(actor_type="other", actor_id="o", name="r")
                )
            assert unhosted.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_deleting_jobs_and_reminders_by_prefix(l8: L8Launcher, http: httpx.AsyncClient) -> None:
    async with ActorTestApp(["counter"], actorIdleTimeout="1h") as app:
        sidecar = await asyncio.to_thread(l8, args=["--app-port", str(app.port)])
        await hosting(http, sidecar)
        async with grpc.aio.insecure_channel(sidecar.grpc_address) as channel:
            stub = dapr_pb2_grpc.DaprStub(channel)
            for name in ("a-1", "a-2", "b-1"):
                job = jobs_pb2.Job(name=name, due_time="1h")
                await stub.ScheduleJob(jobs_pb2.ScheduleJobRequest(job=job))
            await stub.DeleteJobsByPrefixAlpha1(jobs_pb2.DeleteJobsByPrefixRequestAlpha1(name_prefix="a-"))
            statuses = [
                (await http.get(f"{sidecar.url}/v1.0/jobs/{n}")).status_code for n in ("a-1", "a-2", "b-1")
            ]
            assert statuses == [500, 500, 200]

            for actor_id, name in (("c1", "r1"), ("c1", "r2"), ("c2", "r1")):
                await stub.RegisterActorReminder(
                    actors_pb2.RegisterActorReminderRequest(
                        actor_type="counter", actor_id=actor_id, name=name, due_time="1h"
                    )
                )

            async def reminder(actor_id: str, name: str) -> int:
                url = f"{sidecar.url}/v1.0/actors/counter/{actor_id}/reminders/{name}"
                return (await http.get(url)).status_code

            await stub.UnregisterActorRemindersByType(
                actors_pb2.UnregisterActorRemindersByTypeRequest(actor_type="counter", actor_id="c1")
            )
            assert [await reminder("c1", "r1"), await reminder("c1", "r2"), await reminder("c2", "r1")] == [
                404,
                404,
                200,
            ]
            await stub.UnregisterActorRemindersByType(
                actors_pb2.UnregisterActorRemindersByTypeRequest(actor_type="counter")
            )
            assert await reminder("c2", "r1") == 404
            with pytest.raises(grpc.aio.AioRpcError) as reserved:
                await stub.UnregisterActorRemindersByType(
                    actors_pb2.UnregisterActorRemindersByTypeRequest(actor_type="dapr.internal.x")
                )
            assert reserved.value.code() == grpc.StatusCode.PERMISSION_DENIED
