"""A recording actor app for tests: a real HTTP server that l8's actor runtime calls.

It serves ``GET /dapr/config`` (the configuration it was given, or a status), and records every
actor call (``PUT /actors/{type}/{id}/method/{method}``, reminders, timers) and deactivation
(``DELETE /actors/{type}/{id}``). Methods, by name:

* ``echo``: 200 with the body back and ``X-Echo-Method``; ``sleep``: waits ``{"seconds": s}`` and
  counts how many turns of one actor (and of all actors) run at once;
* ``fail``: 500 ``boom``; ``fail-through``: 418 ``teapot`` with ``X-Daprerrorresponseheader``;
* ``call``: calls the actor method named in the body through ``{"sidecar": url, "type", "id",
  "method"}``, echoing ``Dapr-Reentrancy-Id`` (how SDKs make nested calls), and answers with it;
* ``state``: reads and writes the actor's state through the sidecar (``{"sidecar", "set"?, "get"?}``).

Reminders and timers answer 200, or ``X-Daprremindercancel: true`` for names in :attr:`cancel`.
Used in-process (the server runs on the test's event loop). Importing this module starts nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx
import orjson
from aiohttp import web
from multidict import CIMultiDict

from tests.servers import LOOPBACK, free_port


@dataclass(frozen=True)
class Call:
    actor_type: str
    actor_id: str
    method: str
    """``echo``, ``remind/<name>``, ``timer/<name>``, or ``DELETE`` for a deactivation."""
    headers: CIMultiDict[str]
    body: bytes
    query: str
    at: float = field(default_factory=time.monotonic)

    @property
    def json(self) -> Any:
        return orjson.loads(self.body) if self.body else None


class ActorTestApp:
    def __init__(self, types: list[str] | None = None, *, port: int = 0, **config: Any) -> None:
        self.config: dict[str, Any] | None = {"entities": types or ["counter"], **config}
        self.config_status = 200
        self.calls: list[Call] = []
        self.cancel: set[str] = set()
        """Reminder or timer names answered with ``X-Daprremindercancel: true``."""
        self.running: dict[tuple[str, str], int] = {}
        self.most_at_once: dict[tuple[str, str], int] = {}
        self.all_at_once = 0
        self.most_all_at_once = 0
        self.config_reads = 0
        self.port = port
        """0: a free port, chosen when it starts."""
        self._runner: web.AppRunner | None = None
        self._client = httpx.AsyncClient(timeout=30)
        self._arrived = asyncio.Event()

    async def __aenter__(self) -> ActorTestApp:
        app = web.Application()
        app.router.add_get("/dapr/config", self._config)
        app.router.add_put("/actors/{type}/{id}/method/{method:.*}", self._method)
        app.router.add_delete("/actors/{type}/{id}", self._deactivate)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = self.port or free_port()
        await web.TCPSite(self._runner, LOOPBACK, self.port).start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._client.aclose()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- what tests read ---------------------------------------------------------------------------

    def of(self, method: str | None = None, actor_id: str | None = None) -> list[Call]:
        return [
            c
            for c in self.calls
            if (method is None or c.method == method or c.method.startswith(method + "/"))
            and (actor_id is None or c.actor_id == actor_id)
        ]

    async def wait_for(
        self,
        count: int,
        method: str | None = None,
        actor_id: str | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> list[Call]:
        give_up = time.monotonic() + timeout
        while len(found := self.of(method, actor_id)) < count:
            if time.monotonic() > give_up:
                raise AssertionError(
                    f"{len(found)} of {count} {method or 'calls'} after {timeout}s: {self.calls}"
                )
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), timeout=0.1)
        return found

    # -- the app -----------------------------------------------------------------------------------

    async def _config(self, request: web.Request) -> web.Response:
        self.config_reads += 1
        if self.config_status != 200 or self.config is None:
            return web.Response(status=self.config_status)
        return web.json_response(self.config)

    def _record(self, request: web.Request, method: str, body: bytes) -> Call:
        call = Call(
            request.match_info["type"],
            request.match_info["id"],
            method,
            CIMultiDict(request.headers),
            body,
            request.query_string,
        )
        self.calls.append(call)
        self._arrived.set()
        return call

    async def _deactivate(self, request: web.Request) -> web.Response:
        self._record(request, "DELETE", b"")
        return web.Response(status=200)

    async def _method(self, request: web.Request) -> web.Response:
        body = await request.read()
        method = request.match_info["method"]
        call = self._record(request, method, body)
        key = (call.actor_type, call.actor_id)
        self.running[key] = self.running.get(key, 0) + 1
        self.all_at_once += 1
        self.most_at_once[key] = max(self.most_at_once.get(key, 0), self.running[key])
        self.most_all_at_once = max(self.most_all_at_once, self.all_at_once)
        try:
            return await self._answer(method, call)
        finally:
            self.running[key] -= 1
            self.all_at_once -= 1

    async def _answer(self, method: str, call: Call) -> web.Response:
        kind, _, name = method.partition("/")
        if kind in ("remind", "timer"):
            headers = {"X-Daprremindercancel": "true"} if name in self.cancel else {}
            return web.Response(status=200, headers=headers)
        if method == "echo":
            return web.Response(
                status=200,
                body=call.body,
                headers={"X-Echo-Method": method, "Content-Type": "application/octet-stream"},
            )
        if method == "sleep":
            await asyncio.sleep(float((call.json or {}).get("seconds", 0.1)))
            return web.json_response({"slept": True})
        if method == "fail":
            return web.Response(status=500, text="boom")
        if method == "fail-through":
            return web.Response(status=418, text="teapot", headers={"X-Daprerrorresponseheader": "true"})
        if method == "call":
            return await self._nested(call)
        if method == "state":
            return await self._state(call)
        return web.Response(status=404, text=f"no method {method}")

    async def _nested(self, call: Call) -> web.Response:
        spec = call.json
        chain = call.headers.get("Dapr-Reentrancy-Id")
        headers = {"Dapr-Reentrancy-Id": chain} if chain else {}
        target = f"{spec['sidecar']}/v1.0/actors/{spec['type']}/{spec['id']}/method/{spec['method']}"
        response = await self._client.put(target, content=orjson.dumps(spec.get("body")), headers=headers)
        return web.Response(status=200 if response.status_code == 200 else 502, body=response.content)

    async def _state(self, call: Call) -> web.Response:
        spec = call.json
        base = f"{spec['sidecar']}/v1.0/actors/{call.actor_type}/{call.actor_id}/state"
        if "set" in spec:
            operations = [
                {"operation": "upsert", "request": {"key": k, "value": v}} for k, v in spec["set"].items()
            ]
            saved = await self._client.post(base, json=operations)
            if saved.status_code != 204:
                return web.Response(status=502, body=saved.content)
        found = {}
        for key in spec.get("get", []):
            response = await self._client.get(f"{base}/{key}")
            found[key] = response.json() if response.status_code == 200 else None
        return web.json_response(found)
