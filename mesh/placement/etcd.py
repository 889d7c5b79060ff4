"""Placement through the etcd of ``name_resolution: {type: etcd}`` (the settings and the connection
of mesh/etcd_registry.py; mesh/placement/leased.py holds what does not depend on the store).

Storage, under ``<keyPrefix without its last "/">-placement/`` (``l8/nr-placement/`` by default:
beside the name-resolution keys, never under one of their app ids):

* ``types/<type>/<host:port>``: this sidecar's membership of a type, its value the address,
  attached to the sidecar's lease (``ttl`` in whole seconds; etcd grants at least 2);
* ``claims/<type>/<actor id>``: a claim, its value the holder's lease id, created in a transaction
  only if absent and attached to the holder's lease, so etcd deletes it with the lease: a claim
  lives exactly as long as its holder's lease, and a revoked lease frees every claim at once.

Type and id are percent-encoded in keys. A lease that lapsed is never renewed again (the keeper
grants a new one); a claim put on a lease etcd no longer knows fails, and fences this sidecar.
Membership changes arrive through a watch on ``types/``; each event re-reads the changed types
that this sidecar follows, a watch that breaks is opened again with a full re-read, and a full
re-read every ten ``cacheSeconds`` (at least 10 s) catches a change that raced a first read.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, unquote

import structlog

from mesh.etcd_registry import EtcdRegistrySettings, registry_client
from mesh.placement.leased import ActorKey, LeasedPlacement

log = structlog.get_logger(__name__)

TXN_OPS = 100
"""Operations per transaction, under etcd's ``--max-txn-ops`` default of 128."""


def _lease_gone(exc: BaseException) -> bool:
    """etcd's answer to a put on a lease it does not know (expired or revoked)."""
    return "lease not found" in str(exc.__cause__ or exc).lower()


class EtcdPlacement(LeasedPlacement):
    kind = "etcd"

    def __init__(self, settings: EtcdRegistrySettings) -> None:
        super().__init__(settings)
        self._etcd = settings.etcd
        self._prefix = settings.keyPrefix.rstrip("/") + "-placement/"
        self._lease_ttl = max(1, math.ceil(self.ttl))
        self._client: Any = None
        self._lease: Any = None
        self._server = ",".join(f"{host}:{port}" for host, port in settings.etcd.addresses)
        self._resync_seconds = max(10.0, 10 * self.refresh_seconds)

    @property
    def server(self) -> str:
        return self._server

    def _types_prefix(self, actor_type: str = "") -> bytes:
        return f"{self._prefix}types/{quote(actor_type, safe='') + '/' if actor_type else ''}".encode()

    def _member_key(self, actor_type: str) -> bytes:
        return self._types_prefix(actor_type) + self.address.encode()

    def _claim_key(self, actor_type: str, actor_id: str) -> bytes:
        return f"{self._prefix}claims/{quote(actor_type, safe='')}/{quote(actor_id, safe='')}".encode()

    async def _connect(self) -> None:
        self._client, self._server = await registry_client(self._etcd)

    async def _disconnect(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()

    async def _grant(self, types: frozenset[str]) -> None:
        lease = await self._client.lease(self._lease_ttl)
        tx = self._client.transactions
        puts = [tx.put(self._member_key(t), self.address.encode(), lease.id) for t in sorted(types)]
        try:
            await self._apply(puts)
        except BaseException:
            with contextlib.suppress(Exception):
                await self._client.revoke_lease(lease.id)
            raise
        self._lease = lease

    async def _renew(self, types: frozenset[str]) -> bool:
        if self._lease is None:
            return False
        reply = await self._lease.refresh()
        return reply is not None and reply.TTL > 0

    async def _retype(self, old: frozenset[str], new: frozenset[str]) -> bool:
        if self._lease is None:
            return False
        tx = self._client.transactions
        ops = [tx.delete(self._member_key(t)) for t in sorted(old - new)]
        ops += [tx.put(self._member_key(t), self.address.encode(), self._lease.id) for t in sorted(new - old)]
        try:
            await self._apply(ops)
        except Exception as exc:
            if _lease_gone(exc):
                return False
            raise
        return True

    async def _apply(self, ops: list[Any]) -> None:
        """Membership writes, in transactions of at most ``TXN_OPS`` (etcd's default cap, 128)."""
        for start in range(0, len(ops), TXN_OPS):
            await self._client.transaction(compare=[], success=ops[start : start + TXN_OPS], failure=[])

    async def _drop(self, claims: set[ActorKey]) -> None:
        # Every membership and claim is on the lease: revoking it removes them all at once.
        if self._lease is None:
            return
        try:
            await self._lease.revoke()
        except Exception as exc:
            if not _lease_gone(exc):
                raise
        self._lease = None

    async def _members(self, types: Sequence[str]) -> dict[str, list[str]]:
        found = await asyncio.gather(*(self._client.get_prefix(self._types_prefix(t)) for t in types))
        return {t: sorted({kv.value.decode() for kv in kvs}) for t, kvs in zip(types, found, strict=True)}

    async def _claim(self, actor_type: str, actor_id: str) -> bool | None:
        if self._lease is None:
            return None
        key, token, tx = (
            self._claim_key(actor_type, actor_id),
            str(self._lease.id).encode(),
            self._client.transactions,
        )
        try:
            created, responses = await self._client.transaction(
                compare=[tx.create(key) == 0],
                success=[tx.put(key, token, self._lease.id)],
                failure=[tx.get(key)],
            )
        except Exception as exc:
            if _lease_gone(exc):
                return None
            raise
        if created:
            return True
        current = responses[0]  # [(value, kv)]: empty when deleted since the compare
        return bool(current) and current[0][0] == token

    async def _release(self, actor_type: str, actor_id: str) -> None:
        if self._lease is None:
            return
        key, tx = self._claim_key(actor_type, actor_id), self._client.transactions
        token = str(self._lease.id).encode()
        await self._client.transaction(compare=[tx.value(key) == token], success=[tx.delete(key)], failure=[])

    async def _follow(self) -> None:
        changed: set[str] = set()
        wake = asyncio.Event()
        watcher = asyncio.create_task(self._watch(changed, wake), name="placement etcd watch")
        try:
            while not self._closed:  # also checked: a client's timeout may swallow the cancel
                try:
                    async with asyncio.timeout(self._resync_seconds):  # not wait_for: it may swallow a cancel
                        await wake.wait()
                except TimeoutError:
                    changed.update(self._tables)  # the safety net under the watch: a full re-read
                wake.clear()
                types = [t for t in changed if t in self._tables]
                changed.clear()
                try:
                    await self._refresh(types)
                except Exception as exc:
                    log.warning("placement members not read", store=self.server, error=str(exc))
                    changed.update(types)
                    await asyncio.sleep(self.refresh_seconds)
                    wake.set()
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher

    async def _watch(self, changed: set[str], wake: asyncio.Event) -> None:
        prefix = self._types_prefix()
        while not self._closed:
            watch = None
            try:
                watch = await self._client.watch_prefix(prefix)
                # Whatever changed before the watch was open is read again now.
                changed.update(self._tables)
                wake.set()
                self._connected = not self._fenced
                async for event in watch:
                    actor_type, _, _ = event.kv.key[len(prefix) :].decode().partition("/")
                    changed.add(unquote(actor_type))
                    wake.set()
            except asyncio.CancelledError:
                if watch is not None:
                    with contextlib.suppress(Exception):
                        await watch.cancel()
                raise
            except Exception as exc:
                self._connected = False
                log.warning("placement watch broke, opened again", store=self.server, error=str(exc))
            await asyncio.sleep(self.refresh_seconds)
