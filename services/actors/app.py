"""The calls the actor runtime makes to the app (dapr-http-api.md section 12.3): a method, a
reminder or a timer as ``PUT /actors/{type}/{id}/method/...``, and ``DELETE /actors/{type}/{id}``."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

import structlog

from mesh.app_channel import AppChannel, AppResponse, AppUnreachable

log = structlog.get_logger(__name__)

CANCEL_HEADER = "X-Daprremindercancel"
ERROR_HEADER = "X-Daprerrorresponseheader"
REENTRANCY_HEADER = "Dapr-Reentrancy-Id"
JSON = "application/json"


def actor_path(actor_type: str, actor_id: str) -> str:
    return f"/actors/{quote(actor_type, safe='')}/{quote(actor_id, safe='')}"


def cancels(response: AppResponse) -> bool:
    """Whether a reminder's or timer's answer asks for no further ticks."""
    return response.headers.get(CANCEL_HEADER, "").strip().lower() == "true"


class ActorApp:
    def __init__(self, channel: AppChannel, timeout: float | None = None) -> None:
        self.channel = channel
        self.timeout = timeout
        """The deadline of one method call (None: none, as daprd's actor calls)."""

    @property
    def configured(self) -> bool:
        return self.channel.configured

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
        """``PUT /actors/{type}/{id}/method/{method}`` whatever the client's verb; ``method`` is
        already escaped. Raises AppUnreachable."""
        target = f"{actor_path(actor_type, actor_id)}/method/{method}"
        if query:
            target = f"{target}?{query}"
        return await self.channel.request(
            "PUT", target, body=body, headers=dict(headers), timeout=self.timeout
        )

    async def fire(self, actor_type: str, actor_id: str, kind: str, name: str, body: bytes) -> AppResponse:
        """A reminder (``remind``) or timer (``timer``) tick. Raises AppUnreachable."""
        return await self.invoke(
            actor_type,
            actor_id,
            f"{kind}/{quote(name, safe='')}",
            headers=[("Content-Type", JSON)],
            body=body,
        )

    async def deactivate(self, actor_type: str, actor_id: str) -> None:
        """``DELETE /actors/{type}/{id}``; a failure is logged (the activation ends anyway)."""
        try:
            response = await self.channel.request(
                "DELETE", actor_path(actor_type, actor_id), timeout=self.timeout
            )
        except AppUnreachable as exc:
            log.warning("the app did not take the deactivation", actor_type=actor_type, error=str(exc))
            return
        if response.status != 200:
            log.warning(
                "the app refused the deactivation",
                actor_type=actor_type,
                actor_id=actor_id,
                status=response.status,
            )
