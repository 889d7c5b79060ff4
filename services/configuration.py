"""The configuration building block: Dapr's get, subscribe and unsubscribe (dapr-http-api.md section
8), and Layotto's SaveConfiguration and DeleteConfiguration, over the stores of
components/configuration.

Dapr's API has no group or label: it reads the store's default ones, or those named by the query
parameters ``group``/``label`` (or ``metadata.group``/``metadata.label``). A blank or whitespace-only
group or label is the default (``default``), as in Layotto; Layotto's ``appId`` is accepted and
ignored (its proto says so; items are not scoped by app). With ``cacheEnable`` a store's gets are
answered from the sidecar's copy (services/configuration_cache.py).

A subscription's updates reach the app as Dapr delivers them: for each key of a change,
``POST /configuration/<store>/<key>`` with ``{"id", "items": {<key>: {value, version, metadata}}}``,
one at a time and in the store's order; an answer other than 2xx, or an app that does not answer,
is logged and the subscription goes on.
"""

from __future__ import annotations

import collections
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson
import structlog

from components.configuration.base import (
    DEFAULT_GROUP,
    DEFAULT_LABEL,
    ConfigurationItem,
    ConfigurationStore,
    DeleteRequest,
    GetRequest,
    SaveRequest,
    Subscription,
)
from components.errors import ComponentError, InvalidConfigurationRequestError
from components.loaded import LoadedComponent
from components.metadata import parse_bool
from mesh.app_channel import AppChannel
from mesh.resiliency import NO_POLICY, Outbound, OutboundFor, no_policy
from services import errors, protojson
from services.configuration_cache import ConfigurationCache

log = structlog.get_logger(__name__)


@dataclass(slots=True, frozen=True)
class ConfigurationStoreHandle:
    name: str
    store: ConfigurationStore
    cache: ConfigurationCache | None = None
    """Set by ``cacheEnable``: gets are answered from the sidecar's copy."""
    outbound: Outbound = NO_POLICY


@dataclass(slots=True)
class _Subscribed:
    store: str
    keys: list[str]
    subscription: Subscription
    on_stop: Callable[[], None] | None = None
    """A stream's end (gRPC's SubscribeConfiguration), called when the subscription is removed."""


Updates = Callable[[str, list[ConfigurationItem]], Awaitable[None]]
"""Where a subscription's changes go instead of the app: (subscription id, the changed items)."""


def item_json(item: ConfigurationItem) -> dict[str, Any]:
    """Dapr's ConfigurationItem: each field omitted when empty."""
    shaped: dict[str, Any] = {}
    if item.value:
        shaped["value"] = item.value
    if item.version:
        shaped["version"] = item.version
    if item.metadata:
        shaped["metadata"] = dict(item.metadata)
    return shaped


def _answer(error: ComponentError, failed: Callable[[ComponentError], errors.ApiError]) -> errors.ApiError:
    """A store's refusal of a name its layout cannot hold is the caller's error (400); any other
    failure is the operation's own (500)."""
    if isinstance(error, InvalidConfigurationRequestError):
        return errors.malformed(str(error))
    return failed(error)


def _group_label(group: str | None, label: str | None) -> tuple[str, str]:
    return (group or "").strip() or DEFAULT_GROUP, (label or "").strip() or DEFAULT_LABEL


