"""Dapr's binary-file API (1.19's alpha ``binarystore`` block: set, get and delete a named file of
a component) over l8's file stores (components/files, the stores of Layotto's File API): a
component name names a file store. As daprd's ``universal`` does it:

- a missing file name is refused first, then an unknown store (INVALID_ARGUMENT), then a name
  Dapr refuses (a leading or trailing ``/``, an empty, ``.`` or ``..`` segment, one of
  ``\\ * ? [ ] #``); nested relative names (``reports/2026/q1.pdf``) are files in folders;
- ``set`` streams the chunks into the store as they come (the store's put: atomic, the old file
  kept when the stream fails); without ``overwrite`` a file of that name is refused with daprd's
  AlreadyExists, before the upload starts when it is there already, and by the store's
  create-only put (one atomic step) when another upload created it meanwhile;
- ``get`` opens the file (NotFound when it is missing) for the caller to stream and release;
  ``delete`` of a missing file is NotFound.

Like the stores' other callers (services/files.py), the bytes of ``set`` and ``get`` are not under
the store's outbound policy (a large file takes as long as its client sends or reads); opening a
download, the existence check and ``delete`` are.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager

from components.errors import ComponentError, FileExists, FileNotFound, InvalidFileNameError
from components.files.base import FileContent, PutRequest
from components.files.names import name_problem
from services import errors
from services.errors import ApiError
from services.files import FileService, FileStoreHandle

_REFUSED = re.compile(r"[\\*?\[\]#]")
"""Characters Dapr's runtime refuses in a binary file's name."""


def binary_name_problem(name: str) -> str | None:
    """Why Dapr refuses ``name`` (not empty), or None."""
    found = _REFUSED.search(name)
    if found:
        return f"it contains the character {found.group()!r}"
    if name.endswith("/"):
        return "it ends with '/'"
    return name_problem(name)


Failed = Callable[[str, str, ComponentError], ApiError]
"""An operation's own error for a store's failure (``errors.binary_set_failed``...)."""


@contextmanager
def _refusals(store: str, name: str, failed: Failed) -> Iterator[None]:
    """A file store's exceptions as Dapr's errors: AlreadyExists, NotFound, a refused name, else
    ``failed`` (the operation's own error)."""
    try:
        yield
    except FileExists:
        raise errors.binary_file_exists(store, name) from None
    except FileNotFound:
        raise errors.binary_file_not_found(store, name) from None
    except InvalidFileNameError as exc:
        raise errors.binary_file_name_invalid(name, str(exc)) from None
    except ComponentError as exc:
        raise failed(store, name, exc) from exc


class BinaryFiles:
    """Dapr's binary-file operations over the sidecar's file stores."""

    __slots__ = ("_files",)

    def __init__(self, files: FileService) -> None:
        self._files = files

    def _store(self, store: str, name: str) -> FileStoreHandle:
        if not name:
            raise errors.binary_file_name_missing()
        handle = self._files.handle(store)
        if handle is None:
            raise errors.binary_store_not_found(store)
        problem = binary_name_problem(name)
        if problem is not None:
            raise errors.binary_file_name_invalid(name, problem)
        return handle

    def check(self, store: str, name: str) -> None:
        """Refuse the request before its bytes are read (a name, the store)."""
        self._store(store, name)

    async def set(self, store: str, name: str, overwrite: bool, chunks: AsyncIterator[bytes]) -> None:
        """Store ``chunks`` as the file ``name``. An ApiError raised by ``chunks`` (a chunk out of
        sequence) comes out as it is, the old file left in place."""
        handle = self._store(store, name)
        with _refusals(store, name, errors.binary_set_failed):
            if not overwrite:
                try:
                    await handle.outbound.call(handle.store.stat, name)
                except FileNotFound:
                    pass
                else:
                    raise errors.binary_file_exists(store, name)
            await handle.store.put(PutRequest(name, chunks, create_only=not overwrite))

    async def get(self, store: str, name: str) -> FileContent:
        """The opened file: the caller streams its chunks and must ``release()`` it."""
        handle = self._store(store, name)
        with _refusals(store, name, errors.binary_get_failed):
            return await handle.outbound.call(handle.store.get, name, None)

    async def delete(self, store: str, name: str) -> None:
        handle = self._store(store, name)
        with _refusals(store, name, errors.binary_delete_failed):
            await handle.outbound.call_non_idempotent(handle.store.delete, name)
