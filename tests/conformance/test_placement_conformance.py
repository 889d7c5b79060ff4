"""Every placement against the contract in mesh/placement/base.py.

Local placement (one sidecar alone) is checked for what applies to it; Redis and etcd each run the
multi-sidecar proofs against the session's real servers: three placements in this process, each
with its own connection, are three sidecars. A sidecar whose lease must lapse reaches its store
through a :class:`~tests.tcp_gate.TcpGate` the test freezes (a partition: its renewals hang, the
others go on). Leases here last 2 s (etcd's minimum) and members are re-read every 100 ms.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aetcd
import orjson
import pytest
from redis.asyncio import Redis

from mesh.errors import PlacementUnavailable
from mesh.etcd_registry import EtcdRegistrySettings
from mesh.placement.factory import build_placement
from mesh.placement.leased import LeasedPlacement
from mesh.placement.local import LocalPlacement
from mesh.placement.redis import LEASES
from mesh.redis_registry import RedisRegistrySettings
from mesh.resolver import StaticResolverSettings
from tests.tcp_gate import TcpGate

TTL = 2.0
SHARED = ["redis", "etcd"]


def _settings(backend: str, server: str, prefix: str) -> Any:
    common = {"ttl": f"{TTL}s", "cacheSeconds": "100ms"}
    if backend == "redis":
        return RedisRegistrySettings.model_validate({"redisHost": server, **common})
    return EtcdRegistrySettings.model_validate({"endpoints": server, "keyPrefix": prefix, **common})


class Sidecars:
    """Placements of one backend started by a test, each with its own connection (and gate)."""

    def __init__(self, backend: str, server: str) -> None:
        self.backend, self.server = backend, server
        self.prefix = f"/l8-conformance/{uuid.uuid4().hex[:8]}/"
        self.started: list[LeasedPlacement] = []
        self.gates: dict[str, TcpGate] = {}

    async def make(self, address: str, gate: bool = False) -> LeasedPlacement:
        """A started placement; through a gate of its own (``self.gates[address]``) when asked."""
        target = self.server
        if gate:
            self.gates[address] = await TcpGate(self.server).start()
            target = self.gates[address].address
        placement = build_placement(_settings(self.backend, target, self.prefix))
        assert isinstance(placement, LeasedPlacement)
        await placement.start("conformance", address)
        self.started.append(placement)
        return placement

    async def close(self) -> None:
        for gate in self.gates.values():
            gate.thaw()
        for placement in self.started:
            await placement.aclose()
        for gate in self.gates.values():
            await gate.close()


@pytest.fixture
async def sidecars(request: pytest.FixtureRequest) -> AsyncIterator[Sidecars]:
    backend: str = request.param
    found = Sidecars(backend, request.getfixturevalue(f"{backend}_server").address)
    yield found
    await found.close()


def _actor_type() -> str:
    return f"Conformance{uuid.uuid4().hex[:8]}"


async def _until(check: Callable[[], Awaitable[bool]], within: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def _members(placement: LeasedPlacement, actor_type: str) -> set[str]:
    await placement.lookup(actor_type, "any")  # the first lookup reads the type
    return set(placement.describe()["members"].get(actor_type, []))


# -- what every placement does ----------------------------------------------------------------------


def test_the_name_resolution_settings_choose_the_placement(redis_server: Any, etcd_server: Any) -> None:
    assert isinstance(build_placement(StaticResolverSettings()), LocalPlacement)
    assert build_placement(_settings("redis", redis_server.address, "/p/")).describe()["kind"] == "redis"
    assert build_placement(_settings("etcd", etcd_server.address, "/p/")).describe()["kind"] == "etcd"


async def test_local_placement_hosts_its_types_here_and_no_other() -> None:
    placement = LocalPlacement()
    changes: list[str] = []

    async def changed() -> None:
        changes.append("changed")

    placement.on_change(changed)
    await placement.start("app", "127.0.0.1:3500")
    assert await placement.lookup("Cart", "1") is None
    assert await placement.claim("Cart", "1") is False  # not hosted: nothing to activate
    await placement.host(frozenset({"Cart"}))
    assert changes == ["changed"]
    assert await placement.lookup("Cart", "1") == "127.0.0.1:3500"
    assert await placement.lookup("Order", "1") is None
    assert await placement.claim("Cart", "1") and await placement.claim("Cart", "1")
    assert placement.describe() == {
        "kind": "local",
        "server": None,
        "address": "127.0.0.1:3500",
        "status": "placement: connected",
        "hostedTypes": ["Cart"],
        "members": {"Cart": ["127.0.0.1:3500"]},
        "claims": 1,
    }
    await placement.release("Cart", "1")
    await placement.release("Cart", "never-claimed")
    assert placement.describe()["claims"] == 0
    await placement.host(frozenset({"Cart"}))
    assert changes == ["changed"]  # the same types: no change
    await placement.aclose()
    await placement.aclose()


# -- sidecars sharing a store -----------------------------------------------------------------------


@pytest.mark.parametrize("sidecars", SHARED, indirect=True)
async def test_three_hosts_agree_on_the_owner_of_every_id(sidecars: Sidecars) -> None:
    actor_type = _actor_type()
    hosts = [await sidecars.make(f"127.0.0.1:{3501 + n}") for n in range(3)]
    for placement in hosts:
        await placement.host(frozenset({actor_type}))
    caller = await sidecars.make("127.0.0.1:3600", gate=True)  # hosts nothing, only calls
    addresses = {placement.address for placement in hosts}
    for placement in [*hosts, caller]:
        await _until(lambda p=placement: _eq(_members(p, actor_type), addresses))

    owners = {}
    for n in range(1000):
        answers = {await placement.lookup(actor_type, f"id-{n}") for placement in [*hosts, caller]}
        assert len(answers) == 1, answers
        owners[n] = answers.pop()
    assert set(owners.values()) == addresses  # every host owns some
    described = hosts[0].describe()
    assert described["kind"] == sidecars.backend and described["server"] == sidecars.server
    assert described["hostedTypes"] == [actor_type] and described["address"] == "127.0.0.1:3501"
    assert described["members"][actor_type] == sorted(addresses)
    assert caller.describe()["hostedTypes"] == [] and caller.status() == "placement: connected"

    # Once read, a type is answered from memory: with its store frozen away, the caller still knows.
    gate = sidecars.gates[caller.address]
    gate.freeze()
    assert await asyncio.wait_for(caller.lookup(actor_type, "id-7"), 0.05) == owners[7]
    assert await hosts[0].lookup(_actor_type(), "x") is None  # a type nobody hosts
    gate.thaw()


async def _eq(found: Awaitable[set[str]], expected: set[str]) -> bool:
    return await found == expected


@pytest.mark.parametrize("sidecars", SHARED, indirect=True)
async def test_lookups_of_a_new_type_read_it_once_together(sidecars: Sidecars) -> None:
    actor_type = _actor_type()
    host = await sidecars.make("127.0.0.1:3571")
    await host.host(frozenset({actor_type}))
    caller = await sidecars.make("127.0.0.1:3572")
    reads: list[str] = []
    read_type = caller._read_type

    async def counted(actor_type: str) -> Any:
        reads.append(actor_type)
        return await read_type(actor_type)

    caller._read_type = counted  # type: ignore[method-assign]
    found = await asyncio.gather(*(caller.lookup(actor_type, f"id-{n}") for n in range(50)))
    assert set(found) == {"127.0.0.1:3571"}
    for n in range(1000):
        await caller.lookup(actor_type, f"id-{n}")
    assert reads == [actor_type]  # one read, shared by the lookups that came together; then memory


@pytest.mark.parametrize("sidecars", SHARED, indirect=True)
async def test_a_new_type_that_cannot_be_read_is_unavailable_not_unhosted(sidecars: Sidecars) -> None:
    actor_type = _actor_type()
    host = await sidecars.make("127.0.0.1:3575")
    await host.host(frozenset({actor_type}))
    caller = await sidecars.make("127.0.0.1:3576", gate=True)
    sidecars.gates[caller.address].freeze()
    with pytest.raises(PlacementUnavailable):
        await caller.lookup(actor_type, "cart-1")
    sidecars.gates[caller.address].thaw()
    assert await caller.lookup(actor_type, "cart-1") == "127.0.0.1:3575"


@pytest.mark.parametrize("sidecars", SHARED, indirect=True)
async def test_a_claim_is_held_by_one_host_until_released(sidecars: Sidecars) -> None:
    actor_type = _actor_type()
    a, b, c = [await sidecars.make(f"127.0.0.1:{3511 + n}") for n in range(3)]
    for placement in (a, b, c):
        await placement.host(frozenset({actor_type}))

    assert await a.claim(actor_type, "cart-1") is True
    assert await a.claim(actor_type, "cart-1") is True  # already held
    assert await b.claim(actor_type, "cart-1") is False
    assert await c.claim(actor_type, "cart-1") is False
    await b.release(actor_type, "cart-1")  # not b's: left alone
    assert await c.claim(actor_type, "cart-1") is False
    assert await b.claim(actor_type, "cart-2") is True  # another actor is free
    assert await b.claim(_actor_type(), "cart-3") is False  # a type b does not host

    await a.release(actor_type, "cart-1")
    assert await c.claim(actor_type, "cart-1") is True
    assert await a.claim(actor_type, "cart-1") is False

    await c.aclose()  # a graceful stop drops every claim at once
    assert await a.claim(actor_type, "cart-1") is True
    assert a.describe()["claims"] == 1 and a.describe()["status"] == "placement: connected"


@pytest.mark.parametrize("sidecars", SHARED, indirect=True)
async def test_a_host_whose_lease_lapses_fences_itself_before_another_can_claim(sidecars: Sidecars) -> None:
    loop = asyncio.get_running_loop()
    actor_type = _actor_type()
    a = await sidecars.make("127.0.0.1:3521", gate=True)
    b = await sidecars.make("127.0.0.1:3522")
    for placement in (a, b):
        await placement.host(frozenset({actor_type}))
    fenced: list[float] = []

    async def on_fenced() -> None:
        fenced.append(loop.time())

    a.on_fenced(on_fenced)
    assert await a.claim(actor_type, "cart-1")
    gate = sidecars.gates[a.address]
    frozen_at = loop.time()
    gate.freeze()  # a's renewals hang from now on; b still reaches the store

    claimed_at = None
    while claimed_at is None:
        assert loop.time() - frozen_at < 3 * TTL, "b never got the claim"
        if await b.claim(actor_type, "cart-1"):
            claimed_at = loop.time()
        else:
            await asyncio.sleep(0.01)

    assert len(fenced) == 1
    assert fenced[0] < claimed_at, (fenced[0] - frozen_at, claimed_at - frozen_at)
    assert fenced[0] - frozen_at < TTL  # before the lease could have ended in the store
    assert await a.claim(actor_type, "cart-2") is False  # fenced: no new activation
    assert a.describe()["status"] == "placement: disconnected" and a.describe()["fenced"]
    assert a.describe()["claims"] == 0

    gate.thaw()  # a gets a new lease and hosts again, with new claims only
    await _until(lambda: _is(a.describe()["status"] == "placement: connected"), 3 * TTL)
    assert await a.claim(actor_type, "cart-1") is False  # b holds it now
    assert await a.claim(actor_type, "cart-2") is True
    assert await b.claim(actor_type, "cart-2") is False


async def _is(value: bool) -> bool:
    return value


async def _end_lease_in_store(sidecars: Sidecars, placement: LeasedPlacement) -> None:
    """End a placement's lease behind its back, as a store that lost it would."""
    host, _, port = sidecars.server.rpartition(":")
    if sidecars.backend == "redis":
        direct = Redis(host=host, port=int(port))
        assert await direct.zrem(LEASES, placement._token)  # type: ignore[attr-defined]
        await direct.aclose()
    else:
        async with aetcd.Client(host=host, port=int(port)) as direct:
            await direct.revoke_lease(placement._lease.id)  # type: ignore[attr-defined]


