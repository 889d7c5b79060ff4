"""The Prometheus text format, written by prometheus_client, with Dapr's counter names.

Dapr's exporter (OpenCensus, then OpenTelemetry's) writes a count as a counter named without
``_total`` (``dapr_http_server_request_count 3``) and writes no ``_created`` samples; dashboards
query those names. prometheus_client always adds ``_total`` to a counter, so the counters named in
:data:`DAPR_COUNTS` are handed to its writer with their samples under the family's own name, and the
two header lines it writes for them get the same name back. The counts that are a latency
histogram's count (:data:`COUNTS_OF_HISTOGRAMS`) are written from it here.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from observability.metrics.recorders import COUNTS_OF_HISTOGRAMS, DAPR_COUNTS

CONTENT_TYPE = CONTENT_TYPE_LATEST
_HEADERS = tuple(
    (f"# {kind} {name}_total ".encode(), f"# {kind} {name} ".encode())
    for name in sorted(DAPR_COUNTS)
    for kind in ("HELP", "TYPE")
)


class _DaprNames(Collector):
    def __init__(self, inner: CollectorRegistry) -> None:
        self._inner = inner

    def collect(self) -> Iterator[Metric]:
        for family in self._inner.collect():
            if family.type == "counter" and family.name in DAPR_COUNTS:
                family.samples = [
                    sample._replace(name=family.name)
                    for sample in family.samples
                    if sample.name.endswith("_total")
                ]
            else:
                family.samples = [sample for sample in family.samples if not sample.name.endswith("_created")]
            yield family
            counts = COUNTS_OF_HISTOGRAMS.get(family.name)
            if counts:
                totals = [s for s in family.samples if s.name == family.name + "_count"]
                for name, documentation in counts:
                    count = Metric(name, documentation, "counter")
                    count.samples = [Sample(name, sample.labels, sample.value) for sample in totals]
                    yield count


def render(registry: CollectorRegistry) -> bytes:
    """Everything ``registry`` holds, in the text format a Prometheus server scrapes."""
    outer = CollectorRegistry(auto_describe=False)
    outer.register(_DaprNames(registry))
    text = generate_latest(outer)
    for wrong, right in _HEADERS:
        text = text.replace(wrong, right, 1)
    return text
