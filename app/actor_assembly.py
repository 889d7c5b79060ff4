"""The assembly of actors and jobs: the scheduler on the name-resolution store, placement on the
same server (one sidecar alone: itself), the actor runtime over them, and the app's actors: an HTTP
app's ``/dapr/config`` followed for the types it hosts, or (a gRPC app, or no app port) the actor
host streams the app opens (``SubscribeActorEventsAlpha1``)."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from app.settings import Settings
from app.startup import StartupError
from app.teardown import cancel
from components.errors import ComponentError
from components.loaded import LoadedComponent
from mesh.app_channel import AppConnection
from mesh.errors import SettingsError
from mesh.placement.factory import build_placement
from mesh.proxy import MESH_TOKEN
from mesh.redis_registry import RedisRegistrySettings
from mesh.resolver import StaticResolverSettings
from services.actors import ActorRuntime, build_actor_runtime
from services.actors.app import ActorApp
from services.actors.config import ConfigWatch
from services.actors.host import ActorHost
from services.jobs import KIND as JOB_KIND
from services.jobs import JobTrigger
from services.scheduler.service import SchedulerService, build_scheduler
from services.state import StateService


def open_scheduler(settings: Settings, stack: AsyncExitStack) -> SchedulerService:
    """The scheduler on the name-resolution store (SQLite under data_dir when static). Closed
    before the app channel (the exit stack unwinds in reverse); started with the runtime."""
    scheduler = build_scheduler(settings.name_resolution, settings.data_dir, settings.app_id)
    stack.push_async_callback(scheduler.close)
    return scheduler


async def start_scheduler(settings: Settings, scheduler: SchedulerService, channel: AppConnection) -> None:
    """Open the scheduler's store (after name resolution, whose errors about the same server
    come first) and fire jobs on the app, when there is one."""
    try:
        await scheduler.start()
    except ComponentError as exc:
        field = getattr(exc, "field", None)
        if isinstance(settings.name_resolution, StaticResolverSettings):
            where = "data_dir"  # SQLite under it
        else:
            where = f"name_resolution.{field}" if field else "name_resolution"
        raise StartupError(f"{where}: the scheduler cannot use its store: {exc}") from None
    if channel.configured:
        scheduler.deliver(JOB_KIND, JobTrigger(channel))


async def start_actors(
    settings: Settings,
    stack: AsyncExitStack,
    channel: AppConnection,
    state: StateService,
    state_stores: list[LoadedComponent],
    scheduler: SchedulerService,
) -> ActorRuntime:
    """Placement on the name-resolution server (one sidecar alone: itself), then the actor
    runtime over it and the scheduler. The exit stack closes the runtime first (it drains every
    actor), then placement, then the scheduler."""
    placement = build_placement(settings.name_resolution)
    stack.push_async_callback(placement.aclose)
    try:
        await placement.start(settings.app_id, sidecar_address(settings))
    except SettingsError as exc:
        raise StartupError(str(exc)) from None
    except Exception as exc:  # the name-resolution server is away: start-up names it
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        redis = isinstance(settings.name_resolution, RedisRegistrySettings)
        field = "redisHost" if redis else "endpoints"
        server = placement.describe().get("server")
        raise StartupError(f"name_resolution.{field}: cannot register at {server}: {reason}") from None
    actors = build_actor_runtime(
        settings.app_id,
        placement,
        actor_host(settings, channel),
        state,
        state_stores,
        scheduler,
        sidecar_auth=sidecar_auth(settings),
    )
    stack.push_async_callback(actors.aclose)
    actors.start()
    return actors


def hosts_over_http(settings: Settings, channel: AppConnection) -> bool:
    """Whether the app's actors are called over its HTTP channel (daprd: an HTTP app channel);
    otherwise the app hosts them over the streams it opens."""
    return channel.configured and settings.app_protocol != "grpc"


def actor_host(settings: Settings, channel: AppConnection) -> ActorHost:
    if hosts_over_http(settings, channel):
        return ActorApp(channel)
    from routers.grpc.actor_host import StreamedActorHost

    return StreamedActorHost(app_port=channel.configured)


def follow_actor_config(
    settings: Settings, stack: AsyncExitStack, channel: AppConnection, actors: ActorRuntime
) -> None:
    """An HTTP app's ``/dapr/config``, read once it listens and after each restart (a gRPC app's
    types come with its actor host stream, as daprd's gRPC channel reads them from it)."""
    if not hosts_over_http(settings, channel):
        return
    watch = ConfigWatch(channel, settings.app_id, actors.apply)
    task = asyncio.create_task(watch.run(), name="actor configuration")
    stack.push_async_callback(cancel, task)


def sidecar_address(settings: Settings) -> str:
    """This sidecar's HTTP API as other sidecars reach it."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"{host}:{settings.http_port}"


def sidecar_auth(settings: Settings) -> tuple[str, str] | None:
    """What a call to another sidecar of the fleet carries: the mesh token, else the API token the
    fleet shares (if any)."""
    if settings.mesh_token is not None:
        return (MESH_TOKEN, settings.mesh_token.get_secret_value())
    if settings.api_token is not None:
        return ("dapr-api-token", settings.api_token.get_secret_value())
    return None
