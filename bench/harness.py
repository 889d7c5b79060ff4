"""What the state benchmark is made of: processes pinned to cores and always cleaned up, the load
tools (wrk for maximum throughput, bench/paced_client.py and hey at a fixed rate), and readings
from /proc."""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson
from paced_client import percentile

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SERVER_CORE = "0"
LOAD_CORE = "1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """The benchmark cannot go on; the message says why."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def pinned(core: str, command: Sequence[str]) -> list[str]:
    return ["taskset", "-c", core, *command]


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)


class Processes:
    """Every process the benchmark starts, stopped in reverse order on exit, failure included."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._running: list[Process] = []

    def start(
        self, name: str, command: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> Process:
        log = self.workdir / f"{name}.log"
        # l8's metrics and gRPC ports on ones the system chooses (a benchmark may run several
        # sidecars); a command line's --metrics-port or --dapr-grpc-port still wins over them.
        env = {"L8_METRICS_PORT": "0", "L8_GRPC_PORT": "0", **(env if env is not None else os.environ)}
        with log.open("ab") as sink:
            popen = subprocess.Popen(
                list(command),
                stdout=sink,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=env,
                start_new_session=True,  # a Ctrl-C reaches the benchmark, which stops them in order
            )
        process = Process(name, popen, log)
        self._running.append(process)
        return process

    def stop(self, process: Process) -> None:
        process.stop()
        if process in self._running:
            self._running.remove(process)

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc_info: object) -> None:
        while self._running:
            process = self._running.pop()
            with contextlib.suppress(Exception):
                process.stop()


@contextlib.contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so every ``finally`` and ``__exit__`` runs."""

    def _exit(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def http_status(url: str, timeout: float = 1.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError):
        return None


def http_get(url: str) -> tuple[int, dict[str, str], bytes]:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return int(answer.status), {k.lower(): v for k, v in answer.headers.items()}, answer.read()


def wait_ready(
    process: Process, url: str, timeout: float = 30.0, ready: tuple[int, ...] = (200, 204)
) -> float:
    """Seconds until ``url`` answers one of ``ready``; fails with the process log if it exits first."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if process.popen.poll() is not None:
            raise BenchError(f"{process.name} exited with {process.popen.returncode}:\n{process.tail()}")
        if http_status(url) in ready:
            return time.perf_counter() - started
        time.sleep(0.05)
    raise BenchError(f"{process.name} not ready after {timeout:g}s at {url}:\n{process.tail()}")


def wait_port(process: Process, port: int, timeout: float = 10.0) -> None:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if process.popen.poll() is not None:
            raise BenchError(f"{process.name} exited with {process.popen.returncode}:\n{process.tail()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise BenchError(f"{process.name} is not listening on {port}:\n{process.tail()}")


def start_redis(processes: Processes, workdir: Path) -> int:
    """A redis-server on the load core, without persistence; its port once it listens."""
    port = free_port()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", str(workdir)]  # fmt: skip
    wait_port(processes.start("redis", pinned(LOAD_CORE, command)), port)
    return port


def start_etcd(processes: Processes, workdir: Path) -> int:
    """A one-member etcd on the load core, its data under ``workdir``; its client port once it listens."""
    port, peer_port = free_port(), free_port()
    command = ["etcd", "--data-dir", str(workdir / "etcd"),
               "--listen-client-urls", f"http://127.0.0.1:{port}",
               "--advertise-client-urls", f"http://127.0.0.1:{port}",
               "--listen-peer-urls", f"http://127.0.0.1:{peer_port}"]  # fmt: skip
    wait_port(processes.start("etcd", pinned(LOAD_CORE, command)), port)
    return port


# -- /proc -----------------------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise BenchError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _core_jiffies(core: str) -> tuple[int, int]:
    """(busy, total) jiffies of one core from /proc/stat."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{core} "):
            values = [int(v) for v in line.split()[1:]]
            idle = values[3] + values[4]
            return sum(values[:8]) - idle, sum(values[:8])
    raise BenchError(f"no cpu{core} in /proc/stat")


