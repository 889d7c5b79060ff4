"""Layotto's configuration RPCs over services/configuration.py: GetConfiguration (whole items:
key, content, group, label, tags), SaveConfiguration, DeleteConfiguration, and
SubscribeConfiguration, a bidirectional stream where every request message adds a subscription
and every change comes back as one response with the store's name and the changed items (a
removed item has empty content). The stream's subscriptions end with it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

from google.protobuf import empty_pb2

from components.configuration.base import ConfigurationItem
from routers.grpc.calls import Context, Streaming, Unary, string_map
from routers.grpc.layotto.proto import runtime_pb2
from services.errors import ApiError
from services.sidecar import Services


def _item(item: ConfigurationItem) -> runtime_pb2.ConfigurationItem:
    return runtime_pb2.ConfigurationItem(
        key=item.key,
        content="" if item.deleted else item.value or "",
        group=item.group,
        label=item.label,
        tags=dict(item.tags or {}),
        metadata=dict(item.metadata or {}),
    )


def _items(items: Iterable[ConfigurationItem]) -> list[runtime_pb2.ConfigurationItem]:
    return [_item(item) for item in items]


async def get_configuration(
    services: Services, request: Any, context: Context
) -> runtime_pb2.GetConfigurationResponse:
    items = await services.configuration.get_items(
        request.store_name, list(request.keys), string_map(request.metadata), request.group, request.label
    )
    return runtime_pb2.GetConfigurationResponse(items=_items(items))


async def save_configuration(services: Services, request: Any, context: Context) -> empty_pb2.Empty:
    fields = {
        "items": [
            {
                "key": item.key,
                "content": item.content,
                "group": item.group,
                "label": item.label,
                "tags": dict(item.tags),
                "metadata": dict(item.metadata),
            }
            for item in request.items
        ],
        "metadata": string_map(request.metadata),
    }
    await services.configuration.save(request.store_name, fields)
    return empty_pb2.Empty()


async def delete_configuration(services: Services, request: Any, context: Context) -> empty_pb2.Empty:
    fields = {
        "keys": list(request.keys),
        "group": request.group,
        "label": request.label,
        "metadata": string_map(request.metadata),
    }
    await services.configuration.delete(request.store_name, fields)
    return empty_pb2.Empty()


_Answer = runtime_pb2.SubscribeConfigurationResponse | ApiError | None
"""What the stream's queue carries: a change, a refused subscription, or the end (None)."""


async def subscribe_configuration(
    services: Services, requests: AsyncIterator[Any], context: Context
) -> AsyncIterator[runtime_pb2.SubscribeConfigurationResponse]:
    service = services.configuration
    answers: asyncio.Queue[_Answer] = asyncio.Queue()
    subscribed: list[tuple[str, str]] = []

    async def subscribe(request: Any) -> None:
        store, app_id = request.store_name, request.app_id

        async def updates(_subscription_id: str, items: list[ConfigurationItem]) -> None:
            answers.put_nowait(
                runtime_pb2.SubscribeConfigurationResponse(
                    store_name=store, app_id=app_id, items=_items(items)
                )
            )

        subscription_id = await service.subscribe(
            store,
            list(request.keys),
            string_map(request.metadata),
            request.group,
            request.label,
            updates=updates,
            on_stop=lambda: answers.put_nowait(None),
        )
        subscribed.append((store, subscription_id))

    async def read() -> None:
        # The client's half-close ends the requests, not the stream: its subscriptions stay.
        try:
            async for request in requests:
                await subscribe(request)
        except ApiError as exc:
            answers.put_nowait(exc)

    reader = asyncio.create_task(read())
    try:
        while (answer := await answers.get()) is not None:
            if isinstance(answer, ApiError):
                raise answer
            yield answer
    finally:  # the client went away, a subscription was refused, or the sidecar stops
        reader.cancel()
        for store, subscription_id in subscribed:
            with contextlib.suppress(ApiError):
                await service.unsubscribe(store, subscription_id)


RPCS: dict[str, Unary] = {
    "GetConfiguration": get_configuration,
    "SaveConfiguration": save_configuration,
    "DeleteConfiguration": delete_configuration,
}
STREAMS: dict[str, Streaming] = {"SubscribeConfiguration": subscribe_configuration}
