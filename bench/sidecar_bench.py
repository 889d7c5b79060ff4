"""The base of the benchmarks that put HTTP load on l8 sidecars with the harness's load tools: the
run's arguments, folder, processes and load tools, a sidecar started on the server core with its
components, the two measurements of a case (maximum throughput, latency at the fixed rate) and
the rounds that repeat them."""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness import (
    HERE,
    LOAD_CORE,
    SERVER_CORE,
    BenchError,
    LoadTools,
    Process,
    Processes,
    cpu_meter,
    fixed_rate,
    free_port,
    log,
    max_throughput,
    pinned,
    wait_port,
    wait_quiet,
    wait_ready,
)

L8 = Path(sys.executable).with_name("l8")


class SidecarBench:
    def __init__(self, arguments: argparse.Namespace, workdir: Path, processes: Processes) -> None:
        self.args = arguments
        self.workdir = workdir
        self.processes = processes
        self.load = LoadTools(workdir, arguments.connections)
        self.results: dict[str, Any] = {}

    def log(self, message: str) -> None:
        log(message)

    def start_app(self, script: str) -> int:
        """The app ``bench/<script>`` on the load core; its port once it listens."""
        port = free_port()
        command = [sys.executable, str(HERE / script), "--port", str(port)]
        wait_port(self.processes.start("app", pinned(LOAD_CORE, command)), port)
        return port

    def start_l8(
        self, *args: str, name: str = "l8", app_id: str | None = "bench", components: str | None = None
    ) -> tuple[Process, str]:
        """``l8 run`` on the server core (warnings only, its data under the run's folder, the
        ``components`` YAML as its resources, ``args`` last), once its health route answers: the
        process and its base URL."""
        port = free_port()
        command = [str(L8), "run", "--port", str(port), "--log-level", "warning",
                   "--data-dir", str(self.workdir / f"data-{name}")]  # fmt: skip
        if app_id is not None:
            command += ["--app-id", app_id]
        if components is not None:
            resources = self.workdir / f"resources-{name}"
            resources.mkdir()
            (resources / "components.yaml").write_text(components)
            command += ["--resources-path", str(resources)]
        process = self.processes.start(name, pinned(SERVER_CORE, [*command, *args]), cwd=self.workdir)
        base = f"http://127.0.0.1:{port}"
        wait_ready(process, f"{base}/v1.0/healthz")
        return process, base

    def throughput(
        self, base: str, pid: int, name: str, path: str, method: str = "GET", body: str = ""
    ) -> dict[str, Any]:
        """wrk's maximum throughput on ``base + path`` (harness.max_throughput)."""
        return max_throughput(
            self.load, base + path, pid, name, self.args.warmup, self.args.seconds, method=method, body=body
        )

    def paced(
        self, base: str, pid: int, name: str, path: str, method: str = "GET", body: str = ""
    ) -> dict[str, Any]:
        """Latency on ``base + path`` at the fixed rate (harness.fixed_rate)."""
        return fixed_rate(
            self.load, base + path, pid, name, self.args.rate, self.args.seconds, self.args.warmup,
            method=method, body=body,
        )  # fmt: skip

    def measure_cases(
        self, base: str, pid: int, throughput: Sequence[Sequence[str]], latency: Sequence[Sequence[str]]
    ) -> None:
        """The results' ``throughput_rounds`` and ``latency_rounds``: each case (``name, path[,
        method[, body]]``) of ``throughput`` at wrk's maximum, then each of ``latency`` at the fixed
        rate, ``--rounds`` times; a round is a dict by case name."""
        self.results["throughput_rounds"] = self.rounds(
            "maximum throughput (wrk)",
            lambda: {case[0]: self.throughput(base, pid, *case) for case in throughput},
        )
        self.results["latency_rounds"] = self.rounds(
            f"latency at {self.args.rate:g} rps",
            lambda: {case[0]: self.paced(base, pid, *case) for case in latency},
        )

    def paced_through(
        self, name: str, url: str, pids: Sequence[int], method: str, body: str
    ) -> dict[str, Any]:
        """Latency on ``url`` at the fixed rate after a second at that rate (connections warmed,
        pools filled, actors activated), with the CPU of each process of ``pids`` (``vcpu``, one
        reading each: a call through several sidecars); an error or a status other than 200 fails."""
        quiet = wait_quiet()
        self.load.paced(url, self.args.rate, 1.0, 0.0, method=method, body=body)
        with contextlib.ExitStack() as stack:
            readings = [stack.enter_context(cpu_meter(pid)) for pid in pids]
            args = self.args
            result = self.load.paced(url, args.rate, args.seconds, args.warmup, method=method, body=body)
        result["vcpu"] = [reading["vcpu"] for reading in readings]
        result["machine_busy_before"] = quiet
        if result["errors"] or set(result["statuses"]) != {"200"}:
            raise BenchError(f"{name}: errors at a fixed rate: {result}")
        self.log(
            f"  {name}: p50 {result['p50_ms']} p90 {result['p90_ms']} p99 {result['p99_ms']} ms, "
            f"vCPU {result['vcpu']}"
        )
        return result

    def rounds(self, what: str, measure: Callable[[], dict[str, Any]]) -> list[dict[str, Any]]:
        """``measure()`` once a round, ``--rounds`` times, said in the log as ``what``."""
        self.log(what)
        found = []
        for index in range(self.args.rounds):
            self.log(f" round {index + 1}/{self.args.rounds}")
            found.append(measure())
        return found


def case_medians(
    results: dict[str, Any], throughput: Sequence[Sequence[str]], latency: Sequence[Sequence[str]], noop: str
) -> dict[str, Any]:
    """The medians over the rounds :meth:`SidecarBench.measure_cases` recorded: ``rps`` (the median
    and every round's rate) and ``ratio`` (to the ``noop`` case's median) of each case of
    ``throughput``; ``latency`` (p50, p90, p99 and the sidecar's ``vcpu``) of each case of ``latency``."""
    summary: dict[str, Any] = {"rps": {}, "latency": {}}
    for name, *_ in throughput:
        rates = sorted(r[name]["rps"] for r in results["throughput_rounds"])
        summary["rps"][name] = {"median": statistics.median(rates), "all": rates}
    floor = summary["rps"][noop]["median"]
    summary["ratio"] = {name: round(summary["rps"][name]["median"] / floor, 3) for name, *_ in throughput}
    rows = results["latency_rounds"]
    for name, *_ in latency:
        summary["latency"][name] = {
            q: round(statistics.median(r[name][q] for r in rows), 3) for q in ("p50_ms", "p90_ms", "p99_ms")
        }
        summary["latency"][name]["vcpu"] = round(statistics.median(r[name]["server_vcpu"] for r in rows), 3)
    return summary
