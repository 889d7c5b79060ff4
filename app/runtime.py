"""The runtime: the assembly of one sidecar, owned by the app's lifespan (app/factory.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from app import DAPR_API_VERSION, __version__
from app.actor_assembly import (
    follow_actor_config,
    open_scheduler,
    sidecar_address,
    start_actors,
    start_scheduler,
)
from app.actor_assembly import sidecar_auth as sidecar_auth_of
from app.app_connection import app_health, connection_properties, open_app_channel
from app.metrics import metric_spec, start_metrics, track_counters
from app.settings import Settings
from app.startup import StartupError
from app.teardown import cancel, close_logged, close_quietly
from app.tracing import tracing_spec
from components import registry
from components.errors import ComponentInitError, MetadataError
from components.loaded import ComponentStore, LoadedComponent
from components.metadata import lookup
from components.resources import ComponentResource, ResourceError, Resources, load_resources
from mesh.app_channel import AppChannel, AppConnection
from mesh.app_health import AppHealth, AppStatus
from mesh.errors import SettingsError
from mesh.name_resolution import build_resolver
from mesh.proxy import Proxy
from mesh.ratelimit import RateLimits, build_rate_limits
from mesh.resiliency import Outbound, Resiliency
from mesh.resiliency.traced import TracedOutbound
from mesh.resolver import Resolver
from mesh.tcpcopy import TcpCopy, parse_policy
from observability.metrics import Metrics, MetricsServer
from observability.recent_errors import RecentErrors
from observability.tracing import start_tracing
from observability.traffic import TrafficWindow
from routers.dashboard import DASHBOARD_TEMPLATES
from services.actuator import ActuatorService, AppInfo
from services.bindings import BindingsService
from services.configuration import ConfigurationService
from services.dashboard import DashboardService
from services.errors import ApiError
from services.files import FileService
from services.http_endpoints import http_endpoints
from services.invocation import InvocationService
from services.jobs import JobsService
from services.lock import LockService
from services.metadata import MetadataService, Versions
from services.pubsub.declarative import declarative_subscriptions
from services.pubsub.discovery import SubscriptionDiscovery
from services.pubsub.publisher import PubSubService
from services.pubsub.streaming import StreamingSubscriptions, with_streams
from services.pubsub.subscriber import Subscriber
from services.pubsub.subscriptions import Subscription
from services.secret_refs import SecretRefs
from services.secret_scopes import SecretScopes
from services.secrets import SecretsService
from services.sequencer import SequencerService
from services.sidecar import Services
from services.state import StateService
from services.wasm import WasmService
from wasm.http_pipeline import AppHttpPipeline, HttpPipeline, load_guests
from wasm.resources import function_resources

if TYPE_CHECKING:
    from observability.tracing.tracer import Tracer

log = structlog.get_logger(__name__)

EMBEDDED = "embedded default"


def embedded_defaults(settings: Settings) -> Resources:
    """What serves every building block when no --resources-path is given."""
    data = Path(settings.data_dir)
    return Resources(
        components=[
            ComponentResource(
                "statestore",
                "state.sqlite",
                "v1",
                {"connectionString": str(data / "state.db"), "actorStateStore": "true"},
                EMBEDDED,
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
            ComponentResource("filestore", "file.local", "v1", {"rootPath": str(data / "files")}, EMBEDDED),
        ]
    )


class Runtime:
    """Everything the lifespan owns. Entering it loads the resources, starts every component, builds
    each building block's service from its factory (which owns the block's metadata rules) and the
    mesh around invocation; leaving it closes all of it in reverse. Built once: nothing in it is
    replaced after start-up."""

    def __init__(
        self,
        settings: Settings,
        *,
        tcp_copy: TcpCopy | None = None,
        recent_errors: RecentErrors | None = None,
    ) -> None:
        self.settings = settings
        self.recent_errors = recent_errors if recent_errors is not None else RecentErrors()
        """The error answers the middleware and dispatcher record, for the dashboard."""
        self.components = ComponentStore()
        self.tcp_copy = tcp_copy if tcp_copy is not None else TcpCopy()
        self.resiliency = Resiliency()
        self.subscriber: Subscriber | None = None
        self.subscriptions: list[Subscription] = []
        """Every subscription this sidecar knows (declarative and the app's), for the metadata API."""
        self._declarative: list[Subscription] = []
        self._secret_refs = SecretRefs(())
        self._stack = contextlib.AsyncExitStack()
        self.started = datetime.now(UTC)
        self.metrics: Metrics | None = None
        """None when metrics are off (--enable-metrics=false, or the Configuration's)."""
        self.metrics_server: MetricsServer | None = None
        self.tracer: Tracer | None = None
        """None when tracing is off (no ``spec.tracing``, or ``samplingRate: "0"``)."""
        self.app_health: AppHealth | None = None
        """None unless --enable-app-health-check (and an app port) is given."""

    services: Services
    """Built on entry."""
    rate_limits: RateLimits
    http_pipeline: HttpPipeline
    app_channel: AppConnection

    async def __aenter__(self) -> Runtime:
        try:
            await self._start()
        except ResourceError as exc:
            await self.aclose()
            raise StartupError(str(exc)) from None
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._stack.aclose()

    def _traffic(self) -> TrafficWindow | None:
        """The dashboard's charts, sampled from the HTTP server histogram in a task of their own;
        None when metrics are off."""
        if self.metrics is None:
            return None
        server = self.metrics.http_server
        window = TrafficWindow(server.by_path, server.buckets, exclude=DASHBOARD_TEMPLATES)
        task = asyncio.get_running_loop().create_task(window.run(), name="dashboard traffic")
        self._stack.push_async_callback(cancel, task)
        return window

    async def _start(self) -> None:
        settings = self.settings
        app_id = settings.app_id
        try:
            if settings.resources_paths:
                resources = await asyncio.to_thread(load_resources, settings.resources_paths, app_id)
            else:
                resources = embedded_defaults(settings)
            started = await start_metrics(settings, metric_spec(_configurations(settings, resources)))
            if started is not None:
                self.metrics, self.metrics_server = started
                self._stack.push_async_callback(self.metrics_server.aclose)
            self.tracer = start_tracing(app_id, tracing_spec(_configurations(settings, resources)))
            if self.tracer is not None:  # the spans still batched are exported on the way out
                self._stack.push_async_callback(asyncio.to_thread, self.tracer.shutdown)
            self.resiliency = Resiliency.from_resources(resources.others, app_id)
            if self.metrics is not None:
                self.resiliency.metrics = self.metrics
                for name in self.resiliency.names:
                    self.metrics.resiliency_loaded(name)
            self._declarative = declarative_subscriptions(resources.others, app_id)
            functions = function_resources(
                resources.others, app_id, (function.name for function in settings.wasm.functions)
            )
            scopes = SecretScopes.from_configurations(_configurations(settings, resources))
            resolver = build_resolver(settings.name_resolution)
            self.rate_limits = _rate_limits(settings, resources)
            self._stack.push_async_callback(self.rate_limits.aclose)
            await self.rate_limits.start()
            self.http_pipeline = HttpPipeline(
                await asyncio.to_thread(
                    load_guests, _configurations(settings, resources), _middleware(resources)
                )
            )
            app_guests = await asyncio.to_thread(
                load_guests, _configurations(settings, resources), _middleware(resources), "appHttpPipeline"
            )
            # None without guests: calls to the app then do no pipeline work at all.
            app_pipeline = AppHttpPipeline(app_guests) if app_guests else None
            self.tcp_copy.configure(parse_policy(settings.tcp_copy, settings.data_dir))
        except SettingsError as exc:
            raise StartupError(str(exc)) from None
        self.tcp_copy.port = settings.http_port
        self._stack.push_async_callback(self.tcp_copy.aclose)  # closes what a failed start opened
        try:
            await self.tcp_copy.start()
        except OSError as exc:
            raise StartupError(f"tcp_copy.dir: cannot create {self.tcp_copy.policy.folder}: {exc}") from None
        self.subscriptions = list(self._declarative)
        await self._start_secret_stores(resources.components)
        endpoints = await http_endpoints(resources.others, app_id, self._secret_refs)
        for resource in resources.components:
            if registry.category(resource.type) in ("middleware", "secretstores"):
                continue  # middleware: applied by the pipelines that name them (mesh/ratelimit, wasm/)
            component = await self._start_component(resource)
            if component is not None:
                self.components.add(component)
        if self.metrics is not None:
            for _ in self.components:
                self.metrics.component_loaded()

        metrics = self.metrics
        self.app_channel = await open_app_channel(settings, self._stack, app_pipeline, self.metrics)
        self.app_health = app_health(settings, self.app_channel)
        scheduler = open_scheduler(settings, self._stack)
        sequencer = await SequencerService.start(self._of("sequencer"), app_id, self._outbound("sequencer"))
        self._stack.push_async_callback(sequencer.aclose)
        # Closed before the app channel and the stores: no update is delivered past shutdown.
        configuration = ConfigurationService.from_components(
            self._of("configuration"), self.app_channel, self._outbound("configuration")
        )
        self._stack.push_async_callback(configuration.aclose)
        proxy = Proxy(
            max_origins=settings.invoke_max_origins, origin_idle_timeout=settings.invoke_origin_idle_timeout
        )
        self._stack.push_async_callback(proxy.aclose)
        if metrics is not None:
            proxy.metrics = metrics.http_client
        invocation = _invocation_service(
            settings, self.app_channel, proxy, resolver, endpoints, self.resiliency
        )
        bindings = self._bindings()
        state = StateService.from_components(
            self._of("state"), app_id, self._outbound("state"), settings.max_request_items
        )
        pubsub = PubSubService.from_components(
            self._of("pubsub"), app_id, self._outbound("pubsub"), settings.max_request_items
        )
        if metrics is not None:
            pubsub.metrics = metrics.pubsub
        pubsub.tracer = self.tracer
        invocation.traced = self.tracer is not None
        secrets = SecretsService.from_components(
            self._of("secretstores"), scopes, self._outbound("secretstores")
        )
        # Closed before the pub/sub components: the open streams end, their events go back.
        streams = StreamingSubscriptions(pubsub.handles, app_id, self.resiliency)
        streams.metrics = pubsub.metrics
        streams.tracer = self.tracer
        self._stack.push_async_callback(streams.aclose)
        wasm = WasmService(state, pubsub, invocation, secrets, sequencer)
        self._stack.push_async_callback(wasm.aclose)
        metadata = MetadataService(
            app_id,
            Versions(dapr=DAPR_API_VERSION, l8=__version__),
            self.components,
            invocation,
            lambda: with_streams(self.subscriptions, streams.subscriptions()),
            connection_properties(settings, self.app_health),
            tcp_copy=self.tcp_copy,
            rate_limits=self.rate_limits,
            wasm=wasm,
            app_health=self.app_health,
            scheduler_addresses=scheduler.addresses,
        )
        actors = await start_actors(
            settings, self._stack, self.app_channel, state, self._of("state"), scheduler
        )
        metadata.actors = actors
        actuator = ActuatorService.from_components(
            self.components, AppInfo(app_id, __version__, DAPR_API_VERSION, self.started)
        )
        self.services = Services(
            state=state,
            pubsub=pubsub,
            invocation=invocation,
            lock=LockService.from_components(self._of("lock"), app_id, self._outbound("lock")),
            sequencer=sequencer,
            configuration=configuration,
            secrets=secrets,
            metadata=metadata,
            files=FileService.from_components(self._of("file"), self._outbound("file")),
            bindings=bindings,
            wasm=wasm,
            actuator=actuator,
            dashboard=DashboardService(metadata, actuator, self.recent_errors, self._traffic()),
            scheduler=scheduler,
            jobs=JobsService(scheduler, app_id),
            streams=streams,
            actors=actors,
        )
        try:
            await wasm.start(settings.wasm.functions)
        except ApiError as exc:
            raise StartupError(f"wasm.functions: {exc.message}") from None
        for function in functions:
            try:
                await wasm.install(function.settings)
            except ApiError as exc:
                raise StartupError(str(function.error(exc.message, "spec.url"))) from None
        if self.metrics is not None:
            track_counters(
                self.metrics, self.rate_limits, self.tcp_copy, sequencer, configuration, self.app_health
            )
        # Other sidecars find this one only once every service is built.
        await self._start_name_resolution(resolver)
        await start_scheduler(settings, scheduler, self.app_channel)
        await self._start_subscriptions()
        await self._start_input_bindings(bindings)
        self._start_app_health(bindings)
        follow_actor_config(settings, self._stack, self.app_channel, actors)
        log.info(
            "components ready",
            components=[f"{c.name} ({c.type})" for c in self.components],
            resources=[str(p) for p in settings.resources_paths] or EMBEDDED,
        )

    async def _start_secret_stores(self, resources: list[ComponentResource]) -> None:
        """Secret stores start first, each once the store its own ``secretKeyRef`` reads has
        (a ``local.file`` holding the password of a ``redis`` store, say)."""
        pending = [r for r in resources if registry.category(r.type) == "secretstores"]
        refs = self._secret_refs = SecretRefs(
            [r.name for r in pending], timeout=self.settings.component_timeout
        )
        while pending:
            ready = [r for r in pending if not r.secret_refs or refs.ready(r.secret_store, r.name)]
            for resource in ready or pending[:1]:  # none ready: a cycle, the first one says so
                pending.remove(resource)
                component = await self._start_component(resource)
                if component is not None:
                    self.components.add(component)
                    refs.stores[component.name] = component.instance

    async def _start_component(self, resource: ComponentResource) -> LoadedComponent | None:
        refs = self._secret_refs

        def fail(message: str, field: str | None = None) -> StartupError:
            error = ResourceError(resource.source, message, resource.name, field)
            return StartupError(refs.scrub(str(error)))

        try:
            instance = registry.create(resource.type, resource.version)
        except registry.UnknownComponentType as exc:
            raise fail(str(exc), "spec.type") from None
        metadata = dict(resource.metadata)
        for ref in resource.secret_refs:
            try:
                metadata[ref.field] = await refs.value(
                    resource.secret_store,
                    ref.name,
                    ref.key,
                    source=resource.source,
                    resource=resource.name,
                    field=ref.field,
                )
            except ResourceError as exc:
                if resource.ignore_errors:
                    log.warning("component skipped (ignoreErrors)", error=str(exc))
                    return None
                raise StartupError(str(exc)) from None
        if registry.category(resource.type) == "pubsub" and not lookup(metadata, "consumerID"):
            # Dapr's default: consumers of one app id share one consumer group. Sidecars started
            # without an app id share the group "l8".
            metadata["consumerID"] = self.settings.app_id or "l8"
        try:
            await asyncio.wait_for(instance.init(metadata), timeout=resource.init_timeout)
        except (MetadataError, ComponentInitError, TimeoutError) as exc:
            await close_quietly(instance)
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
        self._stack.push_async_callback(close_logged, resource.name, instance.close)
        log.debug("component started", component=resource.name, type=resource.type)
        return LoadedComponent(
            resource.name,
            resource.type,
            resource.version or "v1",
            instance,
            metadata,
            resource.source,
        )

    def _bindings(self) -> BindingsService:
        try:
            bindings = BindingsService.from_components(
                self._of("bindings"), self.app_channel, self.resiliency, self._outbound("bindings")
            )
        except ResourceError as exc:
            raise StartupError(str(exc)) from None
        # Readers stop before the app channel and the components close.
        self._stack.push_async_callback(bindings.aclose)
        return bindings

    async def _start_input_bindings(self, bindings: BindingsService) -> None:
        """Input bindings need the app: a background task probes it once it listens (and again
        when it comes back) and starts the readers it wants (with app health checks, once the app
        is healthy)."""
        bindings.input.tracer = self.tracer
        if self.app_health is not None:
            await bindings.input.pause()
        task = asyncio.create_task(bindings.input.run(), name="input bindings")
        self._stack.push_async_callback(cancel, task)

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
        subscriber = Subscriber(
            self.services.pubsub.handles, self.app_channel, self.settings.app_id, self.resiliency
        )
        self.subscriber = subscriber
        if self.metrics is not None:
            subscriber.metrics = self.metrics.pubsub
        subscriber.tracer = self.tracer
        self._stack.push_async_callback(subscriber.aclose)
        if self.app_health is not None:
            await subscriber.pause()
        discovery = SubscriptionDiscovery(self.app_channel, self.settings.app_id, self._app_subscriptions)
        task = asyncio.create_task(discovery.run(), name="subscription discovery")
        self._stack.push_async_callback(cancel, task)

    def _start_app_health(self, bindings: BindingsService) -> None:
        """With app health checks, deliveries and input bindings start paused and follow the app's
        health: paused while it is unhealthy, resumed on the first success; calls invoking the app
        are refused while it is unhealthy (Dapr's behaviour)."""
        health = self.app_health
        if health is None:
            return
        subscriber = self.subscriber

        async def follow(status: AppStatus) -> None:
            if status is AppStatus.HEALTHY:
                if subscriber is not None:
                    await subscriber.resume()
                await bindings.input.resume()
            else:
                if subscriber is not None:
                    await subscriber.pause()
                await bindings.input.pause()

        health.on_change(follow)
        self.services.invocation.app_unhealthy = lambda: health.status is AppStatus.UNHEALTHY
        task = asyncio.create_task(health.run(), name="app health probes")
        self._stack.push_async_callback(cancel, task)

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

    async def _start_name_resolution(self, resolver: Resolver) -> None:
        # A registry's default address for this sidecar (advertiseAddress overrides it).
        address = sidecar_address(self.settings)
        self._stack.push_async_callback(resolver.aclose)  # idempotent: also after a failed start
        try:
            await resolver.start(self.settings.app_id, address)
        except SettingsError as exc:
            raise StartupError(str(exc)) from None

    def _outbound(self, block: str) -> Callable[[LoadedComponent], Outbound]:
        """Each component's outbound Resiliency policy under the sidecar's component_timeout."""
        deadline = self.settings.component_timeout
        tracer = self.tracer
        if tracer is None or block == "pubsub":  # a publish makes its own span (its id goes in the event)
            return lambda component: self.resiliency.component_calls(component.name, block, deadline)
        return lambda component: TracedOutbound(
            self.resiliency.component_calls(component.name, block, deadline), block, tracer
        )

    def _of(self, block: str) -> list[LoadedComponent]:
        return list(self.components.of(block).values())


def _configurations(settings: Settings, resources: Resources) -> list[tuple[dict[str, Any], str]]:
    """Every Configuration spec with its source: --config's, then those among the resources."""
    configurations = [(settings.dapr_configuration, "--config")] if settings.dapr_configuration else []
    for kind, document, source in resources.others:
        spec = document.get("spec") or {}
        if kind == "Configuration" and spec != settings.dapr_configuration:  # the same file once
            configurations.append((spec, source))
    return configurations


def _middleware(resources: Resources) -> dict[str, tuple[str, dict[str, str], str]]:
    """Middleware components by name: (type, metadata, source), for the pipelines that name them."""
    return {
        resource.name: (resource.type, dict(resource.metadata), resource.source)
        for resource in resources.components
        if registry.category(resource.type) == "middleware"
    }


def _rate_limits(settings: Settings, resources: Resources) -> RateLimits:
    configurations = _configurations(settings, resources)
    return build_rate_limits(settings.rate_limits, configurations, _middleware(resources), settings.app_id)


def _invocation_service(
    settings: Settings,
    app_channel: AppConnection,
    proxy: Proxy,
    resolver: Resolver,
    endpoints: dict[str, Any],
    resiliency: Resiliency,
) -> InvocationService:
    token = settings.app_api_token.get_secret_value() if settings.app_api_token else None
    sidecar_auth = sidecar_auth_of(settings)
    return InvocationService(
        settings.app_id,
        app_channel.base_url,
        token,
        proxy,
        resolver,
        endpoints,
        settings.invoke_timeout,
        resiliency,
        settings.max_body_size,
        sidecar_auth,
        app_channel.pipeline if isinstance(app_channel, AppChannel) else None,
        None if isinstance(app_channel, AppChannel) else app_channel,
    )
