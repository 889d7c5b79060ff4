"""file.local: files in a folder of the local disk (``rootPath``, the name Dapr's
``bindings.localstorage`` gives its folder), a file name being its path below that folder.

A put writes a temporary file in the target's own folder (``.l8-upload-*``, never listed, a name no
user file may take), fsyncs it, renames it over the target and fsyncs the folder: a reader holds
the old file or the new one, never half of one, and a crash mid-put leaves the old file (and at
worst a stray temporary file). A file's metadata are extended attributes (``user.l8.<key>``) set on
the temporary file before the rename, so data and metadata are replaced together; a put with
metadata on a file system without extended attributes fails saying so. Folders are created as
puts need them and left in place by deletes.

No name leaves the root: the service has refused ``..``, absolute names, NUL, control characters
and backslashes, and a name whose path passes through a symlink below the root (to a file or a
folder, pointing out of the root or not) is refused too, so no link leads out; symlinks are not
listed. (The root itself may be a symlink. A symlink swapped in between that check and the use is
out of scope: the root is the sidecar's to own.)

Disk I/O runs in worker threads (a 1 MiB read or write per hop), never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import heapq
import os
import stat
import tempfile
from collections.abc import AsyncGenerator, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

from pydantic import field_validator

from components.errors import (
    BackendError,
    ComponentInitError,
    FileExists,
    FileNotFound,
    InvalidFileNameError,
    RangeNotSatisfiableError,
)
from components.files.base import (
    ByteRange,
    Feature,
    FileContent,
    FileInfo,
    ListRequest,
    ListResult,
    PutRequest,
)
from components.files.names import name_problem, prefix_problem
from components.files.worker_threads import OneAhead, acquire, in_thread
from components.metadata import ComponentMetadata, decode, metadata_error

CHUNK_SIZE = 1024 * 1024
"""Bytes per read and per write: big enough that the thread hop costs little per byte."""
TEMPORARY_PREFIX = ".l8-upload-"
XATTR_PREFIX = "user.l8."
FILE_MODE = 0o644


class LocalFileMetadata(ComponentMetadata):
    rootPath: str
    """The folder holding the files; created at start-up when missing."""

    @field_validator("rootPath")
    @classmethod
    def _root(cls, value: str) -> str:
        if not value.strip():
            raise metadata_error("give the folder that holds the files")
        return value


class LocalFileStore:
    def __init__(self) -> None:
        self._root = ""
        """The root's resolved path."""

    async def init(self, metadata: Mapping[str, str]) -> None:
        settings = decode(LocalFileMetadata, metadata)
        root = settings.rootPath
        try:
            self._root = await asyncio.to_thread(_prepare_root, root)
        except OSError as exc:
            raise ComponentInitError(f"cannot use {root} as the files' folder: {exc}", "rootPath") from None

    def features(self) -> frozenset[Feature]:
        return frozenset()

    async def put(self, request: PutRequest) -> None:
        path = await asyncio.to_thread(self._path, request.name)
        fd, temporary = await acquire(_open_temporary, (path, request.name), _discard_temporary)
        open_ = True
        writer = OneAhead()
        try:
            buffer = bytearray()
            async for chunk in request.chunks:
                buffer += chunk
                if len(buffer) >= CHUNK_SIZE:
                    # Written while the next chunk is received: one write in flight at a time.
                    full, buffer = buffer, bytearray()
                    await writer.submit(_write_all, fd, full)
            if buffer:
                await writer.submit(_write_all, fd, buffer)
            await writer.result()
            await in_thread(_seal, fd, request.name, request.metadata)
            open_ = False
            os.close(fd)
            await in_thread(_install, temporary, path, request.name, request.create_only)
        except BaseException:
            await writer.settle()  # a thread may still be writing: let it end before the close
            # Quick calls, kept off threads so that a cancelled put still runs them.
            if open_:
                os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(temporary)  # gone already when the rename happened
            raise

    async def get(self, name: str, byte_range: ByteRange | None = None) -> FileContent:
        fd, info, span = await acquire(self._open, (name, byte_range), lambda opened: os.close(opened[0]))
        start, length = (0, info.size) if span is None else (span[0], span[1] - span[0] + 1)
        chunks = _read(fd, start, length)
        closed = False

        async def release() -> None:
            nonlocal closed
            if not closed:
                closed = True
                await chunks.aclose()  # waits for a read in flight before the descriptor closes
                os.close(fd)

        return FileContent(info, span, chunks, release)

    async def delete(self, name: str) -> None:
        await asyncio.to_thread(self._delete, name)

    async def stat(self, name: str) -> FileInfo:
        return await asyncio.to_thread(self._stat, name)

    async def list(self, request: ListRequest) -> ListResult:
        return await asyncio.to_thread(self._list, request)

    async def close(self) -> None:
        pass  # every open download holds its own descriptor, closed by its release()

    # -- in worker threads -----------------------------------------------------------------------

    def _path(self, name: str) -> str:
        """The resolved path of ``name``, refused unless it lies under the root."""
        problem = name_problem(name)
        if problem is None and any(part.startswith(TEMPORARY_PREFIX) for part in name.split("/")):
            problem = f"file name {name!r} is reserved for the store's temporary files"
        if problem is not None:
            raise InvalidFileNameError(problem)
        path = os.path.join(self._root, name)
        if os.path.realpath(path) != path:
            raise InvalidFileNameError(f"file name {name!r} passes through a symlink")
        return path

    def _open(self, name: str, byte_range: ByteRange | None) -> tuple[int, FileInfo, tuple[int, int] | None]:
        path = self._path(name)
        with _os_errors(name):
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            with _os_errors(name):
                status = os.fstat(fd)
                if not stat.S_ISREG(status.st_mode):
                    raise FileNotFound(name)
                info = _info(name, status, fd)
            span = None
            if byte_range is not None:
                span = byte_range.resolve(info.size)
                if span is None:
                    raise RangeNotSatisfiableError(info.size)
        except BaseException:
            os.close(fd)
            raise
        return fd, info, span

    def _stat(self, name: str) -> FileInfo:
        path = self._path(name)
        with _os_errors(name):
            status = os.stat(path)
            if not stat.S_ISREG(status.st_mode):
                raise FileNotFound(name)
            return _info(name, status, path)

    def _delete(self, name: str) -> None:
        path = self._path(name)
        with _os_errors(name):
            if not stat.S_ISREG(os.stat(path).st_mode):
                raise FileNotFound(name)
            os.unlink(path)

    def _list(self, request: ListRequest) -> ListResult:
        problem = prefix_problem(request.prefix)
        if problem is not None:
            raise InvalidFileNameError(problem)
        folder = request.prefix.rpartition("/")[0]
        start = os.path.join(self._root, folder) if folder else self._root
        if os.path.realpath(start) != start:
            raise InvalidFileNameError(f"prefix {request.prefix!r} passes through a symlink")
        names = (
            name
            for name in _walk(start, f"{folder}/" if folder else "", request.prefix)
            if name > request.marker
        )
        page = heapq.nsmallest(request.page_size + 1, names)
        truncated = len(page) > request.page_size
        del page[request.page_size :]
        files = []
        for name in page:
            path = os.path.join(self._root, name)
            try:
                files.append(_info(name, os.stat(path, follow_symlinks=False), path))
            except FileNotFoundError:
                continue  # deleted while listing
            except OSError as exc:
                raise BackendError(f"cannot list {name}: {exc.strerror or exc}") from None
        return ListResult(files, page[-1] if page else "", truncated)


