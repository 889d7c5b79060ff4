"""FastAPI is built only when something needs it: an idle sidecar serving the route table never
imports it, and the documentation pages still answer. Nor does the embedded sidecar import the
client libraries of backends it does not run (S3, PostgreSQL, cron, Kafka, WebAssembly), nor
OpenTelemetry while tracing is off."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from app import factory, framework

ROOT = Path(__file__).resolve().parents[2]


def test_the_dispatcher_knows_the_framework_pages() -> None:
    assert factory.FRAMEWORK_PAGES == framework.PAGE_PATHS


def test_an_idle_sidecar_does_not_import_fastapi(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        import httpx
        from app.factory import create_app
        from app.settings import Settings

        async def main():
            app = create_app(Settings.load({{"data_dir": {str(tmp_path)!r}}}))
            async with app.lifespan():
                transport = httpx.ASGITransport(app)
                async with httpx.AsyncClient(transport=transport, base_url="http://l8") as client:
                    assert (await client.get("/v1.0/healthz")).status_code == 204
                    assert (await client.get("/v1.0/metadata")).status_code == 200
                    assert "fastapi" not in sys.modules, "FastAPI imported at idle"
                    unused = ("aiobotocore", "botocore", "asyncpg", "croniter", "aiokafka", "wasmtime")
                    loaded = [name for name in unused if name in sys.modules]
                    assert not loaded, f"imported without a component using them: {{loaded}}"
                    otel = [name for name in sys.modules if name.startswith("opentelemetry")]
                    assert not otel, f"OpenTelemetry imported with tracing off: {{otel[:5]}}"
                    docs = await client.get("/docs")
                    assert docs.status_code == 200 and b"swagger" in docs.content.lower()
                    spec = await client.get("/openapi.json")
                    assert spec.status_code == 200 and "/v1.0/state/{{storeName}}" in spec.json()["paths"]
        asyncio.run(main())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_sampling_rate_zero_imports_nothing_of_opentelemetry(tmp_path: Path) -> None:
    tracing = {"samplingRate": "0", "otel": {"endpointAddress": "127.0.0.1:4318", "protocol": "http"}}
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        import httpx
        from app.factory import create_app
        from app.settings import Settings

        async def main():
            settings = Settings.load({{"data_dir": {str(tmp_path)!r}, "dapr_configuration": {{"tracing": {tracing!r}}}}})
            app = create_app(settings)
            async with app.lifespan():
                transport = httpx.ASGITransport(app)
                async with httpx.AsyncClient(transport=transport, base_url="http://l8") as client:
                    assert (await client.get("/v1.0/state/statestore/k")).status_code == 204
                    assert "traceparent" not in (await client.get("/v1.0/metadata")).headers
                    otel = [name for name in sys.modules if name.startswith("opentelemetry")]
                    assert not otel, f"OpenTelemetry imported at sampling rate 0: {{otel[:5]}}"
        asyncio.run(main())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
