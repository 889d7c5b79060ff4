"""routers/grpc/payloads.py: how a job's ``data`` (a protobuf ``Any``) is kept as the HTTP API's
JSON, and packed back."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import any_pb2, json_format, struct_pb2, timestamp_pb2, wrappers_pb2

from routers.grpc.payloads import VALUE, any_of, json_of


def packed(message: Any) -> any_pb2.Any:
    found = any_pb2.Any()
    found.Pack(message)
    return found


@pytest.mark.parametrize("value", [{"a": [1, "x", None, True]}, "text", 1.5, None, []])
def test_a_value_is_its_json_and_back(value: Any) -> None:
    message = json_format.ParseDict(value, struct_pb2.Value())
    assert json_of(packed(message)) == (True, value)
    assert any_of(value) == packed(message)
    assert any_of(value).type_url == VALUE


def test_an_empty_any_is_no_data() -> None:
    assert json_of(any_pb2.Any()) == (False, None)


@pytest.mark.parametrize(
    "message",
    [
        wrappers_pb2.StringValue(value="hi"),
        wrappers_pb2.BytesValue(value=b"\x00\xff"),
        timestamp_pb2.Timestamp(seconds=1_700_000_000),
    ],
)
def test_a_well_known_type_is_its_protojson_and_back(message: Any) -> None:
    present, value = json_of(packed(message))
    assert present and value["@type"] == packed(message).type_url
    assert any_of(value) == packed(message)


def test_an_unknown_type_keeps_its_bytes() -> None:
    unknown = any_pb2.Any(type_url="type.googleapis.com/acme.Order", value=b"\x08\x07")
    assert json_of(unknown) == (True, {"@type": "type.googleapis.com/acme.Order", "value": "CAc="})
    assert any_of({"@type": "type.googleapis.com/acme.Order", "value": "CAc="}) == unknown


@pytest.mark.parametrize(
    "value",
    [
        {"@type": "type.googleapis.com/acme.Order", "value": "not base64!"},
        {"@type": "type.googleapis.com/acme.Order", "other": 1},
        {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": 7},
    ],
)
def test_json_that_only_looks_like_an_any_stays_a_value(value: Any) -> None:
    """An HTTP client's data with an ``@type`` that is no protojson reads back as the JSON it is."""
    assert any_of(value) == packed(json_format.ParseDict(value, struct_pb2.Value()))
