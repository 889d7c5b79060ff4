"""bindings.cron's schedules in Dapr's syntax (robfig/cron with optional seconds and descriptors):
when each fires next, and what is refused at start-up."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from components.bindings.cron import CronBinding, Schedule, go_time_text
from components.errors import MetadataError

START = datetime(2026, 3, 4, 10, 20, 30, 500_000, tzinfo=UTC)  # a Wednesday


@pytest.fixture
def utc_local_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Schedules without a zone read the process's local time: UTC for these tests."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("*/5 * * * * *", datetime(2026, 3, 4, 10, 20, 35, tzinfo=UTC)),  # six fields: seconds first
        ("0 */15 * * * *", datetime(2026, 3, 4, 10, 30, tzinfo=UTC)),
        ("*/15 * * * *", datetime(2026, 3, 4, 10, 30, tzinfo=UTC)),  # five fields: at second 0
        ("0 30 3-6,20-23 * * *", datetime(2026, 3, 4, 20, 30, tzinfo=UTC)),
        ("@hourly", datetime(2026, 3, 4, 11, 0, tzinfo=UTC)),
        ("@daily", datetime(2026, 3, 5, 0, 0, tzinfo=UTC)),
        ("@midnight", datetime(2026, 3, 5, 0, 0, tzinfo=UTC)),
        ("@weekly", datetime(2026, 3, 8, 0, 0, tzinfo=UTC)),  # Sunday
        ("@monthly", datetime(2026, 4, 1, 0, 0, tzinfo=UTC)),
        ("@yearly", datetime(2027, 1, 1, 0, 0, tzinfo=UTC)),
        ("@annually", datetime(2027, 1, 1, 0, 0, tzinfo=UTC)),
        ("@every 1s", START + timedelta(seconds=1)),
        ("@every 15m", START + timedelta(minutes=15)),
        ("@every 1m30s", START + timedelta(seconds=90)),
        ("@every 1500ms", START + timedelta(seconds=2)),  # whole seconds, rounded up, as robfig does
        ("0 0 * * * MON", datetime(2026, 3, 9, 0, 0, tzinfo=UTC)),
    ],
)
def test_next_firing(text: str, expected: datetime, utc_local_time: None) -> None:
    assert Schedule(text).next_after(START) == expected


def test_a_time_zone_prefix() -> None:
    schedule = Schedule("CRON_TZ=America/New_York 0 30 4 * * *")
    fired = schedule.next_after(START)
    assert fired.astimezone(ZoneInfo("America/New_York")).hour == 4
    assert fired.astimezone(UTC) == datetime(2026, 3, 5, 9, 30, tzinfo=UTC)
    assert Schedule("TZ=Europe/Paris @daily").next_after(START).astimezone(ZoneInfo("Europe/Paris")).hour == 0


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not a schedule",
        "61 * * * * *",
        "* * * *",
        "* * * * * * *",
        "@sometimes",
        "@every soon",
        "CRON_TZ=Nowhere/City * * * * *",
    ],
)
async def test_bad_schedules_fail_init_naming_the_field(text: str) -> None:
    binding = CronBinding()
    with pytest.raises(MetadataError) as failure:
        await binding.init({"schedule": text})
    assert failure.value.field == "schedule"


def test_read_time_is_gos_time_text() -> None:
    assert (
        go_time_text(datetime(2026, 1, 2, 3, 4, 5, 120_000, tzinfo=UTC)) == "2026-01-02 03:04:05.12 +0000 UTC"
    )
    assert go_time_text(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02 03:04:05 +0000 UTC"
