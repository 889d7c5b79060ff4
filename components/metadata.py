"""Decoding a component's Dapr metadata (a string map) into a typed model, once, at start-up.

Field names match case-insensitively, as Dapr's decoder does. Booleans accept Go's spellings
(``true``, ``1``, ``t``...), durations Go's form (``1h30m``, ``500ms``) or plain seconds. A value of
the wrong form raises MetadataError naming the field, so start-up can report file, component and
field in one line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from components.errors import MetadataError

_TRUE = {"1", "t", "true", "y", "yes", "on"}
_FALSE = {"0", "f", "false", "n", "no", "off", ""}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{value!r} is not a boolean")


_QUANTITY = re.compile(r"^\s*(\d+)\s*(Ki|Mi|Gi|K|M|G|k)?i?B?\s*$")
_MULTIPLIER = {
    None: 1,
    "K": 1000,
    "k": 1000,
    "M": 1000**2,
    "G": 1000**3,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
}


def parse_quantity(value: Any) -> int:
    """Byte sizes as daprd takes them: ``4Mi``, ``512Ki``, ``10M`` or a plain number of bytes."""
    if isinstance(value, int):
        return value
    match = _QUANTITY.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a size (use e.g. 4Mi, 512Ki or a number of bytes)")
    return int(match.group(1)) * _MULTIPLIER[match.group(2)]


def parse_duration(value: Any) -> timedelta:
    """Go duration syntax (``1h2m3s``, ``250ms``) or a bare number of seconds."""
    if isinstance(value, timedelta):
        return value
    text = str(value).strip()
    try:
        return timedelta(seconds=float(text))
    except ValueError:
        pass
    if not text or _DURATION_PART.sub("", text) != "":
        raise ValueError(f"{value!r} is not a duration (use e.g. 30s, 5m, 1h)")
    total = sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text))
    return timedelta(seconds=total)


GoBool = Annotated[bool, BeforeValidator(parse_bool)]
Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class ComponentMetadata(BaseModel):
    """Base of every backend's metadata model. Unknown fields are ignored, as in Dapr."""

    model_config = ConfigDict(extra="ignore", frozen=True)


M = TypeVar("M", bound=ComponentMetadata)


def decode(model: type[M], raw: Mapping[str, str]) -> M:
    """Build ``model`` from Dapr's metadata map, naming the first bad field on failure."""
    by_lower = {name.lower(): value for name, value in raw.items()}
    values: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        external = info.alias or name
        if external.lower() in by_lower:
            values[name] = by_lower[external.lower()]
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        error = exc.errors()[0]
        field_name = str(error["loc"][0]) if error["loc"] else model.__name__
        failed = model.model_fields.get(field_name)
        external = (failed.alias if failed else None) or field_name
        message = error["msg"]
        if error["type"] == "missing":
            message = "is required"
        raise MetadataError(external, message) from None
