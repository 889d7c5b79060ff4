"""Actor timers: in memory, they live and die with the activation, and each tick is a turn of the
actor (``PUT /actors/{type}/{id}/method/timer/{name}``). A tick answered with
``X-Daprremindercancel: true`` ends the timer, as does its ``ttl`` or its repetitions running out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import structlog

from mesh.app_channel import AppUnreachable
from services import errors
from services.actors.activation import Activation, Deactivated
from services.actors.app import cancels
from services.actors.host import ActorHost
from services.actors.timer_spec import RunningTimer, Schedule, Timer
from services.errors import ApiError
from services.state_requests import json_type

log = structlog.get_logger(__name__)


def string_field(body: dict[str, Any], name: str) -> str:
    """A string field of a create request; one of another JSON type is a malformed request, as Go's
    decoder refuses it (400), where a string that is not a valid time is the create's own error."""
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise errors.malformed(
            f"json: cannot unmarshal {json_type(value)} into Go struct field .{name} of type string"
        )
    return value


def object_body(body: Any, kind: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise errors.malformed(f"json: cannot unmarshal {json_type(body)} into Go value of type {kind}")
    return body


def parse_timer(name: str, body: Any, now: datetime | None = None) -> Timer:
    """A timer from the create request's JSON body: ApiError (400) for a body of the wrong shape,
    ValueError naming the time value that is wrong."""
    body = object_body(body, "actors.CreateTimerRequest")
    data = body.get("data")
    schedule = Schedule.parse(
        string_field(body, "dueTime"),
        string_field(body, "period"),
        string_field(body, "ttl"),
        now or datetime.now(UTC),
    )
    raw = None if data is None else orjson.dumps(data)
    return Timer(name, string_field(body, "callback"), raw, schedule)


Fire = Callable[[Timer], Awaitable[bool]]
"""Deliver one tick as a turn; ``False`` when the timer must stop (cancelled by the app, or the
activation is gone)."""


async def run_timer(timer: Timer, fire: Fire) -> None:
    """Until the timer ends or its task is cancelled. A tick in progress is shielded from the
    cancellation, so the activation's drain waits for it rather than cutting the app's call."""
    tick: datetime | None = timer.schedule.first
    count = 0
    while tick is not None:
        delay = (tick - datetime.now(UTC)).total_seconds()
        if delay > 0:
            await asyncio.sleep(delay)
        count += 1
        if not await asyncio.shield(fire(timer)):
            return
        following = timer.schedule.following(tick, count)
        # A tick late by more than a period is not made up: the next one is a period from now.
        now = datetime.now(UTC)
        if following is not None and following < now:
            following = now + (timer.schedule.every.every or timedelta(0))
            if timer.schedule.expires is not None and following > timer.schedule.expires:
                following = None
        tick = following


def start_timer(activation: Activation, timer: Timer, app: ActorHost) -> None:
    """Run ``timer`` on the activation (replacing one of its name); it ends with the activation."""
    old = activation.timers.pop(timer.name, None)
    if old is not None:
        old.task.cancel()

    async def fire(timer: Timer) -> bool:
        try:
            async with activation.turn():
                response = await app.fire(*activation.key, "timer", timer.name, timer.body())
        except Deactivated:
            return False
        except (AppUnreachable, ApiError) as exc:
            log.warning("a timer tick was not delivered", timer=timer.name, error=str(exc))
            return True
        return not cancels(response)

    async def run() -> None:
        try:
            await run_timer(timer, fire)
        finally:
            running = activation.timers.get(timer.name)
            if running is not None and running.task is task:
                del activation.timers[timer.name]

    task = asyncio.get_running_loop().create_task(run(), name=f"actor timer {timer.name}")
    activation.timers[timer.name] = RunningTimer(timer, task)
