"""The JSON a job or a reminder keeps, as a protobuf ``Any`` on this transport (and back).

The HTTP API stores a job's ``data`` as JSON and answers it as an ``Any`` holding a
``google.protobuf.Value``; so an ``Any`` holding a ``Value`` is stored as that JSON value, and any
JSON read back is packed in a ``Value``: a job scheduled over one transport reads back the same over
the other. An ``Any`` of another type is stored as its protojson (``{"@type": ..., ...}``; a type
this process does not know as ``{"@type": ..., "value": <base64 of its bytes>}``) and unpacked
back to the same ``Any`` over gRPC; over HTTP it reads as that JSON object. An empty ``Any`` (no
type, as the Python SDK sends for a job without data) is no data.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from google.protobuf import any_pb2, duration_pb2, json_format, struct_pb2, timestamp_pb2, wrappers_pb2

VALUE = "type.googleapis.com/google.protobuf.Value"
TYPE = "@type"
WELL_KNOWN = (duration_pb2, timestamp_pb2, wrappers_pb2)
"""The well-known types an SDK packs (StringValue, BytesValue, Timestamp, ...): protojson knows a
type only once its module is loaded."""


def json_of(packed: any_pb2.Any) -> tuple[bool, Any]:
    """(whether there is data, its JSON value)."""
    if not packed.type_url:
        return False, None
    if packed.type_url == VALUE:
        value = struct_pb2.Value()
        packed.Unpack(value)
        return True, json_format.MessageToDict(value)
    try:
        return True, json_format.MessageToDict(packed)
    except (TypeError, KeyError, json_format.Error):
        return True, {TYPE: packed.type_url, "value": base64.b64encode(packed.value).decode()}


def _unknown(value: dict[str, Any]) -> any_pb2.Any | None:
    encoded = value.get("value")
    if set(value) != {TYPE, "value"} or not isinstance(encoded, str):
        return None
    try:
        return any_pb2.Any(type_url=value[TYPE], value=base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError):
        return None


def any_of(value: Any) -> any_pb2.Any:
    """The ``Any`` of stored JSON: the original message where the JSON is one's protojson, else a
    ``google.protobuf.Value``."""
    if isinstance(value, dict) and isinstance(value.get(TYPE), str) and value[TYPE] != VALUE:
        packed = any_pb2.Any()
        try:
            json_format.ParseDict(value, packed)
            return packed
        except (json_format.ParseError, TypeError, KeyError):
            found = _unknown(value)
            if found is not None:
                return found
    packed = any_pb2.Any()
    packed.Pack(json_format.ParseDict(value, struct_pb2.Value()))
    return packed
