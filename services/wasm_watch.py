"""Hot reload's eyes: watches the files of the installed functions and calls back with the path of
one that was written or created. The set of files changes with installs and uninstalls; the watch
restarts over the new set's directories (not recursive)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("l8.wasm")

_STEP_MS = 50
_DEBOUNCE_MS = 100


class FileWatch:
    def __init__(self, changed: Callable[[Path], Awaitable[None]]) -> None:
        self._changed = changed
        self._files: set[Path] = set()
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    def watch(self, files: set[Path]) -> None:
        """Follows ``files`` from now on (none: stops watching)."""
        files = {Path(os.path.abspath(f)) for f in files}
        if files == self._files and self._task is not None:
            return
        self._files = files
        self._restart()

    def _restart(self) -> None:
        self._stop.set()
        self._stop = asyncio.Event()
        if self._files:
            self._task = asyncio.create_task(self._follow(set(self._files), self._stop))

    async def _follow(self, files: set[Path], stop: asyncio.Event) -> None:
        import watchfiles

        def ours(change: Any, path: str) -> bool:
            return change != watchfiles.Change.deleted and Path(os.path.abspath(path)) in files

        directories = sorted({str(f.parent) for f in files})
        try:
            async for changes in watchfiles.awatch(
                *directories,
                watch_filter=ours,
                stop_event=stop,
                recursive=False,
                step=_STEP_MS,
                debounce=_DEBOUNCE_MS,
            ):
                for path in sorted({Path(p) for _, p in changes}):  # absolute, as watched
                    await self._changed(path)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a folder removed under the watch: say so, keep the functions
            log.warning("wasm: watching %s stopped: %s", ", ".join(directories), exc)

    async def aclose(self) -> None:
        self._stop.set()
        self._files = set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
