"""The list RPCs of Dapr's gRPC API on real ``l8 run`` processes: ListJobs beside the **unmodified
Python SDK**'s ``schedule_job`` / ``get_job`` (the SDK has no list call: the ``dapr`` package's
stub), ListActorReminders, ListActorTimers and GetActorTimer (stubs) and the timers' HTTP routes,
and a job name taken answering ALREADY_EXISTS / 409 on both transports; on two sidecars sharing
Redis, timers answered only by the actor's owner and the same jobs and reminders listed by both."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from dapr.clients.exceptions import DaprGrpcError
from dapr.clients.grpc._jobs import Job
from dapr.proto.runtime.v1 import actors_pb2, dapr_pb2_grpc, jobs_pb2
from google.protobuf import json_format, wrappers_pb2

from tests.actor_app import ActorTestApp
from tests.e2e.process import L8Launcher, L8Process
from tests.e2e.test_actors import fleet_config, hosting
from tests.e2e.test_grpc_actors_jobs import sdk, value_any

pytestmark = pytest.mark.e2e

ACTORS = "/v1.0/actors"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


async def test_lists_on_one_sidecar(
    l8: L8Launcher, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with ActorTestApp(["counter"], actorIdleTimeout="1h") as app:
        sidecar = await asyncio.to_thread(l8, args=["--app-port", str(app.port)], app_id="lists")
        await hosting(http, sidecar)
        async with grpc.aio.insecure_channel(sidecar.grpc_address) as channel:
            stub = dapr_pb2_grpc.DaprStub(channel)
            with sdk(sidecar, monkeypatch) as client:
                # Jobs: scheduled through the SDK, listed by name, each as the SDK's get_job reads it.
                for name in ("nightly", "at-noon", "hourly"):
                    job = Job(name=name, schedule="@every 1h", repeats=2, data=value_any({"n": name}))
                    await asyncio.to_thread(client.schedule_job, job)
                listed = (await stub.ListJobs(jobs_pb2.ListJobsRequest())).jobs
                assert [job.name for job in listed] == ["at-noon", "hourly", "nightly"]
                for job in listed:
                    found = await asyncio.to_thread(client.get_job, job.name)
                    assert (job.schedule, job.repeats) == (found.schedule, found.repeats)
                    assert json_format.MessageToDict(job.data)["value"] == {"n": job.name}
                alpha = (await stub.ListJobsAlpha1(jobs_pb2.ListJobsRequestAlpha1())).jobs
                assert list(alpha) == list(listed)

                # A name taken, without overwrite: the scheduler's AlreadyExists on both transports.
                with pytest.raises(DaprGrpcError) as taken:
                    await asyncio.to_thread(client.schedule_job, Job(name="nightly", due_time="1h"))
                assert taken.value.code() == grpc.StatusCode.ALREADY_EXISTS
                assert taken.value.error_code() == "DAPR_SCHEDULER_SCHEDULE_JOB"
                over_http = await http.post(f"{sidecar.url}/v1.0/jobs/nightly", json={"dueTime": "1h"})
                assert over_http.status_code == 409
                assert over_http.json()["errorCode"] == "DAPR_SCHEDULER_SCHEDULE_JOB"

            # Reminders of one actor, or of the whole type.
            for actor_id, name in (("c2", "r"), ("c1", "b"), ("c1", "a")):
                await stub.RegisterActorReminder(
                    actors_pb2.RegisterActorReminderRequest(
                        actor_type="counter", actor_id=actor_id, name=name, due_time="1h", data=b'{"k": 1}'
                    )
                )
            one = await stub.ListActorReminders(
                actors_pb2.ListActorRemindersRequest(actor_type="counter", actor_id="c1")
            )
            assert [(r.name, r.reminder.actor_id, r.reminder.due_time) for r in one.reminders] == [
                ("a", "c1", "1h"),
                ("b", "c1", "1h"),
            ]
            assert json_format.MessageToDict(one.reminders[0].reminder.data)["value"] == {"k": 1}
            every = await stub.ListActorReminders(actors_pb2.ListActorRemindersRequest(actor_type="counter"))
            assert [(r.reminder.actor_id, r.name) for r in every.reminders] == [
                ("c1", "a"),
                ("c1", "b"),
                ("c2", "r"),
            ]

            # Timers: registered over HTTP, read over both transports; gone once deleted.
            body = {"dueTime": "1000s", "period": "10s", "callback": "cb", "data": "hello"}
            created = await http.post(f"{sidecar.url}{ACTORS}/counter/c1/timers/t1", json=body)
            assert created.status_code == 204, created.text
            timers = await stub.ListActorTimers(
                actors_pb2.ListActorTimersRequest(actor_type="counter", actor_id="c1")
            )
            [named] = timers.timers
            assert (named.name, named.timer.due_time, named.timer.period, named.timer.callback) == (
                "t1",
                "1000s",
                "10s",
                "cb",
            )
            data = wrappers_pb2.BytesValue()
            assert named.timer.data.Unpack(data) and data.value == b'"hello"'
            got = await stub.GetActorTimer(
                actors_pb2.GetActorTimerRequest(actor_type="counter", actor_id="c1", name="t1")
            )
            assert (got.actor_id, got.due_time) == ("c1", "1000s")
            listed_http = (await http.get(f"{sidecar.url}{ACTORS}/counter/c1/timers")).json()
            assert listed_http == {
                "timers": [{"name": "t1", "actorType": "counter", "actorID": "c1", **body}]
            }
            await http.delete(f"{sidecar.url}{ACTORS}/counter/c1/timers/t1")
            with pytest.raises(grpc.aio.AioRpcError) as missing:
                await stub.GetActorTimer(
                    actors_pb2.GetActorTimerRequest(actor_type="counter", actor_id="c1", name="t1")
                )
            assert missing.value.code() == grpc.StatusCode.NOT_FOUND
            gone = await http.get(f"{sidecar.url}{ACTORS}/counter/c1/timers/t1")
            assert (gone.status_code, gone.json()["errorCode"]) == (404, "ERR_ACTOR_TIMER_NOT_FOUND")


async def _timers(http: httpx.AsyncClient, sidecar: L8Process, actor_id: str) -> httpx.Response:
    return await http.get(f"{sidecar.url}{ACTORS}/counter/{actor_id}/timers")


async def _agreed(http: httpx.AsyncClient, sidecars: tuple[L8Process, ...], ids: list[str]) -> None:
    """Wait until the sidecars' placement tables agree: each actor's timers are answered by exactly
    one of them (200, none yet) and refused by the other (daprd's test waits the same way)."""
    for _ in range(200):
        answers = [await _timers(http, sidecar, actor_id) for actor_id in ids for sidecar in sidecars]
        codes = [answer.status_code for answer in answers]
        if all(sorted(codes[i : i + 2]) == [200, 403] for i in range(0, len(codes), 2)):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the two sidecars never agreed on the actors' owners")


async def test_two_sidecars_timers_only_on_the_owner_lists_from_the_shared_store(
    l8: L8Launcher, http: httpx.AsyncClient, tmp_path: Path, redis_server: Any
) -> None:
    config = fleet_config(tmp_path, "redis", redis_server.address)
    app_id = f"lists-{uuid.uuid4().hex[:8]}"
    async with (
        ActorTestApp(["counter"], actorIdleTimeout="1h") as first_app,
        ActorTestApp(["counter"], actorIdleTimeout="1h") as second_app,
    ):
        first, second = await asyncio.gather(
            *(
                asyncio.to_thread(
                    l8, args=["--app-port", str(app.port), "--config", str(config)], app_id=app_id
                )
                for app in (first_app, second_app)
            )
        )
        await asyncio.gather(hosting(http, first), hosting(http, second))
        ids = [f"a{n}" for n in range(12)]
        await _agreed(http, (first, second), ids)
        for actor_id in ids:
            created = await http.post(
                f"{first.url}{ACTORS}/counter/{actor_id}/timers/t", json={"dueTime": "1h"}
            )
            assert created.status_code == 204, created.text
            reminded = await http.post(
                f"{second.url}{ACTORS}/counter/{actor_id}/reminders/r", json={"dueTime": "1h"}
            )
            assert reminded.status_code == 204, reminded.text

        owners: dict[str, L8Process] = {}
        for actor_id in ids:
            answers = {sidecar.url: await _timers(http, sidecar, actor_id) for sidecar in (first, second)}
            statuses = sorted(answer.status_code for answer in answers.values())
            assert statuses == [200, 403], (actor_id, [a.text for a in answers.values()])
            for sidecar in (first, second):
                answer = answers[sidecar.url]
                if answer.status_code == 200:
                    owners[actor_id] = sidecar
                    assert [t["name"] for t in answer.json()["timers"]] == ["t"]
                else:
                    assert answer.json()["errorCode"] == "ERR_ACTOR_TIMER_NOT_OWNED"
        assert {owner.url for owner in owners.values()} == {first.url, second.url}, "the ring spread them"

        for sidecar in (first, second):
            async with grpc.aio.insecure_channel(sidecar.grpc_address) as channel:
                stub = dapr_pb2_grpc.DaprStub(channel)
                for actor_id in ids[:4]:
                    request = actors_pb2.GetActorTimerRequest(
                        actor_type="counter", actor_id=actor_id, name="t"
                    )
                    if owners[actor_id] is sidecar:
                        assert (await stub.GetActorTimer(request)).due_time == "1h"
                        continue
                    with pytest.raises(grpc.aio.AioRpcError) as refused:
                        await stub.GetActorTimer(request)
                    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
                # Reminders and jobs live in the shared store: either sidecar lists them all.
                every = await stub.ListActorReminders(
                    actors_pb2.ListActorRemindersRequest(actor_type="counter")
                )
                assert sorted(r.reminder.actor_id for r in every.reminders) == sorted(ids)
                job = jobs_pb2.Job(name=f"from-{sidecar.port}", due_time="1h")
                await stub.ScheduleJobAlpha1(jobs_pb2.ScheduleJobRequest(job=job))
        for sidecar in (first, second):
            async with grpc.aio.insecure_channel(sidecar.grpc_address) as channel:
                listed = (await dapr_pb2_grpc.DaprStub(channel).ListJobs(jobs_pb2.ListJobsRequest())).jobs
                assert sorted(job.name for job in listed) == sorted(f"from-{s.port}" for s in (first, second))
