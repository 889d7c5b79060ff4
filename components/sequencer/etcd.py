"""sequencer.etcd: one etcd key per counter, updated by compare-and-swap transactions.

Storage: the key ``<keyPrefixPath><storage key>`` (``keyPrefixPath`` defaults to
``/l8/sequencer/``) holds the last id handed out, in decimal ASCII (``b"42"``); a missing key means
0. Deleting the key restarts its ids at 1.

An update reads the key with its ``mod_revision`` and writes the new value in a transaction that
succeeds only if the key was not modified since (etcd compares a missing key's revisions as 0, so
the same guard creates it exactly once). Both branches of the transaction end by reading the key,
so a lost race costs one round trip, not two. Callers of one component updating the same key take
turns (they could not all win anyway), each starting from the key as the one before it left it, so
races are only between sidecars: there a lost round is retried at once, later ones after a short,
random backoff that spreads contenders out, and after :data:`MAX_ROUNDS` the update gives up with
BackendError. A block is returned only once etcd committed it (to a quorum), so ids are not
repeated across restarts of a sidecar or of an etcd member.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import field_validator

from components.errors import BackendError
from components.etcd_connection import ETCD_ERRORS, EtcdConnection, EtcdConnectionMetadata
from components.metadata import decode, metadata_error
from components.sequencer.base import Feature

MAX_ID = 2**63 - 1
"""Ids are int64, as in Layotto's API and the other sequencers."""

MAX_ROUNDS = 100
"""Lost compare-and-swap rounds before an update gives up."""
# Measured with 20 sidecars taking single ids from one key: a 50 ms cap let ~0.5% of the callers
# lose 100 rounds in a row (a fresh caller never waits, a backed-off one keeps losing to them);
# with these none did, and two contenders still mostly retry at once.
_ROUNDS_BEFORE_BACKOFF = 1
_BACKOFF_BASE = 0.005
_BACKOFF_CAP = 0.2


class EtcdSequencerMetadata(EtcdConnectionMetadata):
    keyPrefixPath: str = "/l8/sequencer/"

    @field_validator("keyPrefixPath")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        # Without a prefix the counters would mix with every other key of the cluster.
        if not value.strip():
            raise metadata_error("must not be empty (the default is /l8/sequencer/)")
        return value


def _counter(name: bytes, kv: Any) -> tuple[int, int]:
    """(last id, mod_revision) of a key as read from etcd, or (0, 0) when it is missing."""
    if kv is None:
        return 0, 0
    try:
        return int(kv.value.decode("ascii")), int(kv.mod_revision)
    except (UnicodeDecodeError, ValueError):
        raise BackendError(f"etcd key {name!r} holds {kv.value[:40]!r}, not a decimal counter") from None


_UNREAD: Any = object()


@dataclass(slots=True)
class _Turns:
    """The callers of one component updating one key, queued on ``lock``."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    callers: int = 0
    seen: Any = _UNREAD
    """The key as the last caller left it (an etcd KeyValue, None when missing): the next caller's
    guess, which saves it a read; a stale guess only costs a lost round."""


class EtcdSequencer:
    def __init__(self) -> None:
        self._etcd = EtcdConnection("etcd sequencer")
        self._prefix = b"/l8/sequencer/"
        self._turns: dict[str, _Turns] = {}

    async def init(self, metadata: Mapping[str, str]) -> None:
        settings = decode(EtcdSequencerMetadata, metadata)
        self._prefix = settings.keyPrefixPath.encode()
        await self._etcd.open(settings)

    def features(self) -> frozenset[Feature]:
        return frozenset()

    async def allocate(self, key: str, count: int) -> int:
        if count < 1:
            raise ValueError(f"a block holds at least one id, not {count}")

        def add(last: int) -> int:
            if last > MAX_ID - count:
                raise BackendError(f"sequence {key!r} is exhausted: ids are 64-bit integers")
            return last + count

        return await self._update(key, add)

    async def ensure_above(self, key: str, floor: int) -> None:
        if floor > MAX_ID:
            raise ValueError(f"{floor} is above the largest id, {MAX_ID}")
        if floor > 0:  # every id is already above 0 or less
            await self._update(key, lambda last: floor if last < floor else None)

    @contextlib.asynccontextmanager
    async def _turn(self, key: str) -> AsyncIterator[_Turns]:
        """One update of ``key`` at a time in this component, in arrival order: concurrent callers
        queue instead of failing each other's compare-and-swap. The lock lives while it has callers."""
        turns = self._turns.get(key)
        if turns is None:
            turns = self._turns[key] = _Turns()
        turns.callers += 1
        try:
            async with turns.lock:
                yield turns
        finally:
            turns.callers -= 1
            if not turns.callers:
                del self._turns[key]

    async def _update(self, key: str, update: Callable[[int], int | None]) -> int:
        client = self._etcd.client
        async with self._turn(key) as turns:
            with ETCD_ERRORS:
                value, turns.seen = await _compare_and_swap(
                    client, self._prefix + key.encode(), update, turns.seen
                )
            return value

    async def ping(self) -> None:
        """Health: the status of the etcd member (components/health.py)."""
        await self._etcd.ping()

    async def close(self) -> None:
        await self._etcd.close()


async def _compare_and_swap(
    client: Any, name: bytes, update: Callable[[int], int | None], guess: Any
) -> tuple[int, Any]:
    """Apply ``update`` (last id -> new last id, or None for no write) to the counter ``name``
    atomically, starting from ``guess`` of its KeyValue (``_UNREAD``: read it first). The counter's
    value afterwards, and its KeyValue as etcd holds it then."""
    tx = client.transactions
    kv = await client.get(name) if guess is _UNREAD else guess
    for round_ in range(MAX_ROUNDS):
        last, revision = _counter(name, kv)
        new = update(last)
        if new is None:
            return last, kv
        succeeded, responses = await client.transaction(
            compare=[tx.mod(name) == revision],
            success=[tx.put(name, str(new).encode()), tx.get(name)],
            failure=[tx.get(name)],
        )
        # Both branches end with a read of the key: [(value, kv)], empty if the key is gone.
        found = responses[-1]
        kv = found[0][1] if found else None
        if succeeded:
            return new, kv
        if round_ >= _ROUNDS_BEFORE_BACKOFF:
            ceiling = _BACKOFF_BASE * 2 ** (round_ - _ROUNDS_BEFORE_BACKOFF)
            await asyncio.sleep(random.uniform(0, min(_BACKOFF_CAP, ceiling)))
    raise BackendError(f"etcd: gave up updating {name!r} after {MAX_ROUNDS} rounds lost to other writers")
