"""Prometheus metrics with Dapr's names and labels (``dapr_http_server_request_count``, ...) and
l8's own (``l8_...``), recorded by every floor and served on the metrics port.

- :mod:`~observability.metrics.spec`: the Configuration's ``spec.metric`` (``enabled``,
  ``http.pathMatching``, ``http.increasedCardinality``, ``latencyDistributionBuckets``).
- :mod:`~observability.metrics.paths`: path matching, so a key or an invoked path never becomes a
  label of its own.
- :mod:`~observability.metrics.recorders`: the metric families and one recorder per area, each
  caching its label children so a request costs a dict lookup and the observations.
- :mod:`~observability.metrics.exposition`: the text format (prometheus_client's), with Dapr's
  counter names kept as Dapr's exporter writes them (no ``_total``, no ``_created``).
- :mod:`~observability.metrics.server`: the small asyncio server on ``--metrics-port``.
"""

from observability.metrics.recorders import (
    DAPR_LATENCY_BUCKETS_MS,
    GrpcClientMetrics,
    GrpcServerMetrics,
    HttpClientMetrics,
    HttpServerMetrics,
    Metrics,
    PolicyMetrics,
    PubSubMetrics,
)
from observability.metrics.server import MetricsServer
from observability.metrics.spec import MetricSpec, MetricSpecError, parse_metric_spec

__all__ = [
    "DAPR_LATENCY_BUCKETS_MS",
    "GrpcClientMetrics",
    "GrpcServerMetrics",
    "HttpClientMetrics",
    "HttpServerMetrics",
    "MetricSpec",
    "MetricSpecError",
    "Metrics",
    "MetricsServer",
    "PolicyMetrics",
    "PubSubMetrics",
    "parse_metric_spec",
]
