"""The actor runtime over a real app (tests/actor_app.py) and a placement whose table the test sets:
turns, reentrancy, claims, idle deactivation, rebalancing, fencing, drain and timers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mesh.app_channel import AppChannel
from mesh.placement.base import ChangeListener
from services.actors.app import ActorApp
from services.actors.config import ActorConfig, TypeConfig, parse_config
from services.actors.forward import Peers
from services.actors.reminders import Reminders
from services.actors.service import ActorRuntime
from services.actors.state import ActorState
from services.errors import ApiError
from tests.actor_app import ActorTestApp
from tests.servers import free_port

HERE = "127.0.0.1:1"


class TablePlacement:
    """A placement whose owners the test decides: ``owner[type]`` (default: here), and claims that
    another sidecar may hold (``held``)."""

    def __init__(self) -> None:
        self.address = HERE
        self.owner: dict[str, str | None] = {}
        self.types: frozenset[str] = frozenset()
        self.held: set[tuple[str, str]] = set()
        self.claims: set[tuple[str, str]] = set()
        self.released: list[tuple[str, str]] = []
        self.changed: list[ChangeListener] = []
        self.fenced: list[ChangeListener] = []

    async def start(self, app_id: str, address: str) -> None: ...

    async def host(self, types: frozenset[str]) -> None:
        self.types = types

    async def lookup(self, actor_type: str, actor_id: str) -> str | None:
        if actor_type in self.owner:
            return self.owner[actor_type]
        return self.address if actor_type in self.types else None

    async def claim(self, actor_type: str, actor_id: str) -> bool:
        if (actor_type, actor_id) in self.held:
            return False
        self.claims.add((actor_type, actor_id))
        return True

    async def release(self, actor_type: str, actor_id: str) -> None:
        self.claims.discard((actor_type, actor_id))
        self.released.append((actor_type, actor_id))

    def on_change(self, listener: ChangeListener) -> None:
        self.changed.append(listener)

    def on_fenced(self, listener: ChangeListener) -> None:
        self.fenced.append(listener)

    def describe(self) -> dict[str, Any]:
        return {"kind": "test", "status": "placement: test"}

    async def aclose(self) -> None: ...


@pytest.fixture
async def app() -> AsyncIterator[ActorTestApp]:
    async with ActorTestApp(["counter"]) as test_app:
        yield test_app


@pytest.fixture
async def channel(app: ActorTestApp) -> AsyncIterator[AppChannel]:
    channel = AppChannel("myapp", app.port)
    await channel.start()
    yield channel
    await channel.aclose()


@pytest.fixture
def placement() -> TablePlacement:
    return TablePlacement()


async def runtime_for(
    placement: TablePlacement, channel: AppChannel, config: ActorConfig, **options: Any
) -> ActorRuntime:
    runtime = ActorRuntime(
        "myapp",
        placement,
        ActorApp(channel),
        ActorState(None, "myapp"),
        Reminders(None, "myapp"),
        Peers(),
        **options,
    )
    runtime.start()
    await runtime.apply(config)
    return runtime


def config(**fields: Any) -> ActorConfig:
    return parse_config({"entities": ["counter"], **fields})


async def test_calls_to_one_actor_take_turns_and_different_actors_run_together(
    app: ActorTestApp, channel: AppChannel, placement: TablePlacement
) -> None:
    runtime = await runtime_for(placement, channel, config())
    body = b'{"seconds": 0.1}'
    started = time.monotonic()
    await asyncio.gather(
        *(runtime.invoke("counter", "a", "sleep", body=body) for _ in range(3)),
        *(runtime.invoke("counter", str(n), "sleep", body=body) for n in range(5)),
    )
    assert app.most_at_once[("counter", "a")] == 1
    assert app.most_all_at_once >= 5  # the five other actors ran at the same time
    assert time.monotonic() - started >= 0.3  # a's three turns one after the other
    assert placement.claims == {("counter", "a"), *(("counter", str(n)) for n in range(5))}
    await runtime.aclose()


async def test_reentrancy_lets_a_chain_reenter_up_to_the_stack_depth(
    app: ActorTestApp, channel: AppChannel, placement: TablePlacement
) -> None:
    runtime = await runtime_for(placement, channel, config(reentrancy={"enabled": True, "maxStackDepth": 2}))
    activation = await runtime.table.activate("counter", "a", runtime.config.of("counter"))
    async with activation.turn("chain-1"):
        # the same chain enters while the turn is held; another one would wait
        response = await runtime.invoke("counter", "a", "echo", headers=[("Dapr-Reentrancy-Id", "chain-1")])
        assert response.status == 200
        async with activation.turn("chain-1"):
            with pytest.raises(ApiError) as refused:
                await runtime.invoke("counter", "a", "echo", headers=[("Dapr-Reentrancy-Id", "chain-1")])
            assert refused.value.code == "ERR_ACTOR_STACK_DEPTH"
        other = asyncio.create_task(runtime.invoke("counter", "a", "echo"))
        await asyncio.sleep(0.1)
        assert not other.done()
    assert (await other).status == 200
    # a new chain is given an id, which the app sees
    assert app.calls[-1].headers["Dapr-Reentrancy-Id"]
    await runtime.aclose()


async def test_without_reentrancy_no_id_is_sent(
    app: ActorTestApp, channel: AppChannel, placement: TablePlacement
) -> None:
    runtime = await runtime_for(placement, channel, config())
    await runtime.invoke("counter", "a", "echo")
    assert "Dapr-Reentrancy-Id" not in app.calls[-1].headers
    await runtime.aclose()


async def test_a_claim_held_elsewhere_is_retried_then_refused(
    app: ActorTestApp, channel: AppChannel, placement: TablePlacement
) -> None:
    runtime = await runtime_for(placement, channel, config(), claim_timeout=0.3)
    placement.held.add(("counter", "a"))
    with pytest.raises(ApiError) as refused:
        await runtime.invoke("counter", "a", "echo")
    assert refused.value.code == "ERR_ACTOR_INVOKE_METHOD"
    placement.held.clear()
    pending = asyncio.create_task(runtime.invoke("counter", "b", "echo"))
    assert (await pending).status == 200
    # released while being retried: the call goes through
    placement.held.add(("counter", "c"))
    late = asyncio.create_task(runtime.invoke("counter", "c", "echo"))
    await asyncio.sleep(0.1)
    placement.held.clear()
    assert (await late).status == 200
    await runtime.aclose()


async def test_idle_actors_are_deactivated_and_released(
    app: ActorTestApp, channel: AppChannel, placement: TablePlacement
) -> None:
    runtime = await runtime_for(placement, channel, config(actorIdleTimeout="300ms"))
    await runtime.invoke("counter", "a", "echo")
    assert runtime.active_actors() == [{"type": "counter", "count": 1}]
    [deactivated] = await app.wait_for(1, "DELETE", timeout=10)
    assert deactivated.actor_id == "a"
    assert runtime.active_actors() == [{"type": "counter", "count": 0}]
    assert placement.released == [("counter", "a")]
    await runtime.aclose()


async def test_per_type_settings_override_the_apps(
    app: ActorTestApp, channel: AppChannel, placement: TablePlacement
) -> None:
    parsed = parse_config(
        {
            "entities": ["counter", "slow"],
            "actorIdleTimeout": "1h0m0s0ms0μs",
            "reentrancy": {"enabled": True},
            "entitiesConfig": [
                {"entities": ["slow"], "actorIdleTimeout": "PT2S", "drainRebalancedActors": False}
            ],
        }
    )
    assert parsed.of("counter") == TypeConfig(idle_timeout=parsed.defaults.idle_timeout, reentrancy=True)
    assert parsed.of("counter").idle_timeout.total_seconds() == 3600
    assert parsed.of("slow").idle_timeout.total_seconds() == 2
    assert parsed.of("slow").reentrancy and not parsed.of("slow").drain_rebalanced


def test_a_bad_config_hosts_nothing_or_keeps_defaults() -> None:
    assert parse_config([1]).hosted == frozenset()
    kept = parse_config({"entities": ["a", 3], "actorIdleTimeout": "soon", "drainOngoingCallTimeout": 5})
    assert kept.hosted == {"a"}
    assert kept.of("a") == TypeConfig()


async def test_rebalanced_actors_are_drained_then_deactivated(
    app: ActorTestApp, channel: AppChannel, placement: TablePlacement
) -> None:
    runtime = await runtime_for(placement, channel, config(drainOngoingCallTimeout="5s"))
    await runtime.invoke("counter", "a", "echo")
    running = asyncio.create_task(runtime.invoke("counter", "a", "sleep", body=b'{"seconds": 0.3}'))
    await app.wait_for(1, "sleep")
    placement.owner["counter"] = "127.0.0.1:2"
    await asyncio.gather(*(listener() for listener in placement.changed))
    assert (await running).status == 200  # the turn finished before the deactivation
    [sleep] = app.of("sleep")
    [deactivated] = app.of("DELETE")
    assert deactivated.at >= sleep.at + 0.29
    assert runtime.active_actors() == [{"type": "counter", "count": 0}]
    await runtime.aclose()


async def test_fencing_drops_every_activation_at_once(
    app: ActorTestApp, channel: AppChannel, placement: TablePlacement
) -> None:
    runtime = await runtime_for(placement, channel, config())
    for actor_id in "abc":
        await runtime.invoke("counter", actor_id, "echo")
    await asyncio.gather(*(listener() for listener in placement.fenced))
    assert runtime.active_actors() == [{"type": "counter", "count": 0}]
    await app.wait_for(3, "DELETE")
    assert placement.released == []  # the claims end with the lease
    await runtime.aclose()


async def test_shutdown_drains_turns_and_then_refuses_calls(
    app: ActorTestApp, channel: AppChannel, placement: TablePlacement
) -> None:
    runtime = await runtime_for(placement, channel, config(drainOngoingCallTimeout="5s"))
    running = asyncio.create_task(runtime.invoke("counter", "a", "sleep", body=b'{"seconds": 0.3}'))
    await app.wait_for(1, "sleep")
    await runtime.aclose()
    assert running.done() and running.result().status == 200
    assert [c.actor_id for c in app.of("DELETE")] == ["a"]
    with pytest.raises(ApiError) as refused:
        await runtime.invoke("counter", "a", "echo")
    assert refused.value.status == 503 and refused.value.code == "ERR_ACTOR_RUNTIME_CLOSED"


async def test_the_apps_errors(app: ActorTestApp, channel: AppChannel, placement: TablePlacement) -> None:
    runtime = await runtime_for(placement, channel, config())
    with pytest.raises(ApiError) as failed:
        await runtime.invoke("counter", "a", "fail")
    assert failed.value.code == "ERR_ACTOR_INVOKE_METHOD"
    assert failed.value.message == "error invoke actor method: error from actor service: (500) boom"
    through = await runtime.invoke("counter", "a", "fail-through")
    assert (through.status, through.body) == (418, b"teapot")
    with pytest.raises(ApiError) as nowhere:
        await runtime.invoke("other", "a", "echo")
    assert (nowhere.value.status, nowhere.value.code) == (404, "ERR_ACTOR_NO_ADDRESS")
    await runtime.aclose()


async def test_timers_fire_as_turns_stop_on_cancel_and_die_with_the_actor(
    app: ActorTestApp, channel: AppChannel, placement: TablePlacement
) -> None:
    runtime = await runtime_for(placement, channel, config())
    body = {"dueTime": "0s", "period": "100ms", "callback": "tick", "data": {"n": 1}}
    assert await runtime.create_timer("counter", "a", "t1", body, b"", [], 0) is None
    ticks = await app.wait_for(2, "timer/t1")
    assert ticks[0].json == {"callback": "tick", "data": {"n": 1}, "dueTime": "0s", "period": "100ms"}
    app.cancel.add("t1")
    await asyncio.sleep(0.25)
    count = len(app.of("timer/t1"))
    await asyncio.sleep(0.25)
    assert len(app.of("timer/t1")) == count
    await runtime.create_timer("counter", "a", "t2", {"period": "R2/PT0.05S"}, b"", [], 0)
    await asyncio.sleep(0.4)
    assert len(app.of("timer/t2")) == 2
    await runtime.create_timer("counter", "a", "t3", {"dueTime": "50ms", "period": "50ms"}, b"", [], 0)
    await app.wait_for(1, "timer/t3")
    activation = runtime.table.get("counter", "a")
    assert activation is not None
    await runtime.table.deactivate(activation)
    count = len(app.of("timer/t3"))
    await asyncio.sleep(0.2)
    assert len(app.of("timer/t3")) == count
    await runtime.aclose()


async def test_a_bad_timer_is_refused(
    app: ActorTestApp, channel: AppChannel, placement: TablePlacement
) -> None:
    runtime = await runtime_for(placement, channel, config())
    for body in ({"dueTime": "soon"}, {"period": "R0/PT1S"}, {"ttl": "0s", "dueTime": "1s"}):
        with pytest.raises(ApiError) as refused:
            await runtime.create_timer("counter", "a", "t", body, b"", [], 0)
        assert refused.value.code == "ERR_ACTOR_TIMER_CREATE", body
    for malformed in ({"period": 5}, []):
        with pytest.raises(ApiError) as refused:
            await runtime.create_timer("counter", "a", "t", malformed, b"", [], 0)
        assert (refused.value.status, refused.value.code) == (400, "ERR_MALFORMED_REQUEST"), malformed
    await runtime.aclose()


async def test_a_call_waits_for_an_unreachable_owner_to_be_replaced(
    app: ActorTestApp, channel: AppChannel, placement: TablePlacement
) -> None:
    runtime = await runtime_for(placement, channel, config(), retry_for=5.0)
    placement.owner["counter"] = f"127.0.0.1:{free_port()}"  # a sidecar that died: nothing listens
    call = asyncio.create_task(runtime.invoke("counter", "a", "echo", body=b"x"))
    await asyncio.sleep(0.3)
    assert not call.done()
    del placement.owner["counter"]  # its lease ended: the ring gives the actor to this sidecar
    answer = await call
    assert (answer.status, answer.body) == (200, b"x")
    await runtime.aclose()


async def test_a_call_to_an_owner_that_stays_unreachable_fails_in_time(
    app: ActorTestApp, channel: AppChannel, placement: TablePlacement
) -> None:
    runtime = await runtime_for(placement, channel, config(), retry_for=0.5)
    placement.owner["counter"] = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(ApiError) as failed:
        await runtime.invoke("counter", "a", "echo")
    assert failed.value.code == "ERR_ACTOR_INVOKE_METHOD" and "did not answer" in failed.value.message
    assert 0.3 <= time.monotonic() - started < 2
    await runtime.aclose()
