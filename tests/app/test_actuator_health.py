"""The actuator's health indicators: a ping's answer kept for a while, probes arriving together
sharing one ping, a slow or failing backend reported DOWN with the reason, and Layotto's
aggregation (any DOWN is DOWN, else any INIT is INIT)."""

from __future__ import annotations

import asyncio

import pytest

from components.errors import BackendError
from services.actuator import Health, Indication, Indicator, Status, runtime_indication


class Backend:
    """A ping that counts its calls and answers as told."""

    def __init__(self) -> None:
        self.calls = 0
        self.failure: Exception | None = None
        self.delay = 0.0

    async def ping(self) -> None:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.failure is not None:
            raise self.failure


async def test_an_answer_is_kept_for_the_cache_period() -> None:
    backend = Backend()
    indicator = Indicator({"type": "state.redis"}, backend.ping, cache=0.3)
    assert await indicator.check() == Indication(Status.UP, {"type": "state.redis"})
    backend.failure = BackendError("redis: connection refused")
    for _ in range(5):
        assert (await indicator.check()).status is Status.UP
    assert backend.calls == 1
    await asyncio.sleep(0.35)
    down = await indicator.check()
    assert down == Indication(Status.DOWN, {"type": "state.redis", "reason": "redis: connection refused"})
    assert backend.calls == 2


async def test_probes_arriving_together_share_one_ping() -> None:
    backend = Backend()
    backend.delay = 0.1
    indicator = Indicator({}, backend.ping)
    answers = await asyncio.gather(*(indicator.check() for _ in range(20)))
    assert {answer.status for answer in answers} == {Status.UP}
    assert backend.calls == 1


async def test_a_backend_that_does_not_answer_in_time_is_down() -> None:
    backend = Backend()
    backend.delay = 5.0
    indicator = Indicator({"type": "pubsub.kafka"}, backend.ping, timeout=0.1)
    started = asyncio.get_running_loop().time()
    answer = await indicator.check()
    assert asyncio.get_running_loop().time() - started < 1.0
    assert answer.status is Status.DOWN and answer.details["reason"] == "no answer within 0.1s"


async def test_a_component_without_a_health_check_is_up() -> None:
    assert await Indicator({"type": "lock.in-memory"}, None).check() == Indication(
        Status.UP, {"type": "lock.in-memory"}
    )


@pytest.mark.parametrize(
    ("statuses", "overall"),
    [
        ([Status.UP, Status.UP], Status.UP),
        ([Status.UP, Status.INIT], Status.INIT),
        ([Status.INIT, Status.DOWN], Status.DOWN),
        ([], Status.UP),
    ],
)
def test_layotto_aggregation(statuses: list[Status], overall: Status) -> None:
    health = Health.of({str(i): Indication(status) for i, status in enumerate(statuses)})
    assert health.status is overall and health.up is (overall is Status.UP)


def test_the_runtime_indicator_follows_the_sidecars_life() -> None:
    assert runtime_indication(serving=False, stopping=False) == Indication(
        Status.INIT, {"reason": "starting"}
    )
    assert runtime_indication(serving=True, stopping=False) == Indication(Status.UP)
    assert runtime_indication(serving=False, stopping=True) == Indication(Status.DOWN, {"reason": "shutdown"})
    assert Indication(Status.UP).body() == {"status": "UP"}  # details omitted when empty, as Layotto
