"""The metric families, with Dapr's names and labels, and a recorder per area.

Every recorder keeps the label children it has bound, keyed on the few values that vary (a route
template and a status, a component and a topic), so recording on a hot path is one dict lookup, a
counter increment and a histogram observation: no label dict is built per request. Label values
are bounded: templates, patterns, component and policy names, statuses; never a key or a raw path.

Dapr's names as its Prometheus exporter writes them: a count is a counter without ``_total``
(``dapr_http_server_request_count``), latencies are histograms in milliseconds over Dapr's
buckets (or ``latencyDistributionBuckets``). l8's own counters follow Prometheus' conventions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from observability.metrics.paths import PathMatcher
from observability.metrics.spec import MetricSpec

DAPR_LATENCY_BUCKETS_MS: tuple[float, ...] = (
    1, 2, 3, 4, 5, 6, 8, 10, 13, 16, 20, 25, 30, 40, 50, 65, 80, 100, 130, 160, 200, 250, 300, 400,
    500, 650, 800, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000,
)  # fmt: skip
"""Dapr's defaultLatencyDistribution (pkg/diagnostics), in milliseconds."""

DAPR_COUNTS = frozenset(
    {
        "dapr_http_server_request_count",
        "dapr_http_server_response_count",
        "dapr_http_client_completed_count",
        "dapr_component_pubsub_ingress_count",
        "dapr_component_pubsub_egress_count",
        "dapr_runtime_component_loaded",
        "dapr_resiliency_loaded",
        "dapr_resiliency_count",
    }
)
"""Counters exposed under their own name, as Dapr's exporter writes a count (no ``_total``)."""

COUNTS_OF_HISTOGRAMS: dict[str, tuple[tuple[str, str], ...]] = {
    "dapr_http_server_latency": (
        ("dapr_http_server_request_count", "Count of HTTP requests processed by the server."),
        ("dapr_http_server_response_count", "The number of HTTP responses."),
    ),
    "dapr_http_client_roundtrip_latency": (
        ("dapr_http_client_completed_count", "Count of completed requests."),
    ),
    "dapr_grpc_io_server_server_latency": (
        ("dapr_grpc_io_server_completed_rpcs", "Count of RPCs by method and status."),
    ),
    "dapr_grpc_io_client_roundtrip_latency": (
        ("dapr_grpc_io_client_completed_rpcs", "Count of RPCs by method and status."),
    ),
    "dapr_component_pubsub_egress_latencies": (
        ("dapr_component_pubsub_egress_count", "Outgoing messages published to the pub/sub component."),
    ),
    "dapr_component_pubsub_ingress_latencies": (
        ("dapr_component_pubsub_ingress_count", "Incoming messages from the pub/sub component."),
    ),
}
"""Dapr's counts that are a latency histogram's count with the same labels: exposed from it when
Prometheus scrapes, so a request pays one observation, not three."""

_PATH = 2
"""The ``path`` label's place among the HTTP metrics' labels (app_id, method, path, status)."""
_CACHED = 4096
"""Bound children kept per recorder before the cache is emptied (it refills as requests come)."""


