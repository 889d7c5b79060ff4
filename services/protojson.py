"""Reading request bodies the way Go's protojson reads Dapr's and Layotto's proto messages: a field
by its JSON (camelCase) or proto (snake_case) name, unknown fields ignored, absent fields at their
zero value, int64/int32 as a JSON number or a decimal string, enums by name or number. A value of
the wrong type is refused with ERR_MALFORMED_REQUEST, as protojson refuses the whole body."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from services import errors

_INT = re.compile(r"-?[0-9]+\Z")
_INT32 = (-(2**31), 2**31 - 1)
_PREFIX = "failed deserializing HTTP body: "


def message(body: Any) -> Mapping[str, Any]:
    """The JSON object of a message body (``null`` and an empty body read as an empty message)."""
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise errors.malformed(f"{_PREFIX}a message must be a JSON object")
    return body


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def raw(body: Mapping[str, Any], name: str) -> Any:
    """The value under ``name`` (camelCase) or its snake_case spelling; None when absent."""
    value = body.get(name)
    if value is None:
        value = body.get(_snake(name))
    return value


def string(body: Mapping[str, Any], name: str) -> str:
    value = raw(body, name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise errors.malformed(f"{_PREFIX}{name}: a string is expected")
    return value


def integer(body: Mapping[str, Any], name: str, bounds: tuple[int, int] = _INT32) -> int:
    value = raw(body, name)
    if value is None:
        return 0
    if isinstance(value, bool):
        raise errors.malformed(f"{_PREFIX}{name}: an integer is expected")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and _INT.match(value.strip()):
        value = int(value.strip())
    if not isinstance(value, int):
        raise errors.malformed(f"{_PREFIX}{name}: an integer is expected")
    if not bounds[0] <= value <= bounds[1]:
        raise errors.malformed(f"{_PREFIX}{name}: {value} is out of range")
    return value


def string_map(body: Mapping[str, Any], name: str) -> dict[str, str]:
    value = raw(body, name)
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise errors.malformed(f"{_PREFIX}{name}: an object of strings is expected")
    return {str(k): v for k, v in value.items()}


def string_list(body: Mapping[str, Any], name: str) -> list[str]:
    value = raw(body, name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise errors.malformed(f"{_PREFIX}{name}: an array of strings is expected")
    return list(value)


def enum(body: Mapping[str, Any], name: str, values: tuple[str, ...]) -> str:
    """An enum field by name or number (``values`` in number order); the first value when absent."""
    value = raw(body, name)
    if value is None:
        return values[0]
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(values):
        return values[value]
    if isinstance(value, str) and value in values:
        return value
    raise errors.malformed(f"{_PREFIX}{name}: {value!r} is not one of {', '.join(values)}")
