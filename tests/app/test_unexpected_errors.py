"""A bug inside a component still answers in Dapr's shape (500 ERROR), logged, never a traceback."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from app.factory import create_app
from app.settings import Settings

COMPONENT = (
    "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: s}\nspec: {type: state.in-memory}\n"
)


async def test_unexpected_exception_answers_dapr_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "s.yaml").write_text(COMPONENT)
    app = create_app(Settings.load({"data_dir": str(tmp_path), "resources_paths": [tmp_path]}))
    async with app.lifespan():
        store = app.state.runtime.components.of("state")["s"].instance

        async def broken(request: object) -> None:
            raise RuntimeError("boom")

        monkeypatch.setattr(store, "get", broken)
        transport = httpx.ASGITransport(app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://l8") as client:
            response = await client.get("/v1.0/state/s/k", headers={"x-request-id": "rid-1"})
            assert response.status_code == 500
            assert response.headers["content-type"] == "application/json"
            assert response.json() == {"errorCode": "ERROR", "message": "internal error: RuntimeError"}
            assert response.headers["x-request-id"] == "rid-1"
            # the sidecar keeps serving
            assert (await client.get("/v1.0/healthz")).status_code == 204
