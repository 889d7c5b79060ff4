"""sequencer.in-memory: one counter per key in the sidecar's process.

Nothing survives a restart and nothing is shared with another sidecar, so ids start again at 1
after a restart: meant for tests and for single-process apps that only need ids unique for the
life of the process. Every operation runs without an ``await`` in between its read and its write,
so the event loop makes it atomic without a lock.
"""

from __future__ import annotations

from collections.abc import Mapping

from components.errors import BackendError
from components.sequencer.base import Feature

MAX_ID = 2**63 - 1
"""Ids are int64, as in Layotto's API (and Redis's INCRBY)."""


class InMemorySequencer:
    def __init__(self) -> None:
        self._last_ids: dict[str, int] | None = None

    async def init(self, metadata: Mapping[str, str]) -> None:
        # No metadata of its own; unknown fields are ignored, as in Dapr.
        self._last_ids = {}

    def features(self) -> frozenset[Feature]:
        return frozenset()

    def _counters(self) -> dict[str, int]:
        if self._last_ids is None:
            raise BackendError("in-memory sequencer is not initialised or already closed")
        return self._last_ids

    async def allocate(self, key: str, count: int) -> int:
        if count < 1:
            raise ValueError(f"a block holds at least one id, not {count}")
        counters = self._counters()
        last = counters.get(key, 0) + count
        if last > MAX_ID:
            raise BackendError(f"sequence {key!r} is exhausted: ids are 64-bit integers")
        counters[key] = last
        return last

    async def ensure_above(self, key: str, floor: int) -> None:
        if floor > MAX_ID:
            raise ValueError(f"{floor} is above the largest id, {MAX_ID}")
        counters = self._counters()
        if counters.get(key, 0) < floor:
            counters[key] = floor

    async def close(self) -> None:
        self._last_ids = None
