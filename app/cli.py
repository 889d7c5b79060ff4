"""The ``l8`` command: ``l8 run`` with daprd's flags, ``l8 openapi``, ``l8 tcpcopy replay|show``,
``l8 --version``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from app import __version__
from app.settings import Settings
from components.metadata import parse_bool
from mesh.errors import SettingsError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="l8", description="l8: a sidecar runtime with Dapr's HTTP API")
    parser.add_argument("--version", action="version", version=f"l8 {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="start the sidecar", argument_default=argparse.SUPPRESS)
    run.add_argument("--app-id", dest="app_id", help="this app's id")
    run.add_argument("--app-port", dest="app_port", type=int, help="port the app listens on")
    run.add_argument("--app-protocol", dest="app_protocol", choices=["http", "https"], help="default http")
    run.add_argument("--app-channel-address", dest="app_channel_address", help="default 127.0.0.1")
    run.add_argument("--dapr-http-port", "--port", dest="http_port", type=int, help="API port, default 3500")
    run.add_argument(
        "--dapr-grpc-port", dest="grpc_port", type=int, help="gRPC API port, default 50001 (0: any free)"
    )
    run.add_argument(
        "--enable-grpc",
        dest="enable_grpc",
        nargs="?",
        const=True,
        type=_go_bool,
        help="serve Dapr's gRPC API, default true (--enable-grpc=false: no gRPC port)",
    )
    run.add_argument("--host", dest="host", help="API address, default 127.0.0.1")
    run.add_argument(
        "--resources-path",
        "--components-path",
        dest="resources_paths",
        action="append",
        type=Path,
        help="folder of Dapr resource YAML (repeatable)",
    )
    run.add_argument("--config", dest="config", type=Path, help="l8 settings file (YAML)")
    run.add_argument("--data-dir", dest="data_dir", type=Path, help="embedded stores' folder, default ./.l8")
    run.add_argument("--log-level", dest="log_level", help="debug, info, warning or error")
    run.add_argument("--log-as-json", dest="log_as_json", action="store_true", help="JSON log lines")
    run.add_argument(
        "--enable-api-logging", dest="enable_api_logging", action="store_true", help="log every API call"
    )
    run.add_argument("--max-body-size", dest="max_body_size", help="largest request body, default 4Mi")
    run.add_argument(
        "--component-timeout",
        dest="component_timeout",
        type=float,
        help="seconds a component call may take without a Resiliency timeout, default 5 (0: none)",
    )
    run.add_argument(
        "--read-buffer-size", dest="read_buffer_size", help="largest request head less 4Ki, default 4Ki"
    )
    run.add_argument("--max-header-count", dest="max_header_count", type=int, help="default 100")
    run.add_argument(
        "--header-timeout", dest="header_timeout", type=float, help="seconds for a request head, default 10"
    )
    run.add_argument(
        "--idle-timeout", dest="idle_timeout", type=float, help="seconds an idle connection stays, default 5"
    )
    run.add_argument(
        "--max-connections", dest="max_connections", type=int, help="most open connections, default 10000"
    )
    run.add_argument(
        "--max-request-items",
        dest="max_request_items",
        type=int,
        help="most items, keys, operations or entries in one request, default 10000 (0: no limit)",
    )
    run.add_argument(
        "--dapr-graceful-shutdown-seconds",
        dest="graceful_shutdown_seconds",
        type=float,
        help="how long in-flight requests may take at shutdown, default 5",
    )

    run.add_argument(
        "--enable-metrics",
        dest="enable_metrics",
        nargs="?",
        const=True,
        type=_go_bool,
        help="serve Prometheus metrics, default true (--enable-metrics=false: no metrics port)",
    )
    run.add_argument("--metrics-port", dest="metrics_port", type=int, help="metrics port, default 9090")
    run.add_argument(
        "--metrics-listen-address", dest="metrics_listen_address", help="metrics address, default 0.0.0.0"
    )

    run.add_argument(
        "--enable-app-health-check",
        dest="enable_app_health_check",
        nargs="?",
        const=True,
        type=_go_bool,
        help="probe the app and pause deliveries while it is unhealthy, default false",
    )
    run.add_argument(
        "--app-health-check-path", dest="app_health_check_path", help="probe path, default /healthz"
    )
    run.add_argument(
        "--app-health-probe-interval",
        dest="app_health_probe_interval",
        help="seconds between probes (or a duration), default 5",
    )
    run.add_argument(
        "--app-health-probe-timeout",
        dest="app_health_probe_timeout",
        help="milliseconds a probe may take (or a duration), default 500",
    )
    run.add_argument(
        "--app-health-threshold",
        dest="app_health_threshold",
        type=int,
        help="failed probes in a row before the app is unhealthy, default 3",
    )

    commands.add_parser("openapi", help="print the OpenAPI document")

    tcpcopy = commands.add_parser("tcpcopy", help="work with TCP copy dumps").add_subparsers(
        dest="tcpcopy", required=True
    )
    replay = tcpcopy.add_parser("replay", help="send a dump's requests to a target again")
    replay.add_argument("dump", type=Path, help="a dump file, or a folder of them")
    replay.add_argument("--target", required=True, help="base URL, e.g. http://127.0.0.1:8080")
    replay.add_argument("--rate", type=float, help="at most this many requests a second")
    replay.add_argument("--timeout", type=float, default=30.0, help="seconds per request, default 30")
    show = tcpcopy.add_parser("show", help="print a dump's records, one a line")
    show.add_argument("dump", type=Path, help="a dump file, or a folder of them")
    return parser


def _go_bool(text: str) -> bool:
    """A Go flag's boolean (``--enable-metrics=false``)."""
    try:
        return parse_bool(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a boolean") from None


def _settings(arguments: dict[str, Any]) -> Settings:
    config = arguments.pop("config", None)
    return Settings.load(arguments, config)


def _flags(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Setting name -> the `l8 run` flag that sets it."""
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    run = commands.choices["run"]
    return {action.dest: action.option_strings[0] for action in run._actions if action.option_strings}


def _explain(error: ValidationError, flags: dict[str, str]) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "settings"
    message = first["msg"].removeprefix("Value error, ")
    flag = f" ({flags[where]})" if where in flags else ""
    return f"invalid setting {where}{flag}: {message}"


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    arguments = vars(parser.parse_args(argv))
    command = arguments.pop("command")
    if command == "openapi":
        from app.factory import create_app

        sys.stdout.write(
            orjson.dumps(create_app(Settings.load()).openapi(), option=orjson.OPT_INDENT_2).decode()
        )
        sys.stdout.write("\n")
        return 0
    if command == "tcpcopy":
        from app.tcpcopy_cli import tcpcopy

        return tcpcopy(arguments)
    try:
        settings = _settings(arguments)
    # Exit status 1, as for every start-up problem (README), unusable settings included.
    except SettingsError as exc:
        print(f"l8: {exc}", file=sys.stderr)
        return 1
    except ValidationError as exc:
        print(f"l8: {_explain(exc, _flags(parser))}", file=sys.stderr)
        return 1
    from app.server import run

    return run(settings)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
