"""The scheduler service (services/scheduler/service.py) on real stores: ticks delivered on time,
repeats, ttl, retries per the failure policy, cancel, and once per tick across sidecars sharing a
store, including when one of them dies holding a claim."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from components.etcd_connection import EtcdConnectionMetadata
from components.metadata import decode
from components.redis_metadata import RedisConnectionMetadata
from components.scheduler.base import SchedulerStore
from components.scheduler.etcd import EtcdSchedulerStore
from components.scheduler.redis import RedisSchedulerStore
from components.scheduler.sqlite import SQLiteSchedulerStore
from services.scheduler.base import Job, JobExists, JobKey, Outcome, Tick
from services.scheduler.service import SchedulerService

StoreFactory = Callable[[], SchedulerStore]


def _stores(request: pytest.FixtureRequest, backend: str) -> StoreFactory:
    if backend == "sqlite":
        path = str(Path(request.getfixturevalue("tmp_path")) / "scheduler.db")
        return lambda: SQLiteSchedulerStore(path)
    if backend == "redis":
        settings = decode(
            RedisConnectionMetadata, {"redisHost": request.getfixturevalue("redis_server").address}
        )
        return lambda: RedisSchedulerStore(settings, prefix="l8-test||sched||")
    etcd = decode(EtcdConnectionMetadata, {"endpoints": request.getfixturevalue("etcd_server").address})
    return lambda: EtcdSchedulerStore(etcd, prefix="/l8-test/sched/")


@pytest.fixture(params=["sqlite", "redis", "etcd"])
async def sidecars(
    request: pytest.FixtureRequest,
) -> AsyncIterator[Callable[..., Awaitable[SchedulerService]]]:
    """Starts schedulers of one app id sharing one store; closes them after the test."""
    stores = _stores(request, request.param)
    app_id = f"app-{uuid.uuid4().hex[:8]}"
    started: list[SchedulerService] = []

    async def start(**options: float) -> SchedulerService:
        service = SchedulerService(stores(), app_id, **options)  # type: ignore[arg-type]
        await service.start()
        started.append(service)
        return service

    yield start
    for service in started:
        await service.close()


class Recorder:
    """A handler that records every tick and answers what it is told."""

    def __init__(self, answers: Callable[[Tick], Outcome] | None = None) -> None:
        self.ticks: list[tuple[float, Tick]] = []
        self._answers = answers

    async def __call__(self, tick: Tick) -> Outcome:
        self.ticks.append((time.time(), tick))
        return self._answers(tick) if self._answers else Outcome.DONE


async def until(check: Callable[[], bool], within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def _job(service: SchedulerService, name: str, **fields: object) -> Job:
    return Job(JobKey("job", service.app_id, name), **fields)  # type: ignore[arg-type]


async def test_a_one_shot_fires_once_at_its_due_time(
    sidecars: Callable[..., Awaitable[SchedulerService]],
) -> None:
    service = await sidecars()
    recorder = Recorder()
    service.deliver("job", recorder)
    scheduled = time.time()
    await service.schedule(_job(service, "once", due_time="0.5s", data=b'{"a":1}'), overwrite=False)
    await until(lambda: len(recorder.ticks) == 1)
    arrived, tick = recorder.ticks[0]
    assert tick.job.data == b'{"a":1}' and tick.attempt == 1
    assert tick.due.timestamp() == pytest.approx(scheduled + 0.5, abs=0.3)
    assert arrived >= tick.due.timestamp() - 0.05
    await until(lambda: True)
    await asyncio.sleep(0.3)
    assert len(recorder.ticks) == 1
    assert await service.get(JobKey("job", service.app_id, "once")) is None


async def test_repeats_and_overwrite_refusal(sidecars: Callable[..., Awaitable[SchedulerService]]) -> None:
    service = await sidecars()
    recorder = Recorder()
    service.deliver("job", recorder)
    job = _job(service, "rep", schedule="@every 0.2s", repeats=3)
    await service.schedule(job, overwrite=False)
    with pytest.raises(JobExists):
        await service.schedule(job, overwrite=False)
    await until(lambda: len(recorder.ticks) == 3)
    await asyncio.sleep(0.6)
    assert len(recorder.ticks) == 3
    dues = [tick.due.timestamp() for _, tick in recorder.ticks]
    assert all(
        later - earlier == pytest.approx(0.2, abs=0.01) for earlier, later in itertools.pairwise(dues)
    ), [(t, d.due.timestamp()) for t, d in recorder.ticks]
    assert await service.get(job.key) is None


async def test_ttl_ends_the_ticks(sidecars: Callable[..., Awaitable[SchedulerService]]) -> None:
    service = await sidecars()
    recorder = Recorder()
    service.deliver("job", recorder)
    await service.schedule(_job(service, "ttl", schedule="@every 0.25s", ttl="1.1s"), overwrite=False)
    await until(lambda: len(recorder.ticks) >= 4)
    await asyncio.sleep(1.0)
    assert len(recorder.ticks) == 4  # 0.25, 0.5, 0.75, 1.0; 1.25 is past the ttl


@pytest.mark.parametrize(
    ("policy", "attempts"),
    [({"constant": {"interval": "0.1s", "maxRetries": 2}}, 3), ({"drop": {}}, 1), (None, 4)],
)
async def test_failures_are_retried_per_policy(
    sidecars: Callable[..., Awaitable[SchedulerService]], policy: dict[str, object] | None, attempts: int
) -> None:
    service = await sidecars()
    recorder = Recorder(lambda tick: Outcome.FAILED)
    service.deliver("job", recorder)
    await service.schedule(_job(service, "fails", due_time="0s", failure_policy=policy), overwrite=False)
    await until(lambda: len(recorder.ticks) == attempts)
    await asyncio.sleep(1.5)
    assert [tick.attempt for _, tick in recorder.ticks] == list(range(1, attempts + 1))
    assert await service.get(JobKey("job", service.app_id, "fails")) is None


async def test_a_constant_policy_without_max_retries_retries_without_end(
    sidecars: Callable[..., Awaitable[SchedulerService]],
) -> None:
    """Dapr's JobFailurePolicyConstant: "If unset, the Job will be retried indefinitely" (its
    max_retries), unlike no policy at all (3 retries)."""
    service = await sidecars()
    recorder = Recorder(lambda tick: Outcome.FAILED)
    service.deliver("job", recorder)
    policy = {"constant": {"interval": "0.05s"}}
    await service.schedule(_job(service, "keeps", due_time="0s", failure_policy=policy), overwrite=False)
    await until(lambda: len(recorder.ticks) >= 8)
    assert [tick.attempt for _, tick in recorder.ticks[:8]] == list(range(1, 9))
    assert await service.get(JobKey("job", service.app_id, "keeps")) is not None


async def test_list_jobs_by_prefix_in_name_order(
    sidecars: Callable[..., Awaitable[SchedulerService]],
) -> None:
    service = await sidecars()
    names = ["b", "a||1||r", "a||1||q", "a||10||r", *(f"many-{n:04d}" for n in range(1100))]
    for name in names:
        await service.schedule(_job(service, name, due_time="1h"), overwrite=False)
    listed = await service.list_jobs("job", service.app_id)
    assert [job.key.name for job in listed] == sorted(names)
    assert listed[0].due_time == "1h" and listed[0].key == JobKey("job", service.app_id, "a||10||r")
    assert [job.key.name for job in await service.list_jobs("job", service.app_id, "a||1||")] == [
        "a||1||q",
        "a||1||r",
    ]
    assert await service.list_jobs("reminder", service.app_id) == []


async def test_cancel_ends_the_job(sidecars: Callable[..., Awaitable[SchedulerService]]) -> None:
    service = await sidecars()
    recorder = Recorder(lambda tick: Outcome.CANCEL)
    service.deliver("reminder", recorder)
    await service.schedule(Job(JobKey("reminder", service.app_id, "A||1||r"), schedule="0.2s", due_time="0s"),
                           overwrite=False)  # fmt: skip
    await until(lambda: len(recorder.ticks) == 1)
    await asyncio.sleep(0.6)
    assert len(recorder.ticks) == 1


async def test_bad_schedules_are_refused(sidecars: Callable[..., Awaitable[SchedulerService]]) -> None:
    service = await sidecars()
    for fields in ({"schedule": "every day"}, {"schedule": "@every"}, {"due_time": "soon"},
                   {"schedule": "@daily", "failure_policy": {"sometimes": {}}}, {}):  # fmt: skip
        with pytest.raises(ValueError):
            await service.schedule(_job(service, "bad", **fields), overwrite=True)
    assert await service.get(JobKey("job", service.app_id, "bad")) is None


async def test_each_tick_fires_once_across_sidecars(
    sidecars: Callable[..., Awaitable[SchedulerService]],
) -> None:
    services = [await sidecars() for _ in range(3)]
    recorders = [Recorder() for _ in services]
    for service, recorder in zip(services, recorders, strict=True):
        service.deliver("job", recorder)
    for index in range(5):
        await services[index % 3].schedule(_job(services[0], f"j{index}", schedule="@every 0.2s", repeats=6),
                                           overwrite=False)  # fmt: skip
    everything = lambda: [(tick.job.key.name, tick.due) for r in recorders for _, tick in r.ticks]  # noqa: E731
    await until(lambda: len(everything()) >= 30)
    await asyncio.sleep(0.5)
    assert len(everything()) == 30
    assert len(set(everything())) == 30


async def test_accept_leaves_a_job_to_the_sidecar_that_takes_it(
    sidecars: Callable[..., Awaitable[SchedulerService]],
) -> None:
    first, second = await sidecars(), await sidecars()
    mine, theirs = Recorder(), Recorder()
    first.deliver("reminder", mine, accept=lambda key: key.name.startswith("mine"))
    second.deliver("reminder", theirs, accept=lambda key: not key.name.startswith("mine"))
    for name in ("mine-1", "other-1"):
        await first.schedule(Job(JobKey("reminder", first.app_id, name), due_time="0s"), overwrite=False)
    await until(lambda: len(mine.ticks) == 1 and len(theirs.ticks) == 1)
    assert mine.ticks[0][1].job.key.name == "mine-1" and theirs.ticks[0][1].job.key.name == "other-1"


async def test_a_tick_held_by_a_dead_sidecar_is_delivered_by_another(
    sidecars: Callable[..., Awaitable[SchedulerService]],
) -> None:
    doomed = await sidecars(lease=1.0)
    started = asyncio.Event()

    async def hang(tick: Tick) -> Outcome:
        started.set()
        await asyncio.Event().wait()
        return Outcome.DONE

    doomed.deliver("job", hang)
    await doomed.schedule(_job(doomed, "held", due_time="0s", data=b"1"), overwrite=False)
    await asyncio.wait_for(started.wait(), 10)
    # The sidecar dies without a word: its loop stops and its claim stays in the store.
    doomed._closed = True
    doomed._loop.cancel()  # type: ignore[union-attr]
    for task in list(doomed._deliveries):
        task.cancel()
    keeper_gone = time.time()
    survivor = await sidecars()
    recorder = Recorder()
    survivor.deliver("job", recorder)
    await until(lambda: len(recorder.ticks) == 1)
    assert recorder.ticks[0][0] >= keeper_gone + 0.3  # only once the lease ended
    assert recorder.ticks[0][1].job.data == b"1"


async def test_a_sidecar_closing_mid_delivery_hands_the_tick_back(
    sidecars: Callable[..., Awaitable[SchedulerService]],
) -> None:
    leaving = await sidecars(lease=30.0)
    started = asyncio.Event()

    async def hang(tick: Tick) -> Outcome:
        started.set()
        await asyncio.Event().wait()
        return Outcome.DONE

    leaving.deliver("job", hang)
    await leaving.schedule(_job(leaving, "handed", due_time="0s", data=b"2"), overwrite=False)
    await asyncio.wait_for(started.wait(), 10)
    await leaving.close()
    staying = await sidecars()
    recorder = Recorder()
    staying.deliver("job", recorder)
    await until(lambda: len(recorder.ticks) == 1, within=10)  # long before the 30 s lease ends
    assert recorder.ticks[0][1].attempt == 2 and recorder.ticks[0][1].job.data == b"2"


async def test_the_loop_outlives_an_accept_that_raises(
    sidecars: Callable[..., Awaitable[SchedulerService]],
) -> None:
    service = await sidecars()
    recorder = Recorder()
    calls = 0

    def accept(key: JobKey) -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("placement is not ready")
        return True

    service.deliver("reminder", recorder, accept=accept)
    await service.schedule(Job(JobKey("reminder", service.app_id, "A||1||r"), due_time="0s"), overwrite=False)
    await until(lambda: len(recorder.ticks) == 1)


async def test_a_store_that_fails_a_listing_is_daprs_list_jobs_error(tmp_path: Path) -> None:
    """A store that cannot be read (closed here: no mock) answers 500 DAPR_SCHEDULER_LIST_JOBS, the
    reason daprd gives a failed ListJobs, and the gRPC door makes it INTERNAL."""
    from routers.grpc.errors import grpc_code
    from services.errors import ApiError
    from services.jobs import JobsService

    store = SQLiteSchedulerStore(str(tmp_path / "scheduler.db"))
    await store.open()
    await store.close()
    jobs = JobsService(SchedulerService(store, "app"), "app")
    with pytest.raises(ApiError) as failed:
        await jobs.list_jobs()
    assert (failed.value.status, failed.value.code) == (500, "DAPR_SCHEDULER_LIST_JOBS")
    assert failed.value.message.startswith("failed to list jobs due to: ")
    assert grpc_code(failed.value) == 13  # INTERNAL