@pytest.mark.parametrize("sidecars", SHARED, indirect=True)
async def test_a_lease_the_store_ended_fences_its_host_at_the_next_call(sidecars: Sidecars) -> None:
    actor_type = _actor_type()
    a, b = await sidecars.make("127.0.0.1:3551"), await sidecars.make("127.0.0.1:3552")
    for placement in (a, b):
        await placement.host(frozenset({actor_type}))
    fenced: list[str] = []

    async def on_fenced() -> None:
        fenced.append("fenced")

    a.on_fenced(on_fenced)
    assert await a.claim(actor_type, "cart-1")
    await _end_lease_in_store(sidecars, a)
    assert await b.claim(actor_type, "cart-1")  # a's claim ended with its lease
    assert await a.claim(actor_type, "cart-2") is False  # the store refuses: a fences itself
    await _until(lambda: _is(fenced == ["fenced"]), 1)
    # The next beat grants a new lease: a hosts again.
    await _until(lambda: _is(a.describe()["status"] == "placement: connected"), 2 * TTL)
    assert await a.claim(actor_type, "cart-2") is True
    assert await a.claim(actor_type, "cart-1") is False


@pytest.mark.parametrize("sidecars", SHARED, indirect=True)
async def test_a_host_of_many_types_joins_and_leaves_each(sidecars: Sidecars) -> None:
    types = [f"{_actor_type()}/{n}" for n in range(150)]  # past etcd's 128 operations per transaction
    a, caller = await sidecars.make("127.0.0.1:3561"), await sidecars.make("127.0.0.1:3562")
    await a.host(frozenset(types))
    assert {await caller.lookup(actor_type, "x") for actor_type in types} == {"127.0.0.1:3561"}
    await a.host(frozenset(types[:10]))
    await _until(lambda: _eq(_members(caller, types[10]), set()), 2)
    assert await caller.lookup(types[0], "x") == "127.0.0.1:3561"
    assert await a.claim(types[0], "a/b c") and not await a.claim(types[10], "x")


