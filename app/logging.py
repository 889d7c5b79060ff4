"""structlog, configured once from Settings (never at import).

Every logger carries the name it was created with (``structlog.get_logger(__name__)``), written as
``logger`` on each line, and writes only at or above its level in the process's table
(services/log_levels.py), which ``POST /actuator/logger`` changes while the sidecar runs. A
request's lines also carry its ``request_id`` and ``trace_id`` (bound by app/middleware.py).
With ``--log-as-json`` each line is one JSON object.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import orjson
import structlog

from app.settings import Settings
from services.log_levels import PROCESS_LEVELS, ROOT, LogLevels, level_number


class NamedPrintLogger(structlog.PrintLogger):
    """structlog's text logger with the name it was created under (its JSON one has a name)."""

    def __init__(self, file: TextIO | None = None, *, name: str | None = None) -> None:
        super().__init__(file)
        self.name = name


class LeveledLogger(structlog.BoundLoggerBase):
    """A bound logger whose level is its name's in the live table: a call below it costs a dict
    lookup, as a call below structlog's fixed filtering level costs a method call."""

    _levels: LogLevels = PROCESS_LEVELS

    def _at(self, level: int, method: str, event: str | None, args: tuple[Any, ...], kw: Any) -> Any:
        if level < self._levels.threshold(getattr(self._logger, "name", None) or ROOT):
            return None
        if args:
            event = event % args if event is not None else None
        return self._proxy_to_logger(method, event, **kw)

    def debug(self, event: str | None = None, *args: Any, **kw: Any) -> Any:
        return self._at(logging.DEBUG, "debug", event, args, kw)

    def info(self, event: str | None = None, *args: Any, **kw: Any) -> Any:
        return self._at(logging.INFO, "info", event, args, kw)

    msg = info

    def warning(self, event: str | None = None, *args: Any, **kw: Any) -> Any:
        return self._at(logging.WARNING, "warning", event, args, kw)

    warn = warning

    def error(self, event: str | None = None, *args: Any, **kw: Any) -> Any:
        return self._at(logging.ERROR, "error", event, args, kw)

    def exception(self, event: str | None = None, *args: Any, **kw: Any) -> Any:
        kw.setdefault("exc_info", True)
        return self._at(logging.ERROR, "error", event, args, kw)

    def critical(self, event: str | None = None, *args: Any, **kw: Any) -> Any:
        return self._at(logging.CRITICAL, "critical", event, args, kw)

    fatal = critical

    def log(self, level: int, event: str | None = None, *args: Any, **kw: Any) -> Any:
        name = logging.getLevelName(level).lower()
        return self._at(
            level,
            name if name in ("debug", "info", "warning", "error", "critical") else "info",
            event,
            args,
            kw,
        )


def add_logger_name(logger: Any, method_name: str, event_dict: Any) -> Any:
    name = getattr(logger, "name", None)
    if name:
        event_dict.setdefault("logger", name)
    return event_dict


def configure_logging(settings: Settings, levels: LogLevels = PROCESS_LEVELS) -> None:
    level = level_number(settings.log_level)
    levels.reset(level)
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    processors: list[structlog.typing.Processor]
    foreign_tail: list[structlog.typing.Processor] = []
    if settings.log_as_json:
        # Tracebacks as data, without the frames' local variables (they can hold secrets).
        tracebacks = structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        )
        processors = [
            *shared,
            tracebacks,
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ]
        factory: structlog.typing.WrappedLogger = structlog.BytesLoggerFactory(sys.stderr.buffer)
        # The standard library's records (uvicorn, aiokafka, l8.wasm) as the same JSON objects.
        foreign_renderer: structlog.typing.Processor = structlog.processors.JSONRenderer(
            serializer=lambda value, **options: orjson.dumps(value, **options).decode()
        )
        foreign_tail = [tracebacks]
    else:
        processors = [*shared, structlog.dev.ConsoleRenderer(colors=False)]
        factory = lambda *args: NamedPrintLogger(sys.stderr, name=args[0] if args else None)  # noqa: E731
        foreign_renderer = structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=processors,
        wrapper_class=LeveledLogger,
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.contextvars.merge_contextvars,
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                *foreign_tail,
            ],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, foreign_renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # uvicorn's own loggers: keep warnings and errors, drop its per-request access log.
    root.setLevel(max(level, logging.WARNING))
    logging.getLogger("uvicorn.access").disabled = True
