"""W3C ``baggage`` header validation (https://www.w3.org/TR/baggage/), with no OpenTelemetry import:
daprd refuses a request whose header does not parse (400, ``invalid baggage header``)."""

from __future__ import annotations

import re
from urllib.parse import unquote

MAX_MEMBERS = 180
MAX_BYTES = 8192
_KEY = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VALUE = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*")
_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def valid_baggage(header: str) -> bool:
    """Whether ``header`` is a W3C baggage list (an empty header is)."""
    if not header.strip():
        return True
    if len(header.encode("utf-8", "surrogateescape")) > MAX_BYTES:
        return False
    members = header.split(",")
    if len(members) > MAX_MEMBERS:
        return False
    for member in members:
        pair, *properties = member.split(";")
        key, equals, value = pair.partition("=")
        if not equals or not _KEY.fullmatch(key.strip()) or not _value_ok(value.strip()):
            return False
        for prop in properties:
            name, equals, value = prop.partition("=")
            if not _KEY.fullmatch(name.strip()) or (equals and not _value_ok(value.strip())):
                return False
    return True


def _value_ok(value: str) -> bool:
    if not _VALUE.fullmatch(value) or _PERCENT.search(value):
        return False
    try:
        unquote(value, errors="strict")
    except UnicodeDecodeError:
        return False
    return True