class HttpServerMetrics:
    """``dapr_http_server_latency`` (ms), labelled ``app_id``, ``method``, ``path``, ``status``;
    ``dapr_http_server_request_count`` and ``_response_count`` are its counts, read at scrape time.
    ``path`` is the ``pathMatching`` pattern that matches the request, else the route's template
    (``increasedCardinality``, Dapr's default) or "" (Dapr's low-cardinality mode)."""

    __slots__ = (
        "_app_id",
        "_by_path",
        "_children",
        "_family",
        "_keep_template",
        "_matcher",
        "_verbs",
        "buckets",
    )

    def __init__(self, family: Histogram, app_id: str, spec: MetricSpec) -> None:
        self._family = family
        self._app_id = app_id
        self._matcher = PathMatcher(spec.path_matching)
        self._keep_template = spec.increased_cardinality
        self._verbs = not spec.exclude_verbs
        self._children: dict[tuple[str, str | None, int], Any] = {}
        self._by_path: dict[tuple[str, str, int], Any] = {}
        self.buckets = tuple(spec.latency_buckets or DAPR_LATENCY_BUCKETS_MS)
        """The histogram's upper bounds in ms (+Inf, the last count, not among them)."""
        """A bucket's ``le`` label -> its position (the order the histogram writes them in)."""

    def record(self, method: str, template: str | None, path: str, status: int, seconds: float) -> None:
        """One answered request: ``template`` is the route's (None when no route took it),
        ``path`` the request's, used only against ``pathMatching`` patterns."""
        if self._matcher:
            label = self._matcher.label(path)
            if label is not None:
                key = (method, label, status)
                child = self._by_path.get(key)
                if child is None:
                    child = self._bind(self._by_path, key, method, label, status)
                child.observe(seconds * 1000.0)
                return
        key2 = (method, template, status)
        child = self._children.get(key2)
        if child is None:
            label = (template or "") if self._keep_template else ""
            child = self._bind(self._children, key2, method, label, status)
        child.observe(seconds * 1000.0)

    def by_path(self) -> dict[str, list[float]]:
        """Each ``path`` label's cumulative bucket counts (the last is +Inf's, the total), summed
        over its methods and statuses: what the dashboard samples, read from the histogram itself.

        Read from the family's children directly: prometheus_client's ``collect()`` builds a
        sample per bucket and label set, which took 13 ms for 100 label sets (a stall of the event
        loop every sampling); this takes ~0.1 ms. tests/observability/test_traffic.py reads real
        histograms, so a change in those internals fails there."""
        found: dict[str, list[float]] = {}
        family: Any = self._family
        with family._lock:
            children = list(family._metrics.items())
        for labels, child in children:
            counts = found.get(labels[_PATH])
            if counts is None:
                counts = found[labels[_PATH]] = [0.0] * len(child._buckets)
            total = 0.0
            for index, bucket in enumerate(child._buckets):
                total += bucket.get()
                counts[index] += total
        return found

    def _bind(self, cache: dict[Any, Any], key: Any, method: str, path: str, status: int) -> Any:
        child = self._family.labels(self._app_id, method if self._verbs else "", path, str(status))
        if len(cache) >= _CACHED:
            cache.clear()
        cache[key] = child
        return child


class HttpClientMetrics:
    """``dapr_http_client_roundtrip_latency`` (ms), and ``dapr_http_client_completed_count`` its
    count, for calls l8 makes: to its app (the app channel, invocation) and to other sidecars.
    ``path`` is a ``pathMatching`` pattern or "" (an invoked method is the caller's to choose:
    never a label)."""

    __slots__ = ("_app_id", "_children", "_family", "_matcher", "_verbs")

    def __init__(self, family: Histogram, app_id: str, spec: MetricSpec) -> None:
        self._family = family
        self._app_id = app_id
        self._matcher = PathMatcher(spec.path_matching)
        self._verbs = not spec.exclude_verbs
        self._children: dict[tuple[str, str, int], Any] = {}

    def record(self, method: str, path: str, status: int, seconds: float) -> None:
        """``status`` 0: no answer (refused, reset, timed out)."""
        label = (self._matcher.label(path) or "") if self._matcher else ""
        key = (method, label, status)
        child = self._children.get(key)
        if child is None:
            method_label = method if self._verbs else ""
            child = self._family.labels(self._app_id, method_label, label, str(status) if status else "")
            if len(self._children) >= _CACHED:
                self._children.clear()
            self._children[key] = child
        child.observe(seconds * 1000.0)


class GrpcServerMetrics:
    """``dapr_grpc_io_server_server_latency`` (ms), and ``dapr_grpc_io_server_completed_rpcs`` its
    count, for calls of the gRPC API, labelled by full method and gRPC status name (``OK``), as
    daprd's gRPC server monitoring labels them."""

    __slots__ = ("_app_id", "_children", "_family")

    def __init__(self, family: Histogram, app_id: str) -> None:
        self._family = family
        self._app_id = app_id
        self._children: dict[tuple[str, str], Any] = {}

    def record(self, method: str, status: str, seconds: float) -> None:
        key = (method, status)
        child = self._children.get(key)
        if child is None:  # a proxied call's method is the caller's: the cache stays bounded
            if len(self._children) >= _CACHED:
                self._children.clear()
            child = self._children[key] = self._family.labels(self._app_id, method, status)
        child.observe(seconds * 1000.0)


class GrpcClientMetrics(GrpcServerMetrics):
    """``dapr_grpc_io_client_roundtrip_latency`` (ms), and ``dapr_grpc_io_client_completed_rpcs``
    its count, labelled ``grpc_client_method`` and ``grpc_client_status``: what daprd's internal
    server records for a proxied gRPC call another sidecar forwards to this one's app
    (``StreamingClientInterceptor`` in pkg/diagnostics/grpc_monitoring.go)."""

    __slots__ = ()