@pytest.mark.parametrize("sidecars", SHARED, indirect=True)
async def test_on_change_runs_when_a_host_joins_and_leaves(sidecars: Sidecars) -> None:
    actor_type = _actor_type()
    a = await sidecars.make("127.0.0.1:3531")
    await a.host(frozenset({actor_type}))
    changes: list[set[str]] = []

    async def changed() -> None:
        changes.append(set(a.describe()["members"][actor_type]))

    a.on_change(changed)
    b = await sidecars.make("127.0.0.1:3532")
    await b.host(frozenset({actor_type}))
    await _until(lambda: _is({"127.0.0.1:3531", "127.0.0.1:3532"} in changes), 2)
    assert await a.lookup(actor_type, "x") in {"127.0.0.1:3531", "127.0.0.1:3532"}

    await b.host(frozenset())  # b stops hosting: it leaves at once
    await _until(lambda: _is(changes[-1] == {"127.0.0.1:3531"}), 2)
    await b.host(frozenset({actor_type}))
    await _until(lambda: _is(changes[-1] == {"127.0.0.1:3531", "127.0.0.1:3532"}), 2)
    await b.aclose()
    await _until(lambda: _is(changes[-1] == {"127.0.0.1:3531"}), 2)
    assert {await a.lookup(actor_type, f"id-{n}") for n in range(50)} == {"127.0.0.1:3531"}


