"""What every request's context costs (issue 16's logs: the trace id and request id bound to the
log context, a new trace for a request without a ``traceparent``, the live log-level lookup) and
what an actuator readiness probe costs, measured in-process: the ASGI app called directly, no
sockets, CPU time per request, the best of several rounds.

    python bench/request_context_bench.py                          # this tree
    python bench/request_context_bench.py --baseline /work/main     # against another l8 tree,
                                                                   # the two alternating in one run

Each tree runs in a subprocess of its own (PYTHONPATH set to it), rounds alternating between them
so a busy machine weighs on both alike. Prints a table; writes nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
CASES = (
    ("GET /v1.0/healthz", "/v1.0/healthz", ()),
    ("GET /v1.0/healthz with traceparent", "/v1.0/healthz", ((b"traceparent", TRACEPARENT),)),
    ("GET state (in-memory)", "/v1.0/state/memstore/k", ()),
    ("GET state (in-memory) with traceparent", "/v1.0/state/memstore/k", ((b"traceparent", TRACEPARENT),)),
    ("GET /actuator/health/readiness (cached)", "/actuator/health/readiness", ()),
)


async def measure(requests: int) -> dict[str, float]:
    """CPU microseconds per request of each case, in this process (the tree on PYTHONPATH)."""
    from app.factory import create_app
    from app.settings import Settings

    folder = Path(tempfile.mkdtemp(prefix="l8-context-bench-"))
    (folder / "memstore.yaml").write_text(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: memstore}\n"
        "spec: {type: state.in-memory, version: v1, metadata: []}\n",
        encoding="utf-8",
    )
    app = create_app(Settings.load({"data_dir": str(folder / "data"), "resources_paths": [folder]}))
    found: dict[str, float] = {}
    async with app.lifespan():
        for label, path, extra in CASES:

            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": b"", "more_body": False}

            async def send(message: dict[str, Any]) -> None:
                return None

            headers = [(b"host", b"l8"), (b"user-agent", b"bench"), *extra]
            scope = {
                "type": "http",
                "method": "GET",
                "path": path,
                "raw_path": path.encode(),
                "query_string": b"",
                "http_version": "1.1",
                "scheme": "http",
                "server": ("127.0.0.1", 3500),
                "client": ("127.0.0.1", 1),
                "root_path": "",
            }
            for _ in range(200):  # warm-up
                await app({**scope, "headers": list(headers)}, receive, send)
            started = time.process_time()
            for _ in range(requests):
                await app({**scope, "headers": list(headers)}, receive, send)
            found[label] = (time.process_time() - started) / requests * 1e6
    return found


def run_tree(tree: Path, requests: int) -> dict[str, float]:
    script = textwrap.dedent(
        f"""
        import asyncio, json, sys
        sys.path.insert(0, {str(ROOT / "bench")!r})
        from request_context_bench import measure
        print(json.dumps(asyncio.run(measure({requests}))))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="another l8 source tree to compare with")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=5000, help="per case and round")
    arguments = parser.parse_args()
    trees = {"this": ROOT} | ({"baseline": arguments.baseline.resolve()} if arguments.baseline else {})
    best: dict[str, dict[str, float]] = {name: {} for name in trees}
    for round_number in range(arguments.rounds):
        for name, tree in trees.items():
            for label, value in run_tree(tree, arguments.requests).items():
                best[name][label] = min(value, best[name].get(label, float("inf")))
        print(f"round {round_number + 1}/{arguments.rounds} done", file=sys.stderr)
    header = f"{'case':44s} {'this (us)':>10s}"
    if "baseline" in best:
        header += f" {'baseline (us)':>14s} {'ratio':>7s}"
    print(header)
    for label, _, _ in CASES:
        line = f"{label:44s} {best['this'].get(label, float('nan')):10.2f}"
        if "baseline" in best:
            base = best["baseline"].get(label)
            if base is None or label.startswith("GET /actuator"):  # a tree without the actuator
                line += f" {'-':>14s} {'-':>7s}"
            else:
                line += f" {base:14.2f} {best['this'][label] / base:7.3f}"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