class PubSubMetrics:
    """``dapr_component_pubsub_egress_latencies`` (a publish, ``success`` true or false) and
    ``dapr_component_pubsub_ingress_latencies`` (a delivery to the app, ``process_status``
    success, retry or drop), in ms; the ``..._count`` metrics are their counts."""

    __slots__ = ("_app_id", "_egress", "_egress_family", "_ingress", "_ingress_family", "_namespace")

    def __init__(self, egress: Histogram, ingress: Histogram, app_id: str, namespace: str) -> None:
        self._egress_family = egress
        self._ingress_family = ingress
        self._app_id = app_id
        self._namespace = namespace
        self._egress: dict[tuple[str, str, bool], Any] = {}
        self._ingress: dict[tuple[str, str, str, str], Any] = {}

    def published(self, component: str, topic: str, success: bool, seconds: float) -> None:
        key = (component, topic, success)
        child = self._egress.get(key)
        if child is None:
            labels = (self._app_id, component, self._namespace, "true" if success else "false", topic)
            child = self._egress_family.labels(*labels)
            if len(self._egress) >= _CACHED:
                self._egress.clear()
            self._egress[key] = child
        child.observe(seconds * 1000.0)

    def delivered(self, component: str, topic: str, process_status: str, status: str, seconds: float) -> None:
        """``status``: Dapr's, the process status unless told otherwise."""
        key = (component, topic, process_status, status)
        child = self._ingress.get(key)
        if child is None:
            labels = (
                self._app_id,
                component,
                self._namespace,
                process_status,
                status or process_status,
                topic,
            )
            child = self._ingress_family.labels(*labels)
            if len(self._ingress) >= _CACHED:
                self._ingress.clear()
            self._ingress[key] = child
        child.observe(seconds * 1000.0)


class PolicyMetrics:
    """One resiliency target's ``dapr_resiliency_count`` (a policy applied to a call) and
    ``dapr_resiliency_activations_total`` (a timeout fired, a retry made, a circuit breaker opened
    or closed), with its labels bound once."""

    __slots__ = ("_activations", "_applied", "_bind_activation", "_bind_count")

    def __init__(self, metrics: Metrics, name: str, direction: str, target: str) -> None:
        def bind_count(policy: str) -> Any:
            return metrics.resiliency_count_child(name, policy, direction, target)

        def bind_activation(policy: str, status: str) -> Any:
            return metrics.resiliency_activation_child(name, policy, direction, target, status)

        self._bind_count = bind_count
        self._bind_activation = bind_activation
        self._applied: dict[str, Any] = {}
        self._activations: dict[tuple[str, str], Any] = {}

    def applied(self, policy: str) -> None:
        child = self._applied.get(policy)
        if child is None:
            child = self._applied[policy] = self._bind_count(policy)
        child.inc()

    def activated(self, policy: str, status: str = "") -> None:
        child = self._activations.get((policy, status))
        if child is None:
            child = self._activations[(policy, status)] = self._bind_activation(policy, status)
        child.inc()


