"""The live log-level table: a level holds for a logger and those below it, the root for the rest,
names in Layotto's slash form too; and structlog's loggers write by it."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import orjson
import pytest
import structlog

from app.logging import LeveledLogger
from services.log_levels import LogLevels, UnknownLevel, level_number, logger_name


@pytest.fixture
def levels() -> Iterator[LogLevels]:
    table = LogLevels()
    try:
        yield table
    finally:
        table.reset(logging.INFO)  # the standard library's loggers touched go back to NOTSET


def test_a_level_holds_below_its_name_until_a_longer_name_has_one(levels: LogLevels) -> None:
    levels.reset(logging.WARNING)
    levels.set("components", logging.INFO)
    levels.set("components.state.redis", logging.DEBUG)
    assert levels.threshold("components.state.redis") == logging.DEBUG
    assert levels.threshold("components.state.redisx") == logging.INFO  # a prefix of segments only
    assert levels.threshold("components.lock.etcd") == logging.INFO
    assert levels.threshold("services.state") == logging.WARNING
    assert levels.threshold("") == logging.WARNING
    levels.set("components", logging.ERROR)  # the cache follows a change
    assert levels.threshold("components.lock.etcd") == logging.ERROR
    assert levels.configured() == {
        "components": "error",
        "components.state.redis": "debug",
        "root": "warning",
    }


def test_the_standard_library_logger_of_a_name_follows(levels: LogLevels) -> None:
    levels.set("l8.wasm", logging.DEBUG)
    assert logging.getLogger("l8.wasm").level == logging.DEBUG
    levels.reset(logging.INFO)
    assert logging.getLogger("l8.wasm").level == logging.NOTSET
    assert levels.configured() == {"root": "info"}


@pytest.mark.parametrize(
    ("spelled", "name"),
    [
        ("components/lock/redis", "components.lock.redis"),
        ("root", ""),
        ("ROOT", ""),
        ("", ""),
        (" l8.api ", "l8.api"),
    ],
)
def test_logger_names_as_layotto_or_a_person_spells_them(spelled: str, name: str) -> None:
    assert logger_name(spelled) == name


def test_levels_by_layotto_names() -> None:
    assert level_number("trace") == level_number("DEBUG") == logging.DEBUG
    assert level_number("warn") == logging.WARNING
    assert level_number("fatal") == logging.CRITICAL
    with pytest.raises(UnknownLevel, match="loud"):
        level_number("loud")


def test_a_logger_writes_at_its_names_level_as_it_changes(levels: LogLevels) -> None:
    out = io.BytesIO()

    class Leveled(LeveledLogger):
        _levels = levels

    def logger(name: str) -> structlog.typing.FilteringBoundLogger:
        return structlog.wrap_logger(
            structlog.BytesLogger(out, name=name),  # type: ignore[arg-type]
            processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer(orjson.dumps)],
            wrapper_class=Leveled,
        )

    redis, api = logger("components.state.redis"), logger("l8.api")
    redis.debug("hidden")
    redis.info("shown %s", "once")
    levels.set("components", logging.DEBUG)
    redis.debug("now shown")
    api.debug("still hidden")
    api.exception("failed")
    lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert [(line["event"], line["level"]) for line in lines] == [
        ("shown once", "info"),
        ("now shown", "debug"),
        ("failed", "error"),
    ]


def test_with_log_as_json_every_line_is_one_json_object_stdlib_ones_too() -> None:
    """configure_logging in a process of its own (it sets the process's logging): structlog's
    lines and the standard library's (uvicorn, aiokafka, l8.wasm) alike, tracebacks without locals."""
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    script = textwrap.dedent(
        """
        import logging, structlog
        from app.logging import configure_logging
        from app.settings import Settings

        configure_logging(Settings.load({"log_as_json": True, "log_level": "info"}))
        structlog.get_logger("components.state.redis").info("saved", key="a")
        structlog.get_logger("components.state.redis").debug("hidden")
        logging.getLogger("aiokafka.client").warning("metadata from %s failed", "node-1")
        password = "hunter2"
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("uvicorn.error").exception("unexpected")
            structlog.get_logger("app.server").exception("unexpected too")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = [orjson.loads(line) for line in done.stderr.splitlines()]
    assert [(line["logger"], line["level"], line["event"]) for line in lines] == [
        ("components.state.redis", "info", "saved"),
        ("aiokafka.client", "warning", "metadata from node-1 failed"),
        ("uvicorn.error", "error", "unexpected"),
        ("app.server", "error", "unexpected too"),
    ]
    assert all(line["timestamp"].endswith("Z") for line in lines)
    assert lines[2]["exception"][0]["exc_type"] == "ValueError"
    assert "hunter2" not in done.stderr
