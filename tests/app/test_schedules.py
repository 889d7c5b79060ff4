"""When ticks fall (services/scheduler/schedules.py): Dapr's job schedules, reminders' periods,
dueTime, repeats, ttl, ticks missed while no sidecar ran, and the failure policies."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.scheduler import schedules
from services.scheduler.base import Job, JobKey

NOW = datetime(2026, 12, 6, 10, 0, 0, 500000, tzinfo=UTC).timestamp()


def job(**fields: object) -> Job:
    return Job(JobKey("job", "app", "j"), **fields)  # type: ignore[arg-type]


def reminder(**fields: object) -> Job:
    return Job(JobKey("reminder", "app", "T||1||r"), **fields)  # type: ignore[arg-type]


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@pytest.mark.parametrize(
    ("schedule", "first"),
    [
        ("@every 1m", NOW + 60),
        ("@every 1h30m", NOW + 5400),
        ("@every 500ms", NOW + 0.5),
        ("@hourly", at("2026-12-06T11:00:00+00:00")),
        ("@daily", at("2026-12-07T00:00:00+00:00")),
        ("@midnight", at("2026-12-07T00:00:00+00:00")),
        ("@weekly", at("2026-12-13T00:00:00+00:00")),  # Sunday
        ("@monthly", at("2027-01-01T00:00:00+00:00")),
        ("@yearly", at("2027-01-01T00:00:00+00:00")),
        ("@annually", at("2027-01-01T00:00:00+00:00")),
        ("*/10 * * * * *", at("2026-12-06T10:00:10+00:00")),
        ("0 30 * * * *", at("2026-12-06T10:30:00+00:00")),
        ("0 0 9 * * MON-FRI", at("2026-12-07T09:00:00+00:00")),
        ("*/15 * * * *", at("2026-12-06T10:15:00+00:00")),  # five fields: second 0
        ("PT10S", NOW + 10),
        ("R3/PT2S", NOW + 2),
    ],
)
def test_a_jobs_first_tick_from_its_schedule(schedule: str, first: float) -> None:
    plan = schedules.plan(job(schedule=schedule), NOW)
    assert plan.first == pytest.approx(first)
    assert plan.expires is None


@pytest.mark.parametrize(
    "schedule",
    ["", "every day", "@every", "@every -1s", "@every 0s", "@often", "* * *", "61 * * * * *", "R0/PT1S"],
)
def test_bad_schedules_name_what_is_wrong(schedule: str) -> None:
    with pytest.raises(ValueError) as raised:
        schedules.plan(job(schedule=schedule), NOW)
    assert str(raised.value)


def test_due_time_comes_first_then_the_schedule() -> None:
    plan = schedules.plan(job(schedule="@every 10s", due_time="2s"), NOW)
    assert plan.first == pytest.approx(NOW + 2)
    assert schedules.next_tick(job(schedule="@every 10s"), plan.first, 1, NOW + 2) == pytest.approx(NOW + 12)
    rfc = schedules.plan(job(due_time="2026-12-06T12:00:00Z"), NOW)
    assert rfc.first == at("2026-12-06T12:00:00+00:00")
    assert schedules.next_tick(job(due_time="1s"), NOW + 1, 1, NOW + 1) is None  # a one-shot ends


def test_repeats_and_ttl_end_the_ticks() -> None:
    every = job(schedule="@every 1s", repeats=3)
    assert schedules.next_tick(every, NOW, 2, NOW) == pytest.approx(NOW + 1)
    assert schedules.next_tick(every, NOW, 3, NOW) is None
    plan = schedules.plan(job(schedule="@every 1s", ttl="2.5s"), NOW)
    assert plan.expires == pytest.approx(NOW + 2.5)
    bounded = job(schedule="@every 1s", expires=datetime.fromtimestamp(plan.expires or 0, UTC))
    assert schedules.next_tick(bounded, NOW + 2, 2, NOW + 2) is None  # NOW + 3 is past the ttl
    assert schedules.plan(job(due_time="1s", ttl="2026-12-31T00:00:00Z"), NOW).expires == at(
        "2026-12-31T00:00:00+00:00"
    )


def test_late_ticks_are_caught_up_but_long_gaps_skipped() -> None:
    every = job(schedule="@every 10s")
    # Delivered 5 s late: the next tick is still the one after it (overdue, it fires at once).
    assert schedules.next_tick(every, NOW, 1, NOW + 15) == pytest.approx(NOW + 10)
    # An hour late (no sidecar ran): the schedule resumes within the catch-up window, on its grid.
    later = NOW + 3600.5
    following = schedules.next_tick(every, NOW, 1, later)
    assert following is not None and later - schedules.CATCH_UP <= following < later - schedules.CATCH_UP + 10
    assert (following - NOW) % 10 == pytest.approx(0, abs=1e-6)
    cron = job(schedule="0 * * * * *")
    assert schedules.next_tick(cron, NOW, 1, NOW + 30) == at("2026-12-06T10:01:00+00:00")
    assert schedules.next_tick(cron, NOW, 1, NOW + 600) == at("2026-12-06T10:10:00+00:00")


def test_reminder_periods() -> None:
    assert schedules.plan(reminder(), NOW).first == NOW  # no due time: now
    assert schedules.plan(reminder(schedule="20s", due_time="5s"), NOW).first == pytest.approx(NOW + 5)
    assert schedules.next_tick(reminder(schedule="20s"), NOW, 1, NOW) == pytest.approx(NOW + 20)
    assert schedules.next_tick(reminder(schedule="PT1M"), NOW, 1, NOW) == pytest.approx(NOW + 60)
    assert schedules.next_tick(reminder(schedule=""), NOW, 1, NOW) is None  # one tick
    counted = reminder(schedule="R2/PT1S")
    assert schedules.next_tick(counted, NOW, 1, NOW) == pytest.approx(NOW + 1)
    assert schedules.next_tick(counted, NOW + 1, 2, NOW + 1) is None
    with pytest.raises(ValueError):
        schedules.plan(reminder(schedule="R0/PT1S"), NOW)


@pytest.mark.parametrize(
    ("policy", "rule"),
    [
        (None, schedules.RetryRule(1.0, 3)),
        ({"drop": {}}, None),
        ({"constant": {}}, schedules.RetryRule(1.0, None)),
        ({"constant": {"interval": "5s", "maxRetries": 0}}, schedules.RetryRule(5.0, 0)),
        ({"constant": {"interval": "PT0.5S", "max_retries": 7}}, schedules.RetryRule(0.5, 7)),
    ],
)
def test_failure_policies(policy: dict[str, object] | None, rule: schedules.RetryRule | None) -> None:
    assert schedules.retry_rule(policy) == rule


@pytest.mark.parametrize(
    "policy",
    [
        {},
        {"sometimes": {}},
        {"constant": 5},
        {"constant": {"interval": 5}},
        {"constant": {"maxRetries": -1}},
        {"constant": {"maxRetries": True}},
        {"constant": {}, "drop": {}},
    ],
)
def test_bad_failure_policies(policy: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        schedules.retry_rule(policy)
