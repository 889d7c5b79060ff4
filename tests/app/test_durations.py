"""Dapr's time values (services/durations.py): every form of dapr-http-api.md section 12.2."""

from datetime import UTC, datetime, timedelta

import pytest

from services.durations import Period, due_time, duration, expiry, go_duration, period

NOW = datetime(2026, 12, 6, 10, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10s", 10),
        ("1h2m3s", 3723),
        ("0h0m9s0ms", 9),
        ("1h0m0s0ms0μs", 3600),
        ("1h0m0s0ms0µs", 3600),
        ("250ms", 0.25),
        ("1.5s", 1.5),
        ("0", 0),
        ("PT10S", 10),
        ("P1D", 86400),
        ("P1DT2H", 93600),
        ("pt1m", 60),
    ],
)
def test_durations_in_go_and_iso_forms(text: str, seconds: float) -> None:
    assert duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "10", "ten seconds", "-5s", "P", "PT", "P1DT", "1x"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        duration(text)


def test_go_duration_refuses_iso() -> None:
    with pytest.raises(ValueError):
        go_duration("PT10S")


def test_due_time_is_a_duration_from_now_or_a_timestamp() -> None:
    assert due_time("10s", NOW) == NOW + timedelta(seconds=10)
    assert due_time("2026-12-06T11:00:00Z", NOW) == NOW + timedelta(hours=1)
    assert due_time("2026-12-06T12:00:00+01:00", NOW) == NOW + timedelta(hours=1)
    assert due_time("", NOW) == NOW
    assert expiry("PT1M", NOW) == NOW + timedelta(minutes=1)
    with pytest.raises(ValueError, match="due time"):
        due_time("tomorrow", NOW)
    with pytest.raises(ValueError, match="ttl"):
        expiry("2026-12-06T11:00:00", NOW)  # no zone


def test_periods() -> None:
    assert period("") == Period(None, None)
    assert period("20s") == Period(timedelta(seconds=20), None)
    assert period("PT20S") == Period(timedelta(seconds=20), None)
    assert period("R5/PT10S") == Period(timedelta(seconds=10), 5)
    assert period("R/PT10S") == Period(timedelta(seconds=10), None)
    with pytest.raises(ValueError, match="zero repetitions"):
        period("R0/PT10S")
    assert period("0s") == Period(None, None)
    assert period("0h0m0s0ms0μs") == Period(None, None)  # the Python SDK's timedelta(0)
    with pytest.raises(ValueError, match="above zero"):
        period("R3/PT0S")
