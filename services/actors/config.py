"""The app's actor configuration: its answer to ``GET /dapr/config`` (dapr-http-api.md section 12.3).

Read when the app's port first accepts connections, and again each time it comes back after it
stopped listening (a restart may bring other actor types), as subscription discovery reads
``/dapr/subscribe`` (services/pubsub/discovery.py). A non-200 answer means the app hosts no actors
(it is then only a client of actors hosted elsewhere).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import orjson
import structlog

from mesh.app_channel import AppChannel, AppUnreachable
from services import durations

log = structlog.get_logger(__name__)

CONFIG_PATH = "/dapr/config"
IDLE_TIMEOUT = timedelta(minutes=60)
DRAIN_TIMEOUT = timedelta(seconds=2)
STACK_DEPTH = 32


@dataclass(slots=True, frozen=True)
class TypeConfig:
    """What governs the actors of one type (the app's defaults, or an ``entitiesConfig`` entry)."""

    idle_timeout: timedelta = IDLE_TIMEOUT
    drain_timeout: timedelta = DRAIN_TIMEOUT
    drain_rebalanced: bool = True
    reentrancy: bool = False
    max_stack_depth: int = STACK_DEPTH


@dataclass(slots=True, frozen=True)
class ActorConfig:
    types: Mapping[str, TypeConfig] = field(default_factory=dict)
    """Every hosted type with its settings; empty: the app hosts no actors."""
    defaults: TypeConfig = TypeConfig()

    @property
    def hosted(self) -> frozenset[str]:
        return frozenset(self.types)

    def of(self, actor_type: str) -> TypeConfig:
        return self.types.get(actor_type, self.defaults)


NO_ACTORS = ActorConfig()


def parse_config(document: Any) -> ActorConfig:
    """The app's JSON answer. A field of the wrong type or a bad duration is logged and its default
    kept, as daprd keeps its defaults for what it cannot read."""
    if not isinstance(document, dict):
        log.error("the app's /dapr/config is not a JSON object: no actors hosted")
        return NO_ACTORS
    defaults = _type_config(document, TypeConfig())
    types = dict.fromkeys(_names(document.get("entities")), defaults)
    overrides = document.get("entitiesConfig")
    for entry in overrides if isinstance(overrides, list) else []:
        if not isinstance(entry, dict):
            continue
        specific = _type_config(entry, defaults)
        for name in _names(entry.get("entities")):
            if name in types:
                types[name] = specific
    return ActorConfig(types, defaults)


def _names(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [name for name in value if isinstance(name, str) and name]


def _type_config(fields: Mapping[str, Any], base: TypeConfig) -> TypeConfig:
    config = base
    idle = _duration(fields, "actorIdleTimeout")
    if idle is not None:
        config = replace(config, idle_timeout=idle)
    drain = _duration(fields, "drainOngoingCallTimeout")
    if drain is not None:
        config = replace(config, drain_timeout=drain)
    rebalanced = fields.get("drainRebalancedActors")
    if isinstance(rebalanced, bool):
        config = replace(config, drain_rebalanced=rebalanced)
    reentrancy = fields.get("reentrancy")
    if isinstance(reentrancy, dict):
        enabled = reentrancy.get("enabled")
        if isinstance(enabled, bool):
            config = replace(config, reentrancy=enabled)
        depth = reentrancy.get("maxStackDepth")
        if isinstance(depth, int) and not isinstance(depth, bool) and depth > 0:
            config = replace(config, max_stack_depth=depth)
    return config


def _duration(fields: Mapping[str, Any], name: str) -> timedelta | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        log.warning("ignored a /dapr/config field that is not a duration", field=name)
        return None
    try:
        found = durations.duration(value)
    except ValueError as exc:
        log.warning("ignored a /dapr/config field that is not a duration", field=name, error=str(exc))
        return None
    return found if found > timedelta(0) else None


OnConfig = Callable[[ActorConfig], Awaitable[None]]


class ConfigWatch:
    """Reads the app's configuration once its port listens and again after each restart, and hands
    it to ``on_config``. ``run()`` is a background task of the runtime: it returns at once without
    an app channel and otherwise runs until cancelled."""

    def __init__(
        self,
        channel: AppChannel,
        app_id: str,
        on_config: OnConfig,
        *,
        probe_interval: float = 0.5,
        read_timeout: float = 10.0,
        retries: int = 3,
    ) -> None:
        self._channel = channel
        self._app_id = app_id
        self._on_config = on_config
        self._probe_interval = probe_interval
        self._read_timeout = read_timeout
        self._retries = retries

    async def run(self) -> None:
        if not self._channel.configured:
            return
        while True:
            await self._until_listening(True)
            config = await self.read()
            try:
                await self._on_config(config)
            except Exception:
                log.exception("applying the app's actor configuration failed")
            await self._until_listening(False)
            log.info("app stopped listening; its actor configuration is read again when it is back")

    async def read(self) -> ActorConfig:
        """``GET /dapr/config``: non-200 (or no answer after the retries) hosts no actors."""
        headers = {"dapr-app-id": self._app_id}
        for attempt in range(self._retries + 1):
            try:
                response = await self._channel.request(
                    "GET", CONFIG_PATH, headers=headers, timeout=self._read_timeout
                )
            except AppUnreachable as exc:
                if attempt == self._retries:
                    log.error("cannot read the app's /dapr/config: no actors hosted", error=str(exc))
                    return NO_ACTORS
                await asyncio.sleep(self._probe_interval)
                continue
            if response.status != 200:
                log.debug("the app answered /dapr/config with no actors", status=response.status)
                return NO_ACTORS
            try:
                document = orjson.loads(response.body)
            except orjson.JSONDecodeError:
                log.error("the app's /dapr/config is not JSON: no actors hosted")
                return NO_ACTORS
            config = parse_config(document)
            log.info("actor types hosted", types=sorted(config.hosted))
            return config
        return NO_ACTORS  # pragma: no cover - the loop returns

    async def _until_listening(self, listening: bool) -> None:
        while await self._channel.listening(timeout=self._probe_interval) != listening:  # noqa: ASYNC110
            await asyncio.sleep(self._probe_interval)
