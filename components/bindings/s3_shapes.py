"""How Dapr's ``bindings.aws.s3`` writes its answers, for components/bindings/s3.py: Go's renderings
of what it reads from S3 (``json.Marshal`` of aws-sdk-go-v2's ``ListObjectsOutput``, Go's times
and floats) and of what it is handed (``commonutils.Unquote`` of the request's data, ``time.
ParseDuration`` of ``presignTTL``, the ``tags`` request metadata).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import orjson

_NEEDS_DECODING = re.compile(rb'[\x00-\x1f"\\]')
"""What a JSON string's body must not hold raw (control characters, quotes) or what asks for
decoding (a backslash escape)."""
_NUMBER = re.compile(r"[0-9]*(?:\.[0-9]*)?")
_UNIT = re.compile(r"[^0-9.]+")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def unquote(data: bytes) -> bytes:
    """components-contrib's ``commonutils.Unquote``: data that is JSON is decoded and cast to a
    string (a string as itself, a number in Go's ``%f`` shortest form, a boolean as ``true`` /
    ``false``, ``null`` as nothing); an object, an array or anything that is not JSON is kept.

    Objects and arrays are recognised by their first byte and never parsed, and a string without
    escapes (base64, most text) is cut out of its quotes without being decoded: a large payload
    costs one copy, not a str and a copy beside it."""
    head = data[:1].lstrip() or data.lstrip()[:1]
    if not head or head in b"{[":
        return data
    inner = string_body(data)
    if inner is not None:
        return inner.tobytes()
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return data
    if isinstance(value, str):
        return value.encode()
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if isinstance(value, int | float):
        return go_float(float(value)).encode()
    return data


def string_body(data: bytes) -> memoryview | None:
    """The body of a JSON string that holds no escape, as a view of ``data`` (no copy); None for
    anything else (which :func:`unquote` decodes)."""
    start, end = 0, len(data)
    while start < end and data[start] in b" \t\r\n":
        start += 1
    while end > start and data[end - 1] in b" \t\r\n":
        end -= 1
    if end - start < 2 or data[start] != 0x22 or data[end - 1] != 0x22:
        return None
    inner = memoryview(data)[start + 1 : end - 1]
    return None if _NEEDS_DECODING.search(inner) else inner


def go_float(value: float) -> str:
    """Go's ``strconv.FormatFloat(value, 'f', -1, 64)``: the shortest digits, never an exponent."""
    text = format(Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def go_duration(text: str) -> float:
    """Go's ``time.ParseDuration`` in seconds (``15m``, ``1h30m``, ``500ms``; a bare ``0``): a
    number without a unit is refused, with Go's messages."""
    quoted = orjson.dumps(text).decode()
    rest = text
    sign = -1.0 if rest[:1] == "-" else 1.0
    if rest[:1] in ("-", "+"):
        rest = rest[1:]
    if rest == "0":
        return 0.0
    if not rest:
        raise ValueError(f"time: invalid duration {quoted}")
    total = 0.0
    while rest:
        number = _NUMBER.match(rest)
        digits = number.group(0) if number else ""
        if not any(character.isdigit() for character in digits):
            raise ValueError(f"time: invalid duration {quoted}")
        rest = rest[len(digits) :]
        unit = _UNIT.match(rest)
        name = unit.group(0) if unit else ""
        if not name:
            raise ValueError(f"time: missing unit in duration {quoted}")
        if name not in _UNIT_SECONDS:
            raise ValueError(f"time: unknown unit {orjson.dumps(name).decode()} in duration {quoted}")
        rest = rest[len(name) :]
        total += float(digits) * _UNIT_SECONDS[name]
    return sign * total


def tagging(raw: str) -> str | None:
    """The ``tags`` request metadata (``key1=value1,key2=value2``) as S3's ``x-amz-tagging`` query
    string, as Dapr's ``parseS3Tags`` builds it; ValueError on an entry without a key or value."""
    pairs = []
    for entry in raw.split(","):
        key, separator, value = entry.strip().partition("=")
        if not separator or not key.strip() or not value.strip():
            raise ValueError(f"invalid tag format: '{entry}' (expected key=value)")
        pairs.append(f"{key.strip()}={value.strip()}")
    return "&".join(pairs) or None


def object_location(endpoint: str, bucket: str, key: str, path_style: bool) -> str:
    """The object's URL, as the SDK's uploader reports it: ``endpoint/bucket/key`` path-style,
    ``scheme://bucket.host/key`` virtual-hosted."""
    escaped = quote(key, safe="/~")
    if path_style:
        return f"{endpoint.rstrip('/')}/{bucket}/{escaped}"
    scheme, _, host = endpoint.partition("://")
    return f"{scheme}://{bucket}.{host.rstrip('/')}/{escaped}"


def go_time(value: datetime | None) -> str | None:
    """Go's ``time.Time`` in JSON (RFC 3339 with the fraction's trailing zeros dropped), in UTC."""
    if value is None:
        return None
    moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def list_objects_output(answer: Mapping[str, Any]) -> bytes:
    """``json.Marshal`` of aws-sdk-go-v2's ``ListObjectsOutput``: Go's field names in their order,
    ``null`` for what S3 did not send (a pointer left nil), ``""`` for an absent enum. Times are
    Go's (``2024-05-01T10:00:00Z``)."""
    contents = answer.get("Contents")
    prefixes = answer.get("CommonPrefixes")
    shaped = {
        "CommonPrefixes": [{"Prefix": entry.get("Prefix")} for entry in prefixes] if prefixes else None,
        "Contents": [_object(entry) for entry in contents] if contents else None,
        "Delimiter": answer.get("Delimiter"),
        # botocore asks for url-encoded keys (and decodes them); Dapr's SDK asks for none.
        "EncodingType": "",
        "IsTruncated": answer.get("IsTruncated"),
        "Marker": answer.get("Marker"),
        "MaxKeys": answer.get("MaxKeys"),
        "Name": answer.get("Name"),
        "NextMarker": answer.get("NextMarker"),
        "Prefix": answer.get("Prefix"),
        "RequestCharged": answer.get("RequestCharged", ""),
        "ResultMetadata": {},
    }
    return orjson.dumps(shaped)


def _object(entry: Mapping[str, Any]) -> dict[str, Any]:
    owner = entry.get("Owner")
    restore = entry.get("RestoreStatus")
    return {
        "ChecksumAlgorithm": entry.get("ChecksumAlgorithm") or None,
        "ChecksumType": entry.get("ChecksumType", ""),
        "ETag": entry.get("ETag"),
        "Key": entry.get("Key"),
        "LastModified": go_time(entry.get("LastModified")),
        "Owner": {"DisplayName": owner.get("DisplayName"), "ID": owner.get("ID")} if owner else None,
        "RestoreStatus": (
            {
                "IsRestoreInProgress": restore.get("IsRestoreInProgress"),
                "RestoreExpiryDate": go_time(restore.get("RestoreExpiryDate")),
            }
            if restore
            else None
        ),
        "Size": entry.get("Size"),
        "StorageClass": entry.get("StorageClass", ""),
    }
