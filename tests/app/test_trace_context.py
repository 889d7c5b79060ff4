"""W3C trace context: one reading of ``traceparent``/``tracestate`` for invocation, publishing and
delivery (services/trace_context.py)."""

from __future__ import annotations

import re

import pytest

from services.pubsub.delivery import trace_headers
from services.trace_context import TraceContext, parse_traceparent

PARENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{PARENT_TRACE}-00f067aa0ba902b7-01"
NOT_PARENTS = [
    None,
    "",
    "garbage",
    PARENT.upper(),
    PARENT + "-extra",  # version 00 has exactly four fields
    "ff" + PARENT[2:],
    f"00-{'0' * 32}-00f067aa0ba902b7-01",
    f"00-{PARENT_TRACE}-{'0' * 16}-01",
]


def test_valid_parent_keeps_trace_and_sampling_with_a_new_span() -> None:
    child = TraceContext.from_headers(PARENT, "a=1")
    assert (child.trace_id, child.flags, child.tracestate) == (PARENT_TRACE, "01", "a=1")
    assert child.span_id != "00f067aa0ba902b7"
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", child.traceparent)
    assert TraceContext.from_headers(PARENT.replace("-01", "-00"), None).flags == "00"
    assert TraceContext.from_headers(PARENT.replace("-01", "-03"), None).flags == "01"
    assert child.headers() == {"traceparent": child.traceparent, "tracestate": "a=1"}


def test_future_versions_may_carry_more_fields() -> None:
    assert TraceContext.from_headers("cc" + PARENT[2:] + "-what-ever", None).trace_id == PARENT_TRACE


@pytest.mark.parametrize("header", NOT_PARENTS)
def test_no_valid_parent_starts_a_sampled_trace_without_tracestate(header: str | None) -> None:
    assert parse_traceparent(header) is None
    context = TraceContext.from_headers(header, "a=1")
    assert context.trace_id != PARENT_TRACE
    assert context.trace_id != "0" * 32
    assert (context.flags, context.tracestate) == ("01", "")
    assert context.headers() == {"traceparent": context.traceparent}


def test_children_share_the_trace() -> None:
    trace = TraceContext(PARENT_TRACE, "1111111111111111", "01", "k=v")
    first, second = trace.child(), trace.child()
    assert first.trace_id == second.trace_id == PARENT_TRACE
    assert first.span_id != second.span_id
    assert first.tracestate == "k=v"


def test_a_delivered_tracestate_http_cannot_carry_is_not_sent() -> None:
    headers = trace_headers({"traceparent": PARENT, "tracestate": "a=1\r\nInjected: yes"})
    assert headers["traceparent"].split("-")[1] == PARENT_TRACE and "tracestate" not in headers
    assert "tracestate" not in trace_headers({"traceparent": PARENT, "tracestate": 42})


@pytest.mark.parametrize("header", NOT_PARENTS[1:])
def test_delivery_reads_a_parent_exactly_as_invocation_and_publishing_do(header: str) -> None:
    """The same value gives the same decision, trace id and flags whichever path reads it."""
    for value in (header, PARENT, PARENT.replace("-01", "-00"), PARENT.replace("-01", "-03")):
        delivered = trace_headers({"traceparent": value, "tracestate": "a=1"})
        invoked = TraceContext.from_headers(value, "a=1")
        version, trace_id, _, flags = delivered["traceparent"].split("-")
        assert version == "00"
        if parse_traceparent(value) is None:
            assert trace_id != PARENT_TRACE and flags == invoked.flags == "01"
            assert "tracestate" not in delivered and invoked.tracestate == ""
        else:
            assert (trace_id, flags) == (invoked.trace_id, invoked.flags)
            assert delivered["tracestate"] == invoked.tracestate == "a=1"


def test_delivery_falls_back_to_the_traceid() -> None:
    headers = trace_headers({"traceparent": "garbage", "traceid": PARENT})
    assert headers["traceparent"].split("-")[1] == PARENT_TRACE
