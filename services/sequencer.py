"""The sequencer building block (Layotto's GetNextId over HTTP): STRONG ids straight from the store,
WEAK ids from a block the sidecar reserved ahead of need.

WEAK, the default as in Layotto, is unique and trend-increasing: each sidecar serves ids from a
block of ``segmentStep`` ids (component metadata, default 50; Layotto documents the field but always
uses 10,000) and reserves the next block in the background once a fifth of the current one is left
(the double buffer of Meituan's Leaf), so the store is off the hot path. Ids from several sidecars
interleave, and the unused rest of a block is skipped at a restart: gaps, never repeats. With
``segmentCacheEnable: false`` WEAK ids come from the store as STRONG ones do. STRONG ids wanted at
the same moment share one reservation (:class:`_StrongIds`).

Keys become ``sequencer||<prefix>||<key>`` (``keyPrefix`` metadata as for locks). Component metadata
``biggerThan.<key>: N`` makes every id of ``<key>`` greater than N, applied at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from components.errors import BackendError, ComponentError, MetadataError
from components.key_prefix import SEPARATOR, KeyPrefix
from components.loaded import LoadedComponent
from components.metadata import parse_bool
from components.sequencer.base import Sequencer
from mesh.resiliency import NO_POLICY, Outbound, OutboundFor, no_policy
from services import errors, protojson
from services.lock import api_key

log = structlog.get_logger(__name__)

INCREMENTS = ("WEAK", "STRONG")
DEFAULT_SEGMENT_STEP = 50
MAX_BUFFERED_KEYS = 10_000
"""Keys come from requests: past this many, the least recently used key's block is dropped (its
ids are skipped, as at a restart)."""
MAX_STRONG_BATCH = 1000
_INT64_MAX = 2**63 - 1
_WHOLE = re.compile(r"[0-9]+")
_INTEGER = re.compile(r"-?[0-9]+")


@dataclass(slots=True, frozen=True)
class SequencerOptions:
    """What a sequencer component's metadata asks of the runtime."""

    segment_step: int = DEFAULT_SEGMENT_STEP
    segments: bool = True
    bigger_than: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str]) -> SequencerOptions:
        step, segments, floors = DEFAULT_SEGMENT_STEP, True, {}
        for name, value in metadata.items():
            lowered = name.lower()
            if lowered == "segmentstep":
                if not _WHOLE.fullmatch(value.strip()) or not 1 <= int(value) <= 1_000_000:
                    raise MetadataError(name, f"{value!r} is not a whole number from 1 to 1000000")
                step = int(value)
            elif lowered == "segmentcacheenable":
                try:
                    segments = parse_bool(value)
                except ValueError as exc:
                    raise MetadataError(name, str(exc)) from None
            elif lowered.startswith("biggerthan."):
                key = name[len("biggerThan.") :]
                text = value.strip()
                if not key or SEPARATOR in key:
                    raise MetadataError(name, "name a key without '||' after biggerThan.")
                if not _INTEGER.fullmatch(text) or abs(int(text)) > _INT64_MAX:
                    raise MetadataError(name, f"{value!r} is not an int64 integer")
                floors[key] = int(text)
        return cls(step, segments, floors)


