"""configuration.file: the items of one YAML file, followed as it is edited.

Metadata: ``path`` (required) names the file; it must exist unless ``create`` is true, in which
case a missing file is created empty (its directory must exist).

The format::

    # The default group and label: `key: value`, or the long form.
    greeting: hello               # a scalar: the text written is the value
    retries: {value: "3", version: "12", metadata: {owner: ops}, tags: {team: payments}}
    groups:                       # reserved: the other groups and labels
      payments:                   # <group>
        prod:                     # <label>
          limit: "100"            # key: value, or the long form
          fee: {value: "0.5", tags: {reviewed: "yes"}}

Every scalar is read as the text written, without YAML's typing (``yes``, ``0x10``, ``1.50`` and
``null`` stay as written; an empty value is the empty string). The long form is a mapping with a
``value`` and optionally ``version``, ``metadata`` and ``tags`` (mappings of text); any other
field, or a list, is an error. A default item named ``groups`` lives under
``groups: {default: {default: ...}}``, the one place for it; an item written twice (at the top
level and there) is the one written last.

An item's version is its ``version`` when one is written, else a short hash of its value,
metadata and tags: an item nobody touches keeps its version across reloads and restarts, and an
edited one gets a new one. A save writes an explicit version (the old one plus one when it is a
number, 1 for a new item, else the clock in nanoseconds), so saving an unchanged item still
changes its version.

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
import hashlib
import json
import os
import re
import stat
import tempfile
import time
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
import yaml
from pydantic import field_validator

from components.configuration.base import (
    DEFAULT_GROUP,
    DEFAULT_LABEL,
    ConfigurationItem,
    DeleteRequest,
    Feature,
    GetRequest,
    SaveRequest,
    SubscribeRequest,
)
from components.configuration.subscriptions import (
    Address,
    ChangeHandler,
    QueuedSubscription,
    Subscribers,
    cancel_and_wait,
    deleted,
    unique,
)
from components.errors import BackendError, ComponentInitError
from components.metadata import ComponentMetadata, GoBool, decode
from components.redis_connection import metadata_error

log = structlog.get_logger(__name__)

NAME = "configuration.file"
GROUPS = "groups"
_LONG_FORM_FIELDS = frozenset({"value", "version", "metadata", "tags"})
_NUMBER = re.compile(r"[0-9]{1,18}\Z")
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


class _TextLoader(yaml.SafeLoader):
    """Reads every plain scalar as the text written: no bools, numbers, nulls or dates."""


_TextLoader.yaml_implicit_resolvers = {}


class _Dumper(yaml.SafeDumper):
    pass


def _represent_text(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|" if "\n" in data else None)


_Dumper.add_representer(str, _represent_text)


@dataclass(frozen=True, slots=True)
class _Entry:
    """One item as the file holds it."""

    value: str
    version: str | None = None
    """None: not written, derived from the content."""
    metadata: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)

    def item(self, where: Address) -> ConfigurationItem:
        group, label, key = where
        version = self.version if self.version is not None else self.content_hash()
        return ConfigurationItem(key, self.value, version, self.metadata, group, label, self.tags)

    def content_hash(self) -> str:
        content = json.dumps([self.value, sorted(self.metadata.items()), sorted(self.tags.items())])
        return hashlib.sha256(content.encode()).hexdigest()[:16]

    def node(self) -> str | dict[str, Any]:
        """The short form when it says it all, else the long form without its empty fields."""
        if self.version is None and not self.metadata and not self.tags:
            return self.value
        fields = {"version": self.version, "metadata": dict(self.metadata), "tags": dict(self.tags)}
        return {"value": self.value} | {name: value for name, value in fields.items() if value}


def _text_map(node: Any, where: str) -> dict[str, str]:
    if node == "":
        return {}  # `tags:` left empty
    if not isinstance(node, dict) or not all(isinstance(v, str) for v in node.values()):
        raise ValueError(f"{where}: expected a mapping of text values")
    return {str(k): v for k, v in node.items()}


def _entry(node: Any, where: str) -> _Entry:
    if isinstance(node, str):
        return _Entry(node)
    if not isinstance(node, dict):
        raise ValueError(f"{where}: expected a text value or a mapping with a `value`")
    unknown = set(node) - _LONG_FORM_FIELDS
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {sorted(map(str, unknown))} (use value, version, "
                         "metadata, tags)")  # fmt: skip
    value, version = node.get("value"), node.get("version", "")
    if not isinstance(value, str) or not isinstance(version, str):
        raise ValueError(f"{where}.{'version' if isinstance(value, str) else 'value'}: expected a text value")
    metadata = _text_map(node.get("metadata", {}), f"{where}.metadata")
    tags = _text_map(node.get("tags", {}), f"{where}.tags")
    return _Entry(value, version or None, metadata, tags)


def _mapping(node: Any, where: str) -> dict[str, Any]:
    if not isinstance(node, dict):
        raise ValueError(f"{where}: expected a mapping")
    return node


def parse(text: str) -> dict[Address, _Entry]:
    """The items of a file, in file order; ValueError saying where the file is wrong."""
    try:
        document = yaml.load(text, Loader=_TextLoader)  # a SafeLoader: builds no Python objects
    except yaml.YAMLError as exc:
        raise ValueError(" ".join(str(exc).split())) from None
    if document is None or document == "":
        return {}
    entries: dict[Address, _Entry] = {}
    for key, node in _mapping(document, "the top level").items():
        if key != GROUPS:
            entries[(DEFAULT_GROUP, DEFAULT_LABEL, key)] = _entry(node, key)
            continue
        for group, labels in _mapping(node, GROUPS).items():
            for label, items in _mapping(labels, f"{GROUPS}.{group}").items():
                for item_key, item_node in _mapping(items, f"{GROUPS}.{group}.{label}").items():
                    where = f"{GROUPS}.{group}.{label}.{item_key}"
                    entries[(group, label, item_key)] = _entry(item_node, where)
    return entries


def render(entries: Mapping[Address, _Entry]) -> str:
    document: dict[str, Any] = {}
    groups: dict[str, dict[str, dict[str, Any]]] = {}
    for (group, label, key), entry in entries.items():
        if (group, label) == (DEFAULT_GROUP, DEFAULT_LABEL) and key != GROUPS:
            document[key] = entry.node()
        else:
            groups.setdefault(group, {}).setdefault(label, {})[key] = entry.node()
    if groups:
        document[GROUPS] = groups
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def next_version(old: ConfigurationItem | None) -> str:
    """The old version plus one; a new item's is 1. An item whose version is not a number (a hash,
    or one an editor wrote) gets a number no earlier save of it can have given: the clock's."""
    if old is None:
        return "1"
    if _NUMBER.match(old.version):
        return str(int(old.version) + 1)
    return str(time.time_ns())


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


def _read(path: Path, last: _Stamp | None) -> tuple[_Stamp | None, dict[Address, _Entry] | None, str | None]:
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
        self._entries: dict[Address, _Entry] = {}
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

    def _apply(self, entries: dict[Address, _Entry]) -> None:
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
                entries[where] = _Entry(item.value, version, dict(item.metadata), dict(item.tags))
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

    async def _write(self, path: Path, entries: dict[Address, _Entry]) -> None:
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
