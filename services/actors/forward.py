"""Calls for an actor owned by another sidecar go to that sidecar's own ``/v1.0/actors/...`` route
(its HTTP API address from placement), over l8's keep-alive HTTP client, one per peer.

A forwarded call carries ``l8-actor-hops`` (how many sidecars it has passed) and the fleet's
``l8-mesh-token`` when one is configured (else the API token the fleet shares, if any). A sidecar
forwards a call that was already forwarded only once more (tables may differ for a moment while
membership changes); past that it answers that the actor has no address.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from urllib.parse import quote

from multidict import CIMultiDict, CIMultiDictProxy

from mesh.app_channel import AppResponse
from mesh.http_client import ConnectError, HttpClient, HttpError
from services import errors

HOPS = "l8-actor-hops"
MAX_HOPS = 2
IDLE_EXPIRY = 2.0
"""Seconds a connection to a peer stays reusable once idle: below the sidecars' idle timeout (5 s by
default), so a forwarded call is not sent on a connection the owner is closing (a call sent so is
sent again on a new connection, mesh/http_client.py: it was not received, but it costs a connect)."""
_DROPPED = frozenset(
    {
        "host",
        "content-length",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "dapr-api-token",
        "l8-mesh-token",
        HOPS,
    }
)


class PeerUnreachable(Exception):
    """The owner sidecar did not answer."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent
        """Whether the call may have reached it (a connection that failed only after sending): such
        a call is never sent again, as its outcome is unknown."""


def closing(response: AppResponse) -> bool:
    """The owner answered that its actor runtime is closing (it is shutting down): the actor
    moves once its placement membership ends, and the call can be sent to the new owner."""
    return response.status == 503 and b"ERR_ACTOR_RUNTIME_CLOSED" in response.body


def api_path(actor_type: str, actor_id: str) -> str:
    """The actor's path on a sidecar's API: ``/v1.0/actors/{type}/{id}``, escaped."""
    return f"/v1.0/actors/{quote(actor_type, safe='')}/{quote(actor_id, safe='')}"


def hops(headers: Sequence[tuple[str, str]]) -> int:
    for name, value in headers:
        if name.lower() == HOPS:
            return int(value) if value.isdigit() else MAX_HOPS
    return 0


def passed_on(headers: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The caller's headers less those of the hop and of this sidecar's own authentication."""
    return [(name, value) for name, value in headers if name.lower() not in _DROPPED]


class Peers:
    def __init__(self, auth: tuple[str, str] | None = None, timeout: float | None = None) -> None:
        self._auth = auth
        self._timeout = timeout
        self._clients: dict[str, HttpClient] = {}

    async def forward(
        self,
        address: str,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        hop: int,
    ) -> AppResponse:
        """Send the call to the sidecar at ``address`` (``host:port``); its answer whole."""
        if hop >= MAX_HOPS:
            raise errors.actor_no_address()
        outgoing = [*passed_on(headers), (HOPS, str(hop + 1))]
        if self._auth is not None:
            outgoing.append(self._auth)
        client = self._client(address)
        try:
            answer = await client.request(method, target, outgoing, body or None, self._timeout)
        except ConnectError as exc:
            raise PeerUnreachable(f"sidecar {address} did not answer: {exc}", sent=False) from None
        except HttpError as exc:
            raise PeerUnreachable(f"sidecar {address} did not answer: {exc}", sent=True) from None
        received = CIMultiDict((n.decode("latin-1"), v.decode("latin-1")) for n, v in answer.headers)
        return AppResponse(answer.status, CIMultiDictProxy(received), answer.body)

    def _client(self, address: str) -> HttpClient:
        client = self._clients.get(address)
        if client is None:
            host, _, port = address.rpartition(":")
            client = self._clients[address] = HttpClient(
                "http", host.strip("[]"), int(port), max_idle=64, idle_expiry=IDLE_EXPIRY
            )
        return client

    async def aclose(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.aclose()


class Retry:
    """Pauses between tries of one call, growing, until ``limit`` seconds have passed."""

    def __init__(self, limit: float) -> None:
        self._give_up = time.monotonic() + limit
        self._pause = 0.05

    async def again(self) -> bool:
        if time.monotonic() + self._pause > self._give_up:
            return False
        await asyncio.sleep(self._pause)
        self._pause = min(self._pause * 2, 1.0)
        return True
