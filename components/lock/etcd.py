"""lock.etcd: one etcd key per held resource, attached to a lease that etcd expires.

Storage: the key ``<keyPrefixPath><resource id>`` (``keyPrefixPath`` defaults to ``/l8/lock/``)
holds the owner (UTF-8) and is attached to a lease granted for ``expiry_seconds``; when the lease
runs out etcd deletes the key, which frees the resource. No keep-alive runs: the holder renews
explicitly.

etcd grants at least its minimum lease TTL, 1.5 election timeouts rounded up to whole seconds: with
the default 1 s election timeout a 1 s request is granted 2 s (etcd 3.4 here answers TTL=1 with a
2 s lease, and deletes the key about 2.4 s after the put, as its lessor checks expiry every
500 ms). A lock therefore lasts at least as long as asked and up to about a second more; never less.

Every check-then-write is one transaction:

* try_lock grants a lease, then puts the key on it only if the key's ``create_revision`` is 0 (it
  does not exist); when the transaction fails the lease is revoked at once.
* unlock deletes the key only if its value is the owner, and then revokes the lease it was on; the
  failure branch reads the key, so "nobody holds it" and "another owner holds it" are told apart in
  the same round trip.
* renew cannot change a lease's TTL, so it grants a new lease, moves the key onto it in a
  transaction guarded by the owner and the ``mod_revision`` it read, then revokes the old lease.

A lease that could not be revoked (etcd away for a moment) has no key left on it and expires by
itself, so such failures are logged, not raised: the operation's answer is already decided.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from components.errors import BackendError
from components.etcd_connection import ETCD_ERRORS, EtcdConnection, EtcdConnectionMetadata
from components.lock.base import Feature, LockStatus, RenewRequest, TryLockRequest, UnlockRequest
from components.metadata import decode

log = structlog.get_logger(__name__)

MAX_RENEW_ROUNDS = 10
"""Renewals of one resource by the same owner racing each other; beyond this, BackendError."""


class EtcdLockMetadata(EtcdConnectionMetadata):
    keyPrefixPath: str = "/l8/lock/"
    """Prepended to every resource id; an empty prefix puts the locks at the root of the keyspace."""


def _status_of(kv: Any, owner: bytes) -> LockStatus:
    """The status an owner has on a key as read from etcd (None: missing)."""
    if kv is None:
        return LockStatus.LOCK_DOES_NOT_EXIST
    return LockStatus.SUCCESS if kv.value == owner else LockStatus.LOCK_BELONGS_TO_OTHERS


def _failure_read(responses: list[Any]) -> Any:
    """The key read by a failed transaction's ``get`` branch: its KeyValue, or None when missing."""
    found = responses[0]  # [(value, kv)], empty when the key does not exist
    return found[0][1] if found else None


class EtcdLockStore:
    def __init__(self) -> None:
        self._etcd = EtcdConnection("etcd lock store")
        self._prefix = b"/l8/lock/"

    async def init(self, metadata: Mapping[str, str]) -> None:
        settings = decode(EtcdLockMetadata, metadata)
        self._prefix = settings.keyPrefixPath.encode()
        await self._etcd.open(settings)

    def features(self) -> frozenset[Feature]:
        return frozenset()

    def _key(self, resource_id: str) -> bytes:
        return self._prefix + resource_id.encode()

    async def try_lock(self, request: TryLockRequest) -> bool:
        client = self._etcd.client
        key, tx = self._key(request.resource_id), client.transactions
        with ETCD_ERRORS:
            lease = await client.lease(request.expiry_seconds)
            try:
                acquired, _ = await client.transaction(
                    compare=[tx.create(key) == 0],
                    success=[tx.put(key, request.owner.encode(), lease.id)],
                    failure=[],
                )
            except BaseException:
                await self._revoke(lease.id)  # nothing is on it, or the put is undone with it
                raise
        if not acquired:
            await self._revoke(lease.id)
        return bool(acquired)

    async def unlock(self, request: UnlockRequest) -> LockStatus:
        client = self._etcd.client
        key, owner, tx = self._key(request.resource_id), request.owner.encode(), client.transactions
        with ETCD_ERRORS:
            deleted, responses = await client.transaction(
                compare=[tx.value(key) == owner],
                success=[tx.delete(key, prev_kv=True)],
                failure=[tx.get(key)],
            )
        if not deleted:
            return _status_of(_failure_read(responses), owner)
        for previous in responses[0].response_delete_range.prev_kvs:
            if previous.lease:
                await self._revoke(previous.lease)
        return LockStatus.SUCCESS

    async def renew(self, request: RenewRequest) -> LockStatus:
        client = self._etcd.client
        key, owner, tx = self._key(request.resource_id), request.owner.encode(), client.transactions
        with ETCD_ERRORS:
            kv = await client.get(key)
            for _ in range(MAX_RENEW_ROUNDS):
                status = _status_of(kv, owner)
                if status is not LockStatus.SUCCESS:
                    return status
                lease = await client.lease(request.expiry_seconds)
                try:
                    moved, responses = await client.transaction(
                        compare=[tx.value(key) == owner, tx.mod(key) == kv.mod_revision],
                        success=[tx.put(key, owner, lease.id)],
                        failure=[tx.get(key)],
                    )
                except BaseException:
                    await self._revoke(lease.id)
                    raise
                if moved:
                    if kv.lease:
                        await self._revoke(kv.lease)
                    return LockStatus.SUCCESS
                await self._revoke(lease.id)
                # Expired, taken, or renewed by a concurrent call of the same owner: look again.
                kv = _failure_read(responses)
        raise BackendError(f"etcd: gave up renewing {key!r} after {MAX_RENEW_ROUNDS} concurrent renewals")

    async def _revoke(self, lease_id: int) -> None:
        """Revoke a lease no key needs any more; it expires by itself if this fails."""
        import aetcd.exceptions
        import aetcd.rpc

        try:
            await self._etcd.client.revoke_lease(lease_id)
        except aetcd.exceptions.ClientError as exc:
            cause = exc.__cause__
            if isinstance(cause, aetcd.rpc.AioRpcError) and cause.code() == aetcd.rpc.StatusCode.NOT_FOUND:
                return  # expired already
            log.warning("etcd lease not revoked, it will expire by itself", lease=lease_id, error=str(exc))
        except (ConnectionError, OSError, BackendError) as exc:  # the answer is decided already
            log.warning("etcd lease not revoked, it will expire by itself", lease=lease_id, error=str(exc))

    async def ping(self) -> None:
        """Health: the status of the etcd member (components/health.py)."""
        await self._etcd.ping()

    async def close(self) -> None:
        await self._etcd.close()
