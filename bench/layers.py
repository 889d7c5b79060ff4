"""Where a server's CPU goes, from py-spy's collapsed stacks (``--format raw``).

Each sample is charged to the innermost frame that belongs to a known layer; standard-library
frames (asyncio, contextlib, uuid...) are charged to the layer that called them, and a sample with
no layer frame below the event loop's ``Runner.run`` is the event loop itself (uvloop and httptools
are C: their work shows as the Python callbacks they make, or as nothing).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

EVENT_LOOP = "event loop (uvloop, httptools: C code below the Python callbacks)"
LAYERS: tuple[tuple[str, str], ...] = (
    # (path prefix as py-spy prints it, layer); the first match wins
    ("app/middleware.py", "l8 SidecarMiddleware (request id, structlog context, auth, body limit)"),
    ("structlog/", "l8 SidecarMiddleware (request id, structlog context, auth, body limit)"),
    ("routers/", "l8 router, state service, Redis component"),
    ("services/", "l8 router, state service, Redis component"),
    ("components/", "l8 router, state service, Redis component"),
    ("app/", "l8 router, state service, Redis component"),
    ("fastapi/", "FastAPI (routing, dependency and parameter resolution, telemetry)"),
    ("pydantic", "FastAPI (routing, dependency and parameter resolution, telemetry)"),
    ("starlette/", "Starlette (middleware stack, exception wrappers, Request, Response)"),
    ("redis/", "redis-py (pool, retry, timeouts, command packing, reply parsing)"),
    ("uvicorn/", "uvicorn (HTTP/1.1 protocol callbacks, ASGI send/receive)"),
    ("baseline_app.py", "baseline app"),
    ("bench/", "baseline app"),
)
# Functions whose inclusive share explains a layer (name as py-spy prints it).
WATCHED = (
    "SidecarMiddleware.__call__",
    "uuid4",
    "bind_contextvars",
    "Router.__call__",
    "APIRoute.handle",
    "solve_dependencies",
    "request_params_to_args",
    "run_endpoint_function",
    "get_state",
    "save_state",
    "read_json",
    "StateService.get",
    "StateService.save",
    "RedisStateStore.get",
    "RedisStateStore.set",
    "Redis.execute_command",
    "BlockingConnectionPool.get_connection",
    "ConnectionPool.get_connection",
    "Retry.call_with_retry",
    "Response.__call__",
    "Response.__init__",
    "RequestResponseCycle.send",
    "healthz",
)
_FRAME = re.compile(r"^(?P<name>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _layer(file: str) -> str | None:
    for prefix, layer in LAYERS:
        if file.startswith(prefix) or f"/{prefix}" in file:
            return layer
    return None


def analyse(raw: Path) -> dict[str, Any]:
    """Shares of samples by layer (exclusive) and for WATCHED functions (inclusive)."""
    by_layer: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_FRAME.match(frame) for frame in stack.split(";")]
        parsed = [
            (m.group("name"), m.group("file")) if m else (frame, "")
            for m, frame in zip(frames, stack.split(";"), strict=True)
        ]
        layer = EVENT_LOOP
        for name, file in reversed(parsed):
            if name in ("Runner.run", "Server.run"):
                break
            found = _layer(file)
            if found is not None:
                layer = found
                break
        by_layer[layer] += count
        for name in {name for name, _ in parsed}:
            if name in WATCHED:
                inclusive[name] += count
    if total == 0:
        return {"samples": 0, "layers": {}, "functions": {}}
    return {
        "samples": total,
        "layers": {layer: round(n / total, 4) for layer, n in by_layer.most_common()},
        "functions": {name: round(inclusive[name] / total, 4) for name in WATCHED if inclusive[name]},
    }
