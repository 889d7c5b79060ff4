"""Dapr's metadata (a string map): decoding it into a typed model, once, at start-up, and the
readings every building block shares (a value by case-insensitive name, Go's booleans, durations
and sizes).

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
from pydantic_core import PydanticCustomError

from components.errors import MetadataError

_TRUE = {"1", "t", "true", "y", "yes", "on"}
_FALSE = {"0", "f", "false", "n", "no", "off", ""}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def lookup(metadata: Mapping[str, str], *names: str) -> str | None:
    """The value of the first of ``names`` present, matched case-insensitively as Dapr matches
    metadata keys (an exact match first); None when none is."""
    for name in names:
        if name in metadata:
            return metadata[name]
        lowered = name.lower()
        for key, value in metadata.items():
            if key.lower() == lowered:
                return value
    return None


def parse_bool(value: Any) -> bool:
    """components-contrib's truthy spellings (``true``, ``1``, ``t``, ``yes``, ``on``, any case)
    and their opposites; anything else raises ValueError, so a typo fails start-up."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{value!r} is not a boolean")


def is_truthy(value: Any) -> bool:
    """components-contrib's ``utils.IsTruthy``: the truthy spellings are true, anything else false."""
    return value is True or (not isinstance(value, bool) and str(value).strip().lower() in _TRUE)


def parse_go_bool(value: str) -> bool:
    """Go's ``strconv.ParseBool``, exactly: what daprd applies to request metadata such as
    ``rawPayload`` (``yes`` is not a boolean there); raises ValueError."""
    if value in _GO_TRUE:
        return True
    if value in _GO_FALSE:
        return False
    raise ValueError(f"{value!r} is not a boolean")


def metadata_error(reason: str) -> PydanticCustomError:
    """What a metadata model's validator raises: ``reason`` becomes the MetadataError's message."""
    # A custom error keeps pydantic's "Value error, " prefix out of the MetadataError message.
    return PydanticCustomError("value_error", "{reason}", {"reason": reason})


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
