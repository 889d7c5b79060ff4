"""An actor app (Dapr's app contract, no SDK) that records what a cluster test checks.

It hosts one actor type, ``Counter``: each actor keeps a counter in actor state through its own
sidecar (read once per activation, written with a state transaction on every ``incr``), as the
SDKs' state managers do. Every turn is recorded with ``time.monotonic()`` at its start and end (the
clock is the machine's, shared by every process on it), every activation and deactivation, and every
reminder delivery with its wall-clock time; ``GET /records`` answers them all.

Run: ``python -m tests.e2e.actor_app --port P --sidecar-port S --name NAME``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import httpx
import orjson
import uvicorn

ACTOR_TYPE = "Counter"
STATE_KEY = "count"


class CounterApp:
    """The ASGI app: Dapr's actor routes on the app side, plus ``GET /records``."""

    def __init__(self, name: str, sidecar: str, idle_timeout: str, work_seconds: float) -> None:
        self.name = name
        self.sidecar = sidecar
        self.idle_timeout = idle_timeout
        self.work_seconds = work_seconds
        self.counts: dict[str, int] = {}
        """The activations on this app: actor id -> counter (a cache of the actor's state)."""
        self.turns: list[tuple[str, float, float]] = []
        self.activations: list[tuple[str, float]] = []
        self.deactivations: list[tuple[str, float]] = []
        self.reminders: list[tuple[str, str, float]] = []
        self.errors: list[str] = []
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            # Idle connections dropped before the sidecar's 5 s idle timeout can close one under a call.
            limits = httpx.Limits(max_connections=200, max_keepalive_connections=200, keepalive_expiry=2.0)
            self._client = httpx.AsyncClient(base_url=self.sidecar, timeout=30, limits=limits)
        return self._client

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        status, answer = await self.route(scope["method"], scope["path"].strip("/").split("/"), body)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": orjson.dumps(answer)})

    async def route(self, method: str, parts: list[str], body: bytes) -> tuple[int, Any]:
        if method == "GET" and parts == ["dapr", "config"]:
            return 200, {
                "entities": [ACTOR_TYPE],
                "actorIdleTimeout": self.idle_timeout,
                "drainOngoingCallTimeout": "10s",
                "drainRebalancedActors": True,
            }
        if method == "GET" and parts == ["records"]:
            return 200, {
                "name": self.name,
                "turns": self.turns,
                "activations": self.activations,
                "deactivations": self.deactivations,
                "reminders": self.reminders,
                "errors": self.errors,
                "active": sorted(self.counts),
            }
        if method == "GET" and parts == ["healthz"]:
            return 200, {}
        if len(parts) < 3 or parts[0] != "actors" or parts[1] != ACTOR_TYPE:
            return 404, {"error": f"no route {method} /{'/'.join(parts)}"}
        actor_id = parts[2]
        if method == "DELETE" and len(parts) == 3:
            self.counts.pop(actor_id, None)
            self.deactivations.append((actor_id, time.monotonic()))
            return 200, {}
        if method == "PUT" and parts[3:5] == ["method", "remind"] and len(parts) == 6:
            self.reminders.append((actor_id, parts[5], time.time()))
            return 200, {}
        if method == "PUT" and len(parts) == 5 and parts[3] == "method":
            return await self.turn(actor_id, parts[4])
        return 404, {"error": f"no route {method} /{'/'.join(parts)}"}

    async def turn(self, actor_id: str, method: str) -> tuple[int, Any]:
        start = time.monotonic()
        try:
            if actor_id not in self.counts:
                self.activations.append((actor_id, start))
                self.counts[actor_id] = await self.read_count(actor_id)
            if method == "incr":
                count = self.counts[actor_id] + 1
                await self.save_count(actor_id, count)
                self.counts[actor_id] = count
            elif method != "get":
                return 404, {"error": f"no method {method}"}
            if self.work_seconds:
                await asyncio.sleep(self.work_seconds)
            return 200, {"count": self.counts[actor_id], "host": self.name}
        except Exception as exc:  # recorded for the test to show, and answered as a failure
            self.errors.append(f"{actor_id} {method}: {exc!r}")
            self.counts.pop(actor_id, None)
            return 500, {"error": repr(exc)}
        finally:
            self.turns.append((actor_id, start, time.monotonic()))

    async def read_count(self, actor_id: str) -> int:
        answer = await self.client.get(f"/v1.0/actors/{ACTOR_TYPE}/{actor_id}/state/{STATE_KEY}")
        if answer.status_code == 204:
            return 0
        if answer.status_code != 200:
            raise RuntimeError(f"state get: {answer.status_code} {answer.text}")
        return int(answer.json())

    async def save_count(self, actor_id: str, count: int) -> None:
        operations = [{"operation": "upsert", "request": {"key": STATE_KEY, "value": count}}]
        answer = await self.client.put(f"/v1.0/actors/{ACTOR_TYPE}/{actor_id}/state", json=operations)
        if answer.status_code != 204:
            raise RuntimeError(f"state transaction: {answer.status_code} {answer.text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sidecar-port", type=int, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--idle-timeout", default="1h")
    parser.add_argument("--work-seconds", type=float, default=0.0)
    options = parser.parse_args()
    app = CounterApp(
        options.name, f"http://127.0.0.1:{options.sidecar_port}", options.idle_timeout, options.work_seconds
    )
    uvicorn.run(app, host="127.0.0.1", port=options.port, log_level="warning", lifespan="off")


if __name__ == "__main__":
    main()
