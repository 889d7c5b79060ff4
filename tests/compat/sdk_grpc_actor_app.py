"""An actor app written with the Dapr Python SDK's gRPC actor host (``ActorGrpcHost``), as its
documentation shows it: no port of its own, it dials its sidecar's gRPC API
(``DAPR_GRPC_PORT``) and hosts its actors over ``SubscribeActorEventsAlpha1``. The actor keeps a
list in its state manager, registers a reminder and timers, and fails on demand. What it lives
through (activations, deactivations, reminders and timers received) is appended as JSON lines to
the file given by ``--events``, for the test.

Run: ``DAPR_GRPC_PORT=S python -m tests.compat.sdk_grpc_actor_app --events FILE``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from dapr.actor import Actor, ActorInterface, Remindable, actormethod
from dapr.actor.runtime.config import ActorRuntimeConfig
from dapr.actor.runtime.grpc_host import ActorGrpcHost
from dapr.actor.runtime.runtime import ActorRuntime

EVENTS: Path | None = None


def record(event: dict[str, Any]) -> None:
    assert EVENTS is not None
    with EVENTS.open("a") as file:
        file.write(json.dumps(event) + "\n")


class StreamCartInterface(ActorInterface):
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

    @actormethod(name="Fail")
    async def fail(self, why: str) -> None: ...

    @actormethod(name="Sleep")
    async def sleep(self, seconds: float) -> str: ...


class StreamCartActor(Actor, StreamCartInterface, Remindable):
    async def _on_activate(self) -> None:
        record({"event": "activate", "id": self.id.id})

    async def _on_deactivate(self) -> None:
        record({"event": "deactivate", "id": self.id.id})

    async def add_item(self, item: str) -> int:
        _, items = await self._state_manager.try_get_state("items")
        items = [*(items or []), item]
        await self._state_manager.set_state("items", items)
        await self._state_manager.save_state()
        return len(items)

    async def get_items(self) -> list[str]:
        _, items = await self._state_manager.try_get_state("items")
        return list(items or [])

    async def start_reminder(self, note: str) -> None:
        await self.register_reminder(
            "ping", note.encode(), due_time=timedelta(milliseconds=500), period=timedelta(seconds=1)
        )

    async def receive_reminder(
        self,
        name: str,
        state: bytes,
        due_time: timedelta,
        period: timedelta,
        ttl: timedelta | None = None,
    ) -> None:
        record({"event": "reminder", "id": self.id.id, "name": name, "state": state.decode()})
        await self.unregister_reminder(name)

    async def start_timer(self, note: str) -> None:
        await self.register_timer(
            "tick",
            self.on_tick,
            {"note": note},
            due_time=timedelta(milliseconds=300),
            period=timedelta(seconds=1),
        )

    async def stop_timer(self) -> None:
        await self.unregister_timer("tick")

    async def on_tick(self, state: Any) -> None:
        record({"event": "timer", "id": self.id.id, "state": state})

    async def fail(self, why: str) -> None:
        raise ValueError(why)

    async def sleep(self, seconds: float) -> str:
        record({"event": "sleeping", "id": self.id.id})
        await asyncio.sleep(seconds)
        return "awake"


async def serve(app_port: int) -> None:
    ActorRuntime.set_actor_config(
        ActorRuntimeConfig(actor_idle_timeout=timedelta(seconds=2), actor_scan_interval=timedelta(seconds=1))
    )
    # No port of its own by default (0): the stream carries every callback. Given one, the SDK
    # listens there with an empty gRPC server, as daprd wants a gRPC app channel.
    host = ActorGrpcHost(app_port=app_port)
    await host.register_actor(StreamCartActor)
    record({"event": "registering"})
    await host.start()
    record({"event": "registered"})
    try:
        await asyncio.Event().wait()
    finally:
        await host.close()


def main() -> None:
    global EVENTS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=Path, required=True)
    parser.add_argument("--app-port", type=int, default=0)
    arguments = parser.parse_args()
    EVENTS = arguments.events
    asyncio.run(serve(arguments.app_port))


if __name__ == "__main__":
    main()
