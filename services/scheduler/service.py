"""The scheduler of one sidecar (services/scheduler/base.py's ``Scheduler``) over a durable store.

One firing loop per sidecar: it lists the ticks of the kinds delivered here (for this app id) that
fall before the next poll, sleeps until the earliest (woken at once when a job is scheduled on this
sidecar), claims each due tick in the store (once across all sidecars sharing it) and delivers it
through the kind's handler, at most ``concurrency`` at a time. While a delivery runs its claim's
lease is renewed; a sidecar that dies leaves the lease to end, and another claims the tick again
(at least once). The outcome then settles the tick: the next tick (or the end of the job), a retry
per the failure policy, or the job's end (``Outcome.CANCEL``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import structlog

from components.errors import BackendError
from components.scheduler.base import Claim, SchedulerStore, StoredJob
from mesh.etcd_registry import EtcdRegistrySettings
from mesh.name_resolution import NameResolution
from mesh.redis_registry import RedisRegistrySettings
from services.scheduler import schedules
from services.scheduler.base import Deliver, Job, JobExists, JobKey, Outcome, Tick

log = structlog.get_logger(__name__)

POLL_INTERVAL = 0.5
"""How often the store is read for ticks that other sidecars scheduled."""
LEASE = 10.0
"""How long a claim holds a tick without renewal; a dead claimer's tick is claimed again after it."""
CONCURRENCY = 256
"""Deliveries running at once."""
CLAIM_BATCH = 100
"""Due ticks claimed in one store round trip."""
LISTING = 2000
LIST_PAGE = 500
"""Jobs read from the store in one round trip of a listing."""


def encode(job: Job, plan: schedules.Plan, created: float) -> bytes:
    return orjson.dumps(
        {
            "schedule": job.schedule,
            "dueTime": job.due_time,
            "repeats": job.repeats,
            "ttl": job.ttl,
            "data": None if job.data is None else base64.b64encode(job.data).decode(),
            "failurePolicy": job.failure_policy,
            "created": created,
            "expires": plan.expires,
        }
    )


def decode(kind: str, app_id: str, name: str, spec: bytes) -> Job:
    found: dict[str, Any] = orjson.loads(spec)
    data = found.get("data")
    expires, created = found.get("expires"), found.get("created")
    return Job(
        JobKey(kind, app_id, name),
        schedule=found.get("schedule"),
        due_time=found.get("dueTime"),
        repeats=found.get("repeats"),
        ttl=found.get("ttl"),
        data=None if data is None else base64.b64decode(data),
        failure_policy=found.get("failurePolicy"),
        created=None if created is None else datetime.fromtimestamp(created, UTC),
        expires=None if expires is None else datetime.fromtimestamp(expires, UTC),
    )


