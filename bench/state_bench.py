"""State GET and save through l8, against a raw-ASGI + redis-py baseline and a direct redis-py client,
in one run: server processes on core 0, one at a time; Redis and the load tools on core 1.

    python bench/state_bench.py               # the full run (about 3 minutes), writes
                                              # docs/performance.md and bench/results/<time>.json
    python bench/state_bench.py --no-doc --l8-source /tmp/l8-variant --label variant
                                              # the same run against another l8 source tree

Every process it starts is stopped on the way out, on failure and on Ctrl-C or SIGTERM too.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import redis
import report
from harness import (
    LOAD_CORE,
    ROOT,
    SERVER_CORE,
    BenchError,
    LoadTools,
    Processes,
    cpu_meter,
    ensure_tools,
    free_port,
    http_get,
    machine,
    pinned,
    rss_mb,
    sigterm_as_exit,
    wait_port,
    wait_quiet,
    wait_ready,
)
from layers import analyse

APP_ID = "bench"
INTERFERENCE = 0.05  # share of the server's core taken by other processes that calls for a re-run
PREFIX = f"{APP_ID}||"
GET_KEY = "k"
SAVE_KEY = "w"
# About 100 bytes of JSON, the size Dapr's state benchmarks use for a small value.
VALUE = orjson.dumps(
    {"id": "order-0042", "customer": "Ada Lovelace", "items": [3, 1, 4], "total": 128.5, "status": "paid"}
)
SAVE_BODY = orjson.dumps([{"key": SAVE_KEY, "value": orjson.loads(VALUE)}]).decode()
COMPONENT = """apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: statestore
spec:
  type: state.redis
  version: v1
  metadata:
  - name: redisHost
    value: 127.0.0.1:{port}
