"""lock.in-memory: locks in a dict of this process, for tests and single-sidecar development.

Each held resource maps to its owner and a deadline on the monotonic clock (wall-clock jumps
neither free nor prolong a lock). An expired entry counts as absent the moment its deadline passes;
entries are dropped lazily, when next touched or by a sweep every few thousand acquisitions, so a
stream of never-unlocked resources cannot grow the dict without bound.

Every operation is synchronous between two awaits, so on one event loop the check-then-write is
atomic without a mutex. Locks are private to the component instance: two sidecars (or two
components) never see each other's locks.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from components.lock.base import Feature, LockStatus, RenewRequest, TryLockRequest, UnlockRequest

_SWEEP_EVERY = 4096
"""Acquisitions between two sweeps of expired entries."""


@dataclass(slots=True)
class _Hold:
    owner: str
    deadline: float
    """time.monotonic() after which the resource is free."""


class InMemoryLockStore:
    def __init__(self) -> None:
        self._holds: dict[str, _Hold] = {}
        self._acquisitions = 0

    async def init(self, metadata: Mapping[str, str]) -> None:
        """Nothing to decode: this store has no metadata (unknown fields are ignored, as in Dapr)."""

    def features(self) -> frozenset[Feature]:
        return frozenset()

    def _current(self, resource_id: str, now: float) -> _Hold | None:
        hold = self._holds.get(resource_id)
        if hold is not None and hold.deadline <= now:
            del self._holds[resource_id]
            return None
        return hold

    async def try_lock(self, request: TryLockRequest) -> bool:
        now = time.monotonic()
        if self._current(request.resource_id, now) is not None:
            return False  # held, by this owner too: locks are not reentrant
        self._holds[request.resource_id] = _Hold(request.owner, now + request.expiry_seconds)
        self._acquisitions += 1
        if self._acquisitions % _SWEEP_EVERY == 0:
            self._sweep(now)
        return True

    async def unlock(self, request: UnlockRequest) -> LockStatus:
        status = self._check(request.resource_id, request.owner)
        if status is LockStatus.SUCCESS:
            del self._holds[request.resource_id]
        return status

    async def renew(self, request: RenewRequest) -> LockStatus:
        status = self._check(request.resource_id, request.owner)
        if status is LockStatus.SUCCESS:
            self._holds[request.resource_id].deadline = time.monotonic() + request.expiry_seconds
        return status

    def _check(self, resource_id: str, owner: str) -> LockStatus:
        hold = self._current(resource_id, time.monotonic())
        if hold is None:
            return LockStatus.LOCK_DOES_NOT_EXIST
        if hold.owner != owner:
            return LockStatus.LOCK_BELONGS_TO_OTHERS
        return LockStatus.SUCCESS

    def _sweep(self, now: float) -> None:
        expired = [resource for resource, hold in self._holds.items() if hold.deadline <= now]
        for resource in expired:
            del self._holds[resource]

    async def close(self) -> None:
        self._holds.clear()
