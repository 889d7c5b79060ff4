"""Dapr's virtual actors: the actor runtime (service.py) and its parts, each in a module of its own:
the app's configuration (config.py), the calls to the app (host.py: over its HTTP routes, app.py,
or over the host streams it opens, callbacks.py), activations and their turns
(activation.py, table.py), timers, reminders, actor state and forwarding to the owner sidecar."""

from __future__ import annotations

from collections.abc import Iterable

from components.loaded import LoadedComponent
from mesh.placement.base import Placement
from services.actors.forward import Peers
from services.actors.host import ActorHost
from services.actors.reminders import Reminders
from services.actors.service import ActorRuntime
from services.actors.state import ActorState, actor_store_name
from services.scheduler.base import Scheduler
from services.state import StateService

__all__ = ["ActorRuntime", "build_actor_runtime"]


def build_actor_runtime(
    app_id: str,
    placement: Placement,
    host: ActorHost,
    state: StateService,
    state_components: Iterable[LoadedComponent],
    scheduler: Scheduler | None,
    *,
    sidecar_auth: tuple[str, str] | None = None,
) -> ActorRuntime:
    """The runtime over the started pieces and the app's actors (``host``: its HTTP routes, or the
    host streams it opens); the actor state store is the one marked ``actorStateStore: "true"``
    (none: actor state answers ERR_ACTOR_RUNTIME_NOT_FOUND)."""
    store = actor_store_name(state_components)
    return ActorRuntime(
        app_id,
        placement,
        host,
        ActorState(state.resolve(store) if store is not None else None, app_id),
        Reminders(scheduler, app_id),
        Peers(sidecar_auth),
    )
