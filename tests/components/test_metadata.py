"""Decoding component metadata: case-insensitive names, Go booleans and durations, named errors."""

from __future__ import annotations

from datetime import timedelta

import pytest

from components.errors import MetadataError
from components.metadata import (
    ComponentMetadata,
    Duration,
    GoBool,
    decode,
    is_truthy,
    lookup,
    parse_bool,
    parse_duration,
    parse_go_bool,
)


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


def test_lookup_matches_names_as_dapr_does() -> None:
    metadata = {"ConsumerID": "a", "ttl": "", "TTLInSeconds": "5"}
    assert lookup(metadata, "consumerID") == "a"
    assert lookup(metadata, "missing") is None
    assert lookup(metadata, "ttl", "ttlInSeconds") == ""  # the first name present wins, even empty
    assert lookup(metadata, "nope", "ttlInSeconds") == "5"
    assert lookup({"rawpayload": "x", "rawPayload": "y"}, "rawPayload") == "y"  # an exact match first


@pytest.mark.parametrize("text", ["1", "t", "T", "TRUE", "true", "True"])
def test_go_strconv_true(text: str) -> None:
    assert parse_go_bool(text) is True and parse_bool(text) is True and is_truthy(text)


@pytest.mark.parametrize("text", ["0", "f", "F", "FALSE", "false", "False"])
def test_go_strconv_false(text: str) -> None:
    assert parse_go_bool(text) is False and parse_bool(text) is False and not is_truthy(text)


@pytest.mark.parametrize("text", ["yes", "on", "Y", " true ", "tRuE"])
def test_contrib_truthy_spellings_are_not_go_booleans(text: str) -> None:
    """Component metadata reads these as true (components-contrib); request metadata such as
    rawPayload goes through strconv.ParseBool, which refuses them, as daprd does."""
    assert parse_bool(text) is True and is_truthy(text)
    with pytest.raises(ValueError, match="not a boolean"):
        parse_go_bool(text)


def test_unknown_spellings() -> None:
    with pytest.raises(ValueError, match="not a boolean"):
        parse_bool("maybe")
    assert not is_truthy("maybe") and not is_truthy(None) and is_truthy(True) and not is_truthy(False)
    assert parse_bool("") is False
