"""Configuration RPCs over services/configuration.py: GetConfiguration, SubscribeConfiguration (a
server stream whose first message carries the subscription's id and no items; each change then
comes as one message with the changed items) and UnsubscribeConfiguration, with their Alpha1
twins. A stream's subscription ends when it is unsubscribed (the stream then ends), or when the
client goes away."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from dapr.proto.common.v1 import common_pb2
from dapr.proto.runtime.v1 import configuration_pb2

from components.configuration.base import ConfigurationItem
from routers.grpc.calls import Context, Streaming, Unary, string_map
from services.errors import ApiError
from services.sidecar import Services


def _item(shaped: dict[str, Any]) -> common_pb2.ConfigurationItem:
    return common_pb2.ConfigurationItem(
        value=shaped.get("value", ""), version=shaped.get("version", ""), metadata=shaped.get("metadata", {})
    )


def _changed(item: ConfigurationItem) -> common_pb2.ConfigurationItem:
    return common_pb2.ConfigurationItem(
        value=item.value or "", version=item.version or "", metadata=dict(item.metadata or {})
    )


async def get_configuration(
    services: Services, request: Any, context: Context
) -> configuration_pb2.GetConfigurationResponse:
    items = await services.configuration.get(
        request.store_name, list(request.keys), string_map(request.metadata)
    )
    return configuration_pb2.GetConfigurationResponse(items={k: _item(v) for k, v in items.items()})


async def subscribe_configuration(
    services: Services, request: Any, context: Context
) -> AsyncIterator[configuration_pb2.SubscribeConfigurationResponse]:
    service = services.configuration
    changes: asyncio.Queue[list[ConfigurationItem] | None] = asyncio.Queue()

    async def updates(_subscription_id: str, items: list[ConfigurationItem]) -> None:
        changes.put_nowait(items)

    store = request.store_name
    subscription_id = await service.subscribe(
        store,
        list(request.keys),
        string_map(request.metadata),
        updates=updates,
        on_stop=lambda: changes.put_nowait(None),
    )
    try:
        yield configuration_pb2.SubscribeConfigurationResponse(id=subscription_id)
        while (items := await changes.get()) is not None:
            yield configuration_pb2.SubscribeConfigurationResponse(
                id=subscription_id, items={item.key: _changed(item) for item in items}
            )
    finally:  # the client went away (or the sidecar stops): the store's watch ends with it
        with contextlib.suppress(ApiError):
            await service.unsubscribe(store, subscription_id)


async def unsubscribe_configuration(
    services: Services, request: Any, context: Context
) -> configuration_pb2.UnsubscribeConfigurationResponse:
    await services.configuration.unsubscribe(request.store_name, request.id)
    return configuration_pb2.UnsubscribeConfigurationResponse(ok=True)


RPCS: dict[str, Unary] = {
    "GetConfiguration": get_configuration,
    "GetConfigurationAlpha1": get_configuration,
    "UnsubscribeConfiguration": unsubscribe_configuration,
    "UnsubscribeConfigurationAlpha1": unsubscribe_configuration,
}
STREAMS: dict[str, Streaming] = {
    "SubscribeConfiguration": subscribe_configuration,
    "SubscribeConfigurationAlpha1": subscribe_configuration,
}
