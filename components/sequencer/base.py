"""The sequencer contract: ids per key that are unique and increasing, shared by every sidecar
using the same store (Layotto's sequencer API).

Keys reaching a store are *storage keys*: the runtime has applied the key prefix
(``sequencer||<app-id>||<key>`` by default) and refused keys containing ``||``.

One operation serves both of the API's modes: :meth:`Sequencer.allocate` reserves a block of
``count`` consecutive ids and returns its last. STRONG ids are blocks of one; WEAK ids are served by
the runtime from a block reserved ahead of need (services/sequencer.py), so the store is off
the hot path.

Edge cases every backend honours (tests/conformance/test_sequencer_conformance.py proves them):

* The first id of a key never seen is 1 (a block of ``count`` starts at 1).
* Every block is strictly above every block handed out before for the same key, by any process
  sharing the store, however many allocate at once (an atomic INCRBY, a compare-and-swap
  transaction, one SQL transaction).
* Durable stores (SQLite, Redis with persistence, etcd) never hand out an id twice across a
  restart, ``kill -9`` included: a block is committed before it is returned.
* :meth:`Sequencer.ensure_above` (component metadata ``biggerThan.<key>: N``) makes every later id
  of the key greater than N; it never lowers a counter.
* A store failing raises :class:`~components.errors.BackendError`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Protocol


class Feature(enum.StrEnum):
    """Optional capabilities, reported in GET /v1.0/metadata."""


class Sequencer(Protocol):
    async def init(self, metadata: Mapping[str, str]) -> None:
        """Decode the component metadata (raising MetadataError naming the field) and connect
        (raising ComponentInitError when the server cannot be used)."""

    def features(self) -> frozenset[Feature]: ...

    async def allocate(self, key: str, count: int) -> int:
        """Reserve ``count`` (>= 1) consecutive ids of ``key`` and return the last one: the block is
        ``last - count + 1 .. last``."""

    async def ensure_above(self, key: str, floor: int) -> None:
        """After this returns, every id allocated for ``key`` is greater than ``floor``."""

    async def close(self) -> None:
        """Release every resource. Idempotent."""