def wait_quiet(limit: float = 0.15, longest: float = 15.0) -> float:
    """Waits (at most ``longest`` seconds) until the machine's CPU use by anything is below
    ``limit`` over half a second, and answers the last reading: the machine is shared with other
    work, which would otherwise land in the middle of a measurement."""
    deadline = time.perf_counter() + longest
    while True:
        before = [_core_jiffies(core) for core in (SERVER_CORE, LOAD_CORE)]
        time.sleep(0.5)
        after = [_core_jiffies(core) for core in (SERVER_CORE, LOAD_CORE)]
        busy = sum(a[0] - b[0] for a, b in zip(after, before, strict=True))
        total = sum(a[1] - b[1] for a, b in zip(after, before, strict=True))
        reading = busy / total if total else 0.0
        if reading < limit or time.perf_counter() > deadline:
            return round(reading, 3)


@contextlib.contextmanager
def cpu_meter(pid: int) -> Iterator[dict[str, float]]:
    """Yields a dict that holds, once the block ends, ``vcpu`` (average cores used by ``pid``) and
    ``server_core_busy`` (how busy its core was, whoever used it: more than ``vcpu`` means another
    process ran there too)."""
    reading: dict[str, float] = {}
    cpu0, wall0, core0 = cpu_seconds(pid), time.perf_counter(), _core_jiffies(SERVER_CORE)
    yield reading
    wall = time.perf_counter() - wall0
    core1 = _core_jiffies(SERVER_CORE)
    reading["cpu_seconds"] = round(cpu_seconds(pid) - cpu0, 3)
    reading["wall_seconds"] = round(wall, 3)
    reading["vcpu"] = round(reading["cpu_seconds"] / wall, 3)
    total = core1[1] - core0[1]
    reading["server_core_busy"] = round((core1[0] - core0[0]) / total, 3) if total else 0.0
    reading["other_on_server_core"] = round(max(0.0, reading["server_core_busy"] - reading["vcpu"]), 3)


# -- load tools ------------------------------------------------------------------------------------

_WRK_SCRIPT = """
wrk.method = os.getenv("BENCH_METHOD") or "GET"
local body = os.getenv("BENCH_BODY")
if body and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end
-- A body containing {n} gets a counter in its place: every request is a new one.
if body and string.find(body, "{n}", 1, true) then
  local count = 0
  request = function()
    count = count + 1
    return wrk.format(nil, nil, nil, (string.gsub(body, "{n}", tostring(count))))
  end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000))
end
"""


