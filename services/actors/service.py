"""The actor runtime: Dapr's actor API (dapr-http-api.md section 12) over placement, the activation
table, the app, the actor state store and the scheduler.

A call for an actor goes to its owner by placement: here, it waits for the actor's turn on its
activation (activated, and claimed, on first use) and is made to the app; elsewhere, it is
forwarded to the owner sidecar. The runtime follows the app's ``/dapr/config`` or its actor host
streams (which types this sidecar hosts), placement's changes (actors now owned elsewhere are
deactivated here) and its fencing (every activation dropped at once), and deactivates idle actors
in a periodic sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import structlog

from mesh.app_channel import AppResponse, AppUnreachable
from mesh.errors import PlacementUnavailable
from mesh.placement.base import Placement
from services import errors
from services.actors.activation import Activation, Deactivated
from services.actors.app import ERROR_HEADER, JSON, REENTRANCY_HEADER, cancels
from services.actors.config import NO_ACTORS, ActorConfig, TypeConfig
from services.actors.forward import Peers, PeerUnreachable, Retry, api_path, closing, passed_on
from services.actors.host import ActorHost
from services.actors.names import check_actor, check_name, check_type, reminder_parts
from services.actors.reminders import KIND, Reminders, tick_body
from services.actors.state import ActorState
from services.actors.table import ActivationTable
from services.actors.timer_spec import Timer
from services.actors.timers import parse_timer, start_timer
from services.errors import ApiError
from services.scheduler.base import JobKey, Outcome, Tick

log = structlog.get_logger(__name__)

Headers = Sequence[tuple[str, str]]


class ActorRuntime:
    def __init__(
        self,
        app_id: str,
        placement: Placement,
        app: ActorHost,
        state: ActorState,
        reminders: Reminders,
        peers: Peers,
        *,
        claim_timeout: float = 10.0,
        sweep_interval: float | None = None,
        retry_for: float = 10.0,
    ) -> None:
        self.app_id = app_id
        self.placement = placement
        self.app = app
        self.state = state
        self.reminders = reminders
        self.peers = peers
        self.table = ActivationTable(placement, app, claim_timeout=claim_timeout)
        self.config: ActorConfig = NO_ACTORS
        self.configured = False
        """Whether the app's ``/dapr/config`` has been read."""
        self.closed = False
        self._sweep_interval = sweep_interval
        self._retry_for = retry_for
        """How long a call keeps looking for the actor while its owner is unreachable or closing
        (about a placement lease: then the ring has moved the actor)."""
        self._sweep: asyncio.Task[None] | None = None
        self._follow = asyncio.Lock()

    # -- life ----------------------------------------------------------------------------------------

    def start(self) -> None:
        """Follow placement and sweep idle actors; deliver reminders this sidecar's scheduler claims."""
        self.placement.on_change(self._rebalance)
        self.placement.on_fenced(self._fenced)
        scheduler = self.reminders.scheduler
        if scheduler is not None:
            scheduler.deliver(KIND, self.deliver_reminder, accept=self.accepts)
        self._sweep = asyncio.get_running_loop().create_task(self._sweep_idle(), name="actor idle sweep")

    async def apply(self, config: ActorConfig) -> None:
        """The app's configuration (read at start and after each restart of the app)."""
        async with self._follow:
            gone = set(self.config.types) - set(config.types)
            self.config = config
            self.configured = True
            await self.placement.host(config.hosted)
            if gone:
                await self.table.deactivate_all(a for a in self.table.activations() if a.actor_type in gone)

    async def stream_closed(self, gone: ActorConfig, remaining: ActorConfig | None) -> None:
        """An actor host stream ended (``gone``: what it registered). Its app's actors are dropped
        without a deactivation (the app is gone) and their claims released; the newest stream
        still open (``remaining``) keeps its types hosted, and with none left this sidecar hosts
        nothing until an app registers again."""
        async with self._follow:
            self.config = remaining or NO_ACTORS
            self.configured = remaining is not None
            # Dropped before placement changes: its listeners would otherwise deactivate them
            # through the app, which is gone.
            await self.table.drop([a for a in self.table.activations() if a.actor_type in gone.types])
            await self.placement.host(self.config.hosted)

    async def aclose(self) -> None:
        """Refuse new calls, drain and deactivate every actor (each within its type's drain
        timeout), stop the sweep. Placement and the scheduler close after this."""
        if self.closed:
            return
        self.closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweep
        await self.table.deactivate_all(self.table.activations())
        await self.table.aclose()
        await self.peers.aclose()

    # -- the metadata API ----------------------------------------------------------------------------

    def active_actors(self) -> list[dict[str, Any]]:
        """Every hosted type with its count, 0 included (as daprd lists them)."""
        counts = dict.fromkeys(self.config.types, 0) | self.table.counts()
        return [{"type": t, "count": n} for t, n in sorted(counts.items())]

    def describe(self) -> dict[str, Any]:
        """Dapr's ``actorRuntime``."""
        waiting = "INITIALIZING" if self.app.configured else "DISABLED"
        status = "RUNNING" if self.configured else waiting
        return {
            "runtimeStatus": status,
            "activeActors": self.active_actors(),
            "hostReady": self.configured and bool(self.config.types),
            "placement": str(self.placement.describe().get("status", "")),
        }

    # -- invoke --------------------------------------------------------------------------------------

    async def invoke(
        self,
        actor_type: str,
        actor_id: str,
        method: str,
        *,
        verb: str = "PUT",
        query: str = "",
        headers: Headers = (),
        body: bytes = b"",
        hop: int = 0,
    ) -> AppResponse:
        """Call ``method`` (escaped) of the actor on its owner. The app's answer when it is 200
        (or carries ``X-Daprerrorresponseheader``); a forwarded call's answer as the owner gave it."""
        check_actor(actor_type, actor_id)
        target = f"{api_path(actor_type, actor_id)}/method/{method}"
        retry = Retry(self._retry_for)
        while True:
            activation = await self._here(actor_type, actor_id)
            if isinstance(activation, str):
                answer = await self._forward(activation, verb, target, query, headers, body, hop, retry)
                if answer is None:
                    continue
                return answer
            try:
                return await self._call(activation, method, query, headers, body)
            except Deactivated:
                continue

    async def _here(self, actor_type: str, actor_id: str) -> Activation | str:
        """The actor's activation here, or the address of the sidecar that owns it."""
        if self.closed:
            raise errors.actor_runtime_closed()
        owner = await self._owner(actor_type, actor_id)
        if owner is None:
            raise errors.actor_no_address()
        if owner != self.placement.address:
            return owner
        if actor_type not in self.config.types:
            raise errors.actor_no_address()
        return await self.table.activate(actor_type, actor_id, self.config.of(actor_type))

    async def _owner(self, actor_type: str, actor_id: str) -> str | None:
        try:
            return await self.placement.lookup(actor_type, actor_id)
        except PlacementUnavailable as exc:
            raise errors.actor_invoke_failed(str(exc)) from None

    async def _forward(
        self,
        owner: str,
        verb: str,
        target: str,
        query: str,
        headers: Headers,
        body: bytes,
        hop: int,
        retry: Retry | None = None,
    ) -> AppResponse | None:
        """The owner's answer; None when the call should be looked up and sent again: the owner
        could not be reached (nothing was sent) or is shutting down, and ``retry`` allows another
        try after a pause (its membership ends meanwhile, and the actor gets a new owner)."""
        try:
            answer = await self.peers.forward(
                owner, verb, f"{target}?{query}" if query else target, headers, body, hop
            )
        except PeerUnreachable as exc:
            if exc.sent or retry is None or not await retry.again():
                raise errors.actor_invoke_failed(str(exc)) from None
            return None
        if closing(answer) and retry is not None and await retry.again():
            return None
        return answer

    async def _call(
        self, activation: Activation, method: str, query: str, headers: Headers, body: bytes
    ) -> AppResponse:
        outgoing = passed_on(headers)
        chain = None
        if activation.config.reentrancy:
            chain = next((v for n, v in outgoing if n.lower() == REENTRANCY_HEADER.lower()), None)
            if chain is None:
                chain = str(uuid.uuid4())
                outgoing.append((REENTRANCY_HEADER, chain))
        async with activation.turn(chain):
            try:
                response = await self.app.invoke(
                    activation.actor_type,
                    activation.actor_id,
                    method,
                    query=query,
                    headers=outgoing,
                    body=body,
                )
            except AppUnreachable as exc:
                raise errors.actor_invoke_failed(str(exc)) from None
        if response.status != 200 and ERROR_HEADER not in response.headers:
            text = response.body.decode("utf-8", errors="replace")
            raise errors.actor_invoke_failed(f"error from actor service: ({response.status}) {text}")
        return response

    # -- state ---------------------------------------------------------------------------------------

    def _active(self, actor_type: str, actor_id: str) -> None:
        check_actor(actor_type, actor_id)
        if self.closed:
            raise errors.actor_runtime_closed()
        self.state.require()
        if self.table.get(actor_type, actor_id) is None:
            raise errors.actor_instance_missing()

    async def get_state(self, actor_type: str, actor_id: str, key: str) -> Any:
        self._active(actor_type, actor_id)
        return await self.state.get(actor_type, actor_id, key)

    async def transact_state(self, actor_type: str, actor_id: str, body: Any) -> None:
        self._active(actor_type, actor_id)
        await self.state.transact(actor_type, actor_id, body)

    # -- reminders -----------------------------------------------------------------------------------

    def _hosted(self, actor_type: str, actor_id: str, name: str) -> None:
        check_actor(actor_type, actor_id)
        check_name("reminder", name)
        if self.closed:
            raise errors.actor_runtime_closed()
        if actor_type not in self.config.types:
            raise errors.actor_reminder_non_hosted()

    async def create_reminder(self, actor_type: str, actor_id: str, name: str, body: Any) -> None:
        self._hosted(actor_type, actor_id, name)
        await self.reminders.create(actor_type, actor_id, name, body)

    async def get_reminder(self, actor_type: str, actor_id: str, name: str) -> dict[str, Any]:
        self._hosted(actor_type, actor_id, name)
        return await self.reminders.get(actor_type, actor_id, name)

    async def delete_reminder(self, actor_type: str, actor_id: str, name: str) -> None:
        self._hosted(actor_type, actor_id, name)
        await self.reminders.delete(actor_type, actor_id, name)

    async def delete_reminders(self, actor_type: str, actor_id: str | None) -> None:
        """Every reminder of a type, or of one actor of it (the gRPC API's
        UnregisterActorRemindersByType)."""
        if actor_id is None:
            check_type(actor_type)
        else:
            check_actor(actor_type, actor_id)
        if self.closed:
            raise errors.actor_runtime_closed()
        await self.reminders.delete_all(actor_type, actor_id)

    async def list_reminders(self, actor_type: str, actor_id: str | None) -> list[tuple[str, dict[str, Any]]]:
        """(name, reminder) of every reminder of a hosted type, or of one actor of it (no id, or
        an empty one: the whole type, as daprd's scheduler lists them)."""
        if actor_id:
            check_actor(actor_type, actor_id)
        else:
            check_type(actor_type)
        if self.closed:
            raise errors.actor_runtime_closed()
        if actor_type not in self.config.types:
            raise errors.actor_reminder_non_hosted()
        return await self.reminders.list_reminders(actor_type, actor_id)

    def accepts(self, key: JobKey) -> bool:
        """Which due reminders this sidecar's scheduler claims: those of the types it hosts (a
        tick claimed by a sidecar that no longer owns the actor is forwarded to the owner)."""
        parts = reminder_parts(key.name)
        return parts is not None and parts[0] in self.config.types and not self.closed

    async def deliver_reminder(self, tick: Tick) -> Outcome:
        """A tick as a turn of the actor on its owner (``PUT .../method/remind/{name}``)."""
        parts = reminder_parts(tick.job.key.name)
        if parts is None:
            log.error("a reminder job with a name that is not <type>||<id>||<name>", job=tick.job.key.name)
            return Outcome.CANCEL
        actor_type, actor_id, name = parts
        try:
            response = await self.invoke(
                actor_type,
                actor_id,
                f"remind/{quote(name, safe='')}",
                headers=[("Content-Type", JSON)],
                body=tick_body(tick.job),
            )
        except ApiError as exc:
            log.warning(
                "a reminder was not delivered", reminder=name, actor_type=actor_type, error=exc.message
            )
            return Outcome.FAILED
        if response.status != 200:
            return Outcome.FAILED
        return Outcome.CANCEL if cancels(response) else Outcome.DONE

    # -- timers --------------------------------------------------------------------------------------

    async def create_timer(
        self, actor_type: str, actor_id: str, name: str, body: Any, raw: bytes, headers: Headers, hop: int
    ) -> AppResponse | None:
        """None when the timer was created here; the owner's answer when it was forwarded."""
        check_actor(actor_type, actor_id)
        check_name("timer", name)
        try:
            timer = parse_timer(name, body)
        except ValueError as exc:
            raise errors.actor_timer_create_failed(exc) from None
        while True:
            activation = await self._here(actor_type, actor_id)
            if isinstance(activation, str):
                target = f"{api_path(actor_type, actor_id)}/timers/{quote(name, safe='')}"
                forwarded = await self._forward(activation, "PUT", target, "", headers, raw, hop)
                assert forwarded is not None  # without a retry, an answer or an error
                return forwarded
            if activation.closing:
                continue
            start_timer(activation, timer, self.app)
            return None

    async def delete_timer(
        self, actor_type: str, actor_id: str, name: str, headers: Headers, hop: int
    ) -> AppResponse | None:
        check_actor(actor_type, actor_id)
        check_name("timer", name)
        if self.closed:
            raise errors.actor_runtime_closed()
        owner = await self._owner(actor_type, actor_id)
        if owner is not None and owner != self.placement.address:
            target = f"{api_path(actor_type, actor_id)}/timers/{quote(name, safe='')}"
            forwarded = await self._forward(owner, "DELETE", target, "", headers, b"", hop)
            assert forwarded is not None  # without a retry, an answer or an error
            return forwarded
        activation = self.table.get(actor_type, actor_id)
        if activation is not None:
            running = activation.timers.pop(name, None)
            if running is not None:
                running.task.cancel()
        return None

    async def timers_of(self, actor_type: str, actor_id: str) -> list[Timer]:
        """The actor's running timers, by name. Timers are host-local, as in daprd: only the
        actor's owner has them (elsewhere 403 ERR_ACTOR_TIMER_NOT_OWNED, never forwarded); an actor
        owned here but not active has none."""
        check_actor(actor_type, actor_id)
        if self.closed:
            raise errors.actor_runtime_closed()
        if actor_type not in self.config.types:
            raise errors.actor_timer_non_hosted()
        if await self._owner(actor_type, actor_id) != self.placement.address:
            raise errors.actor_timer_not_owned(actor_type, actor_id)
        activation = self.table.get(actor_type, actor_id)
        running = {} if activation is None else activation.timers
        return [running[name].timer for name in sorted(running)]

    async def timer(self, actor_type: str, actor_id: str, name: str) -> Timer:
        """One running timer of the actor (404 ERR_ACTOR_TIMER_NOT_FOUND when it has none of that
        name); as :meth:`timers_of` otherwise."""
        for timer in await self.timers_of(actor_type, actor_id):
            if timer.name == name:
                return timer
        raise errors.actor_timer_not_found(name)

    # -- placement's changes and the sweep -----------------------------------------------------------

    async def _rebalance(self) -> None:
        """Deactivate here the actors placement now gives to another sidecar."""
        moved = []
        for activation in self.table.activations():
            try:
                owner = await self.placement.lookup(*activation.key)
            except PlacementUnavailable:
                continue  # unknown: kept (a sidecar that loses its lease fences itself)
            if owner != self.placement.address:
                moved.append(activation)
        if moved:
            log.info("actors moved to other sidecars", count=len(moved))

        def drain(activation: Activation) -> float:
            config: TypeConfig = activation.config
            return config.drain_timeout.total_seconds() if config.drain_rebalanced else 0.0

        await self.table.deactivate_all(moved, drain)

    async def _fenced(self) -> None:
        dropped = self.table.fence()
        if dropped:
            log.warning("placement lease not renewed in time: every actor here dropped", count=dropped)

    def _interval(self) -> float:
        if self._sweep_interval is not None:
            return self._sweep_interval
        idle = [c.idle_timeout.total_seconds() for c in self.config.types.values()]
        return max(0.05, min(1.0, min(idle, default=1.0) / 4))

    async def _sweep_idle(self) -> None:
        while True:
            await asyncio.sleep(self._interval())
            idle = self.table.idle(time.monotonic())
            if idle:
                await self.table.deactivate_all(idle)
