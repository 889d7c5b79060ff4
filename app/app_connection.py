"""The sidecar's way to its app: the channel (HTTP, or the app's gRPC ``AppCallback`` service), its
health checks and how the metadata API describes it."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import structlog

from app.settings import Settings
from mesh.app_channel import AppChannel, AppConnection
from mesh.app_health import AppHealth, AppHealthSettings
from observability.metrics import Metrics

log = structlog.get_logger(__name__)


async def open_app_channel(
    settings: Settings, stack: AsyncExitStack, pipeline: Any, metrics: Metrics | None
) -> AppConnection:
    """The channel to the app: l8's HTTP client, or with ``--app-protocol grpc`` the app's
    ``AppCallback`` service (routers/grpc/app_callback.py). Closed after everything using it."""
    token = settings.app_api_token.get_secret_value() if settings.app_api_token else None
    if settings.app_protocol == "grpc":
        from routers.grpc.app_callback import GrpcAppChannel

        callback = GrpcAppChannel(
            settings.app_id,
            settings.app_port,
            address=settings.app_channel_address,
            token=token,
            max_message_size=settings.max_body_size,
        )
        await callback.start()
        stack.push_async_callback(callback.aclose)
        return callback
    channel = AppChannel(
        settings.app_id,
        settings.app_port,
        protocol=settings.app_protocol,
        address=settings.app_channel_address,
        token=token,
        pipeline=pipeline,
    )
    await channel.start()
    stack.push_async_callback(channel.aclose)
    if metrics is not None:
        channel.metrics = metrics.http_client
    return channel


def connection_properties(settings: Settings, health: AppHealth | None) -> dict[str, Any]:
    """``appConnectionProperties`` of the metadata API."""
    connection: dict[str, Any] = {
        "protocol": settings.app_protocol,
        "channelAddress": settings.app_channel_address,
    }
    if settings.app_port is not None:
        connection["port"] = settings.app_port
    if health is not None:
        connection["health"] = health.settings.describe()
    return connection


def app_health(settings: Settings, channel: AppConnection) -> AppHealth | None:
    """Dapr's app health checks, when switched on and there is an app to probe."""
    if not settings.enable_app_health_check:
        return None
    if not channel.configured:
        log.warning("app health checks need --app-port: the app is not probed")
        return None
    return AppHealth(
        channel,
        AppHealthSettings(
            path=settings.app_health_check_path,
            interval=settings.app_health_probe_interval,
            timeout=settings.app_health_probe_timeout / 1000,
            threshold=settings.app_health_threshold,
        ),
    )