class LoadTools:
    def __init__(self, workdir: Path, connections: int) -> None:
        self.connections = connections
        self.wrk_script = workdir / "bench.lua"
        self.wrk_script.write_text(_WRK_SCRIPT)
        self.hey = shutil.which("hey")

    def wrk(self, url: str, seconds: float, *, method: str = "GET", body: str = "") -> dict[str, Any]:
        """Maximum throughput: one wrk thread, ``connections`` keep-alive connections, load core."""
        command = pinned(
            LOAD_CORE,
            [
                "wrk",
                "-t1",
                f"-c{self.connections}",
                f"-d{max(1, round(seconds))}s",
                "-s",
                str(self.wrk_script),
                url,
            ],
        )
        env = {**os.environ, "BENCH_METHOD": method, "BENCH_BODY": body}
        out = _run(command, seconds + 30, env=env)
        match = re.search(r"^BENCH_JSON (.*)$", out, re.MULTILINE)
        if match is None:
            raise BenchError(f"wrk gave no summary for {url}:\n{out}")
        result: dict[str, Any] = orjson.loads(match.group(1))
        result["rps"] = round(result["requests"] / (result["duration_us"] / 1e6), 1)
        result["errors"] = sum(
            result[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
        )
        result["tool"] = f"wrk -t1 -c{self.connections}"
        return result

    def paced(
        self, url: str, rate: float, seconds: float, warmup: float, *, method: str = "GET", body: str = ""
    ) -> dict[str, Any]:
        """Fixed rate with microsecond timing (bench/paced_client.py), on the load core."""
        command = pinned(
            LOAD_CORE,
            [
                sys.executable,
                str(HERE / "paced_client.py"),
                url,
                "--method",
                method,
                "--body",
                body,
                "--rate",
                f"{rate:g}",
                "--connections",
                str(self.connections),
                "--seconds",
                f"{seconds:g}",
                "--warmup",
                f"{warmup:g}",
            ],
        )
        result: dict[str, Any] = orjson.loads(_run(command, seconds + warmup + 30).strip().splitlines()[-1])
        return result

    def hey_fixed(self, url: str, rate: float, seconds: float) -> dict[str, Any] | None:
        """The same fixed rate through hey (-q is per worker), as a cross-check: hey prints
        latencies in 0.1 ms steps, too coarse to be the main figure."""
        if self.hey is None:
            return None
        per_worker = rate / self.connections
        command = pinned(
            LOAD_CORE,
            [
                self.hey,
                "-cpus",
                "1",
                "-c",
                str(self.connections),
                "-q",
                f"{per_worker:g}",
                "-z",
                f"{seconds:g}s",
                "-o",
                "csv",
                url,
            ],
        )
        out = _run(command, seconds + 30)
        latencies: list[float] = []
        failures = 0
        for line in out.splitlines()[1:]:
            fields = line.split(",")
            if len(fields) < 7:
                continue
            if not fields[6].startswith("2"):
                failures += 1
            latencies.append(float(fields[0]) * 1000)
        latencies.sort()
        return {
            "tool": f"hey -c {self.connections} -q {per_worker:g} (0.1 ms resolution)",
            "requests": len(latencies),
            "rate_achieved": round(len(latencies) / seconds, 1),
            "errors": failures,
            "p50_ms": round(percentile(latencies, 0.5), 3),
            "p90_ms": round(percentile(latencies, 0.9), 3),
            "p99_ms": round(percentile(latencies, 0.99), 3),
        }


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def max_throughput(
    load: LoadTools,
    url: str,
    pid: int,
    name: str,
    warmup: float,
    seconds: float,
    *,
    method: str = "GET",
    body: str = "",
) -> dict[str, Any]:
    """wrk's maximum throughput on ``url`` after a warm-up, with the server's CPU; any error fails."""
    quiet = wait_quiet()
    load.wrk(url, warmup, method=method, body=body)
    with cpu_meter(pid) as cpu:
        result = load.wrk(url, seconds, method=method, body=body)
    result.update(server_vcpu=cpu["vcpu"], machine_busy_before=quiet)
    if result["errors"]:
        raise BenchError(f"{name}: {result['errors']} errors under load: {result}")
    log(f"  {name}: {result['rps']:.0f} rps, {cpu['vcpu']} vCPU")
    return result


def fixed_rate(
    load: LoadTools,
    url: str,
    pid: int,
    name: str,
    rate: float,
    seconds: float,
    warmup: float,
    *,
    method: str = "GET",
    body: str = "",
) -> dict[str, Any]:
    """Latency percentiles on ``url`` at ``rate`` requests a second, with the server's CPU; any
    error or status other than 200/204 fails."""
    quiet = wait_quiet()
    with cpu_meter(pid) as cpu:
        result = load.paced(url, rate, seconds, warmup, method=method, body=body)
    result.update(server_vcpu=cpu["vcpu"], machine_busy_before=quiet)
    if result["errors"] or not set(result["statuses"]) <= {"200", "204"}:
        raise BenchError(f"{name}: errors at a fixed rate: {result}")
    log(f"  {name}: p50 {result['p50_ms']} p90 {result['p90_ms']} p99 {result['p99_ms']} ms")
    return result


def _run(command: Sequence[str], timeout: float, env: dict[str, str] | None = None) -> str:
    try:
        done = subprocess.run(list(command), capture_output=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{command[3]} did not finish in {timeout:g}s") from exc
    if done.returncode != 0:
        raise BenchError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr.decode()[-2000:]}")
    return done.stdout.decode()


def ensure_tools() -> None:
    """Installs what a clean machine lacks, as ``make test`` does for its servers: wrk and hey from
    Debian (as root), py-spy into this virtualenv. Each is checked first, so a second run is fast;
    a failed install is reported and the benchmark goes on without hey or py-spy."""
    missing = [tool for tool in ("wrk", "hey", "redis-server") if shutil.which(tool) is None]
    if missing and shutil.which("apt-get") and os.geteuid() == 0:
        print(f"state_bench: installing {' '.join(missing)} (apt-get)", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env, "check": False}
        subprocess.run(["apt-get", "update", "-qq"], timeout=300, **quiet)  # type: ignore[call-overload]
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], timeout=600, **quiet
        )  # type: ignore[call-overload]
    if shutil.which("py-spy") is None and not (Path(sys.executable).parent / "py-spy").exists():
        print("state_bench: installing py-spy (pip)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "py-spy"], timeout=300, check=False)


# -- the machine -----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.MULTILINE)
    mhz = re.search(r"^cpu MHz\s*:\s*(.*)$", cpuinfo, re.MULTILINE)
    memory = re.search(r"^MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text(), re.MULTILINE)
    versions = {}
    for package in (
        "fastapi",
        "starlette",
        "uvicorn",
        "uvloop",
        "httptools",
        "redis",
        "hiredis",
        "pydantic",
        "orjson",
        "structlog",
    ):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "absent"
    tools = {}
    for tool, command, pattern in (
        ("redis-server", ["redis-server", "--version"], r"v=(\S+)"),
        ("wrk", ["wrk", "-v"], r"wrk (\S+)"),
    ):
        with contextlib.suppress(OSError):
            out = subprocess.run(command, capture_output=True, text=True, timeout=5, check=False)
            found = re.search(pattern, out.stdout + out.stderr)
            tools[tool] = found.group(1) if found else "unknown"
    with contextlib.suppress(OSError):
        out = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", "hey"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        tools["hey"] = out.stdout.strip() or "absent"
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    with contextlib.suppress(OSError):
        out = subprocess.run([spy, "--version"], capture_output=True, text=True, timeout=5, check=False)
        tools["py-spy"] = out.stdout.strip().removeprefix("py-spy ") or "absent"
    debian = Path("/etc/debian_version")
    return {
        "cpu_model": model.group(1).strip() if model else "unknown",
        "cpu_mhz": mhz.group(1).strip() if mhz else "unknown",
        "cpus": os.cpu_count(),
        "memory_gb": round(int(memory.group(1)) / 1024**2, 1) if memory else None,
        "kernel": platform.release(),
        "os": f"Debian {debian.read_text().strip()}" if debian.exists() else platform.platform(),
        "python": platform.python_version(),
        "libraries": versions,
        "tools": tools,
    }


# -- running a benchmark and keeping its results ---------------------------------------------------


def missing_requirements(name: str, tools: Sequence[str]) -> int | None:
    """Exit status 2 (said on stderr) when a tool or the second core is missing, else None."""
    for tool in tools:
        if shutil.which(tool) is None:
            print(f"{name}: {tool} is not installed", file=sys.stderr)
            return 2
    if (os.cpu_count() or 1) < 2:
        print(f"{name}: needs 2 cores", file=sys.stderr)
        return 2
    return None


def run_measured(name: str, measure: Any) -> dict[str, Any] | None:
    """``measure(workdir, processes)`` in a temporary directory whose processes are all stopped
    after it, SIGTERM included; None (said on stderr) when it raised :class:`BenchError`."""
    with (
        sigterm_as_exit(),
        tempfile.TemporaryDirectory(prefix=f"l8-{name}-") as tmp,
        Processes(Path(tmp)) as processes,
    ):
        try:
            results: dict[str, Any] = measure(Path(tmp), processes)
        except BenchError as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            return None
    return results


def run_settings(arguments: argparse.Namespace, stamp: str, started: float) -> dict[str, Any]:
    """What a run was asked for (every flag but ``--no-doc``), when, and how long it took."""
    flags = {name: value for name, value in vars(arguments).items() if name != "no_doc"}
    return {**flags, "started": stamp, "duration_seconds": round(time.perf_counter() - started, 1)}


def save_results(results: dict[str, Any], stamp: str, kind: str) -> str:
    """Write the raw results under bench/results/ (git-ignored); their name relative to the repo."""
    (HERE / "results").mkdir(exist_ok=True)
    name = f"bench/results/{stamp}-{kind}.json"
    (ROOT / name).write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    return name


def write_doc_section(text: str, begin: str, end: str, path: Path = ROOT / "docs" / "performance.md") -> None:
    """Replace the section between the ``begin`` and ``end`` markers (``text`` holds both), or add it."""
    current = path.read_text(encoding="utf-8") if path.exists() else "# Performance\n"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.DOTALL)
    if pattern.search(current):
        updated = pattern.sub(lambda _: text, current)
    else:
        updated = current.rstrip("\n") + "\n\n" + text + "\n"
    path.write_text(updated, encoding="utf-8")


COMMON_FLAGS = ("seconds", "warmup", "rate", "connections", "rounds")


@dataclass(frozen=True)
class FixedRateBench:
    """What differs between the fixed-rate benchmarks; :func:`bench_main` does the rest."""

    name: str
    """The script's name, for messages and the temporary folder (``secrets_bench``)."""
    kind: str
    """The results file's suffix (``secrets``)."""
    tools: tuple[str, ...]
    measure: Callable[[argparse.Namespace, Path, Processes], dict[str, Any]]
    """One run: the arguments, a temporary folder, the processes it starts (stopped after)."""
    render: Callable[[dict[str, Any], str], str]
    """The doc section from the results (``summary`` in them) and the saved file's name."""
    begin: str
    end: str
    summarize: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    rate: float = 1000.0
    seconds: float = 8.0
    warmup: float = 1.0
    rounds: int = 3
    arguments: Callable[[argparse.ArgumentParser], object] | None = None
    """Flags of this benchmark beside the common ones."""
    common_flags: tuple[str, ...] = COMMON_FLAGS
    """Which of the common flags (:data:`COMMON_FLAGS`) this benchmark takes: one that drives its
    load from its own process (bench/in_process.py) has no rate or connections to set."""


def bench_main(bench: FixedRateBench, description: str) -> int:
    """The command line of a fixed-rate benchmark: flags, tools, one measured run in a temporary
    folder, the raw results under bench/results/, the section of docs/performance.md (unless
    ``--no-doc``). Exit status 2 when a tool is missing, 1 when the run failed."""
    parser = argparse.ArgumentParser(description=description.splitlines()[0])
    common: dict[str, tuple[type, float]] = {
        "seconds": (float, bench.seconds),
        "warmup": (float, bench.warmup),
        "rate": (float, bench.rate),
        "connections": (int, 16),
        "rounds": (int, bench.rounds),
    }
    for flag in bench.common_flags:
        kind, default = common[flag]
        parser.add_argument(f"--{flag}", type=kind, default=default)
    if bench.arguments is not None:
        bench.arguments(parser)
    parser.add_argument("--no-doc", action="store_true", help="do not rewrite docs/performance.md")
    arguments = parser.parse_args()
    ensure_tools()
    missing = missing_requirements(bench.name, bench.tools)
    if missing is not None:
        return missing
    stamp = time.strftime("%Y%m%dT%H%M%S")
    started = time.perf_counter()
    results = run_measured(bench.name, lambda tmp, procs: bench.measure(arguments, tmp, procs))
    if results is None:
        return 1
    results["settings"] = run_settings(arguments, stamp, started)
    if bench.summarize is not None:
        results["summary"] = bench.summarize(results)
    text = bench.render(results, save_results(results, stamp, bench.kind))
    print(text)
    if not arguments.no_doc:
        write_doc_section(text, bench.begin, bench.end)
    return 0