class _Segments:
    """The double buffer of one key: the block being served and, once it runs low, the next one
    being reserved. Served without awaiting while ids are left, so no lock is needed."""

    __slots__ = (
        "_key",
        "_last",
        "_next",
        "_outbound",
        "_refill",
        "_reserved",
        "_sequencer",
        "_spare",
        "_step",
    )

    def __init__(
        self, sequencer: Sequencer, outbound: Outbound, key: str, step: int, reserved: Callable[[], None]
    ) -> None:
        self._sequencer, self._outbound, self._key, self._step = sequencer, outbound, key, step
        self._reserved = reserved
        self._next, self._last = 1, 0
        self._spare: tuple[int, int] | None = None
        self._refill: asyncio.Task[None] | None = None

    async def next_id(self) -> int:
        while True:
            if self._next <= self._last:
                value = self._next
                self._next += 1
                if self._spare is None and self._refill is None and self._last - value < self._low_water:
                    self._start_refill()
                return value
            if self._spare is not None:
                (self._next, self._last), self._spare = self._spare, None
                continue
            if self._refill is None:
                self._start_refill()
            assert self._refill is not None
            refill = self._refill
            await asyncio.shield(refill)  # one reservation for every waiter; raises its failure

    @property
    def _low_water(self) -> int:
        return max(1, self._step // 5)

    def _start_refill(self) -> None:
        self._refill = asyncio.create_task(self._reserve(), name=f"sequencer segment {self._key}")
        self._refill.add_done_callback(_report)

    async def _reserve(self) -> None:
        try:
            allocate, outbound = self._sequencer.allocate, self._outbound
            try:
                last = await outbound.call(allocate, self._key, self._step)
            except ComponentError:  # one more try before every waiter is told: blips are common
                await asyncio.sleep(0.05)
                last = await outbound.call(allocate, self._key, self._step)
            self._spare = (last - self._step + 1, last)
            self._reserved()
        finally:
            self._refill = None

    async def aclose(self) -> None:
        refill = self._refill
        if refill is not None:
            refill.cancel()
            with contextlib.suppress(BaseException):
                await refill


class _StrongIds:
    """STRONG ids of one key: callers that arrive while an allocation is out wait for the next one,
    which reserves a block of exactly as many ids and hands them out in arrival order. Each id is
    still above every id handed out before the caller asked (the block is taken after it asked),
    and one round trip serves a burst: a compare-and-swap store (etcd) then sees one writer per
    sidecar, not one per caller."""

    __slots__ = ("_key", "_outbound", "_sequencer", "_task", "_waiting")

    def __init__(self, sequencer: Sequencer, outbound: Outbound, key: str) -> None:
        self._sequencer, self._outbound, self._key = sequencer, outbound, key
        self._waiting: list[asyncio.Future[int]] = []
        self._task: asyncio.Task[None] | None = None

    async def next_id(self) -> int:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._allocate())
        return await future

    async def _allocate(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[:MAX_STRONG_BATCH], self._waiting[MAX_STRONG_BATCH:]
                try:
                    last = await self._outbound.call(self._sequencer.allocate, self._key, len(batch))
                except asyncio.CancelledError:  # the sidecar is stopping: nobody is left waiting
                    for future in [*batch, *self._waiting]:
                        if not future.done():
                            future.set_exception(BackendError("the sidecar is stopping"))
                    raise
                except Exception as exc:
                    for future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for index, future in enumerate(batch, start=last - len(batch) + 1):
                    if not future.done():  # a caller that went away leaves a gap, never a repeat
                        future.set_result(index)
        finally:
            self._task = None

    async def aclose(self) -> None:
        task = self._task
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


@dataclass(slots=True)
class _KeyIds:
    weak: _Segments
    strong: _StrongIds


def _report(task: asyncio.Task[None]) -> None:
    """A reservation made ahead of need that failed: the next call that needs it tries again."""
    if not task.cancelled() and task.exception() is not None:
        log.warning("sequencer segment not reserved", key=task.get_name(), error=str(task.exception()))


@dataclass(slots=True)
class SequencerHandle:
    name: str
    store: Sequencer
    keys: KeyPrefix
    options: SequencerOptions
    outbound: Outbound = NO_POLICY
    """Reservations (an INCRBY, a compare-and-swap) run through it; one resent after a lost reply
    leaves a gap, never a repeat."""
    _keys: OrderedDict[str, _KeyIds] = field(default_factory=OrderedDict)
    blocks: int = 0
    """Blocks of ids reserved for WEAK ids so far (l8_sequencer_blocks_total)."""

    def _block_reserved(self) -> None:
        self.blocks += 1

    def storage_key(self, key: str) -> str:
        return api_key("sequencer", self.keys, key)

    def ids(self, key: str) -> _KeyIds:
        found = self._keys.get(key)
        if found is None:
            if len(self._keys) >= MAX_BUFFERED_KEYS:
                # Dropped, not stopped: a reservation on its way finishes for those waiting on it.
                self._keys.popitem(last=False)
            weak = _Segments(self.store, self.outbound, key, self.options.segment_step, self._block_reserved)
            found = self._keys[key] = _KeyIds(weak, _StrongIds(self.store, self.outbound, key))
        else:
            self._keys.move_to_end(key)
        return found

    async def aclose(self) -> None:
        keys, self._keys = list(self._keys.values()), OrderedDict()
        for ids in keys:
            await ids.weak.aclose()
            await ids.strong.aclose()


class SequencerService:
    def __init__(self, stores: Mapping[str, SequencerHandle]) -> None:
        self._stores = dict(stores)

    @classmethod
    async def start(
        cls, components: Iterable[LoadedComponent], app_id: str, outbound: OutboundFor = no_policy
    ) -> SequencerService:
        """The service over the started sequencers, each key's ``biggerThan`` floor applied."""
        handles = {}
        for component in components:
            try:
                options = SequencerOptions.from_metadata(component.metadata)
            except MetadataError as exc:
                raise component.error(exc.message, exc.field) from None
            handle = SequencerHandle(
                component.name, component.instance, component.key_prefix(app_id), options, outbound(component)
            )
            handles[component.name] = handle
            for key, floor in options.bigger_than.items():
                try:
                    await component.instance.ensure_above(handle.storage_key(key), floor)
                except ComponentError as exc:
                    raise component.error(f"biggerThan.{key} not applied: {exc}") from None
        return cls(handles)

    async def aclose(self) -> None:
        for handle in self._stores.values():
            await handle.aclose()

    def stores(self) -> Mapping[str, SequencerHandle]:
        return self._stores

    async def next_id(self, name: str, body: Any) -> int:
        fields = protojson.message(body)
        key = protojson.string(fields, "key")
        options = protojson.raw(fields, "options")
        increment = protojson.enum(protojson.message(options), "increment", INCREMENTS)
        protojson.string_map(fields, "metadata")  # checked for its shape; no store reads it yet
        # Layotto's order: stores configured, key given, key without "||", then the store.
        if not self._stores:
            raise errors.sequencer_store_not_configured()
        if not key:
            raise errors.sequencer_key_empty(name)
        if SEPARATOR in key:
            raise errors.illegal_separator(key)
        handle = self._stores.get(name)
        if handle is None:
            raise errors.sequencer_store_not_found(name)
        storage_key = handle.storage_key(key)
        try:
            ids = handle.ids(storage_key)
            if increment == "WEAK" and handle.options.segments:
                value = await ids.weak.next_id()
            else:
                value = await ids.strong.next_id()
        except ComponentError as exc:
            raise errors.next_id_failed(name, exc) from exc
        if value > _INT64_MAX:
            raise errors.next_id_failed(name, BackendError("the sequence passed the int64 range"))
        return value
