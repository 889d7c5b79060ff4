"""bindings.localstorage: files under a root folder, with Dapr's metadata and behaviour.

Metadata: ``rootPath`` (required; a relative path is taken from the working directory, symlinks in
it are resolved at start-up, and ``/proc``, ``/sys``, ``/boot`` and ``/var/run/secrets`` are
refused, as in Dapr). The folder is created when missing.

Operations (request metadata ``fileName``, a path under the root):

``create``
    Writes the data; without ``fileName`` a random UUID names the file. As in Dapr, data that is a
    JSON string is unquoted, and data that is then valid standard base64 is decoded (Dapr's
    "binary upload": the docs say the binding detects base64 itself). Folders are created on the
    way. Answers ``{"fileName": "<path relative to the root>"}``.
``get``
    Answers the file's bytes; a missing file is an error (``file not found: <path>``).
``list``
    Answers a JSON array of the absolute paths of every file under ``fileName`` (the root when
    absent), ``null`` when there are none (Go's nil slice).
``delete``
    Removes the file; nothing to answer.

A ``fileName`` never leaves the root, whatever it holds: it is joined as if the root were ``/``
(``..`` stops at the root, an absolute name starts at the root, and a symlink inside the root is
followed as if its target were under the root too), as Dapr's ``securejoin`` does; a NUL byte is
refused. File work runs in a worker thread, so the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import os
import stat
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import orjson
from pydantic import field_validator

from components.bindings.base import (
    CREATE,
    DELETE,
    GET,
    LIST,
    BindingError,
    Feature,
    InvokeRequest,
    InvokeResponse,
)
from components.errors import BackendError, ComponentInitError
from components.metadata import ComponentMetadata, decode, metadata_error

_OPERATIONS = (CREATE, GET, LIST, DELETE)
_FEATURES = frozenset({Feature.OUTPUT_BINDING})
_DISALLOWED_ROOTS = ("/proc", "/sys", "/boot", "/var/run/secrets")
_MAX_SYMLINKS = 255
FILE_NAME = "fileName"


class LocalStorageMetadata(ComponentMetadata):
    rootPath: str

    @field_validator("rootPath")
    @classmethod
    def _root(cls, value: str) -> str:
        if not value.strip():
            raise metadata_error("must not be empty")
        if "\x00" in value:
            raise metadata_error("must not contain a NUL byte")
        return value


def resolve_root(root_path: str) -> Path:
    """The root as an absolute path with its existing part's symlinks resolved; ValueError when
    it is a file or a disallowed location."""
    root = Path(os.path.abspath(root_path))
    existing = root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise ValueError("represents a file and not a directory")
    resolved = Path(os.path.realpath(existing)) / root.relative_to(existing)
    for disallowed in _DISALLOWED_ROOTS:
        if resolved == Path(disallowed) or Path(disallowed) in resolved.parents:
            raise ValueError("points to a disallowed location")
    return resolved


def secure_join(root: Path, name: str) -> Path:
    """``name`` under ``root`` as if ``root`` were ``/``: symlinks inside are followed but their
    targets are read under ``root`` too, so the result is always ``root`` or below it."""
    if "\x00" in name:
        raise BindingError(f"invalid file name {name!r}: contains a NUL byte")
    pending = [part for part in name.replace("\\", "/").split("/") if part]
    parts: list[str] = []
    hops = 0
    while pending:
        part = pending.pop(0)
        if part == ".":
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        candidate = root.joinpath(*parts, part)
        try:
            is_link = stat.S_ISLNK(os.lstat(candidate).st_mode)
        except OSError:
            is_link = False
        if not is_link:
            parts.append(part)
            continue
        hops += 1
        if hops > _MAX_SYMLINKS:
            raise BindingError(f"invalid file name {name!r}: too many levels of symbolic links")
        target = os.readlink(candidate)
        if target.startswith("/"):
            parts = []
        pending = [p for p in target.split("/") if p] + pending
    return root.joinpath(*parts)


def _decoded(data: bytes) -> bytes:
    """Dapr's create: a JSON string is unquoted, then valid standard base64 is decoded."""
    if len(data) >= 2 and data[:1] == b'"' and data[-1:] == b'"':
        with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
            data = orjson.loads(data).encode()
    try:
        return base64.b64decode(data.replace(b"\r", b"").replace(b"\n", b""), validate=True)
    except (binascii.Error, ValueError):
        return data


class LocalStorageBinding:
    def __init__(self) -> None:
        self._root: Path | None = None

    async def init(self, metadata: Mapping[str, str]) -> None:
        settings = decode(LocalStorageMetadata, metadata)
        try:
            root = await asyncio.to_thread(resolve_root, settings.rootPath)
        except ValueError as exc:
            raise ComponentInitError(f"property rootPath {exc}", field="rootPath") from None
        try:
            await asyncio.to_thread(root.mkdir, parents=True, exist_ok=True)
        except OSError as exc:
            raise ComponentInitError(
                f"unable to create directory specified by 'rootPath' {root}: {exc}", field="rootPath"
            ) from None
        self._root = root

    def features(self) -> frozenset[Feature]:
        return _FEATURES

    def operations(self) -> Sequence[str]:
        return _OPERATIONS

    async def invoke(self, request: InvokeRequest) -> InvokeResponse | None:
        if self._root is None:
            raise BackendError("localstorage binding is not initialised or already closed")
        name = request.metadata.get(FILE_NAME, "")
        if not name and request.operation == CREATE:
            name = str(uuid.uuid4())
        return await asyncio.to_thread(self._run, self._root, request, name)

    def _run(self, root: Path, request: InvokeRequest, name: str) -> InvokeResponse | None:
        path = secure_join(root, name)
        operation = request.operation
        try:
            if operation == CREATE:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(_decoded(request.data))
                relative = os.path.relpath(path, root)
                return InvokeResponse(orjson.dumps({"fileName": relative}))
            if operation == GET:
                try:
                    return InvokeResponse(path.read_bytes())
                except FileNotFoundError:
                    raise BindingError(f"file not found: {path}") from None
            if operation == DELETE:
                path.unlink()
                return None
            if operation == LIST:
                return InvokeResponse(_list(path))
        except BindingError:
            raise
        except OSError as exc:
            raise BindingError(f"error on {operation} of {path}: {exc.strerror or exc}") from None
        raise BindingError(f"unsupported operation {operation}")

    async def close(self) -> None:
        self._root = None


def _list(folder: Path) -> bytes:
    if not folder.is_dir():
        if not folder.exists():
            raise BindingError(f"error getting stats for path {folder}: no such file or directory")
        raise BindingError(f"unable to list files as the file specified is not a directory: {folder}")
    files = [
        os.path.join(dirpath, filename)
        for dirpath, _, filenames in sorted(os.walk(folder))
        for filename in sorted(filenames)
    ]
    return orjson.dumps(files) if files else b"null"
