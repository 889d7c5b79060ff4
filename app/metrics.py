"""The runtime's metrics beyond the recorders handed to each floor: which Configuration's
``spec.metric`` applies, and l8's own counters, which the mesh and the services keep anyway (for the
metadata API) and Prometheus reads when it scrapes: nothing is added to the paths that count."""

from __future__ import annotations

from typing import Any

from app.settings import Settings
from mesh.app_health import AppHealth
from mesh.errors import SettingsError
from mesh.ratelimit import RateLimits
from mesh.tcpcopy import TcpCopy
from observability.metrics import Metrics, MetricSpec, MetricSpecError, MetricsServer, parse_metric_spec
from services.configuration import ConfigurationService
from services.sequencer import SequencerService

_RATE_LIMIT_OUTCOMES = (("allowed", "allowed"), ("queued", "queued"), ("refused", "rejected"))
"""Label value -> the rule's counter (GET /v1.0/metadata's rateLimits)."""


def metric_spec(configurations: list[tuple[dict[str, Any], str]]) -> MetricSpec:
    """The first Configuration's ``spec.metric`` (or ``spec.metrics``); defaults without one."""
    for spec, source in configurations:
        if "metric" in spec or "metrics" in spec:
            try:
                return parse_metric_spec(spec)
            except MetricSpecError as exc:
                raise SettingsError(f"{source}: {exc}") from None
    return MetricSpec()


async def start_metrics(settings: Settings, spec: MetricSpec) -> tuple[Metrics, MetricsServer] | None:
    """The sidecar's metrics and their port, listening; None when metrics are off (the flag, or
    the Configuration's ``enabled: false``): nothing recorded, no port opened."""
    if not settings.enable_metrics or not spec.enabled:
        return None
    metrics = Metrics(settings.app_id, spec)
    server = MetricsServer(metrics.registry, settings.metrics_listen_address, settings.metrics_port)
    try:
        await server.start()
    except OSError as exc:
        address = f"{settings.metrics_listen_address}:{settings.metrics_port}"
        reason = exc.strerror or str(exc)
        raise SettingsError(f"metrics_port (--metrics-port): cannot listen on {address}: {reason}") from None
    return metrics, server


def track_counters(
    metrics: Metrics,
    rate_limits: RateLimits,
    tcp_copy: TcpCopy,
    sequencer: SequencerService,
    configuration: ConfigurationService,
    app_health: AppHealth | None = None,
) -> None:
    if rate_limits:
        metrics.track(
            "l8_ratelimit_requests",
            "Requests a rate-limit rule let through (allowed), made wait (queued) or refused.",
            ("rule", "outcome"),
            lambda: [
                ((rule["name"], outcome), rule[key])
                for rule in rate_limits.describe()
                for outcome, key in _RATE_LIMIT_OUTCOMES
            ],
        )
    if tcp_copy.enabled:
        counters = tcp_copy.counters
        metrics.track(
            "l8_tcpcopy_records",
            "Requests TCP copy wrote to its dump.",
            (),
            lambda: [((), counters["records"])],
        )
        metrics.track(
            "l8_tcpcopy_dropped",
            "Requests TCP copy let go (its queue full, or over its limits).",
            (),
            lambda: [((), counters["dropped"])],
        )
    metrics.track(
        "l8_sequencer_blocks",
        "Blocks of ids a sequencer reserved from its store for WEAK ids.",
        ("component",),
        lambda: [((name,), handle.blocks) for name, handle in sequencer.stores().items()],
    )
    metrics.track(
        "l8_configuration_deliveries",
        "Configuration updates sent to the app, by whether it took them.",
        ("component", "success"),
        lambda: [
            ((store, "true" if ok else "false"), count)
            for (store, ok), count in list(configuration.deliveries.items())
        ],
    )
    if app_health is not None:
        changes = app_health.changes
        metrics.track(
            "l8_app_health_changes",
            "Times the app's health (--enable-app-health-check) changed, by the status it changed to.",
            ("status",),
            lambda: [((str(status),), count) for status, count in list(changes.items())],
        )