def _prepare_root(root: str) -> str:
    path = Path(root).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    resolved = os.path.realpath(path)
    if not os.path.isdir(resolved):
        raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(root))
    if not os.access(resolved, os.R_OK | os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, "not readable and writable", str(root))
    return resolved


def _open_temporary(path: str, name: str) -> tuple[int, str]:
    folder = os.path.dirname(path)
    with _os_errors(name, writing=True):
        os.makedirs(folder, exist_ok=True)
        if os.path.isdir(path):
            raise InvalidFileNameError(f"{name} is a folder: a file cannot replace it")
        fd, temporary = tempfile.mkstemp(prefix=TEMPORARY_PREFIX, dir=folder)
    return fd, temporary


def _write_all(fd: int, data: bytearray) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _seal(fd: int, name: str, metadata: Mapping[str, str]) -> None:
    """The temporary file's metadata and mode, and its bytes on the disk."""
    with _os_errors(name, writing=True):
        for key, value in metadata.items():
            try:
                os.setxattr(fd, XATTR_PREFIX + key, value.encode())
            except OSError as exc:
                if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
                    raise BackendError(
                        "the file system under rootPath keeps no extended attributes, so a file's "
                        "metadata cannot be stored"
                    ) from None
                raise BackendError(f"cannot store metadata {key!r}: {exc.strerror or exc}") from None
        os.fchmod(fd, FILE_MODE)
        os.fsync(fd)


