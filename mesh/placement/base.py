"""The placement contract: which sidecar hosts the activation of an actor ``(type, id)``.

Dapr asks a placement service; l8 builds the same guarantees on the registry the sidecars already
share (``name_resolution``: Redis or etcd; ``static`` means one sidecar alone, :mod:`local`).

* **Membership.** A sidecar hosting actor types registers ``(types, address)`` with a lease; it
  renews the lease every third of its ttl and removes it when it stops. A sidecar that dies drops
  out when its lease ends. Every sidecar (hosting or only calling) reads the members of a type
  when it first needs them and keeps them fresh in the background.
* **The table.** For each type, a consistent-hash ring with virtual nodes over the live members
  hosting it, as Dapr's placement tables: ``(type, id)`` maps to exactly one address, the same on
  every sidecar that has read the same membership.
* **Activations.** The table may differ between sidecars for a moment while membership changes,
  so the ring alone cannot promise one activation per actor. Before a sidecar activates an actor
  it ``claim``s it in the shared store, tied to its own lease; a claim fails while another live
  sidecar holds one. A sidecar ``release``s when it deactivates. A sidecar's claims end with its
  lease: one that cannot renew in time **fences itself** (the ``on_fenced`` listener deactivates
  every actor locally, at once) before its lease can have ended in the store, so no other sidecar
  activates an actor while it still runs one.
* **Changes.** When the table changes, ``on_change`` listeners run; the actor runtime then
  deactivates the actors this sidecar no longer owns (draining their turns) and releases them, and
  the new owner's claim succeeds from that moment (or once the old owner's lease has ended).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

ChangeListener = Callable[[], Awaitable[None]]
"""Run after the table changed (a member joined, left or changed its types)."""


class Placement(Protocol):
    address: str
    """This sidecar's address as other sidecars reach its HTTP API (``host:port``)."""

    async def start(self, app_id: str, address: str) -> None:
        """Connect; nothing is hosted until :meth:`host` names types."""

    async def host(self, types: frozenset[str]) -> None:
        """Register (or re-register) this sidecar as a host of ``types`` (empty: hosts none).
        Called once the app's ``/dapr/config`` is read, and again when it changes."""

    async def lookup(self, actor_type: str, actor_id: str) -> str | None:
        """The address of the sidecar that hosts ``(actor_type, actor_id)`` now (this sidecar's own
        :attr:`address` when it is here), or ``None`` when no live sidecar hosts the type. Answers
        from memory once the type's members have been read (the hot path: no I/O)."""

    async def claim(self, actor_type: str, actor_id: str) -> bool:
        """Record that this sidecar activates the actor. ``True`` when it now holds it (or already
        did); ``False`` while another live sidecar holds it. Atomic in the store."""

    async def release(self, actor_type: str, actor_id: str) -> None:
        """Drop this sidecar's claim (after deactivation). A claim that is not ours is left alone."""

    def on_change(self, listener: ChangeListener) -> None: ...

    def on_fenced(self, listener: ChangeListener) -> None:
        """Run when this sidecar could not renew its lease in time: every local activation must end
        now. Once the lease is renewed again, hosting resumes (with new claims)."""

    def describe(self) -> dict[str, Any]:
        """For the metadata API: the kind, the server, the hosted types, the members seen."""

    async def aclose(self) -> None:
        """Deregister (others see the change at once), drop every claim, disconnect. Idempotent."""