class ConfigurationService:
    def __init__(self, stores: Mapping[str, ConfigurationStoreHandle], app_channel: AppChannel) -> None:
        self._stores = dict(stores)
        self._app = app_channel
        self._subscriptions: dict[str, _Subscribed] = {}
        self.deliveries: collections.Counter[tuple[str, bool]] = collections.Counter()
        """(store, whether the app took it) -> updates sent (l8_configuration_deliveries_total)."""

    @classmethod
    def from_components(
        cls,
        components: Iterable[LoadedComponent],
        app_channel: AppChannel,
        outbound: OutboundFor = no_policy,
    ) -> ConfigurationService:
        """The service over the started stores; ``cacheEnable: "true"`` gives a store a cached copy."""
        handles = {}
        for component in components:
            try:
                cached = parse_bool(component.setting("cacheEnable") or "false")
            except ValueError as exc:
                raise component.error(str(exc), "cacheEnable") from None
            cache = ConfigurationCache(component.instance) if cached else None
            handles[component.name] = ConfigurationStoreHandle(
                component.name, component.instance, cache, outbound(component)
            )
        return cls(handles, app_channel)

    def resolve(self, name: str) -> ConfigurationStoreHandle:
        if not self._stores:
            raise errors.configuration_store_not_configured()
        handle = self._stores.get(name)
        if handle is None:
            raise errors.configuration_store_not_found(name)
        return handle

    def _request(self, keys: Sequence[str], metadata: Mapping[str, str], group: str | None,
                 label: str | None) -> GetRequest:  # fmt: skip
        group, label = _group_label(group or metadata.get("group"), label or metadata.get("label"))
        return GetRequest(list(keys), group, label, metadata)

    async def get(
        self,
        name: str,
        keys: Sequence[str],
        metadata: Mapping[str, str],
        group: str | None = None,
        label: str | None = None,
    ) -> dict[str, dict[str, Any]]:
        handle = self.resolve(name)
        request = self._request(keys, metadata, group, label)
        try:
            items = await handle.outbound.call((handle.cache or handle.store).get, request)
        except ComponentError as exc:
            raise _answer(
                exc, lambda error: errors.configuration_get_failed(list(keys), name, error)
            ) from exc
        return {item.key: item_json(item) for item in items}

    async def subscribe(
        self,
        name: str,
        keys: Sequence[str],
        metadata: Mapping[str, str],
        group: str | None = None,
        label: str | None = None,
        *,
        updates: Updates | None = None,
        on_stop: Callable[[], None] | None = None,
    ) -> str:
        """The new subscription's id. Its changes go to the app, or to ``updates`` when given (a
        gRPC stream, which needs no app); ``on_stop`` is called when it is unsubscribed."""
        handle = self.resolve(name)
        if updates is None and not self._app.configured:
            raise errors.configuration_app_channel_nil()
        subscription_id = str(uuid.uuid4())

        async def deliver(items: list[ConfigurationItem]) -> None:
            if updates is not None:
                await updates(subscription_id, items)
            else:
                await self._deliver(name, subscription_id, items)

        try:
            request = self._request(keys, metadata, group, label)
            subscription = await handle.outbound.call(handle.store.subscribe, request, deliver)
        except ComponentError as exc:
            raise _answer(
                exc, lambda error: errors.configuration_subscribe_failed(list(keys), name, error)
            ) from exc
        self._subscriptions[subscription_id] = _Subscribed(name, list(keys), subscription, on_stop)
        log.info("configuration subscription started", store=name, id=subscription_id, keys=list(keys))
        return subscription_id

    async def unsubscribe(self, name: str, subscription_id: str) -> None:
        """Every failure is Dapr's {"message"}-only 500, an unknown store included."""
        try:
            self.resolve(name)
        except errors.ApiError as exc:
            raise errors.configuration_unsubscribe_failed(subscription_id, exc.message) from None
        subscribed = self._subscriptions.get(subscription_id)
        if subscribed is None or subscribed.store != name:
            raise errors.configuration_unsubscribe_failed(subscription_id, "subscription does not exist")
        del self._subscriptions[subscription_id]
        if subscribed.on_stop is not None:
            subscribed.on_stop()
        try:
            await subscribed.subscription.close()
        except ComponentError as exc:
            raise errors.configuration_unsubscribe_failed(subscription_id, exc) from exc
        log.info("configuration subscription stopped", store=name, id=subscription_id)

    async def _deliver(self, store: str, subscription_id: str, items: list[ConfigurationItem]) -> None:
        body = orjson.dumps({"id": subscription_id, "items": {item.key: item_json(item) for item in items}})
        for item in items:
            # Escaped: keys come from anyone who can write the store, and go into a request line.
            path = f"/configuration/{quote(store, safe='')}/{quote(item.key, safe='')}"
            try:
                answer = await self._app.request(
                    "POST", path, body=body, headers={"content-type": "application/json"}
                )
            except Exception as exc:  # AppUnreachable, or anything else: the next key still goes
                log.error("configuration update not delivered", store=store, key=item.key, error=str(exc))
                self.deliveries[(store, False)] += 1
                continue
            self.deliveries[(store, 200 <= answer.status < 300)] += 1
            if not 200 <= answer.status < 300:
                log.error("the app refused a configuration update", store=store, key=item.key,
                          status=answer.status)  # fmt: skip

    def describe(self) -> list[dict[str, Any]]:
        return [
            {"id": subscription_id, "store": subscribed.store, "keys": subscribed.keys}
            for subscription_id, subscribed in self._subscriptions.items()
        ]

    async def aclose(self) -> None:
        for handle in self._stores.values():
            if handle.cache is not None:
                try:
                    await handle.cache.aclose()
                except Exception as exc:
                    log.error("configuration cache close failed", store=handle.name, error=str(exc))
        subscriptions, self._subscriptions = list(self._subscriptions.values()), {}
        for subscribed in subscriptions:
            if subscribed.on_stop is not None:
                subscribed.on_stop()
            try:
                await subscribed.subscription.close()
            except Exception as exc:
                log.error("configuration subscription close failed", store=subscribed.store, error=str(exc))

    # -- Layotto's write side ----------------------------------------------------------------------

    async def save(self, name: str, body: Any) -> None:
        fields = protojson.message(body)
        metadata = protojson.string_map(fields, "metadata")
        raw_items = protojson.raw(fields, "items") or []
        if not isinstance(raw_items, list):
            raise errors.malformed("failed deserializing HTTP body: items: an array is expected")
        handle = self.resolve(name)
        items = []
        for index, raw in enumerate(raw_items):
            entry = protojson.message(raw)
            key = protojson.string(entry, "key")
            if not key:
                raise errors.malformed(f"items[{index}].key is empty in configuration store {name}")
            group, label = _group_label(protojson.string(entry, "group"), protojson.string(entry, "label"))
            items.append(
                ConfigurationItem(
                    key,
                    protojson.string(entry, "content"),
                    metadata=protojson.string_map(entry, "metadata"),
                    group=group,
                    label=label,
                    tags=protojson.string_map(entry, "tags"),
                )
            )
        if not items:
            raise errors.malformed(f"no items to save in configuration store {name}")
        try:
            await handle.outbound.call(handle.store.save, SaveRequest(items, metadata))
        except ComponentError as exc:
            raise _answer(exc, lambda error: errors.configuration_save_failed(name, error)) from exc

    async def delete(self, name: str, body: Any) -> None:
        fields = protojson.message(body)
        keys = protojson.string_list(fields, "keys")
        group, label = _group_label(protojson.string(fields, "group"), protojson.string(fields, "label"))
        metadata = protojson.string_map(fields, "metadata")
        handle = self.resolve(name)
        if not keys or not all(keys):
            raise errors.malformed(f"keys must name one key or more, none empty (configuration store {name})")
        try:
            await handle.outbound.call(handle.store.delete, DeleteRequest(keys, group, label, metadata))
        except ComponentError as exc:
            raise _answer(exc, lambda error: errors.configuration_delete_failed(name, error)) from exc
