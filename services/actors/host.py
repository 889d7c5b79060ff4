"""What the actor runtime calls on the app that hosts its actors, whatever carries the calls: the
app's HTTP routes (app.py, ``PUT /actors/{type}/{id}/method/...``) or the actor host stream the app
opened itself (``SubscribeActorEventsAlpha1``, routers/grpc/actor_host.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from mesh.app_channel import AppResponse


class ActorHost(Protocol):
    @property
    def configured(self) -> bool:
        """Whether an app may host actors here at all (an app channel, or a stream it may open)."""
        ...

    async def invoke(
        self,
        actor_type: str,
        actor_id: str,
        method: str,
        *,
        query: str = "",
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> AppResponse:
        """A turn of the actor: ``method`` (already escaped; ``remind/{name}`` and
        ``timer/{name}`` are a reminder's and a timer's tick, with Dapr's tick body). The answer in
        the HTTP app's shape: 200, or an actor error the app returned (``X-Daprerrorresponseheader``).
        Raises ``AppUnreachable`` when the app could not be reached or went away, ``ApiError``
        when it refused the call."""
        ...

    async def fire(self, actor_type: str, actor_id: str, kind: str, name: str, body: bytes) -> AppResponse:
        """A reminder (``remind``) or timer (``timer``) tick, as :meth:`invoke` does it."""
        ...

    async def deactivate(self, actor_type: str, actor_id: str) -> None:
        """Tell the app the actor is gone; a failure is logged (the activation ends anyway)."""
        ...
