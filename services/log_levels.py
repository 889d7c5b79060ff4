"""The process's log levels, by logger name, changeable while it runs (``POST /actuator/logger``).

Loggers are named by their module (``components.state.redis``, ``services.pubsub.subscriber``,
``mesh.resiliency.policy``), the API's request log is ``l8.api`` and the wasm runners' ``l8.wasm``.
A level set on a name holds for that logger and every one below it (``components`` = every
component's logger, ``components.lock`` = the lock stores'), unless a longer name has its own; the
root level (name ``""`` or ``root``) holds for the rest. Layotto's slash form (``components/lock``)
names the same loggers.

Like the standard library's logging registry this is one table per process (logging is one
stream per process); app/logging.py consults it on every log call, through a per-name cache.
"""

from __future__ import annotations

import logging

LEVELS: dict[str, int] = {
    "trace": logging.DEBUG,  # Layotto's finest level; l8 has none finer than debug
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
    "critical": logging.CRITICAL,
}
ROOT = ""


class UnknownLevel(ValueError):
    """A level name that is none of :data:`LEVELS`."""


def level_number(name: str) -> int:
    try:
        return LEVELS[name.strip().lower()]
    except KeyError:
        raise UnknownLevel(f"unknown log level {name!r}: one of {', '.join(LEVELS)}") from None


def logger_name(name: str) -> str:
    """The dotted name of a logger as Layotto or a person may spell it; ``root`` is the root."""
    dotted = name.strip().replace("/", ".").strip(".")
    return ROOT if dotted.lower() == "root" else dotted


class LogLevels:
    """Levels by logger name; :meth:`threshold` is the one the hot path calls."""

    def __init__(self, root: int = logging.INFO) -> None:
        self._set: dict[str, int] = {ROOT: root}
        self._effective: dict[str, int] = {}

    def reset(self, root: int) -> None:
        """Only the root level, at ``root``: how logging is configured at start."""
        for name in [name for name in self._set if name != ROOT]:
            logging.getLogger(name).setLevel(logging.NOTSET)
        self._set = {}
        self.set(ROOT, root)

    def set(self, name: str, level: int) -> None:
        """``level`` for logger ``name`` (already :func:`logger_name`'d) and those below it; also
        applied to the standard library's logger of that name, for modules logging through it."""
        self._set[name] = level
        self._effective.clear()
        if name == ROOT:
            # uvicorn's loggers stay at warnings and above (their access log is off anyway).
            logging.getLogger().setLevel(max(level, logging.WARNING))
        else:
            logging.getLogger(name).setLevel(level)

    def threshold(self, name: str) -> int:
        """The lowest level logger ``name`` writes."""
        found = self._effective.get(name)
        if found is None:
            found = self._effective[name] = self._lookup(name)
        return found

    def _lookup(self, name: str) -> int:
        while name:
            level = self._set.get(name)
            if level is not None:
                return level
            name = name.rpartition(".")[0]
        return self._set[ROOT]

    def configured(self) -> dict[str, str]:
        """The levels set so far, by name (``root`` for the root), for the actuator's info."""
        return {
            name or "root": logging.getLevelName(level).lower() for name, level in sorted(self._set.items())
        }


PROCESS_LEVELS = LogLevels()
"""The table of this process: app/logging.py filters through it, the actuator changes it."""
