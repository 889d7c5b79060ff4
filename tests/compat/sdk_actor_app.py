"""An actor app written with the Dapr Python SDK's FastAPI extension (``dapr.ext.fastapi.DaprActor``),
as its documentation shows it, served by uvicorn. The only addition is ``GET /events``: what the
actors lived through (activations, deactivations, reminders and timers received), for the test.

The SDK reaches its sidecar at ``DAPR_HTTP_PORT`` (its ``DaprActorHttpClient``).
Run: ``DAPR_HTTP_PORT=S python -m tests.compat.sdk_actor_app --port P``.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import uvicorn
from dapr.actor import Actor, ActorInterface, Remindable, actormethod
from dapr.actor.runtime.config import ActorRuntimeConfig
from dapr.actor.runtime.runtime import ActorRuntime
from dapr.ext.fastapi import DaprActor
from fastapi import FastAPI

EVENTS: list[dict[str, Any]] = []


class CartActorInterface(ActorInterface):
    @actormethod(name="AddItem")
    async def add_item(self, item: str) -> int: ...

    @actormethod(name="GetItems")
    async def get_items(self) -> list[str]: ...

    @actormethod(name="StartReminder")
    async def start_reminder(self, note: str) -> None: ...

    @actormethod(name="StartTimer")
    async def start_timer(self, note: str) -> None: ...

    @actormethod(name="StopTimer")
    async def stop_timer(self) -> None: ...

    @actormethod(name="StartBareTimer")
    async def start_bare_timer(self) -> None: ...


class CartActor(Actor, CartActorInterface, Remindable):
    async def _on_activate(self) -> None:
        EVENTS.append({"event": "activate", "id": self.id.id})

    async def _on_deactivate(self) -> None:
        EVENTS.append({"event": "deactivate", "id": self.id.id})

    async def add_item(self, item: str) -> int:
        _, items = await self._state_manager.try_get_state("items")
        items = [*(items or []), item]
        await self._state_manager.set_state("items", items)
        return len(items)

    async def get_items(self) -> list[str]:
        _, items = await self._state_manager.try_get_state("items")
        return list(items or [])

    async def start_reminder(self, note: str) -> None:
        await self.register_reminder(
            "ping", note.encode(), due_time=timedelta(seconds=1), period=timedelta(seconds=1)
        )

    async def receive_reminder(
        self,
        name: str,
        state: bytes,
        due_time: timedelta,
        period: timedelta,
        ttl: timedelta | None = None,
    ) -> None:
        EVENTS.append({"event": "reminder", "id": self.id.id, "name": name, "state": state.decode()})
        await self.unregister_reminder(name)

    async def start_timer(self, note: str) -> None:
        await self.register_timer(
            "tick",
            self.on_tick,
            {"note": note},
            due_time=timedelta(milliseconds=500),
            period=timedelta(seconds=1),
        )

    async def stop_timer(self) -> None:
        await self.unregister_timer("tick")

    async def start_bare_timer(self) -> None:
        """A timer with no state: the SDK reads the tick's ``data`` key all the same."""
        await self.register_timer(
            "bare", self.on_bare_tick, None, due_time=timedelta(milliseconds=200), period=timedelta(seconds=1)
        )

    async def on_bare_tick(self, state: Any) -> None:
        EVENTS.append({"event": "bare timer", "id": self.id.id, "state": state})
        await self.unregister_timer("bare")

    async def on_tick(self, state: Any) -> None:
        EVENTS.append({"event": "timer", "id": self.id.id, "state": state})


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    await actors.register_actor(CartActor)
    yield


app = FastAPI(lifespan=lifespan)
actors = DaprActor(app)
ActorRuntime.set_actor_config(
    ActorRuntimeConfig(actor_idle_timeout=timedelta(seconds=2), actor_scan_interval=timedelta(seconds=1))
)


@app.get("/events")
def events() -> list[dict[str, Any]]:
    return EVENTS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    uvicorn.run(app, host="127.0.0.1", port=parser.parse_args().port, log_level="warning")


if __name__ == "__main__":
    main()
