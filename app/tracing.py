"""Which Configuration's ``spec.tracing`` applies (observability/tracing builds the tracer)."""

from __future__ import annotations

from typing import Any

from mesh.errors import SettingsError
from observability.tracing import TracingSpec, TracingSpecError, parse_tracing_spec


def tracing_spec(configurations: list[tuple[dict[str, Any], str]]) -> TracingSpec:
    """The first Configuration's ``spec.tracing``; tracing off without one."""
    for spec, source in configurations:
        if "tracing" in spec:
            try:
                return parse_tracing_spec(spec)
            except TracingSpecError as exc:
                raise SettingsError(f"{source}: {exc}") from None
    return TracingSpec()
