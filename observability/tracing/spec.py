"""A Dapr Configuration's ``spec.tracing``:

```yaml
spec:
  tracing:
    samplingRate: "1"            # "0": tracing off; "" or absent: 1e-4, as daprd
    stdout: true                 # every span also written to stdout
    otel:
      endpointAddress: "localhost:4318"
      isSecure: false
      protocol: http             # or grpc
    zipkin:
      endpointAddress: "http://localhost:9411/api/v2/spans"
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from observability.spec_values import parse_bool

DEFAULT_SAMPLING_RATE = 1e-4
"""daprd's rate when ``samplingRate`` is empty."""


class TracingSpecError(ValueError):
    """A ``spec.tracing`` field that cannot be used; the message names the field."""


@dataclass(frozen=True, slots=True)
class OtelExporterSpec:
    endpoint: str
    secure: bool = False
    protocol: str = "http"
    """``http`` (OTLP http/protobuf) or ``grpc``."""

    @property
    def url(self) -> str:
        """The endpoint as a URL: Dapr's ``endpointAddress`` is ``host:port`` (a URL is taken as it
        is); the http protocol posts to ``/v1/traces`` under it."""
        address = self.endpoint
        if "://" not in address:
            address = ("https://" if self.secure else "http://") + address
        if self.protocol == "http" and not address.rstrip("/").endswith("/v1/traces"):
            address = address.rstrip("/") + "/v1/traces"
        return address


@dataclass(frozen=True, slots=True)
class TracingSpec:
    sampling_rate: float = 0.0
    """0: tracing off (no span, no exporter, nothing on the request path)."""
    otel: OtelExporterSpec | None = None
    zipkin: str | None = None
    stdout: bool = False

    @property
    def enabled(self) -> bool:
        return self.sampling_rate > 0


def parse_tracing_spec(configuration: Mapping[str, Any]) -> TracingSpec:
    """The tracing settings of one Configuration spec; off when it has none."""
    section = configuration.get("tracing")
    if section is None:
        return TracingSpec()
    if not isinstance(section, Mapping):
        raise TracingSpecError("spec.tracing: must be a mapping")
    return TracingSpec(
        sampling_rate=_rate(section.get("samplingRate")),
        otel=_otel(section.get("otel")),
        zipkin=_zipkin(section.get("zipkin")),
        stdout=_bool(section.get("stdout", False), "spec.tracing.stdout"),
    )


def _rate(value: Any) -> float:
    if value is None or (isinstance(value, str) and not value.strip()):
        return DEFAULT_SAMPLING_RATE
    try:
        rate = float(value)
    except (TypeError, ValueError):
        raise TracingSpecError(f"spec.tracing.samplingRate: {value!r} is not a number") from None
    if not 0 <= rate <= 1:
        raise TracingSpecError(f"spec.tracing.samplingRate: {value!r} is not between 0 and 1")
    return rate


def _otel(value: Any) -> OtelExporterSpec | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TracingSpecError("spec.tracing.otel: must be a mapping")
    endpoint = value.get("endpointAddress")
    if not endpoint:
        return None
    if not isinstance(endpoint, str):
        raise TracingSpecError("spec.tracing.otel.endpointAddress: must be a string")
    protocol = str(value.get("protocol") or "http").strip().lower()
    if protocol not in ("http", "grpc"):
        raise TracingSpecError(f"spec.tracing.otel.protocol: {protocol!r} is not http or grpc")
    return OtelExporterSpec(
        endpoint.strip(), _bool(value.get("isSecure", False), "spec.tracing.otel.isSecure"), protocol
    )


def _zipkin(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TracingSpecError("spec.tracing.zipkin: must be a mapping")
    endpoint = value.get("endpointAddress")
    if not endpoint:
        return None
    if not isinstance(endpoint, str) or "://" not in endpoint:
        raise TracingSpecError("spec.tracing.zipkin.endpointAddress: must be a URL")
    return endpoint.strip()


def _bool(value: Any, where: str) -> bool:
    # An empty value is false here, as an absent one is.
    return parse_bool(value or False, where, TracingSpecError)
