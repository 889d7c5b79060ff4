"""The soak (``make soak``): l8 with state.redis and pubsub.redis and a subscriber app, under a mixed
load of saves, gets and publishes for ``--seconds`` (default 240), while Redis is killed and
restarted, then frozen (SIGSTOP) for a few seconds, l8 is killed with SIGKILL and restarted, and the
bad inputs of bench/soak_probes.py are sent. l8 runs with ``ulimit -n 1024`` and an API token.

At the end every acknowledged save must read back and every acknowledged publish must have been
delivered (more than once is allowed: delivery is at least once). The figures (requests and answers
by phase, the RSS curve, published vs delivered, saves read back, each bad input's answer) are
written into docs/reliability.md between the soak markers. Never part of the test run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson
from harness import ROOT, Process, Processes, free_port, rss_mb, sigterm_as_exit, wait_port, wait_ready
from soak_probes import Probes
from soak_report import render, write_report

HERE = Path(__file__).resolve().parent
TOKEN = "soak-token"
OPEN_FILES = 1024
IDLE_TIMEOUT = 5.0
MAX_IN_FLIGHT = 256
DRAIN_SECONDS = 45.0
FREEZE_SECONDS = 5.0
REDIS_DOWN_SECONDS = 3.0


def component(name: str, kind: str, metadata: dict[str, str]) -> str:
    lines = ["apiVersion: dapr.io/v1alpha1", "kind: Component", f"metadata: {{name: {name}}}", "spec:"]
    lines += [f"  type: {kind}", "  version: v1", "  metadata:"]
    lines += [f"  - {{name: {key}, value: '{value}'}}" for key, value in metadata.items()]
    return "\n".join(lines) + "\n"


class Soak:
    def __init__(self, arguments: argparse.Namespace, workdir: Path, processes: Processes) -> None:
        self.args = arguments
        self.workdir = workdir
        self.processes = processes
        self.redis_port = free_port()
        self.l8_port = free_port()
        self.base = f"http://127.0.0.1:{self.l8_port}"
        self.phase = "steady"
        self.answers: Counter[tuple[str, str, str]] = Counter()  # (phase, operation, answer)
        self.saved: dict[str, int] = {}
        self.saved_keys: list[str] = []
        self.unsaved: dict[str, int] = {}  # saves answered with a failure: were they written?
        self.published: set[int] = set()
        self.unpublished: set[int] = set()
        self.wrong_reads = 0
        self.rss: list[tuple[float, str, float]] = []
        self.events: list[tuple[float, str]] = []
        self.started = 0.0
        self.redis: Process | None = None
        self.l8: Process | None = None

    def log(self, message: str) -> None:
        elapsed = time.monotonic() - self.started if self.started else 0.0
        self.events.append((round(elapsed, 1), message))
        print(f"[{elapsed:6.1f} s] {message}", file=sys.stderr, flush=True)

    # -- processes -----------------------------------------------------------------------------------

    def start_redis(self) -> None:
        command = ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.workdir)]  # fmt: skip
        self.redis = self.processes.start("redis", command)
        wait_port(self.redis, self.redis_port)

    def start_subscriber(self) -> int:
        port = free_port()
        command = [sys.executable, str(HERE / "soak_subscriber.py"), "--port", str(port)]
        subscriber = self.processes.start("subscriber", command)
        wait_ready(subscriber, f"http://127.0.0.1:{port}/dapr/subscribe", ready=(200,))
        return port

    def write_resources(self) -> Path:
        resources = self.workdir / "resources"
        resources.mkdir(exist_ok=True)
        redis = {"redisHost": f"127.0.0.1:{self.redis_port}"}
        (resources / "state.yaml").write_text(component("statestore", "state.redis", redis))
        pubsub = {**redis, "processingTimeout": "10s", "redeliverInterval": "2s"}
        (resources / "pubsub.yaml").write_text(component("pubsub", "pubsub.redis", pubsub))
        return resources

    def start_l8(self, app_port: int, resources: Path) -> None:
        l8 = str(Path(sys.executable).parent / "l8")
        lower = (
            "import os, resource, sys; "
            f"resource.setrlimit(resource.RLIMIT_NOFILE, ({OPEN_FILES}, {OPEN_FILES})); "
            "os.execv(sys.argv[1], sys.argv[1:])"
        )
        command = [sys.executable, "-c", lower, l8, "run", "--port", str(self.l8_port), "--app-id", "soak",
                   "--app-port", str(app_port), "--resources-path", str(resources), "--log-level", "warning",
                   "--idle-timeout", str(IDLE_TIMEOUT), "--data-dir", str(self.workdir / "data")]  # fmt: skip
        env = {**os.environ, "DAPR_API_TOKEN": TOKEN}
        self.l8 = self.processes.start("l8", command, cwd=self.workdir, env=env)
        wait_ready(self.l8, f"{self.base}/v1.0/healthz")

    def l8_rss(self) -> float:
        try:
            return rss_mb(self.l8.pid) if self.l8 is not None else 0.0
        except (OSError, RuntimeError):
            return 0.0

    # -- load ----------------------------------------------------------------------------------------

    async def one(self, client: httpx.AsyncClient, operation: str, number: int) -> None:
        phase = self.phase
        key = f"soak-{number}"
        try:
            if operation == "save":
                response = await client.post(
                    "/v1.0/state/statestore", json=[{"key": key, "value": {"n": number}}]
                )
                if response.status_code == 204:
                    self.saved[key] = number
                    self.saved_keys.append(key)
                else:
                    self.unsaved[key] = number
            elif operation == "get":
                known = None
                if self.saved_keys:
                    key = random.choice(self.saved_keys)
                    known = self.saved[key]
                response = await client.get(f"/v1.0/state/statestore/{key}")
                if known is not None and response.status_code == 200 and response.json() != {"n": known}:
                    self.wrong_reads += 1
            else:
                response = await client.post("/v1.0/publish/pubsub/soak", json={"n": number})
                (self.published if response.status_code == 204 else self.unpublished).add(number)
            answer = str(response.status_code)
        except httpx.HTTPError as exc:
            answer = type(exc).__name__
            if operation == "save":
                self.unsaved[key] = number
            elif operation == "publish":
                self.unpublished.add(number)
        self.answers[(phase, operation, answer)] += 1

    async def load(self, client: httpx.AsyncClient, until: asyncio.Event) -> None:
        operations = itertools.cycle(("save", "get", "publish", "save", "get"))
        numbers = itertools.count()
        in_flight: set[asyncio.Task[None]] = set()
        interval = 1 / self.args.rate
        next_at = time.monotonic()
        while not until.is_set():
            if len(in_flight) < MAX_IN_FLIGHT:
                task = asyncio.create_task(self.one(client, next(operations), next(numbers)))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            else:
                self.answers[(self.phase, "any", "not sent: client at its limit")] += 1
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        if in_flight:
            await asyncio.wait(in_flight)

    async def sample_rss(self, until: asyncio.Event) -> None:
        while not until.is_set():
            self.rss.append((round(time.monotonic() - self.started, 1), self.phase, self.l8_rss()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(until.wait(), 1.0)

    # -- faults --------------------------------------------------------------------------------------

    async def faults(self, app_port: int, resources: Path) -> list[Any]:
        seconds = self.args.seconds
        await self.at(0.15 * seconds)
        assert self.redis is not None and self.l8 is not None
        self.phase = "redis killed"
        self.log("redis: SIGKILL")
        self.redis.popen.send_signal(signal.SIGKILL)
        self.redis.popen.wait()
        await asyncio.sleep(REDIS_DOWN_SECONDS)
        await asyncio.to_thread(self.start_redis)
        self.log("redis: restarted")
        self.phase = "steady"
        await self.at(0.30 * seconds)
        self.phase = "redis frozen"
        self.log(f"redis: SIGSTOP for {FREEZE_SECONDS:g} s")
        self.redis.popen.send_signal(signal.SIGSTOP)
        await asyncio.sleep(FREEZE_SECONDS)
        self.redis.popen.send_signal(signal.SIGCONT)
        self.log("redis: SIGCONT")
        await asyncio.sleep(FREEZE_SECONDS)  # answers to requests sent while frozen still arrive
        self.phase = "steady"
        await self.at(0.45 * seconds)
        self.phase = "l8 killed"
        self.log("l8: SIGKILL")
        self.l8.popen.send_signal(signal.SIGKILL)
        self.l8.popen.wait()
        await asyncio.to_thread(self.start_l8, app_port, resources)
        self.log("l8: restarted")
        self.phase = "steady"
        await self.at(0.55 * seconds)
        self.phase = "bad inputs"
        self.log("bad inputs")
        rows = await Probes(self.base, TOKEN, self.l8_rss, IDLE_TIMEOUT).run_all()
        self.phase = "steady"
        self.log("bad inputs done")
        return rows

    async def at(self, offset: float) -> None:
        await asyncio.sleep(max(0.0, self.started + offset - time.monotonic()))

    # -- checks --------------------------------------------------------------------------------------

    async def delivered(self, client: httpx.AsyncClient, subscriber: str) -> dict[str, Any]:
        """Waits until every acknowledged publish has arrived, or DRAIN_SECONDS."""
        deadline = time.monotonic() + DRAIN_SECONDS
        while True:
            stats: dict[str, Any] = (await client.get(f"{subscriber}/stats")).json()
            if self.published <= set(stats["numbers"]) or time.monotonic() > deadline:
                return stats
            await asyncio.sleep(1)

    async def read_back(self, client: httpx.AsyncClient, keys: dict[str, int]) -> Counter[str]:
        found: Counter[str] = Counter()
        items = list(keys.items())
        for start in range(0, len(items), 200):
            batch = dict(items[start : start + 200])
            response = await client.post("/v1.0/state/statestore/bulk", json={"keys": list(batch)})
            response.raise_for_status()
            for item in response.json():
                data = item.get("data")
                found[
                    "missing" if data is None else "equal" if data == {"n": batch[item["key"]]} else "wrong"
                ] += 1
        return found

    async def run(self) -> dict[str, Any]:
        self.start_redis()
        app_port = self.start_subscriber()
        resources = self.write_resources()
        self.start_l8(app_port, resources)
        subscriber = f"http://127.0.0.1:{app_port}"
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        headers = {"dapr-api-token": TOKEN}
        async with httpx.AsyncClient(
            base_url=self.base, headers=headers, timeout=30, limits=limits
        ) as client:
            self.started = time.monotonic()
            self.log(f"load: {self.args.rate:g} req/s for {self.args.seconds:g} s")
            stop = asyncio.Event()
            load = asyncio.create_task(self.load(client, stop))
            sampler = asyncio.create_task(self.sample_rss(stop))
            probes = await self.faults(app_port, resources)
            await self.at(self.args.seconds)
            stop.set()
            await load
            await sampler
            self.log("load stopped; waiting for deliveries")
            stats = await self.delivered(client, subscriber)
            read = await self.read_back(client, self.saved)
            unsaved = await self.read_back(client, self.unsaved)
            self.log("checks done")
        return {
            "seconds": self.args.seconds,
            "rate": self.args.rate,
            "answers": [[*key, count] for key, count in sorted(self.answers.items())],
            "rss": self.rss,
            "events": self.events,
            "saves": {"acknowledged": len(self.saved), **read, "wrong_reads_during_load": self.wrong_reads},
            "failed_saves": {"answered_failure": len(self.unsaved), "written_anyway": unsaved["equal"]},
            "publishes": {
                "acknowledged": len(self.published),
                "answered_failure": len(self.unpublished),
                "delivered": len(stats["numbers"]),
                "lost": len(self.published - set(stats["numbers"])),
                "delivered_without_ack": len(set(stats["numbers"]) - self.published),
                "deliveries": stats["deliveries"],
                "repeated_ids": stats["repeated_ids"],
            },
            "probes": [vars(row) for row in probes],
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=240.0, help="length of the load, default 240")
    parser.add_argument("--rate", type=float, default=300.0, help="requests a second, default 300")
    parser.add_argument("--no-doc", action="store_true", help="print the figures, leave the doc alone")
    parser.add_argument("--note", default="", help="a paragraph to print with the figures")
    arguments = parser.parse_args()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    with sigterm_as_exit(), tempfile.TemporaryDirectory(prefix="l8-soak-") as folder:
        workdir = Path(folder)
        with Processes(workdir) as processes:
            results = asyncio.run(Soak(arguments, workdir, processes).run())
    results.update(started=stamp, commit=commit.stdout.strip(), note=arguments.note)
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / f"{stamp}-soak.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    text = render(results)
    print(text)
    if not arguments.no_doc:
        write_report(text)
    return 0 if results["saves"].get("missing", 0) == 0 and results["publishes"]["lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
