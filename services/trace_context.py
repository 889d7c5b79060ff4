"""W3C trace context (``traceparent`` and ``tracestate``), the one reading of it that invocation,
publishing and delivery share.

A valid parent is continued: same trace id, the parent's sampled flag, a new span id, and its
``tracestate`` passed on (W3C lets ``tracestate`` travel only with a valid parent). No parent, or
one that is not valid W3C (upper-case hex, all-zero ids, version ``ff``, extra fields after a
version ``00``), starts a new trace that is marked sampled (``01``), as daprd does with tracing
on: the CloudEvent daprd writes then carries the same ``-01`` parent that an app's spans join.
Versions above ``00`` may carry more fields, which are dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.random_ids import random_hex

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?", re.DOTALL)
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


def parse_traceparent(value: object) -> tuple[str, str] | None:
    """(trace id, sampled flags ``00``/``01``) of a valid W3C ``traceparent``, else None."""
    if not isinstance(value, str) or not value:
        return None
    match = _TRACEPARENT.fullmatch(value.strip())
    if match is None:
        return None
    version, trace_id, parent_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return None
    if trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    return trace_id, "01" if int(flags, 16) & 1 else "00"


@dataclass(slots=True, frozen=True)
class TraceContext:
    """The span l8 works in for one call: its ids and what it sends on."""

    trace_id: str
    span_id: str
    flags: str
    tracestate: str = ""

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    @classmethod
    def start(cls) -> TraceContext:
        """The root span of a new, sampled trace."""
        return cls(random_hex(16), random_hex(8), "01")

    @classmethod
    def under(cls, traceparent: object, tracestate: object = None) -> TraceContext | None:
        """A new span under ``traceparent``, or None when it is not a valid parent."""
        parent = parse_traceparent(traceparent)
        if parent is None:
            return None
        return cls(parent[0], random_hex(8), parent[1], tracestate if isinstance(tracestate, str) else "")

    @classmethod
    def from_headers(cls, traceparent: str | None, tracestate: str | None) -> TraceContext:
        """A span under the caller's ``traceparent``, or the root of a new trace."""
        return cls.under(traceparent, tracestate) or cls.start()

    def child(self) -> TraceContext:
        """Another span of the same trace (bulk publish gives every entry one)."""
        return TraceContext(self.trace_id, random_hex(8), self.flags, self.tracestate)

    def headers(self) -> dict[str, str]:
        """What a call this span makes carries: ``traceparent``, and ``tracestate`` when set."""
        found = {"traceparent": self.traceparent}
        if self.tracestate:
            found["tracestate"] = self.tracestate
        return found
