"""The scheduler's durable store: jobs with their next tick, claimed atomically by one sidecar.

The store knows nothing of schedules: the scheduler service (services/scheduler/) computes every
tick's time and hands it over; the store keeps, per job, an opaque ``spec`` (the job as the service
encodes it) and the state of its current tick, and makes every check-then-write atomic, so that many
sidecars sharing one store agree on who delivers a tick.

A job's current tick:

* ``due``: the tick's scheduled time (seconds since the epoch);
* ``ready``: when the tick may be claimed: ``due`` at first, a retry's time after a failed
  delivery, or the end of a claim's lease while a sidecar delivers it;
* ``attempt``: 1 for the first delivery of the tick, one more for each retry;
* ``ticks``: how many ticks of the job were delivered (for ``repeats``);
* ``token``: who holds the current claim ("" when nobody does).

Edge cases every backend honours (tests/conformance/test_scheduler_conformance.py):

* ``put(overwrite=False)`` of an existing job writes nothing and answers False; ``overwrite=True``
  replaces the job and its tick state (a claim on the old one can no longer complete or release it).
* ``claim`` succeeds for exactly one caller while ``ready <= now``: the winner's token is stored and
  ``ready`` moves to ``now + lease``, so the tick is claimed again by anyone once the lease ends
  without an outcome (the claimer died: at-least-once delivery).
* ``complete``, ``release`` and ``extend`` act only while the caller's token is the job's token; they
  answer False otherwise (the lease ended and another sidecar claimed the tick, or the job was
  deleted or overwritten). ``complete(next_due=None)`` ends the job (deleted).
* ``now()`` is the store's own clock where it has one (Redis ``TIME``), so that sidecars whose
  clocks differ agree on when a tick is due and when a lease ends; SQLite and etcd use the local
  clock (one host, or hosts kept in step by NTP).
* Names are any strings (``||`` and ``/`` included); ``delete_prefix`` and ``list_jobs`` match the
  name's start, byte for byte (``a`` does not match ``A``, and the prefix ``a`` matches ``ab``).
* ``list_jobs`` reads a (kind, app id) a page at a time, so that a store of 100k jobs is never read
  into one answer: each page holds about ``limit`` jobs (Redis's ``ZSCAN`` takes the count as a
  hint: a page may hold more, or none while the cursor goes on) and the cursor of the next one. A job
  present for the whole listing appears in it at least once (Redis may give one twice); one put or
  deleted meanwhile may or may not. Pages come in no particular order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(slots=True, frozen=True)
class StoredJob:
    kind: str
    app_id: str
    name: str
    spec: bytes
    """The job as the scheduler service encodes it (opaque to the store)."""
    due: float
    ready: float
    attempt: int = 1
    ticks: int = 0
    token: str = ""


@dataclass(slots=True, frozen=True)
class Slot:
    """A job's next moment of interest in a listing: when its tick may be claimed."""

    name: str
    ready: float


@dataclass(slots=True, frozen=True)
class Page:
    """One page of a listing."""

    jobs: list[StoredJob]
    cursor: str | None
    """Where the next page starts (opaque); None when this page is the last."""


@dataclass(slots=True, frozen=True)
class Claim:
    job: StoredJob
    """The job as claimed (its ``token`` is the claimer's)."""
    now: float
    """The store's time of the claim."""


class SchedulerStore(Protocol):
    @property
    def addresses(self) -> list[str]:
        """Where the store is (for the metadata API's ``scheduler.connected_addresses``)."""

    async def open(self) -> None:
        """Connect and prepare (tables, scripts); raises ComponentInitError when unusable."""

    async def now(self) -> float:
        """The store's clock, in seconds since the epoch."""

    async def put(self, job: StoredJob, *, overwrite: bool) -> bool:
        """Store ``job`` (its ``token`` ignored: a new job is unclaimed); False, and nothing written,
        when one of its key exists and not ``overwrite``."""

    async def get(self, kind: str, app_id: str, name: str) -> StoredJob | None: ...

    async def delete(self, kind: str, app_id: str, name: str) -> bool:
        """False when there was none."""

    async def delete_prefix(self, kind: str, app_id: str, prefix: str) -> int:
        """Delete the jobs whose name starts with ``prefix``; how many there were."""

    async def list_jobs(self, kind: str, app_id: str, prefix: str, cursor: str | None, limit: int) -> Page:
        """A page of the jobs of (kind, app id) whose name starts with ``prefix``, from ``cursor``
        (None: the first page)."""

    async def upcoming(self, kind: str, app_id: str, until: float, limit: int) -> list[Slot]:
        """Jobs of (kind, app id) whose ``ready`` is at or before ``until``, earliest first, at most
        ``limit`` (claimed ones appear at their lease's end)."""

    async def claim(self, kind: str, app_id: str, name: str, token: str, lease: float) -> Claim | None:
        """Claim the job's current tick for ``lease`` seconds; None when it is not ready (not due,
        claimed by someone, or gone)."""

    async def claim_many(
        self, kind: str, app_id: str, names: list[str], token: str, lease: float
    ) -> list[Claim]:
        """:meth:`claim` of several jobs in one round trip where the store allows it: the claims
        that succeeded, in any order (each one atomic on its own)."""

    async def extend(self, claim: Claim, lease: float) -> bool:
        """Keep holding a claimed tick ``lease`` seconds more from now (a long delivery)."""

    async def complete(self, claim: Claim, next_due: float | None) -> bool:
        """The claimed tick is delivered (or given up): count it and move to the tick at
        ``next_due`` (attempt 1, unclaimed), or delete the job when None."""

    async def release(self, claim: Claim, retry_at: float) -> bool:
        """The delivery failed: the same tick is ready again at ``retry_at``, attempt one more."""

    async def close(self) -> None:
        """Idempotent."""
