"""The route table: every route of l8's HTTP API, in the order requests are matched against them.

The first route whose path and verb fit takes a request; the fallback (any other path or verb:
invocation by the ``dapr-app-id`` header) comes last."""

from __future__ import annotations

from routers import (
    actors,
    actuator,
    bindings,
    configuration,
    dashboard,
    fallback,
    files,
    health,
    invoke,
    jobs,
    lock,
    metadata,
    pubsub,
    secrets,
    sequencer,
    state,
    wasm,
)
from routers.table import Route

ROUTES: tuple[Route, ...] = (
    *state.routes.routes,
    *pubsub.routes.routes,
    *invoke.routes.routes,
    *actors.routes.routes,
    *lock.routes.routes,
    *sequencer.routes.routes,
    *configuration.routes.routes,
    *bindings.routes.routes,
    *secrets.routes.routes,
    *files.routes.routes,
    *wasm.routes.routes,
    *jobs.routes.routes,
    *metadata.routes.routes,
    *health.routes.routes,
    *actuator.routes.routes,
    *dashboard.routes.routes,
)
FALLBACK: Route = fallback.routes.routes[0]
UNCAPPED_UPLOADS = files.UNCAPPED_UPLOADS
"""(verb, path prefix) of the uploads streamed to a store, which --max-body-size does not cap."""
