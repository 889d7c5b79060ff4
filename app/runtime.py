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
from app.resources import ComponentResource, ResourceError, Resources, load_resources
from app.services.state import StateService, StateStoreHandle
from app.settings import Settings
from components import registry
from components.errors import ComponentInitError, MetadataError
from components.state.keys import KeyPrefix

log = structlog.get_logger(__name__)

EMBEDDED = "embedded default"


class StartupError(Exception):
    """Start-up cannot go on; the message is one line naming the file, component and field."""


def embedded_defaults(settings: Settings) -> Resources:
    """What serves every building block when no --resources-path is given."""
    database = Path(settings.data_dir) / "state.db"
    return Resources(
        components=[
            ComponentResource(
                "statestore", "state.sqlite", "v1", {"connectionString": str(database)}, EMBEDDED
            )
        ]
    )


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.components = ComponentStore()
        self.resources = Resources()
        self.state = StateService({}, settings.app_id)
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
        except ResourceError as exc:
            raise StartupError(str(exc)) from None
        for resource in self.resources.components:
            component = await self._start_component(resource)
            if component is not None:
                self.components.add(component)
        self.state = self._state_service()
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
        try:
            await asyncio.wait_for(instance.init(resource.metadata), timeout=resource.init_timeout)
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
            resource.metadata,
            resource.source,
        )

    def _state_service(self) -> StateService:
        handles = {}
        for component in self.components.of("state").values():
            try:
                keys = KeyPrefix.from_metadata(
                    _lookup(component.metadata, "keyPrefix"),
                    app_id=self.settings.app_id,
                    store_name=component.name,
                )
            except MetadataError as exc:
                raise StartupError(
                    str(ResourceError(component.source, exc.message, component.name, exc.field))
                ) from None
            handles[component.name] = StateStoreHandle(
                component.name, component.instance, keys, frozenset(component.instance.features())
            )
        return StateService(handles, self.settings.app_id)


def _lookup(metadata: dict[str, str], name: str) -> str | None:
    lowered = name.lower()
    return next((value for key, value in metadata.items() if key.lower() == lowered), None)


async def _close_quietly(instance: Any) -> None:
    with contextlib.suppress(Exception):
        await instance.close()


async def _close_logged(name: str, close: Callable[[], Awaitable[None]]) -> None:
    """Teardown goes on past a failing close; every failure is reported once."""
    try:
        await close()
    except Exception as exc:
        log.error("component close failed", component=name, error=str(exc))
