"""Dapr's output binding request body, ``{"data", "metadata", "operation"}``, decoded as daprd's
Go decoder does (field names case-insensitive, its type errors) and ``data`` written again with
``json.Marshal``'s rules, because that is what a binding receives in Dapr: a JSON string arrives as
its quoted text (``"hello"`` -> ``b'"hello"'``), absent data as ``null``, an object compact with its
keys sorted, every number as a float64 (``1.0`` -> ``1``, ``1e-7`` -> ``1e-07`` is ``1e-7``), and
``<``, ``>``, ``&``, U+2028 and U+2029 escaped."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import orjson

from services import errors, json_body
from services.state_requests import json_type, string_map

_HTML_ESCAPES = (
    (b"<", b"\\u003c"),
    (b">", b"\\u003e"),
    (b"&", b"\\u0026"),
    ("\u2028".encode(), b"\\u2028"),
    ("\u2029".encode(), b"\\u2029"),
)
_EXACT_INTEGERS = 2**53
_WHERE = "field OutputBindingRequest"


def go_float(value: float) -> str:
    """``strconv.FormatFloat(f, 'f' or 'e', -1, 64)`` as encoding/json picks between them."""
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        text = repr(value)
        mantissa, _, exponent = text.partition("e")
        if exponent.startswith("-0"):
            exponent = "-" + exponent[2:]
        return f"{mantissa.removesuffix('.0')}e{exponent}"
    return format(Decimal(repr(value)).normalize(), "f")


def _go_value(value: Any) -> Any:
    """``value`` as it comes back from Go's interface{}: numbers through float64."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        if -_EXACT_INTEGERS <= value <= _EXACT_INTEGERS:
            return value
        return orjson.Fragment(go_float(float(value)))
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e21:
            return int(value) if abs(value) <= _EXACT_INTEGERS else orjson.Fragment(go_float(value))
        return orjson.Fragment(go_float(value))
    if isinstance(value, dict):
        return {key: _go_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_go_value(item) for item in value]
    return value


def marshal(value: Any) -> bytes:
    """``json.Marshal(value)`` for a value decoded from JSON."""
    if value is None:
        return b"null"
    if isinstance(value, str) and value.isascii() and value.isalnum():
        return b'"%b"' % value.encode()  # the common short string: nothing to escape
    encoded = json_body.dumps(_go_value(value), sort_keys=True)
    for plain, escaped in _HTML_ESCAPES:
        if plain in encoded:
            encoded = encoded.replace(plain, escaped)
    return encoded


def output_request(body: Any) -> tuple[bytes, dict[str, str], str]:
    """(data as the binding receives it, metadata, operation) of a decoded request body. A JSON
    ``null`` body is the empty request, as Go's decoder reads it."""
    if body is None:
        return b"null", {}, ""
    if not isinstance(body, dict):
        raise errors.malformed(
            f"failed deserializing HTTP body: json: cannot unmarshal {json_type(body)} into Go value "
            "of type http.OutputBindingRequest"
        )
    data: Any = None
    metadata: Mapping[str, str] = {}
    operation = ""
    # Go matches field names case-insensitively and the last duplicate wins.
    for name, value in body.items():
        field = name.lower()
        if field == "data":
            data = value
        elif field == "metadata":
            try:
                metadata = string_map(value, f"{_WHERE}.metadata")
            except errors.ApiError as exc:
                raise errors.malformed(f"failed deserializing HTTP body: {exc.message}") from None
        elif field == "operation":
            if value is not None and not isinstance(value, str):
                raise errors.malformed(
                    f"failed deserializing HTTP body: json: cannot unmarshal {json_type(value)} into Go "
                    f"{_WHERE}.operation of type string"
                )
            operation = value or ""
    return marshal(data), dict(metadata), operation
