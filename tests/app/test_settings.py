"""Settings precedence (flags > environment > file > defaults) and value forms."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.settings import Settings, parse_quantity
from mesh.errors import SettingsError


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("4Mi", 4 << 20),
        ("512Ki", 512 << 10),
        ("1Gi", 1 << 30),
        ("10M", 10_000_000),
        ("2048", 2048),
        ("3k", 3000),
    ],
)
def test_quantities(text: str, size: int) -> None:
    assert parse_quantity(text) == size


def test_bad_quantity() -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_quantity("lots")


def test_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "l8.yaml"
    config.write_text("app-id: from-file\nhttp_port: 4000\nmax-body-size: 2Mi\nlog-level: DEBUG\n")
    monkeypatch.setenv("L8_HTTP_PORT", "4100")
    monkeypatch.setenv("DAPR_API_TOKEN", "tok")
    settings = Settings.load({"app_id": "from-flag"}, config)
    assert settings.app_id == "from-flag"
    assert settings.http_port == 4100
    assert settings.max_body_size == 2 << 20
    assert settings.log_level == "debug"
    assert settings.api_token is not None and settings.api_token.get_secret_value() == "tok"


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DAPR_API_TOKEN", "APP_API_TOKEN", "L8_HTTP_PORT"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings.load()
    assert (settings.http_port, settings.host, settings.max_body_size) == (3500, "127.0.0.1", 4 << 20)
    assert settings.data_dir == Path(".l8") and settings.api_token is None


def test_a_dapr_configuration_file_sets_only_the_dapr_configuration(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata: {name: c}\n"
        "spec: {httpPipeline: {handlers: [{name: rl, type: middleware.http.ratelimit}]}}\n"
    )
    settings = Settings.load({}, config)
    assert settings.app_id == ""
    assert settings.dapr_configuration == {
        "httpPipeline": {"handlers": [{"name": "rl", "type": "middleware.http.ratelimit"}]}
    }
    config.write_text("apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: c}\nspec: {}\n")
    with pytest.raises(SettingsError, match="a Component is a resource"):
        Settings.load({}, config)


def test_unknown_setting_and_bad_file(tmp_path: Path) -> None:
    config = tmp_path / "l8.yaml"
    config.write_text("no_such_setting: 1\n")
    with pytest.raises(ValidationError):
        Settings.load({}, config)
    config.write_text("[1, 2]\n")
    with pytest.raises(SettingsError, match="mapping"):
        Settings.load({}, config)
    with pytest.raises(SettingsError, match="cannot read"):
        Settings.load({}, tmp_path / "missing.yaml")


def test_the_mesh_settings_load_as_typed_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mesh.redis_registry import RedisRegistrySettings

    config = tmp_path / "l8.yaml"
    config.write_text(
        "name_resolution: {type: redis, redisHost: 'r:6379', redisUsername: u, enableTLS: true, ttl: 5s}\n"
        "rate_limits:\n  redisHost: 'r:6379'\n  rules:\n    - {resource: /x, threshold: 2, shared: true}\n"
        "tcp_copy: {switch: ON, interval: 30s, max_file_size: 1Mi}\n"
    )
    for name in ("L8_NAME_RESOLUTION", "L8_RATE_LIMITS", "L8_TCP_COPY"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings.load(None, config)
    assert isinstance(settings.name_resolution, RedisRegistrySettings)
    assert settings.name_resolution.redis.redisUsername == "u" and settings.name_resolution.redis.enableTLS
    assert settings.name_resolution.ttl == 5.0
    assert settings.rate_limits.rules[0].shared and settings.rate_limits.redis is not None
    assert settings.tcp_copy.switch and settings.tcp_copy.max_file_size == 1 << 20
    monkeypatch.setenv("L8_TCP_COPY", '{"switch": "OFF"}')
    assert not Settings.load(None, config).tcp_copy.switch  # the environment wins over the file


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name_resolution: {type: consul}\n", "name_resolution.type: unknown resolver 'consul'"),
        ("rate_limits: {rules: [{resource: /x}]}\n", "rate_limits.rules[0].threshold"),
        ("tcp_copy: {interval: 0}\n", "tcp_copy.interval: must be above 0"),
        ("tcp_copy: {speed: 1}\n", "tcp_copy.speed: unknown field"),
    ],
)
def test_a_bad_mesh_setting_is_one_line_naming_the_field(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "l8.yaml"
    config.write_text(text)
    with pytest.raises(SettingsError) as raised:
        Settings.load(None, config)
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)


def test_component_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("L8_COMPONENT_TIMEOUT", raising=False)
    assert Settings.load().component_timeout == 5.0
    monkeypatch.setenv("L8_COMPONENT_TIMEOUT", "0.5")
    assert Settings.load().component_timeout == 0.5
    assert Settings.load({"component_timeout": 0}).component_timeout == 0, "0: no limit"
    with pytest.raises(ValidationError, match="component_timeout"):
        Settings.load({"component_timeout": -1})


def test_invocation_origin_bounds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert (Settings.load().invoke_max_origins, Settings.load().invoke_origin_idle_timeout) == (256, 60.0)
    config = tmp_path / "l8.yaml"
    config.write_text("invoke-max-origins: 8\n")
    monkeypatch.setenv("L8_INVOKE_ORIGIN_IDLE_TIMEOUT", "2.5")
    settings = Settings.load({}, config)
    assert (settings.invoke_max_origins, settings.invoke_origin_idle_timeout) == (8, 2.5)
    config.write_text("invoke-max-origins: 0\n")
    with pytest.raises(ValidationError, match="invoke_max_origins"):
        Settings.load({}, config)


def test_app_health_settings_take_daprs_units_from_flags_env_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.cli import _parser, _settings

    defaults = Settings.load()
    assert not defaults.enable_app_health_check
    assert defaults.app_health_check_path == "/healthz"
    assert defaults.app_health_probe_interval == 5.0  # seconds
    assert defaults.app_health_probe_timeout == 500.0  # milliseconds
    assert defaults.app_health_threshold == 3
    arguments = vars(
        _parser().parse_args(
            [
                "run",
                "--enable-app-health-check",
                "--app-health-check-path",
                "/ready",
                "--app-health-probe-interval",
                "2",
                "--app-health-probe-timeout",
                "250",
                "--app-health-threshold",
                "5",
            ]
        )
    )
    arguments.pop("command")
    flags = _settings(arguments)
    assert flags.enable_app_health_check and flags.app_health_check_path == "/ready"
    assert (flags.app_health_probe_interval, flags.app_health_probe_timeout) == (2.0, 250.0)
    assert flags.app_health_threshold == 5
    arguments = vars(_parser().parse_args(["run", "--enable-app-health-check=false"]))
    arguments.pop("command")
    assert not _settings(arguments).enable_app_health_check
    monkeypatch.setenv("L8_ENABLE_APP_HEALTH_CHECK", "true")
    monkeypatch.setenv("L8_APP_HEALTH_PROBE_TIMEOUT", "1s")
    settings_file = tmp_path / "l8.yaml"
    settings_file.write_text("app-health-probe-interval: 1500ms\napp-health-threshold: 1\n", encoding="utf-8")
    loaded = Settings.load(config_file=settings_file)
    assert loaded.enable_app_health_check
    assert (loaded.app_health_probe_interval, loaded.app_health_probe_timeout) == (1.5, 1000.0)
    assert loaded.app_health_threshold == 1
    for bad in ({"app_health_threshold": 0}, {"app_health_probe_interval": "soon"}):
        with pytest.raises(ValidationError):
            Settings.load(bad)


def test_the_grpc_port_from_daprs_flag_the_sdks_variable_and_l8s(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.cli import _parser, _settings

    for name in ("L8_GRPC_PORT", "DAPR_GRPC_PORT", "L8_ENABLE_GRPC"):
        monkeypatch.delenv(name, raising=False)
    defaults = Settings.load()
    assert (defaults.grpc_port, defaults.enable_grpc) == (50001, True)  # daprd's default
    monkeypatch.setenv("DAPR_GRPC_PORT", "50007")  # what the SDKs read: app and sidecar can share it
    assert Settings.load().grpc_port == 50007
    monkeypatch.setenv("L8_GRPC_PORT", "0")  # l8's own name wins
    assert Settings.load().grpc_port == 0
    arguments = vars(_parser().parse_args(["run", "--dapr-grpc-port", "50009", "--enable-grpc=false"]))
    arguments.pop("command")
    flags = _settings(arguments)
    assert (flags.grpc_port, flags.enable_grpc) == (50009, False)
    with pytest.raises(ValidationError):
        Settings.load({"grpc_port": 70000})