"""


class Bench:
    def __init__(
        self,
        arguments: argparse.Namespace,
        workdir: Path,
        processes: Processes,
        results_dir: Path,
        stamp: str,
    ) -> None:
        self.args = arguments
        self.workdir = workdir
        self.processes = processes
        self.results_dir = results_dir
        self.stamp = stamp
        self.load = LoadTools(workdir, arguments.connections)
        self.redis_port = 0
        self.results: dict[str, Any] = {}
        self.retries_left = 3

    def log(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    # -- processes ---------------------------------------------------------------------------------

    def start_redis(self) -> None:
        self.redis_port = free_port()
        process = self.processes.start(
            "redis",
            pinned(
                LOAD_CORE,
                [
                    "redis-server",
                    "--port",
                    str(self.redis_port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--daemonize",
                    "no",
                    "--dir",
                    str(self.workdir),
                ],
            ),
        )
        wait_port(process, self.redis_port)
        client = redis.Redis(port=self.redis_port)
        client.hset(PREFIX + GET_KEY, mapping={"data": VALUE, "version": "1"})
        client.close()

    def start_l8(self, name: str, with_redis: bool, hide: tuple[str, ...] = ()) -> tuple[Any, str]:
        """l8 through its ``l8`` entry point; ``hide`` makes those packages unimportable (to see
        l8 as a runtime-only install loads it, without what the test extras bring along)."""
        port = free_port()
        options = [
            "run",
            "--port",
            str(port),
            "--app-id",
            APP_ID,
            "--log-level",
            "warning",
            "--data-dir",
            str(self.workdir / f"{name}-data"),
        ]
        if with_redis:
            resources = self.workdir / "resources"
            resources.mkdir(exist_ok=True)
            (resources / "statestore.yaml").write_text(COMPONENT.format(port=self.redis_port))
            options += ["--resources-path", str(resources)]
        source = Path(self.args.l8_source).resolve()
        env = dict(os.environ)
        entry = Path(sys.executable).parent / "l8"
        if hide:
            launch = f"import sys; sys.modules.update(dict.fromkeys({list(hide)!r})); "
            launch += "from app.cli import main; sys.exit(main())"
            command = [sys.executable, "-c", launch, *options]
            env["PYTHONPATH"] = str(source)
        elif source == ROOT and entry.exists():
            command = [str(entry), *options]
        else:  # another source tree: its packages first on the path, this venv's libraries
            command = [sys.executable, "-m", "app", *options]
            env["PYTHONPATH"] = str(source)
        process = self.processes.start(
            name, pinned(SERVER_CORE, command), cwd=source if source != ROOT else self.workdir, env=env
        )
        base = f"http://127.0.0.1:{port}"
        self.results.setdefault("startup_seconds", {})[name] = round(
            wait_ready(process, f"{base}/v1.0/healthz"), 2
        )
        return process, base

    def start_baseline(self) -> tuple[Any, str]:
        port = free_port()
        process = self.processes.start(
            "baseline",
            pinned(
                SERVER_CORE,
                [
                    sys.executable,
                    str(Path(__file__).with_name("baseline_app.py")),
                    "--port",
                    str(port),
                    "--redis",
                    f"127.0.0.1:{self.redis_port}",
                    "--prefix",
                    PREFIX,
                ],
            ),
        )
        base = f"http://127.0.0.1:{port}"
        wait_ready(process, f"{base}/noop")
        return process, base

    # -- measurements ------------------------------------------------------------------------------

    def check_value(self, url: str) -> None:
        status, headers, body = http_get(url)
        if status != 200 or body != VALUE or headers.get("etag") is None:
            raise BenchError(f"{url} answered {status} {headers} {body!r}, not the seeded value")

    def throughput(
        self, url: str, pid: int, *, method: str = "GET", body: str = "", short: bool = False
    ) -> dict[str, Any]:
        return self._least_disturbed(
            lambda: self._throughput(url, pid, method=method, body=body, short=short)
        )

    def fixed_rate(self, url: str, pid: int) -> dict[str, Any]:
        return self._least_disturbed(lambda: self._fixed_rate(url, pid))

    def _least_disturbed(self, measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Measures again, once, when another process took more than 5% of the server's core
        (the machine is shared), and keeps the less disturbed of the two; at most three times a run."""
        first = measure()
        if first["other_on_server_core"] <= INTERFERENCE or self.retries_left == 0:
            return first
        self.retries_left -= 1  # bounded, so a busy machine cannot stretch the run past ~5 minutes
        self.log(f"  another process took {first['other_on_server_core']:.0%} of the server's core: again")
        second = measure()
        best = min(first, second, key=lambda r: r["other_on_server_core"])
        best["attempts"] = 2
        return best

    def _throughput(
        self, url: str, pid: int, *, method: str = "GET", body: str = "", short: bool = False
    ) -> dict[str, Any]:
        seconds = self.args.seconds / 2 if short else self.args.seconds
        warmup = min(1.0, self.args.warmup) if short else self.args.warmup
        quiet = wait_quiet()
        self.load.wrk(url, warmup, method=method, body=body)
        with cpu_meter(pid) as cpu:
            result = self.load.wrk(url, seconds, method=method, body=body)
        result.update(
            server_vcpu=cpu["vcpu"],
            server_core_busy=cpu["server_core_busy"],
            other_on_server_core=cpu["other_on_server_core"],
            machine_busy_before=quiet,
        )
        self.log(
            f"  {method} {url.split('/', 3)[3]}: {result['rps']:.0f} rps, {result['errors']} errors, "
            f"server {cpu['vcpu']} vCPU, core {cpu['server_core_busy']:.0%} busy"
        )
        if result["errors"]:
            raise BenchError(f"{url}: {result['errors']} errors under load: {result}")
        return result

    def _fixed_rate(self, url: str, pid: int) -> dict[str, Any]:
        quiet = wait_quiet()
        with cpu_meter(pid) as cpu:
            result = self.load.paced(url, self.args.rate, self.args.seconds, self.args.warmup)
        result["server_vcpu"] = cpu["vcpu"]  # warm-up included: the same rate throughout
        result["other_on_server_core"] = cpu["other_on_server_core"]
        result["machine_busy_before"] = quiet
        result["server_rss_mb_after"] = rss_mb(pid)
        self.log(
            f"  {self.args.rate:g} rps {url.split('/', 3)[3]}: p50 {result['p50_ms']} p90 "
            f"{result['p90_ms']} p99 {result['p99_ms']} ms, {cpu['vcpu']} vCPU, others on its core "
            f"{cpu['other_on_server_core']:.0%}, machine busy before {quiet:.0%}"
        )
        if result["errors"] or result["requests"] == 0:
            raise BenchError(f"{url}: errors at a fixed rate: {result}")
        return result

    def profile(
        self, url: str, pid: int, name: str, *, method: str = "GET", body: str = ""
    ) -> dict[str, Any] | None:
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if self.args.no_profile or not Path(spy).exists():
            return None
        raw = self.workdir / f"{name}.stacks"
        seconds = max(3.0, self.args.seconds / 2)
        sampler = self.processes.start(
            f"py-spy-{name}",
            pinned(
                LOAD_CORE,
                [
                    spy,
                    "record",
                    "-p",
                    str(pid),
                    "-d",
                    f"{seconds:g}",
                    "-r",
                    "250",
                    "--format",
                    "raw",
                    "-o",
                    str(raw),
                ],
            ),
        )
        time.sleep(0.5)  # py-spy attaches
        with cpu_meter(pid) as cpu:
            load = self.load.wrk(url, seconds - 1, method=method, body=body)
        sampler.popen.wait(timeout=30)
        self.processes.stop(sampler)
        if not raw.exists():
            self.log(f"  py-spy wrote no profile for {name}: {sampler.tail(3)}")
            return None
        found = analyse(raw)
        found["rps_while_sampled"] = load["rps"]
        found["cpu_us_per_request"] = round(cpu["cpu_seconds"] / load["requests"] * 1e6, 1)
        shutil.copy(raw, self.results_dir / f"{self.stamp}-{name}.stacks")
        return found

    # -- phases ------------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        args, load = self.args, self.load
        self.log(f"machine; load cores: server {SERVER_CORE}, load + redis {LOAD_CORE}")
        self.results["machine"] = machine()
        self.start_redis()

        self.log("l8 with embedded defaults: idle RSS")
        process, _ = self.start_l8("l8-embedded", with_redis=False)
        time.sleep(args.idle)
        self.results["idle_rss_mb"] = {"l8_embedded": rss_mb(process.pid)}
        self.processes.stop(process)

        if _rich_installed():
            self.log("l8 with state.redis, rich hidden: idle RSS")
            process, _ = self.start_l8("l8-norich", with_redis=True, hide=("rich",))
            time.sleep(args.idle)
            self.results["idle_rss_mb"]["l8_redis_without_rich"] = rss_mb(process.pid)
            self.processes.stop(process)

        self.log("l8 with state.redis")
        process, base = self.start_l8("l8", with_redis=True)
        time.sleep(args.idle)
        self.results["idle_rss_mb"]["l8_redis"] = rss_mb(process.pid)
        self.results["idle_rss_mb"]["rich_installed"] = _rich_installed()
        get_url = f"{base}/v1.0/state/statestore/{GET_KEY}"
        self.check_value(get_url)
        l8: dict[str, Any] = {}
        l8["get"] = self.throughput(get_url, process.pid)
        l8["save"] = self.throughput(
            f"{base}/v1.0/state/statestore", process.pid, method="POST", body=SAVE_BODY
        )
        l8["noop"] = self.throughput(f"{base}/v1.0/healthz", process.pid, short=True)
        l8["fixed_noop"] = self.fixed_rate(f"{base}/v1.0/healthz", process.pid)
        l8["fixed_get"] = self.fixed_rate(get_url, process.pid)
        l8["hey_noop"] = load.hey_fixed(f"{base}/v1.0/healthz", args.rate, args.seconds)
        l8["hey_get"] = load.hey_fixed(get_url, args.rate, args.seconds)
        l8["profile_get"] = self.profile(get_url, process.pid, "l8-get")
        l8["profile_save"] = self.profile(
            f"{base}/v1.0/state/statestore", process.pid, "l8-save", method="POST", body=SAVE_BODY
        )
        l8["rss_mb_after_load"] = rss_mb(process.pid)
        self.processes.stop(process)
        self.results["l8"] = l8

        self.log("baseline: raw ASGI + redis-py")
        process, base = self.start_baseline()
        get_url = f"{base}/v1.0/state/statestore/{GET_KEY}"
        self.check_value(get_url)
        self.check_value(f"{base}/lua/{GET_KEY}")
        baseline: dict[str, Any] = {"idle_rss_mb": rss_mb(process.pid)}
        baseline["get"] = self.throughput(get_url, process.pid)
        baseline["get_script"] = self.throughput(f"{base}/lua/{GET_KEY}", process.pid, short=True)
        baseline["save"] = self.throughput(
            f"{base}/v1.0/state/statestore", process.pid, method="POST", body=SAVE_BODY
        )
        baseline["noop"] = self.throughput(f"{base}/noop", process.pid, short=True)
        baseline["fixed_noop"] = self.fixed_rate(f"{base}/noop", process.pid)
        baseline["fixed_get"] = self.fixed_rate(get_url, process.pid)
        baseline["hey_get"] = load.hey_fixed(get_url, args.rate, args.seconds)
        baseline["profile_get"] = self.profile(get_url, process.pid, "baseline-get")
        self.processes.stop(process)
        self.results["baseline"] = baseline

        self.log("direct redis-py client")
        self.results["direct"] = self.direct()
        return self.results

    def direct(self) -> list[dict[str, Any]]:
        runs = [("default:hmget", self.args.seconds)] + [
            (variant, self.args.seconds * 0.4)
            for variant in ("default:script", "timeouts:script", "blocking:script")
        ]
        found = []
        for variant, seconds in runs:
            wait_quiet()
            process = self.processes.start(
                f"direct-{variant.replace(':', '-')}",
                pinned(
                    SERVER_CORE,
                    [
                        sys.executable,
                        str(Path(__file__).with_name("redis_direct.py")),
                        "--redis",
                        f"127.0.0.1:{self.redis_port}",
                        "--key",
                        PREFIX + GET_KEY,
                        "--seconds",
                        f"{seconds:g}",
                        "--concurrency",
                        str(self.args.connections),
                        "--variant",
                        variant,
                    ],
                ),
            )
            process.popen.wait(timeout=seconds + 30)
            self.processes.stop(process)
            lines = [line for line in process.log.read_text().splitlines() if line.startswith("{")]
            if process.popen.returncode != 0 or not lines:
                raise BenchError(f"redis_direct.py {variant} failed:\n{process.tail()}")
            result = orjson.loads(lines[-1])
            self.log(f"  {variant}: {result['ops_per_s']:.0f} ops/s, {result['cpu_us_per_op']} us CPU/op")
            found.append(result)
        return found


