"""Decoding component metadata: case-insensitive names, Go booleans and durations, named errors."""

from __future__ import annotations

from datetime import timedelta

import pytest

from components.errors import MetadataError
from components.metadata import ComponentMetadata, Duration, GoBool, decode, parse_duration


class Example(ComponentMetadata):
    host: str
    enabled: GoBool = False
    timeout: Duration = timedelta(seconds=5)
    retries: int = 3


def test_names_match_case_insensitively_and_unknown_fields_are_ignored() -> None:
    decoded = decode(Example, {"HOST": "h", "Enabled": "True", "TIMEOUT": "1m30s", "extra": "x"})
    assert decoded == Example(host="h", enabled=True, timeout=timedelta(seconds=90))


@pytest.mark.parametrize(
    ("text", "seconds"), [("250ms", 0.25), ("1h", 3600), ("2", 2), ("1.5s", 1.5), ("1m5s", 65)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        ({}, "host", "is required"),
        ({"host": "h", "enabled": "maybe"}, "enabled", "not a boolean"),
        ({"host": "h", "timeout": "soon"}, "timeout", "not a duration"),
        ({"host": "h", "retries": "many"}, "retries", "integer"),
    ],
)
def test_errors_name_the_field(raw: dict[str, str], field: str, message: str) -> None:
    with pytest.raises(MetadataError) as caught:
        decode(Example, raw)
    assert caught.value.field == field
    assert message in caught.value.message