class SchedulerService:
    def __init__(
        self,
        store: SchedulerStore,
        app_id: str,
        *,
        poll_interval: float = POLL_INTERVAL,
        lease: float = LEASE,
        concurrency: int = CONCURRENCY,
    ) -> None:
        self.store = store
        self.app_id = app_id
        self._poll = poll_interval
        self._lease = lease
        self._slots = asyncio.Semaphore(concurrency)
        self._kinds: dict[str, tuple[Deliver, Callable[[JobKey], bool] | None]] = {}
        self._inflight: set[tuple[str, str]] = set()
        self._deliveries: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        self._offset = 0.0
        """The store's clock minus the local one."""
        self._backlog = False
        self._closed = False
        self._abandoned: list[Claim] = []
        """Claims whose delivery was cut off by close(): handed back so a restart need not wait
        for their leases."""
        self._sleep_until = 0.0
        """When the loop wakes next unless woken (the store's clock)."""

    @property
    def addresses(self) -> list[str]:
        return self.store.addresses

    async def start(self) -> None:
        await self.store.open()
        self._offset = await self.store.now() - time.time()
        self._loop = asyncio.create_task(self._run(), name="l8-scheduler")

    async def close(self) -> None:
        self._closed = True
        self._wake.set()
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        # A delivery cut off here is delivered again (at least once): its tick is handed back now,
        # or, if the store cannot be reached, claimed by whoever comes after its lease.
        for task in list(self._deliveries):
            task.cancel()
        if self._deliveries:
            await asyncio.gather(*self._deliveries, return_exceptions=True)
        abandoned, self._abandoned = self._abandoned, []
        for claim in abandoned:
            with contextlib.suppress(BackendError):
                await self.store.release(claim, self._now())
        await self.store.close()

    def _now(self) -> float:
        return time.time() + self._offset

    # -- the Scheduler contract --------------------------------------------------------------------

    async def schedule(self, job: Job, *, overwrite: bool) -> None:
        now = await self.store.now()
        plan = schedules.plan(job, now)
        created = job.created.timestamp() if job.created is not None else now
        stored = StoredJob(
            job.key.kind, job.key.app_id, job.key.name, encode(job, plan, created), plan.first, plan.first
        )
        if not await self.store.put(stored, overwrite=overwrite):
            raise JobExists(job.key.name)
        if job.key.kind in self._kinds and job.key.app_id == self.app_id:
            self._wake.set()

    async def get(self, key: JobKey) -> Job | None:
        found = await self.store.get(key.kind, key.app_id, key.name)
        return None if found is None else decode(key.kind, key.app_id, key.name, found.spec)

    async def delete(self, key: JobKey) -> bool:
        return await self.store.delete(key.kind, key.app_id, key.name)

    async def delete_prefix(self, kind: str, app_id: str, prefix: str) -> int:
        return await self.store.delete_prefix(kind, app_id, prefix)

    async def list_jobs(self, kind: str, app_id: str, prefix: str = "") -> list[Job]:
        found: dict[str, bytes] = {}
        cursor: str | None = None
        while True:
            page = await self.store.list_jobs(kind, app_id, prefix, cursor, LIST_PAGE)
            found.update((stored.name, stored.spec) for stored in page.jobs)  # Redis may give one twice
            if page.cursor is None:
                break
            cursor = page.cursor
        return [decode(kind, app_id, name, found[name]) for name in sorted(found)]

    def deliver(self, kind: str, handler: Deliver, accept: Callable[[JobKey], bool] | None = None) -> None:
        self._kinds[kind] = (handler, accept)
        self._wake.set()

    # -- the firing loop ---------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._closed:
            try:
                wait = await self._round()
            except BackendError as exc:
                log.warning("scheduler: the store failed, trying again", error=str(exc))
                wait = self._poll
            except Exception:  # a handler's accept() that raised: the loop must outlive it
                log.exception("scheduler: a round failed, trying again")
                wait = self._poll
            self._sleep_until = self._now() + wait
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can lose a cancellation that
            # arrives as the event is set, and the loop would outlive close().
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(wait, 0.0)):
                    await self._wake.wait()

    async def _round(self) -> float:
        """Start the deliveries of due ticks; how long to sleep before the next round."""
        self._wake.clear()
        self._offset = await self.store.now() - time.time()
        now = self._now()
        horizon = earliest = now + self._poll
        backlog = False
        for kind, (handler, accept) in list(self._kinds.items()):
            due: list[str] = []
            slots = await self.store.upcoming(kind, self.app_id, horizon, LISTING)
            backlog = backlog or len(slots) >= LISTING
            for slot in slots:
                if (kind, slot.name) in self._inflight:
                    continue
                if accept is not None and not accept(JobKey(kind, self.app_id, slot.name)):
                    continue
                if slot.ready <= now:
                    due.append(slot.name)
                else:
                    earliest = min(earliest, slot.ready)
            self._claim_due(kind, due, handler)
        self._backlog = backlog
        return earliest - self._now()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    def _claim_due(self, kind: str, names: list[str], handler: Deliver) -> None:
        """Claim due ticks in batches (one store round trip each) and deliver the ones won."""
        for start in range(0, len(names), CLAIM_BATCH):
            batch = names[start : start + CLAIM_BATCH]
            self._inflight.update((kind, name) for name in batch)
            self._spawn(self._claim_batch(kind, batch, handler))

    async def _claim_batch(self, kind: str, names: list[str], handler: Deliver) -> None:
        claims: list[Claim] = []
        try:
            claims = await self.store.claim_many(kind, self.app_id, names, uuid.uuid4().hex, self._lease)
        except BackendError as exc:
            log.warning("scheduler: due ticks were not claimed", kind=kind, count=len(names), error=str(exc))
        finally:
            won = {claim.job.name for claim in claims}
            for name in names:
                if name not in won:  # another sidecar took it, or it changed
                    self._inflight.discard((kind, name))
        for claim in claims:
            self._spawn(self._deliver(kind, claim, handler))

    async def _deliver(self, kind: str, claim: Claim, handler: Deliver) -> None:
        name = claim.job.name
        keeper = asyncio.create_task(self._keep(claim))  # from the claim on: waiting counts too
        try:
            job = decode(kind, self.app_id, name, claim.job.spec)
            if job.expires is not None and claim.job.due > job.expires.timestamp():
                await self.store.complete(claim, None)
                return
            async with self._slots:
                outcome = await self._run_handler(handler, claim, job)
            keeper.cancel()
            following = await self._settle(claim, job, outcome)
            if following is not None and following < self._sleep_until:
                self._wake.set()  # the loop sleeps past this job's next tick
        except asyncio.CancelledError:
            self._abandoned.append(claim)
            raise
        except BackendError as exc:
            log.warning("scheduler: a tick was not settled; it is claimed again after its lease",
                        kind=kind, job=name, error=str(exc))  # fmt: skip
        except Exception:  # a job that cannot be read back: logged, tried again after the lease
            log.exception(
                "scheduler: a tick failed; it is claimed again after its lease", kind=kind, job=name
            )
        finally:
            keeper.cancel()
            self._inflight.discard((kind, name))
            if self._backlog:
                self._wake.set()

    async def _run_handler(self, handler: Deliver, claim: Claim, job: Job) -> Outcome:
        tick = Tick(job, datetime.fromtimestamp(claim.job.due, UTC), claim.job.attempt)
        try:
            return await handler(tick)
        except Exception:
            log.exception("scheduler: the delivery failed", kind=job.key.kind, job=job.key.name)
            return Outcome.FAILED

    async def _keep(self, claim: Claim) -> None:
        """Renew the claim's lease while its delivery runs."""
        while True:
            await asyncio.sleep(self._lease / 3)
            try:
                if not await self.store.extend(claim, self._lease):
                    return
            except BackendError as exc:
                log.warning("scheduler: a claim was not renewed", job=claim.job.name, error=str(exc))

    async def _settle(self, claim: Claim, job: Job, outcome: Outcome) -> float | None:
        """Settle the claimed tick; when the job is ready next (None: it ended)."""
        stored = claim.job
        if outcome is Outcome.CANCEL:
            await self.store.complete(claim, None)
            return None
        if outcome is Outcome.FAILED:
            rule = schedules.retry_rule(job.failure_policy)
            if rule is not None and (rule.max_retries is None or stored.attempt <= rule.max_retries):
                retry_at = self._now() + rule.interval
                await self.store.release(claim, retry_at)
                return retry_at
            log.warning(
                "scheduler: a tick was given up", kind=job.key.kind, job=job.key.name, attempts=stored.attempt
            )
        following = schedules.next_tick(job, stored.due, stored.ticks + 1, self._now())
        await self.store.complete(claim, following)
        return following


def build_scheduler(name_resolution: NameResolution, data_dir: str | Path, app_id: str) -> SchedulerService:
    """The scheduler on the store of the ``name_resolution`` settings: their Redis or etcd (shared
    by every sidecar of the app id), else SQLite at ``<data_dir>/scheduler.db`` (one sidecar)."""
    store: SchedulerStore
    if isinstance(name_resolution, RedisRegistrySettings):
        from components.scheduler.redis import RedisSchedulerStore

        store = RedisSchedulerStore(name_resolution.redis)
    elif isinstance(name_resolution, EtcdRegistrySettings):
        from components.scheduler.etcd import EtcdSchedulerStore

        store = EtcdSchedulerStore(name_resolution.etcd)
    else:
        from components.scheduler.sqlite import SQLiteSchedulerStore

        store = SQLiteSchedulerStore(str(Path(data_dir) / "scheduler.db"))
    return SchedulerService(store, app_id)