def _rich_installed() -> bool:
    """structlog imports rich when it is installed; only the test extras (schemathesis) bring it."""
    return importlib.util.find_spec("rich") is not None


HOT_PATH = (
    "app/factory.py",
    "app/middleware.py",
    "routers/http.py",
    "routers/state.py",
    "services/state.py",
    "components/state/redis.py",
    "app/server.py",
)


def _fingerprint(source: Path) -> dict[str, str]:
    """The hot-path files measured, by content hash (others edit them while benchmarks run), and
    the commit with the files that differ from it (read-only git queries)."""
    found = {}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.split("\n")
        found["commit"] = head or "unknown"
        found["modified"] = " ".join(sorted(line[3:] for line in changed if line.strip()))
    for name in HOT_PATH:
        path = source / name
        found[name] = hashlib.sha256(path.read_bytes()).hexdigest()[:12] if path.exists() else "absent"
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="each measured run (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="before each measured run (default 2)")
    parser.add_argument("--rate", type=float, default=1000.0, help="the fixed rate (default 1000 rps)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--idle", type=float, default=2.0, help="seconds after start-up before idle RSS")
    parser.add_argument(
        "--l8-source", default=str(ROOT), help="the l8 source tree to run (default: this one)"
    )
    parser.add_argument("--label", default="", help="a name for this run in the results file")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profiles")
    parser.add_argument("--no-doc", action="store_true", help="do not rewrite docs/performance.md")
    arguments = parser.parse_args()
    ensure_tools()
    for tool in ("taskset", "redis-server", "wrk"):
        if shutil.which(tool) is None:
            print(f"state_bench: {tool} is not installed", file=sys.stderr)
            return 2
    if (os.cpu_count() or 1) < 2:
        print("state_bench: needs 2 cores (server on core 0, load on core 1)", file=sys.stderr)
        return 2
    results_dir = Path(__file__).with_name("results")
    results_dir.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    started = time.perf_counter()
    measured_files = _fingerprint(Path(arguments.l8_source).resolve())  # before l8 starts: see below
    with (
        sigterm_as_exit(),
        tempfile.TemporaryDirectory(prefix="l8-bench-") as tmp,
        Processes(Path(tmp)) as procs,
    ):
        bench = Bench(arguments, Path(tmp), procs, results_dir, stamp)
        try:
            results = bench.run()
        except BenchError as exc:
            print(f"state_bench: {exc}", file=sys.stderr)
            return 1
    results["settings"] = {
        "seconds": arguments.seconds,
        "warmup": arguments.warmup,
        "rate": arguments.rate,
        "connections": arguments.connections,
        "idle": arguments.idle,
        "label": arguments.label,
        "l8_source": str(Path(arguments.l8_source).resolve()),
        "value_bytes": len(VALUE),
        "duration_seconds": round(time.perf_counter() - started, 1),
        "started": stamp,
    }
    results["l8_files"] = measured_files
    after = _fingerprint(Path(arguments.l8_source).resolve())
    if any(after.get(name) != measured_files.get(name) for name in HOT_PATH):
        results["l8_files"]["changed_during_run"] = "yes: these hashes are from the start"
        print("state_bench: l8's hot-path files changed during the run", file=sys.stderr)
    results["summary"] = report.summarise(results)
    name = f"{stamp}{'-' + arguments.label if arguments.label else ''}.json"
    (results_dir / name).write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(orjson.dumps(results["summary"], option=orjson.OPT_INDENT_2).decode())
    if not arguments.no_doc:
        report.write_doc(results, ROOT / "docs" / "performance.md", f"bench/results/{name}")
        print(f"wrote docs/performance.md and bench/results/{name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
