"""configuration.etcd: items as etcd keys, followed with one etcd watch per store.

Layout (``keyPrefixPath`` defaults to ``/l8/configuration/``; a ``/`` is added when it lacks one):

* an item is the key ``<keyPrefixPath><group>/<label>/<key>`` holding the value's UTF-8 bytes; its
  version is the key's ``mod_revision`` (etcd's revision of its last write), in decimal;
* its tags are a JSON object in ``<keyPrefixPath>.tags/<group>/<label>/<key>``, written (or removed,
  for a save without tags) in the same transaction as the value. Item metadata is not stored.

So a group or label may not contain ``/`` and no group may be named ``.tags``; a key may contain
``/``. A save (or delete) is one transaction: a save of every item or of none, whose items all get
the same revision; etcd's default ``--max-txn-ops`` of 128 allows 64 items per save.

Subscriptions share one watch of the whole prefix (values and tags, in revision order), started by
the first subscription at the revision after a snapshot of the tags, so each value event is
delivered with the tags as of its own revision. A subscription gets every PUT and DELETE of its keys
with a revision after the one current when it subscribed, each once and in etcd's order; a PUT by
etcdctl or any client counts, a change of the tags key alone does not. If the watch breaks, it is
created again from the revision after the last event seen, so nothing is lost or repeated; if etcd
compacted those revisions away meanwhile, the store logs what was missed and follows on from now.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import orjson
import structlog
from pydantic import field_validator

from components.configuration.base import (
    ChangeHandler,
    ConfigurationItem,
    DeleteRequest,
    Feature,
    GetRequest,
    SaveRequest,
    SubscribeRequest,
)
from components.configuration.subscriptions import (
    Address,
    QueuedSubscription,
    Subscribers,
    cancel_and_wait,
    deleted,
    unique,
)
from components.errors import InvalidConfigurationRequestError as Invalid
from components.etcd_connection import ETCD_ERRORS, EtcdConnection, EtcdConnectionMetadata
from components.metadata import decode, metadata_error

log = structlog.get_logger(__name__)

NAME = "configuration.etcd"
TAGS = ".tags"
_BACKOFF_FIRST, _BACKOFF_MAX = 0.1, 5.0


class EtcdConfigurationMetadata(EtcdConnectionMetadata):
    keyPrefixPath: str = "/l8/configuration/"

    @field_validator("keyPrefixPath")
    @classmethod
    def _prefix(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise metadata_error("give a key prefix such as /l8/configuration/ (or / for the root)")
        return value if value.endswith("/") else value + "/"


def _tags(raw: bytes) -> dict[str, str]:
    try:
        decoded = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(decoded, dict):
        return {}
    return {str(k): v if isinstance(v, str) else str(v) for k, v in decoded.items()}


def _checked(group: str, label: str) -> None:
    if "/" in group or "/" in label:
        raise Invalid(f"{NAME}: a group or label may not contain '/'")
    if group == TAGS:
        raise Invalid(f"{NAME}: the group name {TAGS!r} is reserved (it holds the tags)")


class _Subscription(QueuedSubscription):
    after: int | None = None
    """The revision current when it subscribed: it gets the events after it. None while that
    revision is being read: events are kept in ``early`` meanwhile."""
    early: list[tuple[int, ConfigurationItem]]


class EtcdConfigurationStore:
    def __init__(self) -> None:
        self._etcd = EtcdConnection("etcd configuration store")
        self._prefix = ""
        self._subscribers: Subscribers[_Subscription] = Subscribers(NAME)
        self._watching: asyncio.Task[None] | None = None
        self._watch_lock = asyncio.Lock()
        self._tags: dict[Address, dict[str, str]] = {}
        """Every item's tags as of the last event the watch delivered."""
        self._next_revision = 0

    async def init(self, metadata: Mapping[str, str]) -> None:
        settings = decode(EtcdConfigurationMetadata, metadata)
        self._prefix = settings.keyPrefixPath
        await self._etcd.open(settings)

    def features(self) -> frozenset[Feature]:
        return frozenset()

    # -- layout -------------------------------------------------------------------------------------

    def _scope(self, group: str, label: str, tags: bool = False) -> str:
        return f"{self._prefix}{TAGS}/{group}/{label}/" if tags else f"{self._prefix}{group}/{label}/"

    def _key(self, where: Address, tags: bool = False) -> bytes:
        return (self._scope(where[0], where[1], tags) + where[2]).encode()

    def _address(self, raw: bytes) -> tuple[Address, bool] | None:
        """The item an etcd key belongs to and whether it is its tags key; None for another key."""
        rest = raw.decode("utf-8", "replace").removeprefix(self._prefix)
        tags = rest.startswith(TAGS + "/")
        parts = rest.removeprefix(TAGS + "/").split("/", 2) if tags else rest.split("/", 2)
        if len(parts) != 3 or not all(parts):
            return None
        return (parts[0], parts[1], parts[2]), tags

    # -- reading ------------------------------------------------------------------------------------

    async def get(self, request: GetRequest) -> list[ConfigurationItem]:
        client = self._etcd.client
        _checked(request.group, request.label)
        ops = client.transactions
        if request.keys:
            wanted = [(request.group, request.label, key) for key in unique(request.keys)]
            reads = [ops.get(self._key(where, tags)) for where in wanted for tags in (False, True)]
        else:
            from aetcd.utils import prefix_range_end

            scopes = [self._scope(request.group, request.label, tags).encode() for tags in (False, True)]
            reads = [ops.get(scope, prefix_range_end(scope)) for scope in scopes]
        with ETCD_ERRORS:
            # One transaction: the values and the tags of one revision.
            _, responses = await client.transaction(compare=[], success=reads, failure=[])
        found: dict[Address, Any] = {}
        tags: dict[Address, dict[str, str]] = {}
        for response in responses:
            for raw, kv in response:
                parsed = self._address(kv.key)
                if parsed is None:
                    continue
                where, is_tags = parsed
                if is_tags:
                    tags[where] = _tags(raw)
                else:
                    found[where] = kv
        return [
            self._item(where, kv.value, kv.mod_revision, tags.get(where, {})) for where, kv in found.items()
        ]

    @staticmethod
    def _item(where: Address, raw: bytes, revision: int, tags: Mapping[str, str]) -> ConfigurationItem:
        group, label, key = where
        value = raw.decode("utf-8", "replace")
        return ConfigurationItem(key, value, str(revision), group=group, label=label, tags=tags)

    # -- writing ------------------------------------------------------------------------------------

    async def save(self, request: SaveRequest) -> None:
        client = self._etcd.client
        ops = client.transactions
        latest = {(i.group, i.label, i.key): i for i in request.items}  # etcd refuses a key twice per txn
        writes = []
        for where, item in latest.items():
            _checked(item.group, item.label)
            tags_key = self._key(where, tags=True)
            # The tags first: a watcher meets them before the value of the same revision.
            if item.tags:
                writes.append(ops.put(tags_key, orjson.dumps(dict(item.tags))))
            else:
                writes.append(ops.delete(tags_key))
            writes.append(ops.put(self._key(where), item.value.encode()))
        if writes:
            with ETCD_ERRORS:
                await client.transaction(compare=[], success=writes, failure=[])

    async def delete(self, request: DeleteRequest) -> None:
        client = self._etcd.client
        _checked(request.group, request.label)
        ops = client.transactions
        wanted = [(request.group, request.label, key) for key in unique(request.keys)]
        removals = [ops.delete(self._key(where, tags)) for where in wanted for tags in (False, True)]
        if removals:
            with ETCD_ERRORS:
                await client.transaction(compare=[], success=removals, failure=[])

    # -- following changes --------------------------------------------------------------------------

    async def subscribe(self, request: SubscribeRequest, handler: ChangeHandler) -> _Subscription:
        client = self._etcd.client
        _checked(request.group, request.label)
        await self._watch(client)
        # Registered before the revision is read: an event the watch reports meanwhile is kept.
        subscription = self._subscribers.add(_Subscription(request, handler, NAME, self._subscribers.discard))
        subscription.early = []
        scope = self._scope(request.group, request.label).encode()
        try:
            with ETCD_ERRORS:
                now = await client.get_prefix(scope, keys_only=True)
        except BaseException:
            await subscription.close()
            raise
        subscription.after = now.header.revision
        early, subscription.early = subscription.early, []
        for revision, item in early:  # events the watch saw before the revision was known
            if revision > subscription.after:
                subscription.offer([item])
        return subscription

    async def _watch(self, client: Any) -> None:
        async with self._watch_lock:
            if self._watching is not None:
                return
            with ETCD_ERRORS:
                watch = await self._start_watch(client, fresh=True)
            self._watching = asyncio.create_task(self._follow(client, watch))

    async def _start_watch(self, client: Any, *, fresh: bool) -> Any:
        """A watch of the whole prefix from ``_next_revision``; ``fresh``: from now, after reading
        every item's tags."""
        from aetcd.utils import prefix_range_end

        if fresh:
            snapshot = await client.get_prefix(f"{self._prefix}{TAGS}/".encode())
            tags = {}
            for kv in snapshot:
                parsed = self._address(kv.key)
                if parsed is not None:
                    tags[parsed[0]] = _tags(kv.value)
            self._tags = tags
            self._next_revision = snapshot.header.revision + 1
        prefix = self._prefix.encode()
        end = prefix_range_end(prefix)
        return await client.watch(prefix, range_end=end, start_revision=self._next_revision)

    async def _follow(self, client: Any, watch: Any) -> None:
        import aetcd.exceptions

        backoff, fresh = _BACKOFF_FIRST, False
        while True:
            try:
                if watch is None:
                    watch = await self._start_watch(client, fresh=fresh)
                    log.info(f"{NAME}: watching again", from_revision=self._next_revision)
                    backoff, fresh = _BACKOFF_FIRST, False
                async for event in watch:
                    self._on_event(event)
                return  # the client closed
            except asyncio.CancelledError:
                raise
            except aetcd.exceptions.RevisionCompactedError as exc:
                log.error(f"{NAME}: etcd compacted changes before they were seen; they are missed",
                          from_revision=self._next_revision, compacted=exc.compacted_revision)  # fmt: skip
                fresh = True
            except Exception as exc:
                log.warning(f"{NAME}: watch broken, watching again", from_revision=self._next_revision,
                            error=str(exc) or type(exc).__name__, retry_in=backoff)  # fmt: skip
            watch = None
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _BACKOFF_MAX)

    def _on_event(self, event: Any) -> None:
        revision = event.kv.mod_revision
        self._next_revision = revision + 1
        parsed = self._address(event.kv.key)
        if parsed is None:
            return
        where, is_tags = parsed
        put = event.kind == "PUT"
        if is_tags:
            if put:
                self._tags[where] = _tags(event.kv.value)
            else:
                self._tags.pop(where, None)
            return
        if put:
            item = self._item(where, event.kv.value, revision, self._tags.get(where, {}))
        else:
            item = deleted(*where)
        for subscription in self._subscribers:
            if subscription.after is None:
                subscription.early.append((revision, item))
            elif revision > subscription.after:
                subscription.offer([item])

    async def ping(self) -> None:
        """Health: the status of the etcd member (components/health.py)."""
        await self._etcd.ping()

    async def close(self) -> None:
        watching, self._watching = self._watching, None
        if watching is not None:
            await cancel_and_wait(watching)
        await self._subscribers.close()
        await self._etcd.close()
