"""A Dapr Configuration's ``spec.metric`` (``spec.metrics`` is accepted too, as Dapr does):

```yaml
spec:
  metric:
    enabled: true
    latencyDistributionBuckets: [1, 5, 10, 50, 100, 500, 1000]   # milliseconds
    http:
      increasedCardinality: true   # the path label is kept (l8: the route's template)
      pathMatching: ["/v1.0/invoke/{app}/method/orders/{id}"]
      excludeVerbs: false
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from observability.spec_values import parse_bool


class MetricSpecError(ValueError):
    """A ``spec.metric`` field that cannot be used; the message names the field."""


@dataclass(frozen=True, slots=True)
class MetricSpec:
    enabled: bool = True
    increased_cardinality: bool = True
    """Dapr's default: the path label is kept. False: it is dropped ("") unless a pattern of
    ``path_matching`` matches."""
    path_matching: tuple[str, ...] = ()
    exclude_verbs: bool = False
    latency_buckets: tuple[float, ...] | None = None
    """Milliseconds; None: Dapr's default buckets."""


def parse_metric_spec(configuration: Mapping[str, Any]) -> MetricSpec:
    """The metric settings of one Configuration spec; defaults when it has none."""
    key = "metric" if "metric" in configuration else "metrics"
    section = configuration.get(key)
    if section is None:
        return MetricSpec()
    where = f"spec.{key}"
    if not isinstance(section, Mapping):
        raise MetricSpecError(f"{where}: must be a mapping")
    http = section.get("http")
    http = {} if http is None else http
    if not isinstance(http, Mapping):
        raise MetricSpecError(f"{where}.http: must be a mapping")
    return MetricSpec(
        enabled=_bool(section.get("enabled", True), f"{where}.enabled"),
        increased_cardinality=_bool(
            http.get("increasedCardinality", True), f"{where}.http.increasedCardinality"
        ),
        path_matching=_paths(http.get("pathMatching"), f"{where}.http.pathMatching"),
        exclude_verbs=_bool(http.get("excludeVerbs", False), f"{where}.http.excludeVerbs"),
        latency_buckets=_buckets(
            section.get("latencyDistributionBuckets"), f"{where}.latencyDistributionBuckets"
        ),
    )


def _bool(value: Any, where: str) -> bool:
    return parse_bool(value, where, MetricSpecError)


def _paths(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(p, str) and p.startswith("/") for p in value):
        raise MetricSpecError(f"{where}: must be a list of paths, each starting with /")
    return tuple(value)


def _buckets(value: Any, where: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise MetricSpecError(f"{where}: must be a list of milliseconds")
    buckets: list[float] = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int | float) or item <= 0:
            raise MetricSpecError(f"{where}: {item!r} is not a positive number of milliseconds")
        buckets.append(float(item))
    if buckets != sorted(set(buckets)):
        raise MetricSpecError(f"{where}: the buckets must increase")
    return tuple(buckets)
