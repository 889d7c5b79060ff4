"""What the wasm engine's lower GIL switch interval costs the rest of the sidecar: the plain state
GET's throughput and CPU per request on two sidecars in one run, both with function 2 (which runs
on the loop), one also with function 1 (which invokes a service, so it runs on worker threads and
lowers the switch interval once called). Printed, not written into docs/performance.md.

    python bench/switch_interval_ab.py [--rounds 3] [--seconds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import urllib.request
from typing import Any

import yaml
from harness import (
    BenchError,
    ensure_tools,
    max_throughput,
    run_measured,
    start_redis,
)
from wasm_functions_bench import COMPONENTS, STATE, WasmBench, build


class Sidecars(WasmBench):
    def start_with(self, label: str, redis_port: int, names: list[tuple[str, str]]) -> tuple[Any, str]:
        functions = []
        for name, function_id in names:
            path = self.workdir / f"{label}-{name}.wasm"
            path.write_bytes(build("wat", name).read_bytes())
            functions.append({"name": function_id, "path": str(path), "instanceNum": 16})
        settings = self.workdir / f"{label}-settings.yaml"
        settings.write_text(yaml.safe_dump({"wasm": {"functions": functions}}))
        return self.start_l8(
            "--config", str(settings), name=label, app_id=label, components=COMPONENTS.format(port=redis_port)
        )

    def compare(self) -> dict[str, Any]:
        redis = start_redis(self.processes, self.workdir)
        sidecars = {
            "default interval (function 2 on the loop)": self.start_with(
                "plain", redis, [("function_2", "id_2")]
            ),
            "0.2 ms interval (function 1 ran on a thread)": self.start_with(
                "lowered", redis, [("function_2", "id_2"), ("function_1", "id_1")]
            ),
        }
        for _process, base in sidecars.values():
            self.check_state(base)
        _process, lowered = sidecars["0.2 ms interval (function 1 ran on a thread)"]
        with urllib.request.urlopen(f"{lowered}/v1.0-alpha1/wasm/id_1?name=book1") as answer:
            if b"100" not in answer.read():
                raise BenchError("function 1 did not answer through function 2")
        rows: dict[str, dict[str, list[float]]] = {}
        for index in range(self.args.rounds):
            self.log(f"round {index + 1}/{self.args.rounds}")
            for label, (process, base) in sidecars.items():
                result = max_throughput(
                    self.load,
                    base + STATE[1],
                    process.pid,
                    f"{label} state GET",
                    self.args.warmup,
                    self.args.seconds,
                )
                cell = rows.setdefault(label, {})
                cell.setdefault("rps", []).append(result["rps"])
                cell.setdefault("cpu_us", []).append(result["server_vcpu"] / result["rps"] * 1e6)
        return {name: {k: statistics.median(v) for k, v in cell.items()} for name, cell in rows.items()}

    def check_state(self, base: str) -> None:
        save = urllib.request.Request(
            f"{base}/v1.0/state/state_demo", data=b'[{"key":"book1","value":100}]', method="POST"
        )
        with urllib.request.urlopen(save) as answer:
            answer.read()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=1000.0)
    arguments = parser.parse_args()
    ensure_tools()
    results = run_measured("switch_interval_ab", lambda tmp, procs: Sidecars(arguments, tmp, procs).compare())
    if results is None:
        return 1
    for name, cell in results.items():
        print(f"state GET, {name:48s} " + "  ".join(f"{k} {v:,.1f}" for k, v in cell.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
