"""The state store contract.

Keys reaching a store are *storage keys*: the runtime has already applied the component's key
prefix strategy (``appid||key`` by default) and rejected keys containing ``||``. Values are the JSON
text of the user's value, as bytes; stores keep them verbatim.

Edge cases every backend honours (the conformance suite in tests/conformance proves them):

* A missing or expired key reads as ``None``; deleting a missing key succeeds.
* An ETag is an opaque string, new on every successful write. A write or delete that carries an
  ETag succeeds only when it equals the stored one (a missing key never matches);
  ``first-write`` without an ETag fails when the key already exists. Both failures raise
  :class:`~components.errors.ETagMismatchError`; an ETag the store could never have produced may
  raise :class:`~components.errors.ETagInvalidError` instead.
* ``ttl`` is in seconds: a positive number expires the key that long after the write; ``None``,
  ``0`` and ``-1`` mean never (a write without a TTL clears any earlier expiry, as SQL stores and
  Redis SET do).
* ``bulk_set`` is not atomic; ``transact`` (stores declaring ``Feature.TRANSACTIONAL``) is: every
  ETag is checked before anything is written, and one failure leaves every key untouched.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from components.state.query import Query

_NO_METADATA: Mapping[str, str] = {}


class Feature(enum.StrEnum):
    """Optional capabilities, reported in GET /v1.0/metadata under Dapr's names."""

    ETAG = "ETAG"
    TRANSACTIONAL = "TRANSACTIONAL"
    QUERY_API = "QUERY_API"
    TTL = "TTL"


class Concurrency(enum.StrEnum):
    FIRST_WRITE = "first-write"
    LAST_WRITE = "last-write"


class Consistency(enum.StrEnum):
    EVENTUAL = "eventual"
    STRONG = "strong"


@dataclass(slots=True, frozen=True)
class GetRequest:
    key: str
    consistency: Consistency = Consistency.EVENTUAL
    metadata: Mapping[str, str] = field(default_factory=lambda: _NO_METADATA)


@dataclass(slots=True, frozen=True)
class SetRequest:
    key: str
    value: bytes
    etag: str | None = None
    ttl: int | None = None
    concurrency: Concurrency = Concurrency.LAST_WRITE
    consistency: Consistency = Consistency.EVENTUAL
    metadata: Mapping[str, str] = field(default_factory=lambda: _NO_METADATA)


@dataclass(slots=True, frozen=True)
class DeleteRequest:
    key: str
    etag: str | None = None
    concurrency: Concurrency = Concurrency.LAST_WRITE
    consistency: Consistency = Consistency.EVENTUAL
    metadata: Mapping[str, str] = field(default_factory=lambda: _NO_METADATA)


@dataclass(slots=True, frozen=True)
class StateItem:
    """A stored value as read back."""

    value: bytes
    etag: str | None
    expires_at: datetime | None = None


@dataclass(slots=True, frozen=True)
class QueryRequest:
    query: Query
    key_prefix: str
    """Only storage keys starting with this are searched ("" searches every key)."""
    metadata: Mapping[str, str] = field(default_factory=lambda: _NO_METADATA)


@dataclass(slots=True, frozen=True)
class QueryItem:
    key: str
    value: bytes
    etag: str | None


@dataclass(slots=True, frozen=True)
class QueryResponse:
    results: list[QueryItem]
    token: str | None = None
    """Pass back as ``page.token`` for the next page; ``None`` when there is no more."""


TransactionOperation = SetRequest | DeleteRequest


class StateStore(Protocol):
    """What every state backend provides."""

    async def init(self, metadata: Mapping[str, str]) -> None:
        """Decode the component metadata (raising MetadataError naming the field) and connect."""

    def features(self) -> frozenset[Feature]: ...

    async def get(self, request: GetRequest) -> StateItem | None: ...

    async def bulk_get(self, requests: Sequence[GetRequest]) -> list[StateItem | None]:
        """One answer per request, in order."""

    async def set(self, request: SetRequest) -> None: ...

    async def bulk_set(self, requests: Sequence[SetRequest]) -> None:
        """Not atomic: items before a failing one may be written. Raises the first failure."""

    async def delete(self, request: DeleteRequest) -> None: ...

    async def close(self) -> None:
        """Release every resource. Idempotent."""


class TransactionalStore(StateStore, Protocol):
    """Stores declaring Feature.TRANSACTIONAL."""

    async def transact(self, operations: Sequence[TransactionOperation], metadata: Mapping[str, str]) -> None:
        """Apply every operation or none (see the module docstring)."""


class QueryableStore(StateStore, Protocol):
    """Stores declaring Feature.QUERY_API."""

    async def query(self, request: QueryRequest) -> QueryResponse:
        """Raises QueryError for a filter the store cannot run."""
