"""The hottest routes, dispatched without the framework.

State GET and save, publish and service invocation are most of a sidecar's traffic (next id and
configuration get join them: their answers come from memory), and
Starlette's routing plus FastAPI's request cycle cost about 30 us of each ~165 us state request
(docs/performance.md), about half of a publish to the in-memory broker and a quarter of an
invocation. This layer recognises those routes by plain string tests and calls the very handlers
the FastAPI routes declare (so there is one implementation, documented in the OpenAPI document as
usual); anything else, including every other verb or shape of path, goes on to FastAPI unchanged.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import ApiError, answer
from routers import configuration, invoke, lock, pubsub, sequencer, state

STATE_PREFIX = "/v1.0/state/"
PUBLISH_PREFIX = "/v1.0/publish/"
INVOKE_PREFIX = invoke.INVOKE_PREFIX
SEQUENCER_PREFIX = "/v1.0-alpha1/sequencer/"
LOCK_PREFIX = "/v1.0-alpha1/lock/"
UNLOCK_PREFIX = "/v1.0-alpha1/unlock/"
CONFIGURATION_PREFIXES = ("/v1.0/configuration/", "/v1.0-alpha1/configuration/")
_SAVE_METHODS = ("POST", "PUT")


class FastLane:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"] if scope["type"] == "http" else ""
        if path.startswith(PUBLISH_PREFIX):
            await self._publish(path, scope, receive, send)
            return
        if path.startswith(INVOKE_PREFIX) and scope["method"] in invoke.METHODS:
            # Same match as "/v1.0/invoke/{target:anykey}" for every verb it declares.
            request = Request(scope, receive)
            await _answer(invoke.invoke(request, path[len(INVOKE_PREFIX) :]), scope, receive, send)
            return
        if not path.startswith(STATE_PREFIX):
            await self._coordination(path, scope, receive, send)
            return
        store, slash, key = path[len(STATE_PREFIX) :].partition("/")
        method = scope["method"]
        if store and method == "GET" and key:
            # Same match as "/v1.0/state/{storeName}/{key:anykey}".
            request = Request(scope, receive)
            call = state.get_state(request, store, key, request.query_params.get("consistency"))
        elif store and not slash and method in _SAVE_METHODS:
            # Same match as "/v1.0/state/{storeName}" (bulk and transaction have a second segment).
            call = state.save_state(Request(scope, receive), store)
        else:
            await self.app(scope, receive, send)
            return
        await _answer(call, scope, receive, send)

    async def _publish(self, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        name, slash, topic = path[len(PUBLISH_PREFIX) :].partition("/")
        # Same match as "/v1.0/publish/{pubsubname}/{topic:anykey}"; "bulk" is the bulk routes'.
        if name and slash and name != "bulk" and scope["method"] in _SAVE_METHODS:
            await _answer(pubsub.publish(Request(scope, receive), name, topic), scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _coordination(self, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        """Next id and configuration get, which serve from memory (a reserved block, a cached copy)
        and so are cheap enough for routing to matter, and lock and unlock, a lease's every step."""
        method = scope["method"]
        if method == "POST" and path.startswith(SEQUENCER_PREFIX):
            store = path[len(SEQUENCER_PREFIX) :]
            if store and "/" not in store:  # same match as "/v1.0-alpha1/sequencer/{storeName}"
                await _answer(sequencer.get_next_id(Request(scope, receive), store), scope, receive, send)
                return
        elif method == "POST" and path.startswith((LOCK_PREFIX, UNLOCK_PREFIX)):
            locking = path.startswith(LOCK_PREFIX)
            store = path[len(LOCK_PREFIX if locking else UNLOCK_PREFIX) :]
            if store and "/" not in store:  # same match as ".../lock/{storeName}", ".../unlock/{storeName}"
                call = (lock.try_lock if locking else lock.unlock)(Request(scope, receive), store)
                await _answer(call, scope, receive, send)
                return
        elif method == "GET" and path.startswith(CONFIGURATION_PREFIXES):
            store = path.partition("/configuration/")[2]
            if store and "/" not in store:  # same match as ".../configuration/{storeName}"
                request = Request(scope, receive)
                query = request.query_params
                call = configuration.get_configuration(request, store, query.get("group"), query.get("label"))
                await _answer(call, scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _answer(call: Coroutine[Any, Any, Response], scope: Scope, receive: Receive, send: Send) -> None:
    try:
        response = await call
    except ApiError as exc:  # what the framework's exception handler does for these routes
        response = answer(exc)
    await response(scope, receive, send)
