"""The distributed lock contract (Dapr's lock API, with the renewal Layotto only stubbed).

Resource ids reaching a store are *storage keys*: the runtime has applied the key prefix
(``lock||<app-id>||<resource>`` by default, as Dapr does) and refused ids containing ``||``.
Owners are opaque strings chosen by the caller, per request (a UUID, say): two owners never share a
lock, and an owner holds a resource at most once (no reentrancy: a second ``try_lock`` by the same
owner on a held resource returns ``False``).

Edge cases every backend honours (tests/conformance/test_lock_conformance.py proves them):

* ``try_lock`` never waits: ``True`` when this owner now holds the resource for
  ``expiry_seconds``, ``False`` when anyone (this owner included) holds it. Not acquiring is an
  outcome, not an error.
* Expiry is measured by the store (Redis's PX, an etcd lease, the process's monotonic clock for
  in-memory): once it has passed, the resource is free and any owner can take it.
* ``unlock`` and ``renew`` answer :class:`LockStatus`: ``SUCCESS``; ``LOCK_DOES_NOT_EXIST`` when
  nobody holds the resource (never locked, unlocked, or expired); ``LOCK_BELONGS_TO_OTHERS`` when
  another owner holds it (the lock is left untouched). ``renew`` sets the remaining time to
  ``expiry_seconds`` from now (it may shorten it).
* Every check-then-write is atomic in the store (a Lua script, an etcd transaction, a mutex), so
  under any number of concurrent contenders at most one owner holds a resource at any instant.
* A store failing (server away, timeout) raises :class:`~components.errors.BackendError`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol


class LockStatus(enum.IntEnum):
    """Dapr's UnlockResponse.Status (numeric on the wire), also the answer to a renewal."""

    SUCCESS = 0
    LOCK_DOES_NOT_EXIST = 1
    LOCK_BELONGS_TO_OTHERS = 2
    INTERNAL_ERROR = 3


class Feature(enum.StrEnum):
    """Optional capabilities, reported in GET /v1.0/metadata."""


@dataclass(slots=True, frozen=True)
class TryLockRequest:
    resource_id: str
    owner: str
    expiry_seconds: int
    """Positive (the runtime refuses anything else)."""


@dataclass(slots=True, frozen=True)
class UnlockRequest:
    resource_id: str
    owner: str


@dataclass(slots=True, frozen=True)
class RenewRequest:
    resource_id: str
    owner: str
    expiry_seconds: int


class LockStore(Protocol):
    async def init(self, metadata: Mapping[str, str]) -> None:
        """Decode the component metadata (raising MetadataError naming the field) and connect
        (raising ComponentInitError when the server cannot be used)."""

    def features(self) -> frozenset[Feature]: ...

    async def try_lock(self, request: TryLockRequest) -> bool: ...

    async def unlock(self, request: UnlockRequest) -> LockStatus: ...

    async def renew(self, request: RenewRequest) -> LockStatus: ...

    async def close(self) -> None:
        """Release every resource (locks held are left to expire). Idempotent."""
