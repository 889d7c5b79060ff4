"""The file building block: Layotto's File API (put, get, delete, stat and list of named files,
layotto.md section 1.8) over the file stores of components/files.

Requests are checked in Layotto's order: stores configured, the store's name, then the file name
(components/files/names.py: no name may climb out of a store's root, whatever the store). Stream
bodies are not under a deadline (a 1 GB upload takes as long as its client sends): ``put`` and
the bytes of ``get`` run outside the store's outbound policy, while opening a download, ``stat``,
``delete`` and ``list`` run under it (``delete`` is never resent after a lost reply: a resent one
would find the file gone and answer "not found").

Metadata keys must be HTTP header tokens and values free of control characters: HEAD gives them
back as ``metadata.<key>`` headers.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass

from components.errors import ComponentError, FileNotFound, InvalidFileNameError, RangeNotSatisfiableError
from components.files.base import (
    ByteRange,
    FileContent,
    FileInfo,
    FileStore,
    ListRequest,
    ListResult,
    PutRequest,
)
from components.files.names import name_problem, prefix_problem
from components.loaded import LoadedComponent
from mesh.resiliency import NO_POLICY, Outbound, OutboundFor, no_policy
from services import errors

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
"""S3's largest page."""
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass(slots=True, frozen=True)
class FileStoreHandle:
    name: str
    store: FileStore
    outbound: Outbound = NO_POLICY


class FileService:
    def __init__(self, stores: Mapping[str, FileStoreHandle]) -> None:
        self._stores = dict(stores)

    @classmethod
    def from_components(
        cls, components: Iterable[LoadedComponent], outbound: OutboundFor = no_policy
    ) -> FileService:
        return cls({c.name: FileStoreHandle(c.name, c.instance, outbound(c)) for c in components})

    @property
    def names(self) -> list[str]:
        return list(self._stores)

    def handle(self, store: str) -> FileStoreHandle | None:
        """The store named ``store``, if there is one (Dapr's binary-file API, services/binary_files.py,
        answers its own errors)."""
        return self._stores.get(store)

    def _store(self, store: str) -> FileStoreHandle:
        if not self._stores:
            raise errors.file_store_not_configured()
        handle = self._stores.get(store)
        if handle is None:
            raise errors.file_store_not_found(store)
        return handle

    def _file(self, store: str, name: str) -> FileStoreHandle:
        handle = self._store(store)
        problem = name_problem(name)
        if problem is not None:
            raise errors.file_name_invalid(store, problem)
        return handle

    async def put(
        self, store: str, name: str, chunks: AsyncIterator[bytes], metadata: Mapping[str, str]
    ) -> None:
        """Store the file from ``chunks``, replacing any file of that name. An ApiError raised by
        ``chunks`` (the body could not be read) comes out as it is, the old file left in place."""
        handle = self._file(store, name)
        for key, value in metadata.items():
            if not _TOKEN.fullmatch(key) or _CONTROL.search(value):
                raise errors.malformed(
                    f"metadata {key!r} of file {name}: keys are HTTP header names, values have no "
                    "control characters"
                )
        try:
            await handle.store.put(PutRequest(name, chunks, metadata))
        except InvalidFileNameError as exc:
            raise errors.file_name_invalid(store, str(exc)) from None
        except ComponentError as exc:
            raise errors.put_file_failed(store, name, exc) from exc

    async def get(self, store: str, name: str, byte_range: ByteRange | None = None) -> FileContent:
        """The opened file; the caller streams its chunks and must ``release()`` it."""
        handle = self._file(store, name)
        try:
            return await handle.outbound.call(handle.store.get, name, byte_range)
        except FileNotFound:
            raise errors.file_not_found(store, name) from None
        except RangeNotSatisfiableError as exc:
            raise errors.file_range_not_satisfiable(store, name, exc.size) from None
        except InvalidFileNameError as exc:
            raise errors.file_name_invalid(store, str(exc)) from None
        except ComponentError as exc:
            raise errors.get_file_failed(store, name, exc) from exc

    async def stat(self, store: str, name: str) -> FileInfo:
        handle = self._file(store, name)
        try:
            return await handle.outbound.call(handle.store.stat, name)
        except FileNotFound:
            raise errors.file_not_found(store, name) from None
        except InvalidFileNameError as exc:
            raise errors.file_name_invalid(store, str(exc)) from None
        except ComponentError as exc:
            raise errors.file_meta_failed(store, name, exc) from exc

    async def delete(self, store: str, name: str) -> None:
        handle = self._file(store, name)
        try:
            await handle.outbound.call_non_idempotent(handle.store.delete, name)
        except FileNotFound:
            raise errors.file_not_found(store, name) from None
        except InvalidFileNameError as exc:
            raise errors.file_name_invalid(store, str(exc)) from None
        except ComponentError as exc:
            raise errors.delete_file_failed(store, name, exc) from exc

    async def list(
        self, store: str, prefix: str | None, page_size: str | None, marker: str | None
    ) -> ListResult:
        """One page of the files whose names start with ``prefix``, after ``marker``; the raw
        query values (``pageSize`` from 1 to 1000, 100 when not given)."""
        handle = self._store(store)
        size = DEFAULT_PAGE_SIZE
        if page_size:
            if not (page_size.isascii() and page_size.isdigit()) or not 1 <= int(page_size) <= MAX_PAGE_SIZE:
                raise errors.file_list_page_size(store, page_size)
            size = int(page_size)
        problem = prefix_problem(prefix or "")
        if problem is None and marker:
            problem = name_problem(marker)
        if problem is not None:
            raise errors.file_list_argument(store, problem)
        try:
            return await handle.outbound.call(
                handle.store.list, ListRequest(prefix or "", size, marker or "")
            )
        except InvalidFileNameError as exc:
            raise errors.file_list_argument(store, str(exc)) from None
        except ComponentError as exc:
            raise errors.list_file_failed(store, exc) from exc
