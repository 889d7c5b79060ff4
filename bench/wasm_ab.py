"""A/B of two l8 source trees on the wasm functions benchmark's cases, in one run: both sidecars
(each with the echo function and function 2 on one Redis) on the same core, measured in turn
round after round, so the shared machine's noise falls on both alike. For judging a change to
wasm/ before it lands; its figures are not written into docs/performance.md.

    python bench/wasm_ab.py --a /path/to/old/tree --b . [--rounds 3] [--seconds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from harness import (
    BenchError,
    ensure_tools,
    fixed_rate,
    max_throughput,
    missing_requirements,
    run_measured,
    start_redis,
)
from wasm_functions_bench import ECHO, FUNCTION_STATE, NOOP, STATE, WasmBench


class Sidecars(WasmBench):
    def start_tree(self, tree: Path, redis_port: int, label: str) -> tuple[Any, str]:
        saved = self.workdir
        self.workdir = saved / label
        self.workdir.mkdir()
        previous = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = str(tree.resolve())
        try:
            return self.start_sidecar(redis_port)
        finally:
            os.environ["PYTHONPATH"] = previous or ""
            self.workdir = saved

    def compare(self, trees: dict[str, Path]) -> dict[str, Any]:
        redis = start_redis(self.processes, self.workdir)
        sidecars = {label: self.start_tree(tree, redis, label) for label, tree in trees.items()}
        for _process, base in sidecars.values():
            self.check(base)
        rows: dict[str, dict[str, list[float]]] = {}
        for index in range(self.args.rounds):
            self.log(f"round {index + 1}/{self.args.rounds}")
            for label, (process, base) in sidecars.items():
                for case in (ECHO, STATE, FUNCTION_STATE):
                    result = max_throughput(
                        self.load, base + case[1], process.pid, f"{label} {case[0]}",
                        self.args.warmup, self.args.seconds, method=case[2], body=case[3],
                    )  # fmt: skip
                    cell = rows.setdefault(f"{label} {case[0]}", {})
                    cell.setdefault("rps", []).append(result["rps"])
                    cell.setdefault("cpu_us", []).append(result["server_vcpu"] / result["rps"] * 1e6)
                for case in (NOOP, ECHO, FUNCTION_STATE):
                    result = fixed_rate(
                        self.load, base + case[1], process.pid, f"{label} {case[0]}", self.args.rate,
                        self.args.seconds, self.args.warmup, method=case[2], body=case[3],
                    )  # fmt: skip
                    cell = rows.setdefault(f"{label} {case[0]} @rate", {})
                    cell.setdefault("p90_ms", []).append(result["p90_ms"])
                    cell.setdefault("cpu_us", []).append(result["server_vcpu"] / self.args.rate * 1e6)
        return {name: {k: statistics.median(v) for k, v in cell.items()} for name, cell in rows.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", type=Path, required=True)
    parser.add_argument("--b", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    ensure_tools()
    missing = missing_requirements("wasm_ab", ("taskset", "wrk", "redis-server"))
    if missing is not None:
        return missing
    trees = {"A": arguments.a, "B": arguments.b}
    results = run_measured("wasm_ab", lambda tmp, procs: Sidecars(arguments, tmp, procs).compare(trees))
    if results is None:
        return 1
    print(f"A = {arguments.a}, B = {arguments.b}, {time.strftime('%Y-%m-%d %H:%M')}")
    for name, cell in results.items():
        print(f"{name:55s} " + "  ".join(f"{k} {v:,.3f}" for k, v in cell.items()))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)