_DYING_HOST = """
import asyncio, sys
from mesh.placement.factory import build_placement
from mesh.name_resolution import parse_name_resolution
import orjson

async def main() -> None:
    placement = build_placement(parse_name_resolution(orjson.loads(sys.argv[1])))
    await placement.start("conformance", "127.0.0.1:3591")
    await placement.host(frozenset({sys.argv[2]}))
    assert await placement.claim(sys.argv[2], "cart-1")
    print("claimed", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


@pytest.mark.parametrize("sidecars", SHARED, indirect=True)
async def test_a_host_killed_without_a_word_gives_its_actors_away_when_its_lease_ends(
    sidecars: Sidecars,
) -> None:
    loop = asyncio.get_running_loop()
    actor_type = _actor_type()
    b = await sidecars.make("127.0.0.1:3592")
    await b.host(frozenset({actor_type}))
    left: list[float] = []

    async def changed() -> None:
        if "127.0.0.1:3591" not in b.describe()["members"].get(actor_type, []):
            left.append(loop.time())

    settings = {"type": sidecars.backend, "ttl": f"{TTL}s", "cacheSeconds": "100ms"}
    if sidecars.backend == "redis":
        settings["redisHost"] = sidecars.server
    else:
        settings |= {"endpoints": sidecars.server, "keyPrefix": sidecars.prefix}
    dying = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _DYING_HOST, orjson.dumps(settings).decode(), actor_type,
        stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(Path.cwd())},
    )  # fmt: skip
    try:
        assert dying.stdout is not None
        while (line := await asyncio.wait_for(dying.stdout.readline(), 20)) != b"claimed\n":
            assert line, "the host to be killed exited"  # (its log lines come first)
        await _until(lambda: _eq(_members(b, actor_type), {"127.0.0.1:3591", "127.0.0.1:3592"}))
        b.on_change(changed)
        assert await b.claim(actor_type, "cart-1") is False
        dying.kill()  # SIGKILL: no deregistration, no release
        killed_at = loop.time()
        while not await b.claim(actor_type, "cart-1"):
            assert loop.time() - killed_at < TTL + 2, "the dead host's claim outlived its lease"
            await asyncio.sleep(0.02)
        claimed_after = loop.time() - killed_at
    finally:
        if dying.returncode is None:
            dying.kill()
        await dying.wait()
    assert TTL / 3 < claimed_after < TTL + 2  # its last renewal at most a third of the ttl before
    await _until(lambda: _is(bool(left)), 2)  # and it left the table
    assert await b.lookup(actor_type, "cart-1") == "127.0.0.1:3592"


# -- the storm ---------------------------------------------------------------------------------------


@dataclass
class Activations:
    """Every activation of every actor: (start, end, host), as the actor runtime would run them."""

    spans: dict[str, list[tuple[float, float, str]]] = field(default_factory=dict)
    active: dict[tuple[str, str], float] = field(default_factory=dict)

    def start(self, host: str, actor_id: str, now: float) -> None:
        self.active[(host, actor_id)] = now

    def end(self, host: str, actor_id: str, now: float) -> bool:
        started = self.active.pop((host, actor_id), None)
        if started is None:
            return False  # ended already (fenced, or the host left)
        self.spans.setdefault(actor_id, []).append((started, now, host))
        return True

    def end_all(self, host: str, now: float) -> None:
        for who, actor_id in list(self.active):
            if who == host:
                self.end(host, actor_id, now)

    def overlaps(self) -> list[str]:
        found = []
        for actor_id, spans in self.spans.items():
            spans.sort()
            for (_, end, host), (start, _, other) in itertools.pairwise(spans):
                if start < end:
                    found.append(f"{actor_id}: {host} until {end:.3f}, {other} from {start:.3f}")
        return found


@pytest.mark.parametrize("sidecars", SHARED, indirect=True)
async def test_no_actor_has_two_holders_at_once_under_a_storm(sidecars: Sidecars) -> None:
    loop = asyncio.get_running_loop()
    rng = random.Random(17)
    actor_type, ids = _actor_type(), [f"id-{n}" for n in range(200)]
    hosts = [await sidecars.make(f"127.0.0.1:{3541 + n}", gate=True) for n in range(3)]
    record = Activations()
    leaving = {placement.address: False for placement in hosts}
    active_here: dict[str, set[str]] = {placement.address: set() for placement in hosts}
    claims = leaves = partitions = fences = 0

    for placement in hosts:

        async def fenced(host: str = placement.address) -> None:
            nonlocal fences
            fences += 1
            record.end_all(host, loop.time())

        placement.on_fenced(fenced)
        await placement.host(frozenset({actor_type}))

    async def worker(placement: LeasedPlacement, stop: float) -> None:
        """One of a host's callers: activates a random actor when this host does not run it yet (one
        activation per actor per host, as the actor runtime's table), and deactivates it soon."""
        nonlocal claims
        here = active_here[placement.address]
        while loop.time() < stop:
            actor_id = rng.choice(ids)
            if leaving[placement.address] or actor_id in here:
                await asyncio.sleep(0.005)
                continue
            here.add(actor_id)
            try:
                held = await placement.claim(actor_type, actor_id)
            except PlacementUnavailable:  # its store is away (a partition): try again
                held = False
            if held and not leaving[placement.address]:
                claims += 1
                record.start(placement.address, actor_id, loop.time())
                await asyncio.sleep(rng.uniform(0, 0.03))
                ended = record.end(placement.address, actor_id, loop.time())
                here.discard(actor_id)  # deactivated: it may be activated again while it is released
                if ended:  # not ended by a fence, whose claims are gone already
                    await placement.release(actor_type, actor_id)
                continue
            here.discard(actor_id)
            if held:
                await placement.release(actor_type, actor_id)
            await asyncio.sleep(0.001)

    async def chaos(stop: float) -> None:
        nonlocal leaves, partitions
        while loop.time() < stop - 1:
            await asyncio.sleep(rng.uniform(0.2, 0.6))
            n = rng.randrange(3)
            placement = hosts[n]
            gate = sidecars.gates[placement.address]
            if (leaves + partitions) % 2:  # leave (after deactivating its actors) and join again
                leaves += 1
                leaving[placement.address] = True
                record.end_all(placement.address, loop.time())
                await placement.host(frozenset())
                await asyncio.sleep(rng.uniform(0, 0.3))
                await placement.host(frozenset({actor_type}))
                leaving[placement.address] = False
            else:  # a partition, in turn past the fencing point (its lease lapses) and shorter
                partitions += 1
                gate.freeze()
                long = partitions % 2
                await asyncio.sleep(rng.uniform(0.8, 1.2) * TTL if long else rng.uniform(0.1, 0.5) * TTL)
                gate.thaw()

    stop = loop.time() + 8
    await asyncio.gather(chaos(stop), *(worker(p, stop) for p in hosts for _ in range(4)))
    assert claims > 200 and leaves >= 2 and partitions >= 2 and fences >= 1, (
        claims,
        leaves,
        partitions,
        fences,
    )
    assert record.overlaps() == []
