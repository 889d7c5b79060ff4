"""The CloudEvent envelope, field by field (components-contrib pubsub/envelope.go and dapr's
NewCloudEvent), and the pieces it is built from."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from services.json_body import JsonRefused
from services.pubsub import cloudevents
from services.pubsub.bulk_requests import InvalidBulkRequest, Problem, parse_entries
from services.pubsub.cloudevents import InvalidCloudEvent
from services.trace_context import TraceContext

PARENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{PARENT_TRACE}-00f067aa0ba902b7-01"
TRACE = TraceContext(PARENT_TRACE, "1111111111111111", "01", "k=v")


def envelope(body: bytes, content_type: str | None = "application/json", **kwargs: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "topic": "orders",
        "pubsub": "pubsub",
        "app_id": "checkout",
        "trace": TRACE,
        "metadata": {},
        **kwargs,
    }
    raw = cloudevents.envelope(body, content_type, **options)
    event: dict[str, Any] = orjson.loads(raw)
    assert list(event) == sorted(event)
    return event


# -- content types ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "json", "binary", "cloudevent", "text"),
    [
        ("application/json", True, False, False, False),
        ("Application/JSON;charset=utf-8", True, False, False, False),
        ("application/json ; charset=utf-8", False, False, False, False),  # Dapr does not trim
        ("application/problem+json", False, False, False, False),
        ("application/octet-stream", False, True, False, False),
        ("application/cloudevents+protobuf", False, True, False, False),
        ("application/cloudevents+json; charset=utf-8", False, False, True, False),
        ("text/html", False, False, False, True),
        ("application/xml", False, False, False, True),
        ("", False, False, False, False),
    ],
)
def test_content_type_predicates(
    content_type: str, json: bool, binary: bool, cloudevent: bool, text: bool
) -> None:
    assert cloudevents.is_json(content_type) is json
    assert cloudevents.is_binary(content_type) is binary
    assert cloudevents.is_cloudevent(content_type) is cloudevent
    assert cloudevents.is_text(content_type) is text


# -- a new envelope --------------------------------------------------------------------------------


def test_new_envelope_fields() -> None:
    event = envelope(b'{"a": 1}')
    assert re.fullmatch(r"[0-9a-f-]{36}", event.pop("id"))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)", event.pop("time"))
    assert event == {
        "data": {"a": 1},
        "datacontenttype": "application/json",
        "pubsubname": "pubsub",
        "source": "checkout",
        "specversion": "1.0",
        "topic": "orders",
        "traceid": TRACE.traceparent,
        "traceparent": TRACE.traceparent,
        "tracestate": "k=v",
        "type": "com.dapr.event.sent",
    }


def test_json_data_is_spliced_as_sent() -> None:
    body = b'{"big": 123456789012345678901234567890, "price": 1.10, "e": 1E+2}'
    raw = cloudevents.envelope(
        body, "application/json", topic="t", pubsub="p", app_id="a", trace=TRACE, metadata={}
    )
    assert raw.startswith(b'{"data":' + body + b',"datacontenttype":"application/json",')


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"a": 1}', b'{"a": 1}'),
        (b" [1] \n", b" [1] \n"),
        (b"1" + b"0" * 400, b"1" + b"0" * 400),  # orjson refuses it; the standard library does not
        (b'{"a": 1} trailing', b'{"a": 1}'),  # Go's decoder reads the first value only
        (b"\n  {} {}", b"{}"),
        (b"{not json", None),
        (b"NaN", None),
        (b"", None),
    ],
)
def test_json_data(body: bytes, expected: bytes | None) -> None:
    fragment = cloudevents.json_data(body)
    if expected is None:
        assert fragment is None
    else:
        assert fragment is not None
        assert orjson.dumps([fragment]) == b"[" + expected + b"]"


def test_no_content_type_is_text_plain() -> None:
    event = envelope(b"caf\xc3\xa9 \xff", None)
    assert (event["datacontenttype"], event["data"]) == ("text/plain", "café \ufffd")


def test_binary_is_base64() -> None:
    event = envelope(b"\x00\x01\x02", "application/octet-stream")
    assert "data" not in event
    assert event["data_base64"] == "AAEC"


def test_empty_app_id_is_source_dapr() -> None:
    assert envelope(b"x", app_id="")["source"] == "Dapr"


def test_overrides_are_case_insensitive_and_exact_case_wins() -> None:
    metadata = {
        "CloudEvent.ID": "loose",
        "cloudevent.id": "exact",
        "CLOUDEVENT.SOURCE": "billing",
        "cloudevent.Type": "t",
        "cloudevent.subject": "s",
        "cloudevent.traceid": "tid",
        "cloudevent.tracestate": "",
        "cloudevent.unknown": "ignored",
    }
    event = envelope(b"x", metadata=metadata)
    assert (event["id"], event["source"], event["type"], event["subject"]) == ("exact", "billing", "t", "s")
    assert event["traceid"] == event["traceparent"] == "tid"
    assert event["tracestate"] == ""
    assert "unknown" not in event


def test_traceparent_override_wins_over_traceid() -> None:
    event = envelope(b"x", metadata={"cloudevent.traceid": "a", "cloudevent.traceparent": "b"})
    assert event["traceid"] == event["traceparent"] == "b"
    event = envelope(b"x", metadata={"cloudevent.traceid": "a", "cloudevent.traceparent": ""})
    assert event["traceid"] == event["traceparent"] == "a"


def test_empty_overrides_fall_back_to_dapr_defaults() -> None:
    event = envelope(b"x", metadata={"cloudevent.id": "", "cloudevent.source": "", "cloudevent.type": ""})
    assert re.fullmatch(r"[0-9a-f-]{36}", event["id"])
    assert (event["source"], event["type"]) == ("Dapr", "com.dapr.event.sent")
    assert "subject" not in envelope(b"x", metadata={"cloudevent.subject": ""})


# -- the app's own CloudEvent ----------------------------------------------------------------------


def test_user_event_is_kept_with_topic_and_pubsub_overwritten() -> None:
    body = (
        b'{"id": "1", "source": "s", "type": "t", "specversion": "0.3", "topic": "x", "n": 1.10, "time": "T"}'
    )
    raw = cloudevents.envelope(
        body, "application/cloudevents+json", topic="orders", pubsub="p", app_id="a", trace=TRACE, metadata={}
    )
    assert b'"n":1.10' in raw
    event = orjson.loads(raw)
    assert event == {
        "id": "1",
        "source": "s",
        "type": "t",
        "specversion": "0.3",
        "topic": "orders",
        "pubsubname": "p",
        "n": 1.1,
        "time": "T",
        "traceid": TRACE.traceparent,
        "traceparent": TRACE.traceparent,
        "tracestate": "k=v",
    }


def test_user_event_trace_fields_are_kept_when_it_has_a_traceid() -> None:
    event = envelope(
        b'{"traceid": "mine", "traceparent": "p", "tracestate": ""}', "application/cloudevents+json"
    )
    assert (event["traceid"], event["traceparent"], event["tracestate"]) == ("mine", "p", "")


def test_user_event_ignores_override_metadata() -> None:
    event = envelope(b"{}", "application/cloudevents+json", metadata={"cloudevent.id": "x"})
    assert "id" not in event
    assert "datacontenttype" not in event


@pytest.mark.parametrize("body", [b"[1]", b"null", b'"s"', b"1", b"", b"{bad"])
def test_user_event_must_be_an_object(body: bytes) -> None:
    with pytest.raises(InvalidCloudEvent):
        envelope(body, "application/cloudevents+json")


@pytest.mark.parametrize("content_type", ["application/json", "application/cloudevents+json"])
@pytest.mark.parametrize(  # Go's encoding/json reads 10,000 levels; orjson 1,024, Python's json ~1,000
    "body",
    [b"\xff", b'{"a": "caf\xe9"}', b"[" * 10_001 + b"]" * 10_001, b"[" * 100_000 + b"]" * 100_000],
    ids=["not-utf8", "latin1-inside", "10001-deep", "100000-deep"],
)
def test_json_no_dapr_endpoint_takes_is_refused(body: bytes, content_type: str) -> None:
    with pytest.raises(JsonRefused):
        envelope(body, content_type)


@pytest.mark.parametrize("depth", [900, 1025, 10_000])
def test_json_as_deep_as_go_reads_is_kept(depth: int) -> None:
    deep = b'{"a":' * depth + b"1.10" + b"}" * depth
    raw = cloudevents.envelope(
        deep, "application/json", topic="t", pubsub="p", app_id="a", trace=TRACE, metadata={}
    )
    assert raw.startswith(b'{"data":' + deep + b',"datacontenttype":"application/json",')
    inner = b'{"a":' * (depth - 1) + b"1.10" + b"}" * (depth - 1)  # the event is a level itself
    user = cloudevents.envelope(
        b'{"deep":' + inner + b"}",
        "application/cloudevents+json",
        topic="t",
        pubsub="p",
        app_id="a",
        trace=TRACE,
        metadata={},
    )
    assert user.startswith(b'{"deep":' + inner + b',"pubsubname":"p",')


# -- TTL -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metadata", "seconds"),
    [
        ({}, None),
        ({"ttlInSeconds": "60"}, 60.0),
        ({"TTLInSeconds": "60"}, 60.0),
        ({"ttl": "1m30s"}, 90.0),
        ({"ttl": "1.5h"}, 5400.0),
        ({"ttl": "500ms"}, 0.5),
        ({"ttl": "10", "ttlInSeconds": "20"}, 10.0),  # ttl is looked up first
        ({"ttl": "", "ttlInSeconds": "20"}, None),  # ...even when empty, as Dapr does
        ({"ttl": "0"}, 0.0),
        ({"ttl": "-5s"}, 0.0),
        ({"ttlInSeconds": "0"}, 0.0),  # Go parses "0" as a duration: expires at once
        ({"ttlInSeconds": "-5"}, None),
        ({"ttlInSeconds": "1.5"}, None),
        ({"ttlInSeconds": "soon"}, None),
        ({"ttlInSeconds": "99999999999999"}, (2**63 - 1) / 1e9),
    ],
)
def test_ttl_seconds(metadata: dict[str, str], seconds: float | None) -> None:
    assert cloudevents.ttl_seconds(metadata) == seconds


def test_ttl_adds_expiration_unless_the_broker_has_native_ttl() -> None:
    event = envelope(b"x", metadata={"ttlInSeconds": "3600"})
    expires = datetime.strptime(event["expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(expires - datetime.now(UTC) - timedelta(hours=1)) < timedelta(seconds=5)
    assert "expiration" not in envelope(b"x", metadata={"ttlInSeconds": "3600"}, native_ttl=True)
    user = envelope(b'{"expiration": "old"}', "application/cloudevents+json", metadata={"ttl": "1h"})
    assert user["expiration"] != "old"


def test_now_is_rfc3339_seconds() -> None:
    text = cloudevents.now_rfc3339()
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert abs(moment.timestamp() - time.time()) < 2
    assert moment.microsecond == 0


# -- bulk bodies -----------------------------------------------------------------------------------


def test_bulk_entries_convert_by_content_type() -> None:
    body = (
        b'[{"entryId": "a", "event": {"n": 1.10}, "contentType": "application/json"},'
        b' {"ENTRYID": "b", "Event": "aGk=", "contenttype": "application/octet-stream", "metadata": {"k": "e"}},'
        b' {"entryID": "c", "event": "<x/>", "contentType": "application/xml", "metadata": null}]'
    )
    entries = parse_entries(body, {"k": "r", "q": "r"})
    assert [(e.entry_id, e.event, e.content_type) for e in entries] == [
        ("a", b'{"n":1.10}', "application/json"),
        ("b", b"hi", "application/octet-stream"),
        ("c", b"<x/>", "application/xml"),
    ]
    assert [e.metadata for e in entries] == [None, {"k": "e", "q": "r"}, None]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"", Problem.UNMARSHAL),
        (b"{}", Problem.UNMARSHAL),
        (b'["x"]', Problem.UNMARSHAL),
        (b'[{"entryId": ["1"]}]', Problem.UNMARSHAL),
        (b'[{"entryId": "1", "event": 1, "contentType": "text/plain"}]', Problem.EVENT),
        (b'[{"entryId": "1", "event": "x", "contentType": "image/png"}]', Problem.EVENT),
        (b'[{"event": "x", "contentType": "text/plain"}]', Problem.ENTRY_ID),
    ],
)
def test_bulk_problems(body: bytes, problem: Problem) -> None:
    with pytest.raises(InvalidBulkRequest) as raised:
        parse_entries(body, {})
    assert raised.value.problem is problem
