"""configuration.file: the items of one YAML file, followed as it is edited.

Metadata: ``path`` (required) names the file; it must exist unless ``create`` is true, in which
case a missing file is created empty (its directory must exist).

The format and versions: components/configuration/file_format.py.

Edits are followed with watchfiles on the file's directory (so an editor that replaces the file by
a rename is seen, and so is the ``..data`` link Kubernetes swaps in a mounted ConfigMap); changes
that land within ~50 ms of each other are read as one. Each read is compared with the last one and
the items that changed, appeared or went away are delivered once. A file that does not parse is
logged and the last good content kept (a save refuses to overwrite it); a missing file (between an
editor's unlink and its write) is the same. ``get`` and ``save`` re-read the file first, so they see
edits the watcher has not reported yet.

``save`` and ``delete`` rewrite the whole file atomically (a temporary file in the same directory
then a rename, keeping the file's mode), under a lock: comments and layout are not kept. Writers
that edit the file in place should write it in one go; a reader could otherwise see it truncated.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import tempfile
from collections.abc import AsyncGenerator, Mapping
from pathlib import Path
from typing import Any

import structlog
from pydantic import field_validator

from components.configuration.base import (
    ChangeHandler,
    ConfigurationItem,
    DeleteRequest,
    Feature,
    GetRequest,
    SaveRequest,
    SubscribeRequest,
)
from components.configuration.file_format import Entry, next_version, parse, render
from components.configuration.subscriptions import (
    Address,
    QueuedSubscription,
    Subscribers,
    cancel_and_wait,
    deleted,
    unique,
)
from components.errors import BackendError, ComponentInitError
from components.metadata import ComponentMetadata, GoBool, decode, metadata_error

log = structlog.get_logger(__name__)

NAME = "configuration.file"
_STEP_MS, _DEBOUNCE_MS = 50, 400
"""watchfiles: read after 50 ms without changes, at most 400 ms after the first one."""


class FileMetadata(ComponentMetadata):
    path: str
    create: GoBool = False

    @field_validator("path")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise metadata_error("name the YAML file holding the configuration")
        return value


# -- the format -------------------------------------------------------------------------------------


# -- file I/O (run in a thread) ---------------------------------------------------------------------


def _read_at_start(given: str, create: bool) -> tuple[Path, str]:
    path = Path(given).expanduser().absolute()
    try:
        text: str | None = path.read_text("utf-8")
    except FileNotFoundError:
        text = None
    if text is None and not create:
        message = f"configuration file {path} does not exist (metadata create: true starts an empty one)"
        raise ComponentInitError(message, field="path")
    if text is None:
        with contextlib.suppress(FileExistsError), path.open("x", encoding="utf-8"):
            pass
    return path, text or ""


_Stamp = tuple[int, int, int]
"""(inode, size, mtime in ns) of the file as last read: unchanged, it is not parsed again."""


def _read(path: Path, last: _Stamp | None) -> tuple[_Stamp | None, dict[Address, Entry] | None, str | None]:
    """(stamp, entries, problem), in a thread: entries None when the file is unchanged since
    ``last``, or is missing or does not parse (``problem`` says which)."""
    try:
        status = path.stat()
        stamp = (status.st_ino, status.st_size, status.st_mtime_ns)
        if stamp == last:
            return stamp, None, None
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return None, None, "the file is missing"
    try:
        return stamp, parse(text), None
    except ValueError as exc:
        return None, None, str(exc)


def _write_atomically(path: Path, text: str) -> None:
    target = Path(os.path.realpath(path))  # a symlinked file stays a link to the rewritten target
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileNotFoundError):
            os.chmod(temporary, stat.S_IMODE(os.stat(target).st_mode))
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


# -- the store --------------------------------------------------------------------------------------


class FileConfigurationStore:
    def __init__(self) -> None:
        self._path: Path | None = None
        self._entries: dict[Address, Entry] = {}
        self._lock = asyncio.Lock()
        self._subscribers: Subscribers[QueuedSubscription] = Subscribers(NAME)
        self._watching: asyncio.Task[None] | None = None
        self._stop_watching: asyncio.Event | None = None
        self._broken: str | None = None
        self._stamp: _Stamp | None = None
        """The parse error last logged, so a broken file is reported once, not at every read."""

    async def init(self, metadata: Mapping[str, str]) -> None:
        settings = decode(FileMetadata, metadata)
        try:
            path, text = await asyncio.to_thread(_read_at_start, settings.path, settings.create)
        except OSError as exc:
            raise ComponentInitError(
                f"cannot read configuration file {settings.path}: {exc}", field="path"
            ) from None
        try:
            self._entries = parse(text)
        except ValueError as exc:
            raise ComponentInitError(f"configuration file {path}: {exc}", field="path") from None
        self._path = path

    def features(self) -> frozenset[Feature]:
        return frozenset()

    def _live(self) -> Path:
        if self._path is None:
            raise BackendError("file configuration store is not initialised or already closed")
        return self._path

    async def _refresh(self, path: Path, *, for_write: bool = False) -> None:
        """Re-read the file and deliver what changed since the last read (the lock held). A file
        that is missing or does not parse keeps the last good content; a write refuses it."""
        try:
            stamp, entries, problem = await asyncio.to_thread(_read, path, self._stamp)
        except OSError as exc:
            raise BackendError(f"cannot read configuration file {path}: {exc}") from exc
        if problem is not None:
            if for_write:
                raise BackendError(f"configuration file {path} is not overwritten: {problem}")
            if problem != self._broken:
                log.error(f"{NAME}: keeping the last good content", path=str(path), problem=problem)
                self._broken = problem
            return
        if self._broken is not None:
            log.info(f"{NAME}: the file reads again", path=str(path))
            self._broken = None
        self._stamp = stamp
        if entries is not None:
            self._apply(entries)

    def _apply(self, entries: dict[Address, Entry]) -> None:
        old, self._entries = self._entries, entries
        changed = []
        for where, entry in entries.items():
            item = entry.item(where)
            previous = old.get(where)
            if previous is None or previous.item(where) != item:
                changed.append(item)
        changed += [deleted(*where) for where in old if where not in entries]
        self._subscribers.publish(changed)

    async def get(self, request: GetRequest) -> list[ConfigurationItem]:
        path = self._live()
        async with self._lock:
            await self._refresh(path)
            entries = self._entries
        if request.keys:
            wanted = [(request.group, request.label, key) for key in unique(request.keys)]
            return [entries[where].item(where) for where in wanted if where in entries]
        return [
            entry.item(where)
            for where, entry in entries.items()
            if where[0] == request.group and where[1] == request.label
        ]

    async def subscribe(self, request: SubscribeRequest, handler: ChangeHandler) -> QueuedSubscription:
        path = self._live()
        async with self._lock:
            await self._watch(path)
            # Read once the watcher runs: a change from now on is either in this read or reported.
            await self._refresh(path)
            subscription = QueuedSubscription(request, handler, NAME, self._subscribers.discard)
            return self._subscribers.add(subscription)

    async def save(self, request: SaveRequest) -> None:
        path = self._live()
        async with self._lock:
            await self._refresh(path, for_write=True)
            entries = dict(self._entries)
            for item in request.items:
                where = (item.group, item.label, item.key)
                old = entries.get(where)
                version = next_version(old.item(where) if old else None)
                entries[where] = Entry(item.value, version, dict(item.metadata), dict(item.tags))
            await self._write(path, entries)

    async def delete(self, request: DeleteRequest) -> None:
        path = self._live()
        async with self._lock:
            await self._refresh(path, for_write=True)
            entries = dict(self._entries)
            for key in unique(request.keys):
                entries.pop((request.group, request.label, key), None)
            if len(entries) != len(self._entries):
                await self._write(path, entries)

    async def _write(self, path: Path, entries: dict[Address, Entry]) -> None:
        try:
            await asyncio.to_thread(lambda: _write_atomically(path, render(entries)))
        except OSError as exc:
            raise BackendError(f"cannot write configuration file {path}: {exc}") from exc
        # Delivered from here, once: the watcher's read of this write then finds nothing new.
        self._apply(entries)

    # -- following edits ----------------------------------------------------------------------------

    async def _watch(self, path: Path) -> None:
        if self._watching is not None and not self._watching.done():
            return
        import watchfiles

        real = Path(await asyncio.to_thread(os.path.realpath, path))
        directories = sorted({str(path.parent), str(real.parent)})
        names = {path.name, real.name}

        def ours(change: watchfiles.Change, changed: str) -> bool:
            name = os.path.basename(changed)
            return name in names or name.startswith("..")  # ..data: a Kubernetes ConfigMap swap

        self._stop_watching = asyncio.Event()
        changes = watchfiles.awatch(
            *directories,
            watch_filter=ours,
            stop_event=self._stop_watching,
            recursive=False,
            step=_STEP_MS,
            debounce=_DEBOUNCE_MS,
        )
        self._watching = asyncio.create_task(self._follow(path, changes))
        # awatch sets up inotify (or polling) before its first wait for changes; the generator is
        # suspended in that wait once the watch is live.
        for _ in range(1000):
            if getattr(changes, "ag_await", None) is not None or self._watching.done():
                break
            await asyncio.sleep(0.001)
        if self._watching.done():
            error = self._watching.exception()
            raise BackendError(f"cannot watch configuration file {path}: {error}")

    async def _follow(self, path: Path, changes: AsyncGenerator[Any, None]) -> None:
        try:
            async for _ in changes:
                async with self._lock:
                    try:
                        await self._refresh(path)
                    except BackendError as exc:
                        log.warning(f"{NAME}: cannot read the changed file", path=str(path), error=str(exc))
        except Exception as exc:
            if self._stop_watching is not None and not self._stop_watching.is_set():
                log.error(f"{NAME}: stopped following the file", path=str(path), error=str(exc))
            raise

    async def close(self) -> None:
        if self._stop_watching is not None:
            self._stop_watching.set()  # awatch's thread sees it within one step and returns
        watching, self._watching = self._watching, None
        if watching is not None:
            await asyncio.wait({watching}, timeout=2.0)
            await cancel_and_wait(watching)
        self._path = None
        await self._subscribers.close()
