"""Three ``l8 run`` sidecars of one app id, each in front of its own actor app (tests/e2e/actor_app.py),
sharing a coordination server (Redis or etcd, through ``name_resolution``) and a Redis actor state
store: the pieces tests/e2e/test_actor_cluster.py starts, calls and kills."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.process import L8Launcher, L8Process, write_component
from tests.servers import LOOPBACK, free_port

ACTOR = "/v1.0/actors/Counter"


class ActorApp:
    """One actor app process (``python -m tests.e2e.actor_app``) in front of one sidecar."""

    def __init__(self, workdir: Path, name: str, sidecar_port: int, *, work_seconds: float = 0.002) -> None:
        self.name = name
        self.port = free_port()
        self.log = workdir / f"{name}.log"
        command = [sys.executable, "-m", "tests.e2e.actor_app", "--port", str(self.port)]
        command += ["--sidecar-port", str(sidecar_port), "--name", name, "--work-seconds", str(work_seconds)]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=Path(__file__).parents[2],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"{self.name} exited:\n{self.log.read_text()}"
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"{self.name} did not start:\n{self.log.read_text()}")

    async def records(self, client: httpx.AsyncClient) -> dict[str, Any]:
        answer = await client.get(f"{self.url}/records", timeout=60)
        assert answer.status_code == 200, answer.text
        records: dict[str, Any] = answer.json()
        return records

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Cluster:
    sidecars: list[L8Process]
    apps: list[ActorApp]
    alive: list[bool] = field(default_factory=list)
    dropped: int = 0
    """Reads whose connection was dropped before an answer (sent again)."""

    def __post_init__(self) -> None:
        self.alive = [True] * len(self.sidecars)

    def living(self) -> list[L8Process]:
        return [sidecar for sidecar, alive in zip(self.sidecars, self.alive, strict=True) if alive]

    def kill(self, index: int) -> None:
        self.sidecars[index].kill()
        self.alive[index] = False

    async def call(self, client: httpx.AsyncClient, via: int, actor_id: str, method: str) -> httpx.Response:
        return await client.put(f"{self.sidecars[via].url}{ACTOR}/{actor_id}/method/{method}", content=b"")

    async def read(self, client: httpx.AsyncClient, via: int, actor_id: str) -> httpx.Response:
        """``get`` (a read, so safe to send again): a connection the loaded sidecar dropped is
        counted in :attr:`dropped` and the call sent again."""
        for attempt in range(3):
            try:
                return await self.call(client, via, actor_id, "get")
            except httpx.TransportError:
                self.dropped += 1
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def records(self, client: httpx.AsyncClient) -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(app.records(client) for app in self.apps)))

    def stop_apps(self) -> None:
        for app in self.apps:
            app.stop()


def coordination_config(tmp_path: Path, kind: str, server: str, ttl: float) -> Path:
    """``name_resolution`` on the shared server: placement and the scheduler use it too."""
    if kind == "redis":
        where = f"redisHost: {server}"
    else:
        where = f"endpoints: [{server}]\n  keyPrefix: /actors-{uuid.uuid4().hex[:8]}/"
    path = tmp_path / f"cluster-{kind}.yaml"
    path.write_text(f"name_resolution:\n  type: {kind}\n  {where}\n  ttl: {ttl}s\n  cacheSeconds: 0.1\n")
    return path


def actor_state_store(tmp_path: Path, redis_address: str) -> Path:
    folder = tmp_path / "resources"
    write_component(
        folder, "actorstore", "state.redis", {"redisHost": redis_address, "actorStateStore": "true"}
    )
    return folder


async def start_cluster(
    l8: L8Launcher, tmp_path: Path, *, size: int, config: Path, resources: Path
) -> Cluster:
    """``size`` apps and their sidecars (one fresh app id), started together."""
    app_id = f"counters-{uuid.uuid4().hex[:8]}"
    args = ["--config", str(config)]
    sidecars = [l8.create(app_id=app_id, resources=[resources], args=list(args)) for _ in range(size)]
    apps = [ActorApp(tmp_path, f"app-{index}", sidecar.port) for index, sidecar in enumerate(sidecars)]
    cluster = Cluster(sidecars, apps)
    try:
        for app, sidecar in zip(apps, sidecars, strict=True):
            await asyncio.to_thread(app.wait_ready)
            sidecar.args += ["--app-port", str(app.port)]
        await asyncio.gather(*(asyncio.to_thread(sidecar.start) for sidecar in sidecars))
    except BaseException:
        cluster.stop_apps()
        raise
    return cluster


async def wait_until_joined(cluster: Cluster, client: httpx.AsyncClient, within: float = 30.0) -> None:
    """Wait until every living sidecar's placement lists every living sidecar as a host of the
    actor type (l8's ``placement`` in ``GET /v1.0/metadata``), so no actor is activated on a table
    that is still filling (it would then move, and its move is not what the test is about)."""
    expected = len(cluster.living())
    deadline = time.monotonic() + within
    seen: Any = None
    while time.monotonic() < deadline:
        answers = [await client.get(f"{sidecar.url}/v1.0/metadata") for sidecar in cluster.living()]
        seen = [
            answer.json().get("placement", {}).get("members", {}).get("Counter", []) for answer in answers
        ]
        if all(len(hosts) == expected for hosts in seen):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"the sidecars did not all see each other in {within:g} s: {seen}")


async def wait_until_agreed(
    cluster: Cluster, client: httpx.AsyncClient, probes: list[str], within: float = 30.0
) -> dict[str, str]:
    """Wait until every living sidecar routes each probe actor to the same app (the table has
    converged everywhere); the owner app per probe."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        owners: dict[str, set[str]] = {probe: set() for probe in probes}
        failed = False
        for index, alive in enumerate(cluster.alive):
            if not alive:
                continue
            for probe in probes:
                answer = await cluster.read(client, index, probe)
                if answer.status_code != 200:
                    failed, last = True, (index, probe, answer.status_code, answer.text)
                    break
                owners[probe].add(answer.json()["host"])
            if failed:
                break
        if not failed and all(len(hosts) == 1 for hosts in owners.values()):
            return {probe: hosts.pop() for probe, hosts in owners.items()}
        last = last if failed else owners
        await asyncio.sleep(0.2)
    raise AssertionError(f"the sidecars did not agree on the actors' owners in {within:g} s: {last}")


def overlapping_turns(records: list[dict[str, Any]]) -> list[tuple[str, Any, Any]]:
    """Pairs of turns of one actor (on any app) whose [start, end] intervals intersect."""
    turns: dict[str, list[tuple[float, float, str]]] = {}
    for record in records:
        for actor_id, start, end in record["turns"]:
            turns.setdefault(actor_id, []).append((start, end, record["name"]))
    overlaps = []
    for actor_id, intervals in turns.items():
        intervals.sort()
        latest_end = intervals[0]
        for interval in intervals[1:]:
            if interval[0] < latest_end[1]:
                overlaps.append((actor_id, latest_end, interval))
            if interval[1] > latest_end[1]:
                latest_end = interval
    return overlaps
