"""HTTPEndpoint ``clientTLS`` through a real ``l8 run`` and real TLS servers (certificates made by
openssl for the test): a private root CA is trusted only when given, and a service that asks for a
client certificate gets the one configured."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
from aiohttp import web

from tests.e2e.process import L8Error, L8Launcher, L8Process
from tests.servers import LOOPBACK, free_port

pytestmark = pytest.mark.e2e


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root CA, a server certificate for 127.0.0.1 and a client certificate, all signed by it."""
    folder = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
             "-days", "2", "-subj", "/CN=l8 test CA", cwd=folder)  # fmt: skip
    (folder / "server.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name, extra in (("server", ["-extfile", "server.ext"]), ("client", [])):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={name}", cwd=folder)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.pem", "-days", "2", *extra, cwd=folder)  # fmt: skip
    return folder


@contextlib.asynccontextmanager
async def tls_service(pki: Path, *, client_certificate: bool) -> AsyncIterator[int]:
    async def hello(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        subject = dict(item[0] for item in peer["subject"]) if peer else {}
        return web.json_response({"path": request.path, "client": subject.get("commonName")})

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki / "server.pem", pki / "server.key")
    if client_certificate:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(pki / "ca.pem")
    app = web.Application()
    app.router.add_get("/{tail:.*}", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, LOOPBACK, port, ssl_context=context).start()
    try:
        yield port
    finally:
        await runner.cleanup()


def endpoint(name: str, port: int, tls: dict[str, str] | None) -> str:
    lines = [
        "apiVersion: dapr.io/v1alpha1",
        "kind: HTTPEndpoint",
        f"metadata: {{name: {name}}}",
        "spec:",
        f"  baseUrl: https://{LOOPBACK}:{port}/api",
    ]
    if tls is not None:
        lines.append("  clientTLS:")
        for part, text in tls.items():
            indented = "\n".join("        " + line for line in text.strip().splitlines())
            lines.append(f"    {part}:\n      value: |\n{indented}")
    return "\n".join(lines) + "\n"


async def sidecar(l8: L8Launcher, tmp_path: Path, *documents: str) -> L8Process:
    folder = tmp_path / "resources"
    folder.mkdir(exist_ok=True)
    for index, text in enumerate(documents):
        (folder / f"endpoint-{index}.yaml").write_text(text)
    return await asyncio.to_thread(l8, app_id="caller", resources=[folder])


async def test_client_tls_roots_and_certificates(l8: L8Launcher, tmp_path: Path, pki: Path) -> None:
    ca = (pki / "ca.pem").read_text()
    mine = {"certificate": (pki / "client.pem").read_text(), "privateKey": (pki / "client.key").read_text()}
    async with (
        tls_service(pki, client_certificate=False) as plain,
        tls_service(pki, client_certificate=True) as mutual,
    ):
        process = await sidecar(
            l8,
            tmp_path,
            endpoint("trusted", plain, {"rootCA": ca}),
            endpoint("untrusted", plain, None),
            endpoint("mutual", mutual, {"rootCA": ca, **mine}),
            endpoint("anonymous", mutual, {"rootCA": ca}),
        )
        async with httpx.AsyncClient(timeout=10) as client:
            base = f"{process.url}/v1.0/invoke"
            trusted = await client.get(f"{base}/trusted/method/hello")
            assert trusted.status_code == 200, trusted.text
            assert trusted.json() == {"path": "/api/hello", "client": None}
            untrusted = await client.get(f"{base}/untrusted/method/hello")
            assert untrusted.status_code == 500 and untrusted.json()["errorCode"] == "ERR_DIRECT_INVOKE"
            assert "certificate" in untrusted.json()["message"].lower()
            mutual_answer = await client.get(f"{base}/mutual/method/hello")
            assert mutual_answer.status_code == 200, mutual_answer.text
            assert mutual_answer.json()["client"] == "client"  # the service saw l8's certificate
            anonymous = await client.get(f"{base}/anonymous/method/hello")
            assert anonymous.status_code == 500 and anonymous.json()["errorCode"] == "ERR_DIRECT_INVOKE"


@pytest.mark.parametrize(
    ("tls", "field"),
    [({"certificate": "client.pem"}, "spec.clientTLS.privateKey"), ({"rootCA": "not pem"}, "spec.clientTLS.rootCA"),
     ({"rootCA": "server.key"}, "spec.clientTLS.rootCA")],
)  # fmt: skip
async def test_bad_client_tls_fails_start_up(
    l8: L8Launcher, tmp_path: Path, pki: Path, tls: dict[str, str], field: str
) -> None:
    values = {part: (pki / text).read_text() if (pki / text).exists() else text for part, text in tls.items()}
    with pytest.raises(L8Error, match=field.replace(".", r"\.")):
        await sidecar(l8, tmp_path, endpoint("bad", 8443, values))


async def test_client_tls_parts_come_from_a_secret_store(l8: L8Launcher, tmp_path: Path, pki: Path) -> None:
    """rootCA, certificate and privateKey as secretKeyRef, read from the endpoint's auth.secretStore."""
    secrets = tmp_path / "tls-secrets.json"
    parts = {"ca": "ca.pem", "cert": "client.pem", "key": "client.key"}
    secrets.write_bytes(
        orjson.dumps({"tls": {name: (pki / file).read_text() for name, file in parts.items()}})
    )
    store = (
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: vault}\n"
        f"spec:\n  type: secretstores.local.file\n  metadata:\n  - {{name: secretsFile, value: {secrets}}}\n"
        "  - {name: multiValued, value: 'true'}\n"
    )
    async with tls_service(pki, client_certificate=True) as mutual:
        document = endpoint("mutual", mutual, None) + (
            "  clientTLS:\n"
            "    rootCA: {secretKeyRef: {name: tls, key: ca}}\n"
            "    certificate: {secretKeyRef: {name: tls, key: cert}}\n"
            "    privateKey: {secretKeyRef: {name: tls, key: key}}\n"
            "auth: {secretStore: vault}\n"
        )
        process = await sidecar(l8, tmp_path, store, document)
        async with httpx.AsyncClient(timeout=10) as client:
            answer = await client.get(f"{process.url}/v1.0/invoke/mutual/method/hello")
            assert answer.status_code == 200, answer.text
            assert answer.json()["client"] == "client"
