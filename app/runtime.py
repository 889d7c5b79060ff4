"""The runtime: loads the resources, starts every component, builds the building blocks' services
and, on exit, closes everything in reverse. It is the resource the app's lifespan owns."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog

from app.component_store import ComponentStore, LoadedComponent
from app.settings import Settings
from components import registry
from components.errors import ComponentError, ComponentInitError, MetadataError
from components.metadata import parse_bool
from components.resources import ComponentResource, ResourceError, Resources, load_resources
from components.state.keys import KeyPrefix
from mesh.app_channel import AppChannel
from mesh.errors import SettingsError
from mesh.proxy import MESH_TOKEN, Proxy
from mesh.ratelimit import RateLimits, build_rate_limits
from mesh.resiliency import Resiliency, retry_from_metadata
from mesh.resolver import Resolver, StaticResolver, build_resolver
from mesh.tcpcopy import TcpCopy, parse_policy
from services.configuration import ConfigurationService, ConfigurationStoreHandle
from services.configuration_cache import ConfigurationCache
from services.http_endpoints import http_endpoints
from services.invocation import InvocationService
from services.lock import LockService, LockStoreHandle
from services.pubsub.declarative import declarative_subscriptions
from services.pubsub.discovery import SubscriptionDiscovery
from services.pubsub.handles import PubSubHandle
from services.pubsub.publisher import PubSubService
from services.pubsub.scopes import TopicScopes
from services.pubsub.subscriber import Subscriber
from services.pubsub.subscriptions import Subscription
from services.sequencer import SequencerHandle, SequencerOptions, SequencerService
from services.state import StateService, StateStoreHandle

log = structlog.get_logger(__name__)

EMBEDDED = "embedded default"


class StartupError(Exception):
    """Start-up cannot go on; the message is one line naming the file, component and field."""


def embedded_defaults(settings: Settings) -> Resources:
    """What serves every building block when no --resources-path is given."""
    data = Path(settings.data_dir)
    return Resources(
        components=[
            ComponentResource(
                "statestore", "state.sqlite", "v1", {"connectionString": str(data / "state.db")}, EMBEDDED
            ),
            ComponentResource("pubsub", "pubsub.in-memory", "v1", {}, EMBEDDED),
            ComponentResource("lockstore", "lock.in-memory", "v1", {}, EMBEDDED),
            ComponentResource(
                "sequencer",
                "sequencer.sqlite",
                "v1",
                {"connectionString": str(data / "sequencer.db")},
                EMBEDDED,
            ),
            ComponentResource("configstore", "configuration.in-memory", "v1", {}, EMBEDDED),
        ]
    )


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.components = ComponentStore()
        self.resources = Resources()
        self.state = StateService({}, settings.app_id)
        self.pubsub = PubSubService({}, settings.app_id)
        self.lock = LockService({})
        self.sequencer = SequencerService({})
        self.app_channel = AppChannel(
            settings.app_id,
            settings.app_port,
            protocol=settings.app_protocol,
            address=settings.app_channel_address,
            token=settings.app_api_token.get_secret_value() if settings.app_api_token else None,
        )
        self.configuration = ConfigurationService({}, self.app_channel)
        self.proxy = Proxy()
        self.resiliency = Resiliency()
        self.invocation = self._invocation_service({}, StaticResolver({}))
        self.rate_limits = RateLimits([], settings.app_id)
        self.tcp_copy = TcpCopy()
        self.subscriber: Subscriber | None = None
        self.subscriptions: list[Subscription] = []
        """Every subscription this sidecar knows (declarative and the app's), for the metadata API."""
        self._declarative: list[Subscription] = []
        self.extended_metadata: dict[str, str] = {}
        self.ready = False
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Runtime:
        try:
            await self._start()
        except BaseException:
            await self.aclose()
            raise
        self.ready = True
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self.ready = False
        await self._stack.aclose()

    async def _start(self) -> None:
        settings = self.settings
        try:
            if settings.resources_paths:
                self.resources = await asyncio.to_thread(
                    load_resources, settings.resources_paths, settings.app_id
                )
            else:
                self.resources = embedded_defaults(settings)
            self.resiliency = Resiliency.from_resources(self.resources.others, settings.app_id)
            self._declarative = declarative_subscriptions(self.resources.others, settings.app_id)
            endpoints = http_endpoints(self.resources.others, settings.app_id)
            self.invocation = self._invocation_service(endpoints, build_resolver(settings.name_resolution))
            self.rate_limits = self._rate_limits()
            self._stack.push_async_callback(self.rate_limits.aclose)
            await self.rate_limits.start()
            self.tcp_copy.configure(parse_policy(settings.tcp_copy, settings.data_dir))
        except (ResourceError, SettingsError) as exc:
            raise StartupError(str(exc)) from None
        self.tcp_copy.port = settings.http_port
        try:
            await self.tcp_copy.start()
        except OSError as exc:
            raise StartupError(f"tcp_copy.dir: cannot create {self.tcp_copy.policy.folder}: {exc}") from None
        self._stack.push_async_callback(self.tcp_copy.aclose)
        self.subscriptions = list(self._declarative)
        for resource in self.resources.components:
            if registry.category(resource.type) == "middleware":
                continue  # applied by the pipelines that name them (mesh/ratelimit)
            component = await self._start_component(resource)
            if component is not None:
                self.components.add(component)
        self.state = self._state_service()
        self.pubsub = self._pubsub_service()
        self.lock = LockService(
            {c.name: LockStoreHandle(c.name, c.instance, self._key_prefix(c)) for c in self._of("lock")}
        )
        await self._start_sequencers()
        await self.app_channel.start()
        self._stack.push_async_callback(self.app_channel.aclose)
        # Closed before the app channel and the stores: no update is delivered past shutdown.
        self.configuration = ConfigurationService(
            {c.name: self._configuration_store(c) for c in self._of("configuration")}, self.app_channel
        )
        self._stack.push_async_callback(self.configuration.aclose)
        self._stack.push_async_callback(self.proxy.aclose)
        await self._start_name_resolution()
        await self._start_subscriptions()
        log.info(
            "components ready",
            components=[f"{c.name} ({c.type})" for c in self.components],
            resources=[str(p) for p in settings.resources_paths] or EMBEDDED,
        )

    async def _start_component(self, resource: ComponentResource) -> LoadedComponent | None:
        def fail(message: str, field: str | None = None) -> StartupError:
            return StartupError(str(ResourceError(resource.source, message, resource.name, field)))

        try:
            instance = registry.create(resource.type, resource.version)
        except registry.UnknownComponentType as exc:
            raise fail(str(exc), "spec.type") from None
        metadata = dict(resource.metadata)
        if registry.category(resource.type) == "pubsub" and not _lookup(metadata, "consumerID"):
            # Dapr's default: consumers of one app id share one consumer group. Sidecars started
            # without an app id share the group "l8".
            metadata["consumerID"] = self.settings.app_id or "l8"
        try:
            await asyncio.wait_for(instance.init(metadata), timeout=resource.init_timeout)
        except (MetadataError, ComponentInitError, TimeoutError) as exc:
            await _close_quietly(instance)
            if isinstance(exc, MetadataError):
                error = fail(exc.message, exc.field)
            elif isinstance(exc, ComponentInitError):
                error = fail(str(exc), exc.field)
            else:
                error = fail(f"init did not finish within {resource.init_timeout:g}s (spec.initTimeout)")
            if resource.ignore_errors:
                log.warning("component skipped (ignoreErrors)", error=str(error))
                return None
            raise error from None
        self._stack.push_async_callback(_close_logged, resource.name, instance.close)
        log.debug("component started", component=resource.name, type=resource.type)
        return LoadedComponent(
            resource.name,
            resource.type,
            resource.version or "v1",
            instance,
            metadata,
            resource.source,
        )

    async def _start_subscriptions(self) -> None:
        """Deliveries need the app: once it listens, discovery reads its subscriptions and the
        subscriber starts consuming the declarative ones and the app's. Closed before the app
        channel and the components (the exit stack unwinds in reverse)."""
        if not self.app_channel.configured:
            if self._declarative:
                log.warning(
                    "subscriptions are not delivered without --app-port", count=len(self._declarative)
                )
            return
        subscriber = Subscriber(self.pubsub.handles, self.app_channel, self.settings.app_id, self.resiliency)
        self.subscriber = subscriber
        self._stack.push_async_callback(subscriber.aclose)
        discovery = SubscriptionDiscovery(self.app_channel, self.settings.app_id, self._app_subscriptions)
        task = asyncio.create_task(discovery.run(), name="subscription discovery")
        self._stack.push_async_callback(_cancel, task)

    async def _app_subscriptions(self, programmatic: list[Subscription]) -> None:
        """Declarative subscriptions first; the app's for the same (pubsub, topic) are ignored."""
        merged: dict[tuple[str, str], Subscription] = {}
        for subscription in [*self._declarative, *programmatic]:
            merged.setdefault(subscription.key, subscription)
        subscriptions = list(merged.values())
        for subscription in programmatic:
            if merged[subscription.key] is not subscription:
                log.warning(
                    "the app's subscription is shadowed by a declarative one",
                    pubsub=subscription.pubsub,
                    topic=subscription.topic,
                )
        self.subscriptions = subscriptions
        assert self.subscriber is not None
        await self.subscriber.apply(subscriptions)

    async def _start_name_resolution(self) -> None:
        resolver = self.invocation.resolver
        # A registry's default address for this sidecar (advertiseAddress overrides it).
        host = "127.0.0.1" if self.settings.host in ("0.0.0.0", "::", "") else self.settings.host
        address = f"{host}:{self.settings.http_port}"
        try:
            await resolver.start(self.settings.app_id, address)
        except SettingsError as exc:
            raise StartupError(str(exc)) from None
        self._stack.push_async_callback(resolver.aclose)

    def _rate_limits(self) -> RateLimits:
        settings = self.settings
        configurations = [(settings.dapr_configuration, "--config")] if settings.dapr_configuration else []
        for kind, document, source in self.resources.others:
            spec = document.get("spec") or {}
            if kind == "Configuration" and spec != settings.dapr_configuration:  # the same file once
                configurations.append((spec, source))
        middleware = {
            resource.name: (resource.type, resource.metadata, resource.source)
            for resource in self.resources.components
            if registry.category(resource.type) == "middleware"
        }
        return build_rate_limits(settings.rate_limits, configurations, middleware, settings.app_id)

    def _invocation_service(self, endpoints: dict[str, Any], resolver: Resolver) -> InvocationService:
        settings = self.settings
        token = settings.app_api_token.get_secret_value() if settings.app_api_token else None
        sidecar_auth = None
        if settings.mesh_token is not None:
            sidecar_auth = (MESH_TOKEN, settings.mesh_token.get_secret_value())
        elif settings.api_token is not None:  # a fleet sharing one API token
            sidecar_auth = ("dapr-api-token", settings.api_token.get_secret_value())
        return InvocationService(
            settings.app_id,
            self.app_channel.base_url,
            token,
            self.proxy,
            resolver,
            endpoints,
            settings.invoke_timeout,
            self.resiliency,
            settings.max_body_size,
            sidecar_auth,
        )

    def _configuration_store(self, component: LoadedComponent) -> ConfigurationStoreHandle:
        try:
            cached = parse_bool(_lookup(component.metadata, "cacheEnable") or "false")
        except ValueError as exc:
            raise _component_error(component, str(exc), "cacheEnable") from None
        cache = ConfigurationCache(component.instance) if cached else None
        return ConfigurationStoreHandle(component.name, component.instance, cache)

    def _of(self, block: str) -> list[LoadedComponent]:
        return list(self.components.of(block).values())

    def _key_prefix(self, component: LoadedComponent) -> KeyPrefix:
        try:
            strategy = _lookup(component.metadata, "keyPrefix")
            return KeyPrefix.from_metadata(strategy, app_id=self.settings.app_id, store_name=component.name)
        except MetadataError as exc:
            raise _component_error(component, exc.message, exc.field) from None

    async def _start_sequencers(self) -> None:
        handles = {}
        for component in self._of("sequencer"):
            try:
                options = SequencerOptions.from_metadata(component.metadata)
            except MetadataError as exc:
                raise _component_error(component, exc.message, exc.field) from None
            handles[component.name] = SequencerHandle(
                component.name, component.instance, self._key_prefix(component), options
            )
            for key, floor in options.bigger_than.items():
                try:
                    await component.instance.ensure_above(handles[component.name].storage_key(key), floor)
                except ComponentError as exc:
                    raise _component_error(component, f"biggerThan.{key} not applied: {exc}") from None
        self.sequencer = SequencerService(handles)
        self._stack.push_async_callback(self.sequencer.aclose)

    def _state_service(self) -> StateService:
        handles = {}
        for component in self._of("state"):
            handles[component.name] = StateStoreHandle(
                component.name,
                component.instance,
                self._key_prefix(component),
                frozenset(component.instance.features()),
            )
        return StateService(handles, self.settings.app_id, self.settings.max_request_items)

    def _pubsub_service(self) -> PubSubService:
        handles = {}
        for component in self.components.of("pubsub").values():
            try:
                scopes = TopicScopes.from_metadata(component.metadata)
                retry_from_metadata(component.metadata)  # a bad backOff* value fails start-up
            except MetadataError as exc:
                raise StartupError(
                    str(ResourceError(component.source, exc.message, component.name, exc.field))
                ) from None
            handles[component.name] = PubSubHandle(
                component.name,
                component.instance,
                frozenset(component.instance.features()),
                scopes,
                component.metadata,
            )
        return PubSubService(handles, self.settings.app_id, self.settings.max_request_items)


def _component_error(component: LoadedComponent, message: str, field: str | None = None) -> StartupError:
    return StartupError(str(ResourceError(component.source, message, component.name, field)))


def _lookup(metadata: dict[str, str], name: str) -> str | None:
    lowered = name.lower()
    return next((value for key, value in metadata.items() if key.lower() == lowered), None)


async def _cancel(task: asyncio.Task[None], deadline: float = 5.0) -> None:
    """Cancel a background task and wait for it, within ``deadline``: shutdown never hangs on one
    (a task may swallow one cancellation; it is cancelled again until it ends or time runs out)."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + deadline
    while not task.done() and loop.time() < give_up:
        task.cancel()
        await asyncio.wait([task], timeout=min(0.5, max(0.0, give_up - loop.time())))
    if not task.done():
        log.error("background task did not stop", task=task.get_name())
    elif not task.cancelled() and task.exception() is not None:
        log.error("background task failed", task=task.get_name(), error=repr(task.exception()))


async def _close_quietly(instance: Any) -> None:
    with contextlib.suppress(Exception):
        await instance.close()


async def _close_logged(name: str, close: Callable[[], Awaitable[None]]) -> None:
    """Teardown goes on past a failing close; every failure is reported once."""
    try:
        await close()
    except Exception as exc:
        log.error("component close failed", component=name, error=str(exc))