class Metrics:
    """Every metric of one sidecar, in a registry of its own (a test can start several runtimes
    in one process). ``enabled`` False: the runtime hands no recorder out and serves no port."""

    def __init__(self, app_id: str, spec: MetricSpec | None = None, *, namespace: str = "") -> None:
        spec = spec or MetricSpec()
        self.spec = spec
        self.app_id = app_id
        self.namespace = namespace
        self.registry = CollectorRegistry(auto_describe=True)
        buckets = tuple(spec.latency_buckets or DAPR_LATENCY_BUCKETS_MS)
        http = ("app_id", "method", "path", "status")
        histogram = self._histogram
        server = histogram(
            "dapr_http_server_latency", "HTTP request end-to-end latency in server (ms).", http, buckets
        )
        client = histogram(
            "dapr_http_client_roundtrip_latency",
            "Time between first byte of request headers sent to last byte of response received (ms).",
            http,
            buckets,
        )
        rpc = histogram(
            "dapr_grpc_io_server_server_latency",
            "Server-side latency of a gRPC API call (ms).",
            ("app_id", "grpc_server_method", "grpc_server_status"),
            buckets,
        )
        out = ("app_id", "component", "namespace", "success", "topic")
        egress = histogram(
            "dapr_component_pubsub_egress_latencies",
            "Latency of the pub/sub component's answer (ms).",
            out,
            buckets,
        )
        into = ("app_id", "component", "namespace", "process_status", "status", "topic")
        ingress = histogram(
            "dapr_component_pubsub_ingress_latencies",
            "The consuming app's processing latency (ms).",
            into,
            buckets,
        )
        proxied = histogram(
            "dapr_grpc_io_client_roundtrip_latency",
            "Client-side latency of a proxied gRPC call this sidecar forwarded to its app (ms).",
            ("app_id", "grpc_client_method", "grpc_client_status"),
            buckets,
        )
        counter = self._counter
        self.http_server = HttpServerMetrics(server, app_id, spec)
        self.http_client = HttpClientMetrics(client, app_id, spec)
        self.grpc_server = GrpcServerMetrics(rpc, app_id)
        self.grpc_client = GrpcClientMetrics(proxied, app_id)
        self.pubsub = PubSubMetrics(egress, ingress, app_id, namespace)
        self._component_loaded = counter(
            "dapr_runtime_component_loaded",
            "The number of successfully loaded components.",
            ("app_id", "namespace"),
        )
        policy = ("app_id", "flow_direction", "name", "namespace", "policy", "status", "target")
        self._resiliency_loaded = counter(
            "dapr_resiliency_loaded", "Number of resiliency policies loaded.", ("app_id", "name", "namespace")
        )
        self._resiliency_count = counter(
            "dapr_resiliency_count", "Number of times a resiliency policy has been applied.", policy
        )
        # Exposed as dapr_resiliency_activations_total, as Dapr names it.
        self._resiliency_activations = counter(
            "dapr_resiliency_activations", "Number of times a resiliency policy has been activated.", policy
        )

    def _counter(self, name: str, documentation: str, labels: tuple[str, ...]) -> Counter:
        return Counter(name, documentation, labels, registry=self.registry)

    def _histogram(
        self, name: str, documentation: str, labels: tuple[str, ...], buckets: tuple[float, ...]
    ) -> Histogram:
        return Histogram(name, documentation, labels, registry=self.registry, buckets=buckets)

    # -- rarely recorded: bound on use -------------------------------------------------------------

    def component_loaded(self) -> None:
        self._component_loaded.labels(self.app_id, self.namespace).inc()

    def resiliency_loaded(self, name: str) -> None:
        self._resiliency_loaded.labels(self.app_id, name, self.namespace).inc()

    def resiliency_policy(self, name: str, direction: str, target: str) -> PolicyMetrics:
        """The recorder of one resiliency target (``target``: Dapr's ``app_<id>`` or
        ``<type>_<component>``; ``direction``: inbound or outbound)."""
        return PolicyMetrics(self, name, direction, target)

    def resiliency_count_child(self, name: str, policy: str, direction: str, target: str) -> Any:
        return self._resiliency_count.labels(self.app_id, direction, name, self.namespace, policy, "", target)

    def resiliency_activation_child(
        self, name: str, policy: str, direction: str, target: str, status: str
    ) -> Any:
        labels = (self.app_id, direction, name, self.namespace, policy, status, target)
        return self._resiliency_activations.labels(*labels)

    def track(
        self, name: str, documentation: str, labels: tuple[str, ...], read: Callable[[], Iterable[Count]]
    ) -> None:
        """A counter l8 keeps anyway (a rule's allowed requests, TCP copy's records), read when
        Prometheus scrapes: nothing is added to the path that counts it. ``read`` gives each
        label set (without ``app_id``, which comes first) and its count."""
        self.registry.register(_ReadCounts(name, documentation, ("app_id", *labels), self.app_id, read))


Count = tuple[tuple[str, ...], float]


class _ReadCounts(Collector):
    def __init__(
        self,
        name: str,
        documentation: str,
        labels: tuple[str, ...],
        app_id: str,
        read: Callable[[], Iterable[Count]],
    ) -> None:
        self._name, self._documentation, self._labels = name, documentation, labels
        self._app_id = app_id
        self._read = read

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily(self._name, self._documentation, labels=self._labels)

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self._name, self._documentation, labels=self._labels)
        for values, count in self._read():
            family.add_metric([self._app_id, *values], count)
        yield family
