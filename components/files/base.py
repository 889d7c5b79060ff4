"""The file store contract (Layotto's File API: put, get, delete, stat and list of named files).

A file's *name* is a relative path with ``/`` between segments (``reports/2026/q1.csv``). The
service (services/files.py) has refused every name that could leave a store's root before a store
sees it: empty names and segments, ``.`` and ``..`` segments, a leading ``/``, NUL and other control
characters, and ``\\`` (so an encoded backslash is no way round). A store may refuse more (the local
store refuses a name whose path passes through a symlink pointing out of its root) with
:class:`InvalidFileNameError`.

Edge cases every backend honours (tests/conformance/test_file_conformance.py proves them):

* ``put`` streams: chunks are written as they arrive, with memory bounded by the store (a buffer or
  a multipart part), never by the file's size. A put replaces an existing file of that name, and
  the replacement is atomic: a reader sees the whole old file or the whole new one, never a mix
  or half a file; a put that fails (the stream raising, a disk full) leaves the old file as it
  was. With ``create_only`` a put never replaces a file: when one of that name exists at the
  moment the new one would take its place, it raises :class:`FileExists` and the old file stays
  (the check and the write are one atomic step, so of two create-only puts racing for a name one
  wins, the other gets FileExists). An empty stream writes an empty file (HTTP has no "no body";
  Layotto's gRPC treats an empty stream as a no-op). ``metadata`` replaces the file's metadata;
  keys may come back lower-cased (S3 lower-cases them), so callers should use lower-case keys.
* ``get`` answers a :class:`FileContent` (its size, last-modified time and metadata, then its
  chunks) or raises :class:`FileNotFound` for a missing file (a directory is not a file).
  With a :class:`ByteRange`, only those bytes come; a range starting past the end raises
  :class:`RangeNotSatisfiableError` carrying the file's size. The content must be released
  (``release()``) whether or not its chunks were read.
* ``delete`` of a missing file raises :class:`FileNotFound` (Layotto's NOT_FOUND).
* ``stat`` answers a :class:`FileInfo` or raises :class:`FileNotFound`.
* ``list`` answers the files whose names start with ``prefix`` (a plain string prefix: ``dir/``
  lists a folder's files and every file below it, ``dir/re`` those starting with ``re``), in
  byte order of their names, at most ``page_size`` of them, only names after ``marker`` when one
  is given. The answer's ``marker`` is the last name on the page and ``is_truncated`` tells
  whether more files follow: passing that marker back gives the next page. Directories are not
  listed (only files); list entries may carry no metadata (S3 lists none).
* A store failing (server away, disk error, permission) raises
  :class:`~components.errors.BackendError`.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from components.errors import FileExists, FileNotFound, InvalidFileNameError, RangeNotSatisfiableError

_NO_METADATA: Mapping[str, str] = {}

__all__ = [
    "FileExists",
    "FileNotFound",
    "InvalidFileNameError",
    "RangeNotSatisfiableError",
]  # the contract's errors


class Feature(enum.StrEnum):
    """Optional capabilities, reported in GET /v1.0/metadata (none yet: every store has them all)."""


@dataclass(slots=True, frozen=True)
class ByteRange:
    """One HTTP byte range (RFC 9110 section 14.1.2): ``first-last`` (both inclusive), ``first-``
    (``last`` None: to the end) or the suffix ``-n`` (``first`` None, ``last`` = n, the file's
    last n bytes)."""

    first: int | None
    last: int | None

    def resolve(self, size: int) -> tuple[int, int] | None:
        """The inclusive (first, last) byte offsets served from a file of ``size`` bytes; None when
        the range is not satisfiable (it starts at or past the end, or is an empty suffix)."""
        if self.first is None:
            suffix = self.last or 0
            if suffix <= 0 or size == 0:
                return None
            return max(0, size - suffix), size - 1
        if self.first >= size:
            return None
        last = size - 1 if self.last is None else min(self.last, size - 1)
        return self.first, last


@dataclass(slots=True, frozen=True)
class FileInfo:
    name: str
    size: int
    last_modified: datetime | None
    """Timezone-aware (UTC) when known."""
    metadata: Mapping[str, str] = field(default_factory=lambda: _NO_METADATA)


@dataclass(slots=True)
class FileContent:
    """An opened file: what is known of it, then its bytes."""

    info: FileInfo
    """``size`` is the whole file's size, whatever range was asked."""
    span: tuple[int, int] | None
    """The inclusive (first, last) offsets of the bytes ``chunks`` yields when a range was asked;
    None when it yields the whole file."""
    chunks: AsyncIterator[bytes]
    release: Callable[[], Awaitable[None]]
    """Closes the file or the download; safe to call more than once."""

    @property
    def length(self) -> int:
        """How many bytes ``chunks`` yields."""
        if self.span is None:
            return self.info.size
        return self.span[1] - self.span[0] + 1


@dataclass(slots=True, frozen=True)
class PutRequest:
    name: str
    chunks: AsyncIterator[bytes]
    metadata: Mapping[str, str] = field(default_factory=lambda: _NO_METADATA)
    create_only: bool = False
    """Refuse (FileExists) rather than replace a file of that name, atomically."""


@dataclass(slots=True, frozen=True)
class ListRequest:
    prefix: str = ""
    page_size: int = 100
    """Positive (the service refuses anything else)."""
    marker: str = ""
    """Only names after this one ("" from the first)."""


@dataclass(slots=True, frozen=True)
class ListResult:
    files: list[FileInfo]
    marker: str
    """The last name of this page ("" when it is empty): the next page's ``ListRequest.marker``."""
    is_truncated: bool


class FileStore(Protocol):
    async def init(self, metadata: Mapping[str, str]) -> None:
        """Decode the component metadata (raising MetadataError naming the field) and reach the
        storage (raising ComponentInitError when it cannot be used)."""

    def features(self) -> frozenset[Feature]: ...

    async def put(self, request: PutRequest) -> None:
        """Write the file from its chunks, atomically replacing any file of that name."""

    async def get(self, name: str, byte_range: ByteRange | None = None) -> FileContent:
        """Open the file (raising FileNotFound / RangeNotSatisfiableError before any byte)."""

    async def delete(self, name: str) -> None: ...

    async def stat(self, name: str) -> FileInfo: ...

    async def list(self, request: ListRequest) -> ListResult: ...

    async def close(self) -> None:
        """Release every resource (an open download ends with an error). Idempotent."""
