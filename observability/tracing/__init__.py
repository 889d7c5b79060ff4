"""Distributed tracing with OpenTelemetry, configured as daprd is (``spec.tracing``).

- :mod:`~observability.tracing.spec`: the Configuration's ``spec.tracing`` (``samplingRate``,
  ``otel``, ``zipkin``, ``stdout``); no OpenTelemetry import.
- :mod:`~observability.tracing.baggage`: the W3C ``baggage`` check daprd makes on every call.
- :mod:`~observability.tracing.attributes`: Dapr's span names and attributes for an API call.
- :mod:`~observability.tracing.tracer`: the SDK's provider, sampler and exporters; imported only
  when tracing is on, by :func:`start_tracing`.

With tracing off (no ``spec.tracing``, or ``samplingRate: "0"``) nothing here runs on a request:
the floors hold ``tracer = None`` and check it once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from observability.tracing.attributes import server_span_attributes, server_span_name
from observability.tracing.baggage import valid_baggage
from observability.tracing.spec import OtelExporterSpec, TracingSpec, TracingSpecError, parse_tracing_spec

if TYPE_CHECKING:
    from observability.tracing.tracer import Tracer


def start_tracing(app_id: str | None, spec: TracingSpec) -> Tracer | None:
    """The sidecar's tracer; None when tracing is off (and then the SDK is never imported)."""
    if not spec.enabled:
        return None
    from observability.tracing.tracer import Tracer

    return Tracer(app_id, spec)


__all__ = [
    "OtelExporterSpec",
    "TracingSpec",
    "TracingSpecError",
    "parse_tracing_spec",
    "server_span_attributes",
    "server_span_name",
    "start_tracing",
    "valid_baggage",
]