def _install(temporary: str, path: str, name: str, create_only: bool = False) -> None:
    """The temporary file renamed over the target (or, create-only, linked where no file is: the
    link fails when one is, atomically), and the change on the disk."""
    with _os_errors(name, writing=True):
        if create_only:
            try:
                os.link(temporary, path)
            except FileExistsError:
                raise FileExists(name) from None
            os.unlink(temporary)
        else:
            os.replace(temporary, path)
        folder = os.open(os.path.dirname(path), os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def _discard_temporary(opened: tuple[int, str]) -> None:
    fd, temporary = opened
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(temporary)


async def _read(fd: int, start: int, length: int) -> AsyncGenerator[bytes, None]:
    """The bytes from ``start``, one block read ahead while the previous one is sent."""
    reader = OneAhead()
    offset, end = start, start + length
    try:
        if offset < end:
            await reader.submit(os.pread, fd, min(CHUNK_SIZE, end - offset), offset)
        while offset < end:
            data: bytes = await reader.result()
            if not data:
                raise BackendError("the file was truncated while it was read")
            offset += len(data)
            if offset < end:
                await reader.submit(os.pread, fd, min(CHUNK_SIZE, end - offset), offset)
            yield data
    finally:
        await reader.settle()


def _info(name: str, status: os.stat_result, where: int | str) -> FileInfo:
    modified = datetime.fromtimestamp(status.st_mtime, UTC)
    return FileInfo(name, status.st_size, modified, _metadata(where))


def _metadata(where: int | str) -> dict[str, str]:
    found = {}
    try:
        for attribute in os.listxattr(where):
            if attribute.startswith(XATTR_PREFIX):
                found[attribute[len(XATTR_PREFIX) :]] = os.getxattr(where, attribute).decode(errors="replace")
    except OSError as exc:
        if exc.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOENT):
            raise
    return found


def _walk(folder: str, relative: str, prefix: str) -> Iterator[str]:
    """The names of the regular files under ``folder`` (``relative`` is its name's start) that
    begin with ``prefix``, descending only into folders that can hold such names."""
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as exc:
        raise BackendError(f"cannot list {relative or '/'}: {exc.strerror or exc}") from None
    for entry in entries:
        name = relative + entry.name
        if entry.name.startswith(TEMPORARY_PREFIX):
            continue
        if entry.is_dir(follow_symlinks=False):
            below = name + "/"
            if below.startswith(prefix) or prefix.startswith(below):
                yield from _walk(entry.path, below, prefix)
        elif entry.is_file(follow_symlinks=False) and name.startswith(prefix):
            yield name


@contextlib.contextmanager
def _os_errors(name: str, *, writing: bool = False) -> Iterator[None]:
    """OSError into the contract's errors at the component boundary."""
    try:
        yield
    except OSError as error:
        if writing and isinstance(error, NotADirectoryError | FileExistsError):
            raise InvalidFileNameError(f"{name}: a file stands where a folder of its path must be") from None
        if not writing and isinstance(error, FileNotFoundError | NotADirectoryError | IsADirectoryError):
            raise FileNotFound(name) from None
        if error.errno == errno.ELOOP:
            raise InvalidFileNameError(f"file name {name!r} is a symlink") from None
        if error.errno == errno.ENAMETOOLONG:
            raise InvalidFileNameError(f"file name {name!r} has a part too long for the disk") from None
        raise BackendError(f"{name}: {error.strerror or error}") from None
