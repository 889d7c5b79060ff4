"""What the SDK actor tests share: waiting until a sidecar hosts an app's actor types."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from tests.e2e.process import L8Process


async def wait_hosting(sidecar: L8Process, actor_type: str, within: float = 15.0) -> dict[str, Any]:
    """Wait until the sidecar has read the app's ``/dapr/config``: its metadata's ``actorRuntime``
    is running and lists the type (Dapr lists every hosted type, with its count of activations)."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient() as client:
        while True:
            metadata: dict[str, Any] = (await client.get(f"{sidecar.url}/v1.0/metadata")).json()
            runtime = metadata.get("actorRuntime", {})
            types = {entry["type"] for entry in runtime.get("activeActors", [])}
            if runtime.get("runtimeStatus") == "RUNNING" and actor_type in types:
                return metadata
            assert time.monotonic() < deadline, f"{actor_type} not hosted: {metadata.get('actorRuntime')}"
            await asyncio.sleep(0.1)
