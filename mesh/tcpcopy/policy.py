"""TCP copy settings (``tcp_copy`` in the settings file), Layotto's keys and defaults, improved:

.. code-block:: yaml

    tcp_copy:
      switch: ON            # OFF (default): nothing is copied and the request path is untouched
      interval: 30          # seconds from one sampling window to the next
      duration: 10          # seconds a window stays open (equal to interval: always open)
      cpu_max_rate: 80      # fuse: no copying while l8 uses more than this % of one core
      mem_max_rate: 80      # fuse: no copying while l8's resident memory is above this % of RAM
      responses: false      # also copy what l8 answers
      dir: .l8/tcpcopy      # default <data_dir>/tcpcopy
      max_file_size: 64Mi   # a dump file is closed and a new one begun past this size
      max_files: 10         # the oldest dump files are deleted past this count
      queue_records: 10000  # what may wait for the writer; more is dropped and counted
      queue_bytes: 16Mi
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.metadata import parse_duration, parse_quantity
from mesh.errors import SettingsError

_FIELDS = {
    "switch", "interval", "duration", "cpu_max_rate", "mem_max_rate", "responses", "dir",
    "max_file_size", "max_files", "queue_records", "queue_bytes",
}  # fmt: skip
_DURATIONS = {"interval", "duration"}


@dataclass(frozen=True, slots=True)
class CopyPolicy:
    enabled: bool = False
    interval: float = 30.0
    duration: float = 1.0
    cpu_max_rate: float = 80.0
    mem_max_rate: float = 70.0
    responses: bool = False
    folder: Path = Path(".l8/tcpcopy")
    max_file_size: int = 64 * 1024**2
    max_files: int = 10
    queue_records: int = 10_000
    queue_bytes: int = 16 * 1024**2

    def describe(self) -> dict[str, Any]:
        return {
            "switch": "ON" if self.enabled else "OFF",
            "interval": self.interval,
            "duration": self.duration,
            "cpuMaxRate": self.cpu_max_rate,
            "memMaxRate": self.mem_max_rate,
            "responses": self.responses,
            "dir": str(self.folder),
            "maxFileSize": self.max_file_size,
            "maxFiles": self.max_files,
        }


def copy_requested(config: Mapping[str, Any]) -> bool:
    """Whether the settings switch TCP copy on (checked before they are validated)."""
    return _switch(config.get("switch", "OFF")) is True


def parse_policy(config: Mapping[str, Any], data_dir: Path) -> CopyPolicy:
    if not isinstance(config, Mapping):
        raise SettingsError("tcp_copy: a mapping (switch, interval, duration, ...)")
    unknown = sorted(set(map(str, config)) - _FIELDS)
    if unknown:
        raise SettingsError(f"tcp_copy.{unknown[0]}: unknown field (known: {', '.join(sorted(_FIELDS))})")
    enabled = _switch(config.get("switch", "OFF"))
    if enabled is None:
        raise SettingsError("tcp_copy.switch: ON or OFF")
    interval = _number(config, "interval", 30.0, above=0)
    duration = _number(config, "duration", min(1.0, interval), above=0)
    if duration > interval:
        raise SettingsError("tcp_copy.duration: a window cannot be longer than the interval")
    cpu = _number(config, "cpu_max_rate", 80.0, above=0, most=100)
    mem = _number(config, "mem_max_rate", 70.0, above=0, most=100)
    return CopyPolicy(
        enabled=enabled,
        interval=interval,
        duration=duration,
        cpu_max_rate=cpu,
        mem_max_rate=mem,
        responses=bool(config.get("responses", False)),
        folder=Path(config["dir"]) if config.get("dir") else data_dir / "tcpcopy",
        max_file_size=_size(config, "max_file_size", 64 * 1024**2),
        max_files=int(_number(config, "max_files", 10, above=0)),
        queue_records=int(_number(config, "queue_records", 10_000, above=0)),
        queue_bytes=_size(config, "queue_bytes", 16 * 1024**2),
    )


def _switch(value: Any) -> bool | None:
    text = str(value).strip().upper()
    return {"ON": True, "TRUE": True, "OFF": False, "FALSE": False}.get(text)


def _number(config: Mapping[str, Any], name: str, default: float, *, above: float,
            most: float | None = None) -> float:  # fmt: skip
    value = config.get(name, default)
    try:
        number = parse_duration(value).total_seconds() if name in _DURATIONS else float(value)
    except ValueError:
        raise SettingsError(f"tcp_copy.{name}: {value!r} is not a number") from None
    if number <= above or (most is not None and number > most):
        bounds = f"above {above:g}" + (f" and at most {most:g}" if most is not None else "")
        raise SettingsError(f"tcp_copy.{name}: must be {bounds}")
    return number


def _size(config: Mapping[str, Any], name: str, default: int) -> int:
    value = config.get(name, default)
    try:
        size = parse_quantity(value)
    except ValueError:
        size = 0
    if size <= 0:
        raise SettingsError(f"tcp_copy.{name}: {value!r} is not a size (e.g. 64Mi, 512Ki)")
    return size
