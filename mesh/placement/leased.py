"""What placement over a shared store holds whatever the store (Redis in mesh/placement/redis.py,
etcd in mesh/placement/etcd.py): the lease and its fencing, the tables, the claims this sidecar
holds, the listeners and the metadata view. A subclass says how the store keeps a lease, the
members of a type and the claims, and how it follows membership changes.

**The lease.** A sidecar hosting actor types holds one lease in the store (granted by
:meth:`host`), with its membership of each type and every claim it takes tied to it. A
:class:`~mesh.lease.LeaseKeeper` renews it every third of the ttl. When renewals have failed for
three quarters of the ttl since the last one sent that succeeded (the store's lease lasts at least
the ttl from then), or the store says the lease is gone, this sidecar is **fenced**: its claims are
forgotten at once, the ``on_fenced`` listeners run (the actor runtime deactivates every local
actor), and claims are refused. The old lease is abandoned, never renewed again, since others may
have taken its actors; the next beat drops it and grants a new one, and hosting resumes with new
claims. A claim sent before the fence whose answer arrives after it is refused too (the lease
generation changed meanwhile).

**The tables.** One :class:`~mesh.placement.ring.Ring` per actor type this sidecar has looked up
or hosts; the first lookup of a type reads its members (one store call shared by the lookups that
arrive meanwhile), later ones answer from memory. The subclass's ``_follow`` keeps them fresh; a
table that changes wakes the notifier, which runs the ``on_change`` listeners (changes that arrive
while they run are handled in one more pass).

**Claims** that could not be released (the store away) are tried again after each renewal, so a
claim this sidecar no longer uses never blocks another sidecar for longer than the outage. Claims
and releases of one actor reach the store one at a time, in the order they were made.

What the store must keep: its leases. A store that loses them (a Redis restarted without
persistence, keys deleted by hand) ends every lease at once; a host learns it at its next renewal
or claim, within a third of the ttl, and fences itself, but until then another host may claim one
of its actors.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

import structlog

from mesh.errors import PlacementUnavailable
from mesh.lease import LeaseKeeper
from mesh.placement.base import ChangeListener
from mesh.placement.listeners import run_listeners
from mesh.placement.ring import Ring
from mesh.registry import RegistrySettings

log = structlog.get_logger(__name__)

MAX_TRACKED_TYPES = 4096
"""Types whose tables are kept; beyond, the empty tables of types not hosted here are forgotten
(callers naming ever new types do not grow the refresh without end)."""

ActorKey = tuple[str, str]


class _ActorLock:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class LeasedPlacement(abc.ABC):
    """Placement over a store with leases; see the module's text."""

    kind: str

    def __init__(self, settings: RegistrySettings) -> None:
        self.ttl = settings.ttl
        self.refresh_seconds = settings.cacheSeconds
        self._advertise = settings.advertiseAddress or None
        self.address = ""
        self.app_id = ""
        self._types: frozenset[str] = frozenset()
        self._tables: dict[str, Ring] = {}
        self._first_reads: dict[str, asyncio.Future[Ring]] = {}
        self._claims: set[ActorKey] = set()
        self._stale: set[ActorKey] = set()
        """Claims under a lease that was abandoned: removed from the store when it is dropped."""
        self._unreleased: set[ActorKey] = set()
        self._actor_locks: dict[ActorKey, _ActorLock] = {}
        self._changed: list[ChangeListener] = []
        self._fenced_listeners: list[ChangeListener] = []
        self._keeper: LeaseKeeper | None = None
        self._fenced = False
        self._generation = 0
        self._hosting = asyncio.Lock()
        self._connected = False
        self._dirty = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._fencing: set[asyncio.Task[None]] = set()
        self._closed = False
        self.fenced_at: float | None = None
        """Loop time of the last fence (tests and the metadata API)."""

    # -- what a store provides ---------------------------------------------------------------------

    @property
    @abc.abstractmethod
    def server(self) -> str:
        """Where the store is, as the metadata API shows it."""

    @abc.abstractmethod
    async def _connect(self) -> None: ...

    @abc.abstractmethod
    async def _disconnect(self) -> None: ...

    @abc.abstractmethod
    async def _grant(self, types: frozenset[str]) -> None:
        """A new lease of ``self.ttl``, with this sidecar a member of each of ``types`` under it."""

    @abc.abstractmethod
    async def _renew(self, types: frozenset[str]) -> bool:
        """Keep the current lease (and the memberships under it); False when it is gone."""

    @abc.abstractmethod
    async def _retype(self, old: frozenset[str], new: frozenset[str]) -> bool:
        """Move the memberships under the current lease from ``old`` to ``new`` types; False when
        the lease is gone."""

    @abc.abstractmethod
    async def _drop(self, claims: set[ActorKey]) -> None:
        """End the current lease (if any), its memberships and ``claims`` at once. Idempotent."""

    @abc.abstractmethod
    async def _members(self, types: Sequence[str]) -> dict[str, list[str]]:
        """The addresses of the live members of each type."""

    @abc.abstractmethod
    async def _claim(self, actor_type: str, actor_id: str) -> bool | None:
        """Claim under the current lease: True when held now, False when another live holder has
        it, None when the store says the current lease is gone."""

    @abc.abstractmethod
    async def _release(self, actor_type: str, actor_id: str) -> None:
        """Remove the claim if the current lease holds it."""

    @abc.abstractmethod
    async def _follow(self) -> None:
        """Run for the life of the placement: call :meth:`_refresh` when members may have changed."""

    # -- the Placement contract ---------------------------------------------------------------------

    async def start(self, app_id: str, address: str) -> None:
        self.app_id = app_id
        self.address = self._advertise or address
        await self._connect()
        self._connected = True
        self._tasks = [
            asyncio.create_task(self._follow(), name=f"placement {self.kind} follower"),
            asyncio.create_task(self._notify(), name="placement change listeners"),
        ]

    async def host(self, types: frozenset[str]) -> None:
        async with self._hosting:
            old = self._types
            if types == old and (self._keeper is not None or not types):
                return
            loop = asyncio.get_running_loop()
            if not types:
                await self._end_lease()
                self._types = types
            elif self._keeper is None:
                sent = loop.time()
                await self._grant(types)
                self._types = types
                self._fenced = False
                self._keeper = LeaseKeeper(
                    self.ttl, self._keep, name=f"placement lease ({self.kind})", on_lapse=self._fence
                )
                self._keeper.start(sent)
            elif self._fenced:
                self._types = types  # the next beat grants the new lease with them
            else:
                # On an error the types stay the old ones, whose memberships the renewals keep.
                moved = await self._retype(old, types)
                self._types = types
                if not moved:
                    self._keeper.lapse()  # the next beat grants a new lease with the new types
            log.info("placement hosts", types=sorted(types), address=self.address, store=self.server)
        # This sidecar's own membership is in its tables at once, not at the next refresh (which
        # reads them anyway if the store does not answer now).
        try:
            await self._refresh(sorted(set(self._tables) | types | old))
        except Exception as exc:
            log.warning("placement members not read", store=self.server, error=str(exc))

    async def lookup(self, actor_type: str, actor_id: str) -> str | None:
        """See the contract; the first lookup of a type raises
        :class:`~mesh.errors.PlacementUnavailable` when the store cannot answer."""
        table = self._tables.get(actor_type)
        if table is None:
            table = await self._first_read(actor_type)
        return table.get(actor_id)

    async def claim(self, actor_type: str, actor_id: str) -> bool:
        """See the contract; raises :class:`~mesh.errors.PlacementUnavailable` when the store cannot
        answer (whether the claim was taken is then unknown: it is released later if it was)."""
        key = (actor_type, actor_id)
        if key in self._claims:
            return True
        async with self._one_at_a_time(key):  # after a release of the same actor still on its way
            if self._keeper is None or self._fenced or actor_type not in self._types:
                return False
            if key in self._claims:
                return True
            self._unreleased.discard(key)  # held by this lease still: the store answers True
            generation = self._generation
            try:
                held = await self._claim(actor_type, actor_id)
            except Exception as exc:
                if generation == self._generation:
                    # It may have been taken in the store all the same: released after a renewal.
                    self._unreleased.add(key)
                raise PlacementUnavailable(f"placement through {self.kind} failed: {exc}") from None
            if generation != self._generation or self._fenced or self._keeper is None:
                return False  # fenced or left while the claim was on its way: it dies with that lease
            if held is None:
                self._keeper.lapse()
                return False
            if held:
                self._claims.add(key)
            return held

    async def release(self, actor_type: str, actor_id: str) -> None:
        key = (actor_type, actor_id)
        if key not in self._claims:
            return
        self._claims.discard(key)
        async with self._one_at_a_time(key):
            try:
                await self._release(actor_type, actor_id)
            except Exception as exc:
                self._unreleased.add(key)
                log.warning("placement claim not released, tried again", actor_type=actor_type, error=exc)

    @contextlib.asynccontextmanager
    async def _one_at_a_time(self, key: ActorKey) -> AsyncIterator[None]:
        """Store calls for one actor in the order they were made: a claim sent while a release of
        the same actor is on its way would be answered "held already", and then released."""
        entry = self._actor_locks.get(key)
        if entry is None:
            entry = self._actor_locks[key] = _ActorLock()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if not entry.users:
                del self._actor_locks[key]

    def on_change(self, listener: ChangeListener) -> None:
        self._changed.append(listener)

    def on_fenced(self, listener: ChangeListener) -> None:
        self._fenced_listeners.append(listener)

    def status(self) -> str:
        """The one line of ``actorRuntime.placement`` in the metadata API, in Dapr's words."""
        return "placement: connected" if self._connected and not self._fenced else "placement: disconnected"

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "server": self.server,
            "address": self.address,
            "status": self.status(),
            "fenced": self._fenced,
            "ttlSeconds": self.ttl,
            "hostedTypes": sorted(self._types),
            "members": {actor_type: sorted(ring.hosts) for actor_type, ring in sorted(self._tables.items())},
            "claims": len(self._claims),
        }

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in [*self._tasks, *self._fencing]:
            task.cancel()
        for task in [*self._tasks, *self._fencing]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        with contextlib.suppress(Exception):
            await self._end_lease()  # others see this sidecar leave at once
        self._types = frozenset()
        with contextlib.suppress(Exception):
            await self._disconnect()
        self._connected = False

    # -- the lease -----------------------------------------------------------------------------------

    async def _keep(self) -> bool:
        """The keeper's renewal: keep the lease, or after a fence drop it and grant a new one."""
        async with self._hosting:  # not while host() changes the memberships
            return await self._keep_hosting()

    async def _keep_hosting(self) -> bool:
        if self._fenced:
            with contextlib.suppress(Exception):
                await self._drop(self._stale | self._unreleased)
                self._stale.clear()
                self._unreleased.clear()
            await self._grant(self._types)
            self._fenced = False
            self._connected = True
            log.info("placement lease granted again after a fence", address=self.address, store=self.server)
            return True
        generation = self._generation
        renewed = await self._renew(self._types)
        self._connected = True
        if generation != self._generation:
            return False  # fenced while the renewal was on its way: the lease is abandoned
        if renewed and self._unreleased:
            await self._release_again()
        return renewed

    def _fence(self) -> None:
        if self._fenced or self._closed:
            return
        self._fenced = True
        self._connected = False
        self._generation += 1
        self._stale |= self._claims
        self._claims.clear()
        self.fenced_at = asyncio.get_running_loop().time()
        log.warning("placement fenced: the lease may end, every local actor ends now", address=self.address)
        task = asyncio.create_task(run_listeners(self._fenced_listeners, "fenced"), name="placement fenced")
        self._fencing.add(task)
        task.add_done_callback(self._fencing.discard)

    async def _release_again(self) -> None:
        for key in list(self._unreleased):
            async with self._one_at_a_time(key):
                if key in self._claims or key not in self._unreleased:
                    self._unreleased.discard(key)  # claimed again meanwhile: it is in use
                    continue
                try:
                    await self._release(*key)
                except Exception:
                    return  # the next renewal tries again
                self._unreleased.discard(key)

    async def _end_lease(self) -> None:
        if self._keeper is not None:
            await self._keeper.stop()
            self._keeper = None
        claims = self._claims | self._stale | self._unreleased
        self._claims.clear()
        self._stale.clear()
        self._unreleased.clear()
        self._fenced = False
        self._generation += 1
        await self._drop(claims)

    # -- the tables ----------------------------------------------------------------------------------

    async def _first_read(self, actor_type: str) -> Ring:
        pending = self._first_reads.get(actor_type)
        if pending is None:
            pending = asyncio.ensure_future(self._read_type(actor_type))
            self._first_reads[actor_type] = pending
            pending.add_done_callback(lambda done: self._read_done(actor_type, done))
        return await asyncio.shield(pending)

    def _read_done(self, actor_type: str, done: asyncio.Future[Ring]) -> None:
        self._first_reads.pop(actor_type, None)
        if not done.cancelled():
            done.exception()  # retrieved here too: every lookup waiting for it may have been cancelled

    async def _read_type(self, actor_type: str) -> Ring:
        try:
            members = await self._members([actor_type])
        except Exception as exc:
            raise PlacementUnavailable(f"placement through {self.kind} failed: {exc}") from None
        if len(self._tables) >= MAX_TRACKED_TYPES:
            self._forget_empty()
        table = self._tables.get(actor_type)  # a refresh may have put it there meanwhile
        if table is None:
            table = self._tables[actor_type] = Ring(members.get(actor_type, ()))
        return table

    def _forget_empty(self) -> None:
        for actor_type, ring in list(self._tables.items()):
            if not ring and actor_type not in self._types:
                del self._tables[actor_type]

    async def _refresh(self, types: Iterable[str]) -> None:
        """Read the members of ``types`` and replace the tables that changed."""
        wanted = sorted(set(types))
        if not wanted:
            return
        members = await self._members(wanted)
        changed = False
        for actor_type in wanted:
            hosts = frozenset(members.get(actor_type, ()))
            current = self._tables.get(actor_type)
            if current is None or current.hosts != hosts:
                self._tables[actor_type] = Ring(hosts)
                changed = changed or current is not None or bool(hosts)
        if changed:
            self._dirty.set()

    async def _notify(self) -> None:
        while not self._closed:
            await self._dirty.wait()
            self._dirty.clear()
            await run_listeners(self._changed, "change")

    async def _poll(self) -> None:
        """A follower for stores without watches: read every tracked type each ``cacheSeconds``."""
        while not self._closed:  # also checked: a client's read timeout may swallow the cancel
            await asyncio.sleep(self.refresh_seconds)
            try:
                await self._refresh(list(self._tables))
            except Exception as exc:
                if self._connected:
                    log.warning("placement members not read", store=self.server, error=str(exc))
                self._connected = False
            else:
                self._connected = not self._fenced
