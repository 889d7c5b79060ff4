"""Real ``l8 run`` processes for end-to-end and SDK tests.

:class:`L8Process` runs the installed ``l8`` console script on a free loopback port with its own data
directory, waits until ``GET /v1.0/healthz`` answers 204 (failing with the process's stderr when it
exits or does not get ready in time), and stops it with a signal, reporting the exit code. The
``l8`` fixture hands out processes and, at teardown, stops every one still running with SIGTERM,
asserts that it exited 0, and kills whatever would not stop, whether the test passed or not.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import httpx
import pytest
import yaml

from tests.servers import LOOPBACK, free_port

L8 = Path(sys.executable).with_name("l8")
"""The console script of this virtualenv: what a user runs, not an import of the app."""

READY_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
START_ATTEMPTS = 3
# Variables that would change how l8 (or the Dapr SDK) behaves; tests pass them explicitly.
_INHERITED_OUT = ("DAPR_API_TOKEN", "APP_API_TOKEN", "DAPR_HTTP_PORT", "DAPR_HTTP_ENDPOINT", "DAPR_GRPC_PORT")


class L8Error(AssertionError):
    """An l8 process did not start, stop or exit as a test expected."""


def l8_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("L8_") and name not in _INHERITED_OUT
    }
    # Metrics on a port of the system's choosing: sidecars of one test (and of tests run at the same
    # time) would all want daprd's 9090. A test of the metrics port sets its own.
    env["L8_METRICS_PORT"] = "0"
    env["L8_GRPC_PORT"] = "0"  # the same for daprd's 50001 (L8Process gives each its own port)
    env.update(extra or {})
    return env


def run_l8(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 15.0, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``l8 <args>`` to completion (a command that exits by itself) and capture its output."""
    return subprocess.run(
        [str(L8), *args],
        env=l8_env(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def write_component(
    folder: Path,
    name: str,
    component_type: str,
    metadata: Mapping[str, Any] | None = None,
    *,
    scopes: Sequence[str] | None = None,
    filename: str | None = None,
) -> Path:
    """A Dapr Component YAML file in ``folder`` (created if needed); returns its path."""
    document: dict[str, Any] = {
        "apiVersion": "dapr.io/v1alpha1",
        "kind": "Component",
        "metadata": {"name": name},
        "spec": {
            "type": component_type,
            "version": "v1",
            "metadata": [{"name": key, "value": value} for key, value in (metadata or {}).items()],
        },
    }
    if scopes is not None:
        document["scopes"] = list(scopes)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (filename or f"{name}.yaml")
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


class L8Process:
    """One ``l8 run`` on a fixed port and data directory; it can be stopped and started again."""

    def __init__(
        self,
        workdir: Path,
        *,
        app_id: str = "e2e",
        data_dir: Path | None = None,
        resources: Sequence[Path] = (),
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.app_id = app_id
        self.port = free_port()
        self.grpc_port = free_port()
        """The gRPC API's port (``--dapr-grpc-port``)."""
        self.data_dir = data_dir or workdir / f"data-{self.port}"
        self.resources = list(resources)
        self.args = list(args)
        self.env = dict(env or {})
        self.returncode: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._launches = 0
        self._stderr_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def grpc_address(self) -> str:
        """``host:port`` of the gRPC API, as ``DaprClient(address=...)`` takes it."""
        return f"{LOOPBACK}:{self.grpc_port}"

    @property
    def pid(self) -> int:
        assert self._process is not None, "l8 was never started"
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def command(self) -> list[str]:
        command = [str(L8), "run", "--port", str(self.port), "--app-id", self.app_id]
        command += ["--dapr-grpc-port", str(self.grpc_port)]
        command += ["--data-dir", str(self.data_dir)]
        for path in self.resources:
            command += ["--resources-path", str(path)]
        return command + self.args

    @property
    def stderr(self) -> str:
        """What the current (or last) launch wrote to stderr so far."""
        if self._stderr_path is None or not self._stderr_path.exists():
            return ""
        return self._stderr_path.read_bytes().decode(errors="replace")

    def launch(self) -> Self:
        """Start the process without waiting for it to get ready."""
        assert not self.running, "l8 is already running"
        self._launches += 1
        self._stderr_path = self.workdir / f"l8-{self.port}-{self._launches}.stderr"
        self.returncode = None
        with self._stderr_path.open("wb") as stderr:
            self._process = subprocess.Popen(
                self.command(),
                cwd=self.workdir,
                env=l8_env(self.env),
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
            )
        return self

    def start(self, timeout: float = READY_TIMEOUT) -> Self:
        """Start and wait until ``GET /v1.0/healthz`` answers 204. A first start retries on a new
        port when another process took the free one first; a restart keeps its port."""
        attempts = START_ATTEMPTS if self._launches == 0 else 1
        for attempt in range(1, attempts + 1):
            self.launch()
            try:
                self.wait_ready(timeout)
            except L8Error:
                if attempt == attempts or "cannot listen" not in self.stderr:
                    raise
                self.port = free_port()
                self.grpc_port = free_port()
            else:
                return self
        raise AssertionError("unreachable")

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        assert self._process is not None, "l8 was never started"
        deadline = time.monotonic() + timeout
        last = "no answer"
        with httpx.Client(timeout=1.0) as client:
            while time.monotonic() < deadline:
                code = self._process.poll()
                if code is not None:
                    self.returncode = code
                    raise L8Error(f"l8 exited with status {code} before it was ready:\n{self.stderr}")
                try:
                    response = client.get(f"{self.url}/v1.0/healthz")
                except httpx.TransportError as exc:
                    last = repr(exc)
                else:
                    if response.status_code == 204:
                        return
                    last = f"{response.status_code} {response.text}"
                time.sleep(0.05)
        self.kill()
        raise L8Error(f"l8 was not ready on {self.url} after {timeout:g} s (last: {last}):\n{self.stderr}")

    def wait_exit(self, timeout: float = STOP_TIMEOUT) -> int:
        """Wait for the process to exit by itself; its exit code."""
        assert self._process is not None, "l8 was never started"
        try:
            self.returncode = self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise L8Error(f"l8 did not exit within {timeout:g} s:\n{self.stderr}") from None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        assert self._process is not None, "l8 was never started"
        self._process.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        """Send ``sig`` and wait for the exit code (killing the process if it does not exit)."""
        if self.running:
            self.send_signal(sig)
        return self.wait_exit(timeout)

    def stop_ok(self, sig: int = signal.SIGTERM) -> None:
        """Stop with ``sig`` and require exit code 0."""
        code = self.stop(sig)
        if code != 0:
            raise L8Error(f"l8 exited with status {code} after {signal.Signals(sig).name}:\n{self.stderr}")

    def kill(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            self.returncode = process.wait()


class L8Launcher:
    """Creates l8 processes under one test's temporary directory and cleans all of them up."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.processes: list[L8Process] = []

    def create(self, **options: Any) -> L8Process:
        process = L8Process(self.workdir, **options)
        self.processes.append(process)
        return process

    def __call__(self, **options: Any) -> L8Process:
        """A started, ready process (see :class:`L8Process` for the options)."""
        return self.create(**options).start()

    def close(self) -> None:
        problems = []
        for process in self.processes:
            if not process.running:
                continue
            try:
                process.stop_ok()
            except L8Error as exc:
                problems.append(str(exc))
            finally:
                process.kill()
        if problems:
            raise L8Error("\n\n".join(problems))


@pytest.fixture
def l8(tmp_path: Path) -> Iterator[L8Launcher]:
    """Start real l8 processes: ``l8(app_id=..., resources=[...], args=[...], env={...})``."""
    launcher = L8Launcher(tmp_path)
    try:
        yield launcher
    finally:
        launcher.close()
