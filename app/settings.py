"""l8's settings: command-line flags over ``L8_*`` environment variables over the ``--config``
settings file over defaults. Built in create_app()/the CLI, never at import."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from components.metadata import parse_duration, parse_quantity
from mesh.errors import SettingsError
from mesh.name_resolution import NameResolution, parse_name_resolution
from mesh.ratelimit.settings import RateLimitSettings, parse_rate_limits
from mesh.resolver import StaticResolverSettings
from mesh.settings import parse_settings
from mesh.tcpcopy.policy import TcpCopySettings
from wasm.settings import WasmSettings

__all__ = ["Settings", "parse_quantity"]

_NUMBER = re.compile(r"\d+(\.\d+)?")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="L8_", extra="forbid", populate_by_name=True)
    config_file_values: ClassVar[dict[str, Any]] = {}

    app_id: str = Field("", description="This app's id (Dapr --app-id); prefixes state keys.")
    app_port: int | None = Field(None, ge=1, le=65535, description="Port the app listens on.")
    app_protocol: Literal["http", "https"] = "http"
    app_channel_address: str = "127.0.0.1"
    http_port: int = Field(3500, ge=0, le=65535, description="Port of l8's HTTP API.")
    host: str = Field("127.0.0.1", description="Address l8's HTTP and gRPC APIs bind to.")
    grpc_port: int = Field(
        50001,
        ge=0,
        le=65535,
        validation_alias=AliasChoices("grpc_port", "L8_GRPC_PORT", "DAPR_GRPC_PORT"),
        description="Port of l8's gRPC API, Dapr's gRPC service (daprd's --dapr-grpc-port, default "
        "50001; DAPR_GRPC_PORT as the SDKs read it; 0: any free, logged).",
    )
    enable_grpc: bool = Field(True, description="Serve Dapr's gRPC API on grpc_port.")
    resources_paths: list[Path] = Field(default_factory=list, description="Folders of Dapr resource YAML.")
    data_dir: Path = Field(Path(".l8"), description="Where embedded stores keep their files.")
    log_level: Literal["debug", "info", "warning", "warn", "error"] = "info"
    log_as_json: bool = False
    enable_api_logging: bool = False
    max_body_size: int = Field(4 * 1024 * 1024, description="Largest request body accepted (4Mi).")
    max_request_items: int = Field(
        10_000,
        ge=0,
        description="Most items of a state save, keys of a bulk get, operations of a transaction or "
        "entries of a bulk publish in one request (0: no limit).",
    )
    graceful_shutdown_seconds: float = Field(5.0, ge=0)
    api_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("api_token", "L8_API_TOKEN", "DAPR_API_TOKEN")
    )
    app_api_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("app_api_token", "L8_APP_API_TOKEN", "APP_API_TOKEN")
    )
    mesh_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("mesh_token", "L8_MESH_TOKEN"),
        description="A secret every sidecar of the fleet shares: sent on sidecar-to-sidecar calls, "
        "which then need no API token, and required before a forwarded caller id is believed.",
    )

    name_resolution: NameResolution = Field(
        default_factory=StaticResolverSettings,
        description="How other app ids' sidecars are found (mesh/name_resolution.py): "
        "{type: static, apps: {app-id: host:port or a list}}, or a redis or etcd registry.",
    )
    rate_limits: RateLimitSettings = Field(
        default_factory=RateLimitSettings,
        description="Rate-limit rules (mesh/ratelimit): {rules: [...], redisHost: for shared rules}.",
    )
    tcp_copy: TcpCopySettings = Field(
        default_factory=TcpCopySettings,
        description="Traffic dump (mesh/tcpcopy): {switch: ON, interval, duration, cpu_max_rate, ...}.",
    )
    wasm: WasmSettings = Field(
        default_factory=WasmSettings,
        description="WebAssembly functions loaded at start-up (wasm/settings.py): "
        "{functions: [{name, path, instanceNum, config, timeout, memoryPages, poolWait}]}.",
    )
    dapr_configuration: dict[str, Any] = Field(
        default_factory=dict,
        description="The spec of a Dapr Configuration given as --config (httpPipeline, appHttpPipeline).",
    )
    invoke_timeout: float | None = Field(
        None, gt=0, description="Seconds a service invocation may take in all (none: no limit)."
    )
    component_timeout: float = Field(
        5.0,
        ge=0,
        description="Seconds a call to a component (state, lock, sequencer, configuration, publish) "
        "may take when no Resiliency timeout applies to it (0: no limit).",
    )
    invoke_max_origins: int = Field(
        256, ge=1, description="Origins (host:port) invocation keeps a client for (LRU)."
    )
    invoke_origin_idle_timeout: float = Field(
        60.0, gt=0, description="Seconds an origin's client may sit unused before it is closed."
    )

    # Connections (app/http_protocol.py): daprd's head limits, and guards against idle floods.
    read_buffer_size: int = Field(
        4 * 1024,
        ge=1,
        description="Largest request head (request line and headers), plus 4Ki as daprd reads it; "
        "a larger one is answered 431 (daprd's --read-buffer-size, default 4Ki).",
    )
    max_header_count: int = Field(100, ge=1, description="Most headers a request may have (431 past it).")
    header_timeout: float = Field(
        10.0, gt=0, description="Seconds a request head may take to arrive, from its first byte."
    )
    idle_timeout: float = Field(
        5.0, gt=0, description="Seconds a connection is kept with no request: before its first, and between."
    )
    enable_metrics: bool = Field(
        True, description="Serve Prometheus metrics on metrics_port (daprd's --enable-metrics)."
    )
    metrics_port: int = Field(
        9090,
        ge=0,
        le=65535,
        description="Prometheus metrics port (daprd's default 9090; 0: any free).",
    )
    metrics_listen_address: str = Field("0.0.0.0", description="Address the metrics port binds to.")
    max_connections: int = Field(
        10_000,
        ge=1,
        description="Most connections open at once; lowered to fit the open-file limit "
        "(raised to its hard limit at start-up). Past it a new connection is closed at once.",
    )

    # Dapr's app health checks (mesh/app_health.py): the flags' units are daprd's.
    enable_app_health_check: bool = Field(
        False, description="Probe the app; pause pub/sub deliveries and input bindings while it is unhealthy."
    )
    app_health_check_path: str = Field("/healthz", description="The path the app health probe GETs.")
    app_health_probe_interval: float = Field(
        5.0, gt=0, description="Seconds between app health probes (a number, or a duration: 5s)."
    )
    app_health_probe_timeout: float = Field(
        500,
        gt=0,
        description="Milliseconds an app health probe may take, as daprd's (or a duration: 500ms).",
    )
    app_health_threshold: int = Field(
        3, ge=1, description="App health probes failing in a row before the app is unhealthy."
    )

    @field_validator("app_health_probe_interval", mode="before")
    @classmethod
    def _seconds(cls, value: Any) -> float:
        return parse_duration(value).total_seconds()

    @field_validator("app_health_probe_timeout", mode="before")
    @classmethod
    def _milliseconds(cls, value: Any) -> float:
        if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value.strip())):
            return float(value)
        return parse_duration(value).total_seconds() * 1000

    @field_validator("max_body_size", "read_buffer_size", mode="before")
    @classmethod
    def _size(cls, value: Any) -> int:
        return parse_quantity(value)

    @field_validator("name_resolution", mode="before")
    @classmethod
    def _name_resolution(cls, value: Any) -> NameResolution:
        return parse_name_resolution(value)

    @field_validator("rate_limits", mode="before")
    @classmethod
    def _rate_limits(cls, value: Any) -> RateLimitSettings:
        return parse_rate_limits(value)

    @field_validator("tcp_copy", mode="before")
    @classmethod
    def _tcp_copy(cls, value: Any) -> TcpCopySettings:
        return parse_settings(TcpCopySettings, value, "tcp_copy")

    @field_validator("wasm", mode="before")
    @classmethod
    def _wasm(cls, value: Any) -> WasmSettings:
        return parse_settings(WasmSettings, value, "wasm")

    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        values = getattr(settings_cls, "config_file_values", {})
        return init_settings, env_settings, _MappingSource(settings_cls, values)

    @classmethod
    def load(cls, overrides: dict[str, Any] | None = None, config_file: Path | None = None) -> Settings:
        """Settings from flags (``overrides``), the environment and an optional settings file."""
        values = read_settings_file(config_file) if config_file else {}
        source_cls = type("FileSettings", (cls,), {"config_file_values": values})
        try:
            built = source_cls(**{k: v for k, v in (overrides or {}).items() if v is not None})
            return cls.model_validate(dict(built))  # the fields as built: the mesh's models stay
        except ValidationError as exc:
            cause = (exc.errors()[0].get("ctx") or {}).get("error")
            if isinstance(cause, SettingsError):  # a mesh setting, whose message names its field
                raise cause from None
            raise


class _MappingSource(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings], values: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._values = values

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._values)


def read_settings_file(path: Path) -> dict[str, Any]:
    """Read an l8 settings file (YAML mapping of setting names; ``-`` or ``_`` both accepted).

    A Dapr ``kind: Configuration`` document is accepted too: its spec becomes the
    ``dapr_configuration`` setting, read by the building blocks that use it (middleware pipelines).
    """
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read settings file: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: not valid YAML: {exc}".splitlines()[0]) from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise SettingsError(f"{path}: a settings file must be a YAML mapping")
    if "kind" in document and "apiVersion" in document:
        if document["kind"] != "Configuration":
            kind = document["kind"]
            raise SettingsError(f"{path}: a {kind} is a resource (--resources-path), not settings")
        spec = document.get("spec") or {}
        if not isinstance(spec, dict):
            raise SettingsError(f"{path}: the Configuration's spec must be a mapping")
        return {"dapr_configuration": spec}
    return {str(key).replace("-", "_"): value for key, value in document.items()}
