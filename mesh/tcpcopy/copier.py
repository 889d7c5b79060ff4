"""TCP copy: the sampling windows, the fuses, the bounded queue and the dump writer.

The protocol (mesh/tcpcopy/protocol.py) hands every chunk of a copied connection to
:meth:`TcpCopy.offer`, which only appends to a queue (or drops and counts when the queue is full):
the request path never waits for the disk. A background task drains the queue every 100 ms and
writes the records in a worker thread, closing a file past ``max_file_size`` and deleting the
oldest past ``max_files``.

Windows open every ``interval`` seconds (the first at start-up) for ``duration`` seconds, unless a
fuse holds: l8's CPU use over the last second above ``cpu_max_rate`` % of one core, or its resident
memory above ``mem_max_rate`` % of the machine's. A fuse that trips while a window is open closes
it. A connection starts being copied at a request boundary inside a window and stops at the first
boundary after the window closed, so its copy holds whole requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import threading
import time
from collections import deque
from typing import Any, BinaryIO

import structlog

from mesh.tcpcopy.dumpfile import MAGIC, Record
from mesh.tcpcopy.policy import CopyPolicy

log = structlog.get_logger(__name__)

_FLUSH_EVERY = 0.1


class TcpCopy:
    def __init__(self, policy: CopyPolicy | None = None) -> None:
        self.policy = policy or CopyPolicy()
        self.window = 0
        """The open window's number; 0 while none is open."""
        self._windows = 0
        self._connections = itertools.count(1)
        self._queue: deque[Record] = deque()
        self._queued_bytes = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._file: BinaryIO | None = None
        self._file_size = 0
        self._writing = threading.Lock()  # a cancelled drain's thread may still be writing at close
        self.counters = {"windows": 0, "fused": 0, "records": 0, "bytes": 0, "dropped": 0, "files": 0}
        self.port = 0
        """The listener port, set by the server (names the dump files)."""
        self.fuse: str | None = None
        """Why copying is held back right now (``cpu`` or ``memory``), or None."""

    @property
    def enabled(self) -> bool:
        return self.policy.enabled

    def configure(self, policy: CopyPolicy) -> None:
        self.policy = policy

    async def start(self) -> None:
        if not self.policy.enabled:
            return
        await asyncio.to_thread(self.policy.folder.mkdir, parents=True, exist_ok=True)
        self._tasks = [
            asyncio.create_task(self._sample(), name="tcp copy windows"),
            asyncio.create_task(self._drain(), name="tcp copy writer"),
        ]
        log.info("tcp copy on", dir=str(self.policy.folder), interval=self.policy.interval,
                 duration=self.policy.duration)  # fmt: skip

    async def aclose(self) -> None:
        self.window = 0
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._queue:
            try:
                await asyncio.to_thread(self._write, self._take_all())
            except OSError as exc:
                log.warning("tcp copy cannot write its dump", error=str(exc))
        with self._writing:
            if self._file is not None:
                self._file.close()
                self._file = None

    # -- the request path ------------------------------------------------------------------------

    def new_connection(self) -> int:
        return next(self._connections) & 0xFFFFFFFF

    def offer(self, kind: int, port: int, connection: int, payload: bytes) -> bool:
        """Queue a record for the writer; False when the queue is full and it was dropped (and
        counted): that connection's copy has a hole and must end there."""
        policy = self.policy
        if len(self._queue) >= policy.queue_records or self._queued_bytes + len(payload) > policy.queue_bytes:
            self.counters["dropped"] += 1
            return False
        window = self.window or self._windows  # a copy finishing its request after its window closed
        self._queue.append(Record(kind, port, connection, window, time.time_ns(), payload))
        self._queued_bytes += len(payload)
        return True

    # -- windows and fuses -----------------------------------------------------------------------

    async def _sample(self) -> None:
        policy = self.policy
        next_window = time.monotonic()
        closes_at = 0.0
        last_cpu, last_wall = time.process_time(), time.monotonic()
        cpu = 0.0
        while True:
            now = time.monotonic()
            cpu_now = time.process_time()
            elapsed = now - last_wall
            if elapsed >= 0.5:  # shorter spans are too short to judge: the last reading holds
                cpu = (cpu_now - last_cpu) / elapsed * 100
                last_cpu, last_wall = cpu_now, now
            self.fuse = self._fuse(cpu)
            if self.window and (self.fuse or now >= closes_at):
                if self.fuse:
                    self.counters["fused"] += 1
                    log.info("tcp copy window closed by a fuse", fuse=self.fuse, window=self.window)
                self.window = 0
            if not self.window and now >= next_window:
                next_window += policy.interval * max(1, int((now - next_window) // policy.interval) + 1)
                if self.fuse:
                    self.counters["fused"] += 1
                else:
                    self._windows += 1
                    self.window = self._windows
                    self.counters["windows"] += 1
                    closes_at = now + policy.duration
                    if policy.duration >= policy.interval:
                        closes_at = float("inf")  # always open, while the fuses allow
            wake = min(1.0, max(0.01, (closes_at if self.window else next_window) - time.monotonic()))
            await asyncio.sleep(wake)

    def _fuse(self, cpu: float) -> str | None:
        if cpu > self.policy.cpu_max_rate:
            return "cpu"
        if _memory_percent() > self.policy.mem_max_rate:
            return "memory"
        return None

    # -- the writer ------------------------------------------------------------------------------

    async def _drain(self) -> None:
        while True:
            await asyncio.sleep(_FLUSH_EVERY)
            if self._queue:
                batch = self._take_all()
                try:
                    await asyncio.to_thread(self._write, batch)
                except OSError as exc:
                    self.counters["dropped"] += len(batch)
                    log.warning("tcp copy cannot write its dump", error=str(exc))

    def _take_all(self) -> list[Record]:
        batch = list(self._queue)
        self._queue.clear()
        self._queued_bytes = 0
        return batch

    def _write(self, batch: list[Record]) -> None:
        with self._writing:
            self._write_locked(batch)

    def _write_locked(self, batch: list[Record]) -> None:
        limit = self.policy.max_file_size
        for record in batch:
            data = record.encode()
            if self._file is None or (self._file_size + len(data) > limit and self._file_size > len(MAGIC)):
                self._rotate()
            assert self._file is not None
            self._file.write(data)
            self._file_size += len(data)
            self.counters["records"] += 1
            self.counters["bytes"] += len(record.payload)
        if self._file is not None:
            self._file.flush()

    def _rotate(self) -> None:
        if self._file is not None:
            self._file.close()
        folder = self.policy.folder
        # The listener port in the name: sidecars sharing a folder rotate only their own files.
        path = folder / f"tcpcopy-{self.port}-{time.time_ns():020d}.dump"
        self._file = path.open("xb")
        self._file.write(MAGIC)
        self._file_size = len(MAGIC)
        self.counters["files"] += 1
        for old in sorted(folder.glob(f"tcpcopy-{self.port}-*.dump"))[: -self.policy.max_files]:
            with contextlib.suppress(OSError):
                old.unlink()

    def describe(self) -> dict[str, Any]:
        return {
            **self.policy.describe(),
            "windowOpen": bool(self.window),
            "fuse": self.fuse,
            **self.counters,
        }


def _memory_percent() -> float:
    try:
        with open("/proc/self/statm", "rb") as statm:
            resident_pages = int(statm.read().split()[1])
        page = os.sysconf("SC_PAGE_SIZE")
        return resident_pages * page / (os.sysconf("SC_PHYS_PAGES") * page) * 100
    except (OSError, ValueError, IndexError):  # not Linux: the peak, which is what the OS reports
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS
        return peak / (os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")) * 100
