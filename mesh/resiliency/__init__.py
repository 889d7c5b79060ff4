"""Dapr ``Resiliency`` resources: timeouts, retries and circuit breakers, applied to calls by target.

The package is read from the resource down to the call:

- :mod:`~mesh.resiliency.resources`: the ``Resiliency`` documents parsed and merged, targets and
  Dapr's default policies resolved to one :class:`Policy` per target.
- :mod:`~mesh.resiliency.policy`: :class:`Policy`, which runs one call under a timeout, retries and
  a circuit breaker.
- :mod:`~mesh.resiliency.outbound`: :class:`Outbound`, a component's calls under its policy or the
  sidecar's deadline, and which writes may be resent.
- :mod:`~mesh.resiliency.retry`: dapr/kit's retry configuration, its backoff and status matching,
  and a component's ``backOff*`` metadata.
- :mod:`~mesh.resiliency.breaker`: gobreaker's circuit breaker with a CEL ``trip`` expression.
- :mod:`~mesh.resiliency.durations`: Go durations as dapr/kit decodes them.

Everything callers use is importable from ``mesh.resiliency``.
"""

from mesh.resiliency.breaker import CircuitBreaker, CircuitBreakerSpec, CircuitOpenError
from mesh.resiliency.durations import parse_duration
from mesh.resiliency.outbound import NO_POLICY, Outbound, OutboundFor, no_policy
from mesh.resiliency.policy import Policy, RetriableFailure
from mesh.resiliency.resources import RESILIENCY_API_VERSION, PolicyNames, Resiliency
from mesh.resiliency.retry import RetryPolicy, parse_status_ranges, retry_from_metadata

__all__ = [
    "NO_POLICY",
    "RESILIENCY_API_VERSION",
    "CircuitBreaker",
    "CircuitBreakerSpec",
    "CircuitOpenError",
    "Outbound",
    "OutboundFor",
    "Policy",
    "PolicyNames",
    "Resiliency",
    "RetriableFailure",
    "RetryPolicy",
    "no_policy",
    "parse_duration",
    "parse_status_ranges",
    "retry_from_metadata",
]
