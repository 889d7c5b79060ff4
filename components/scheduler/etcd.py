"""The scheduler's store in etcd: every sidecar of an app id shares it (``name_resolution: etcd``).

One key per job, ``<prefix><kind>/<app id>/<name>`` (the prefix defaults to ``/l8/sched/``), whose
value is a JSON line of the tick state (``due ready attempt ticks token``) followed by the job's
spec. Every check-then-write is a transaction that compares the key's ``mod_revision`` with the one
just read, so of many sidecars claiming one tick exactly one transaction succeeds; a write that lost
the race reads again. etcd has no clock to offer: times are the local clock's (hosts kept in step).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import orjson
from aetcd.utils import prefix_range_end

from components.errors import BackendError
from components.etcd_connection import ETCD_ERRORS, EtcdConnection, EtcdConnectionMetadata, range_page
from components.scheduler.base import Claim, Page, Slot, StoredJob

ROUNDS = 20
"""Writes of one job racing a token-guarded update; beyond this, BackendError."""


def _encode(job: StoredJob) -> bytes:
    state = {
        "due": job.due,
        "ready": job.ready,
        "attempt": job.attempt,
        "ticks": job.ticks,
        "token": job.token,
    }
    return orjson.dumps(state) + b"\n" + job.spec


def _state(value: bytes) -> dict[str, Any]:
    head, _, _ = value.partition(b"\n")
    found: dict[str, Any] = orjson.loads(head)
    return found


def _decode(kind: str, app_id: str, name: str, value: bytes) -> StoredJob:
    head, _, spec = value.partition(b"\n")
    state = orjson.loads(head)
    due, ready, attempt = float(state["due"]), float(state["ready"]), int(state["attempt"])
    return StoredJob(kind, app_id, name, spec, due, ready, attempt, int(state["ticks"]), str(state["token"]))


class EtcdSchedulerStore:
    def __init__(self, settings: EtcdConnectionMetadata, prefix: str = "/l8/sched/") -> None:
        self._settings = settings
        self._prefix = prefix
        self._etcd = EtcdConnection("etcd scheduler store")

    @property
    def addresses(self) -> list[str]:
        return [f"{host}:{port}" for host, port in self._settings.addresses]

    async def open(self) -> None:
        await self._etcd.open(self._settings)

    def _live(self) -> Any:
        return self._etcd.client

    def _scope(self, kind: str, app_id: str) -> bytes:
        return f"{self._prefix}{kind}/{app_id}/".encode()

    def _key(self, kind: str, app_id: str, name: str) -> bytes:
        return self._scope(kind, app_id) + name.encode()

    async def now(self) -> float:
        return time.time()

    async def put(self, job: StoredJob, *, overwrite: bool) -> bool:
        client, key = self._live(), self._key(job.kind, job.app_id, job.name)
        fresh = _encode(
            StoredJob(job.kind, job.app_id, job.name, job.spec, job.due, job.ready, job.attempt, job.ticks)
        )
        with ETCD_ERRORS:
            if overwrite:
                await client.put(key, fresh)
                return True
            tx = client.transactions
            written, _ = await client.transaction(compare=[tx.create(key) == 0], success=[tx.put(key, fresh)],
                                                  failure=[])  # fmt: skip
        return bool(written)

    async def get(self, kind: str, app_id: str, name: str) -> StoredJob | None:
        with ETCD_ERRORS:
            kv = await self._live().get(self._key(kind, app_id, name))
        return None if kv is None else _decode(kind, app_id, name, kv.value)

    async def delete(self, kind: str, app_id: str, name: str) -> bool:
        with ETCD_ERRORS:
            found = await self._live().delete(self._key(kind, app_id, name))
        return bool(found and found.deleted)

    async def delete_prefix(self, kind: str, app_id: str, prefix: str) -> int:
        with ETCD_ERRORS:
            found = await self._live().delete_prefix(self._key(kind, app_id, prefix))
        return int(found.deleted)

    async def list_jobs(self, kind: str, app_id: str, prefix: str, cursor: str | None, limit: int) -> Page:
        """A key range in key order (the names' byte order) with etcd's limit; the cursor is the last
        name given, and the next page starts just after its key."""
        scope = self._scope(kind, app_id)
        first = scope + prefix.encode()
        start = first if cursor is None else scope + cursor.encode() + b"\0"
        # aetcd's range end does not shorten a trailing 0xff byte, which UTF-8 names never hold
        with ETCD_ERRORS:
            found, more = await range_page(self._live(), start, prefix_range_end(first), limit)
        jobs = [_decode(kind, app_id, kv.key[len(scope) :].decode(), kv.value) for kv in found]
        return Page(jobs, jobs[-1].name if more and jobs else None)

    async def upcoming(self, kind: str, app_id: str, until: float, limit: int) -> list[Slot]:
        scope = self._scope(kind, app_id)
        with ETCD_ERRORS:
            found = await self._live().get_prefix(scope)
        slots = []
        for kv in found:
            ready = float(_state(kv.value)["ready"])
            if ready <= until:
                slots.append(Slot(kv.key[len(scope) :].decode(), ready))
        slots.sort(key=lambda slot: slot.ready)
        return slots[:limit]

    async def _swap(self, key: bytes, kv: Any, value: bytes) -> bool:
        """Write ``value`` if the key is still at the revision ``kv`` was read at."""
        tx = self._live().transactions
        swapped, _ = await self._live().transaction(compare=[tx.mod(key) == kv.mod_revision],
                                                    success=[tx.put(key, value)], failure=[])  # fmt: skip
        return bool(swapped)

    async def claim(self, kind: str, app_id: str, name: str, token: str, lease: float) -> Claim | None:
        key = self._key(kind, app_id, name)
        with ETCD_ERRORS:
            kv = await self._live().get(key)
            if kv is None:
                return None
            job = _decode(kind, app_id, name, kv.value)
            now = time.time()
            if job.ready > now:
                return None
            claimed = StoredJob(
                kind, app_id, name, job.spec, job.due, now + lease, job.attempt, job.ticks, token
            )
            if not await self._swap(key, kv, _encode(claimed)):
                return None  # someone else wrote it first: their claim, or a new version of the job
        return Claim(claimed, now)

    async def claim_many(
        self, kind: str, app_id: str, names: list[str], token: str, lease: float
    ) -> list[Claim]:
        found = await asyncio.gather(*(self.claim(kind, app_id, name, token, lease) for name in names))
        return [claim for claim in found if claim is not None]

    async def _update(self, claim: Claim, change: Any) -> bool:
        """Apply ``change(stored) -> StoredJob | None`` (None: delete) while the claim's token holds."""
        job = claim.job
        key, client = self._key(job.kind, job.app_id, job.name), self._live()
        tx = client.transactions
        with ETCD_ERRORS:
            for _ in range(ROUNDS):
                kv = await client.get(key)
                if kv is None:
                    return False
                stored = _decode(job.kind, job.app_id, job.name, kv.value)
                if stored.token != job.token:
                    return False
                changed = change(stored)
                action = tx.delete(key) if changed is None else tx.put(key, _encode(changed))
                done, _ = await client.transaction(compare=[tx.mod(key) == kv.mod_revision], success=[action],
                                                   failure=[])  # fmt: skip
                if done:
                    return True
        raise BackendError(f"etcd: gave up updating {key!r} after {ROUNDS} concurrent writes")

    async def extend(self, claim: Claim, lease: float) -> bool:
        def hold(job: StoredJob) -> StoredJob:
            return dataclasses.replace(job, ready=time.time() + lease)

        return await self._update(claim, hold)

    async def complete(self, claim: Claim, next_due: float | None) -> bool:
        def finish(job: StoredJob) -> StoredJob | None:
            if next_due is None:
                return None
            return StoredJob(job.kind, job.app_id, job.name, job.spec, next_due, next_due, 1, job.ticks + 1)

        return await self._update(claim, finish)

    async def release(self, claim: Claim, retry_at: float) -> bool:
        def retry(job: StoredJob) -> StoredJob:
            return StoredJob(
                job.kind, job.app_id, job.name, job.spec, job.due, retry_at, job.attempt + 1, job.ticks
            )

        return await self._update(claim, retry)

    async def ping(self) -> None:
        await self._etcd.ping()

    async def close(self) -> None:
        await self._etcd.close()
