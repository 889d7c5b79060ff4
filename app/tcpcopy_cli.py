"""``l8 tcpcopy replay`` and ``l8 tcpcopy show``: the command-line side of mesh/tcpcopy."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from typing import Any

from mesh.tcpcopy.dumpfile import KINDS, DumpError, dump_files, read_records
from mesh.tcpcopy.replay import replay


def tcpcopy(arguments: dict[str, Any]) -> int:
    dump = arguments["dump"]
    if not dump.exists():
        print(f"l8: {dump}: no such dump file or folder", file=sys.stderr)
        return 2
    try:
        if arguments["tcpcopy"] == "show":
            return _show(dump)
        report = asyncio.run(replay(dump, arguments["target"], arguments.get("rate"), arguments["timeout"]))
    except (DumpError, ValueError) as exc:
        print(f"l8: {exc}", file=sys.stderr)
        return 2
    print("\n".join(report.lines()))
    return 1 if report.failed else 0


def _show(dump: Any) -> int:
    for path in dump_files(dump):
        for record in read_records(path):
            when = datetime.fromtimestamp(record.time_ns / 1e9, UTC).isoformat(timespec="microseconds")
            payload = record.payload[:120]
            print(f"{when} window={record.window} port={record.port} conn={record.connection} "
                  f"{KINDS.get(record.kind, record.kind)} {len(record.payload)}B {payload!r}")  # fmt: skip
    return 0
