"""bindings.http's TLS options against real TLS servers (certificates made by openssl, as the
HTTPEndpoint TLS tests make them): a private root CA trusted only when given (as a file or as PEM
text), the client certificate presented to a server that requires one, and a bad value failing
init naming its field."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from components.bindings.base import InvokeRequest
from components.bindings.http import HttpBinding
from components.errors import BackendError, ComponentInitError, MetadataError
from tests.e2e.test_http_endpoint_tls import pki, tls_service
from tests.servers import LOOPBACK

__all__ = ["pki"]  # the module-scoped fixture, shared with the HTTPEndpoint TLS tests


async def _get(metadata: dict[str, str], path: str = "/hello") -> bytes:
    binding = HttpBinding()
    await binding.init(metadata)
    try:
        answer = await binding.invoke(InvokeRequest(b"", {"path": path}, "get"))
        assert answer is not None
        return answer.data
    finally:
        await binding.close()


async def test_root_ca_and_client_certificate(pki: Path) -> None:
    async with tls_service(pki, client_certificate=True) as port:
        url = f"https://{LOOPBACK}:{port}"
        answer = await _get(
            {
                "url": url,
                "MTLSRootCA": str(pki / "ca.pem"),  # a file path
                "MTLSClientCert": (pki / "client.pem").read_text(),  # PEM text
                "MTLSClientKey": (pki / "client.key").read_text(),
            }
        )
        assert orjson.loads(answer) == {"path": "/hello", "client": "client"}
        with pytest.raises(BackendError):  # no client certificate: the server refuses the handshake
            await _get({"url": url, "MTLSRootCA": str(pki / "ca.pem")})


async def test_the_private_ca_is_trusted_only_when_given(pki: Path) -> None:
    async with tls_service(pki, client_certificate=False) as port:
        url = f"https://{LOOPBACK}:{port}"
        assert (
            orjson.loads(await _get({"url": url, "MTLSRootCA": (pki / "ca.pem").read_text()}))["path"]
            == "/hello"
        )
        with pytest.raises(BackendError, match="certificate"):
            await _get({"url": url})


@pytest.mark.parametrize(
    ("metadata", "field"),
    [
        ({"MTLSRootCA": "/no/such/file.pem"}, "MTLSRootCA"),
        (
            {"MTLSRootCA": "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"},
            "MTLSRootCA",
        ),
        ({"MTLSClientCert": "/no/such/cert.pem", "MTLSClientKey": "/no/such/key.pem"}, "MTLSClientCert"),
        ({"MTLSRenegotiation": "Sometimes"}, "MTLSRenegotiation"),
    ],
)
async def test_bad_tls_values_fail_init_naming_the_field(metadata: dict[str, str], field: str) -> None:
    binding = HttpBinding()
    with pytest.raises((ComponentInitError, MetadataError)) as failure:
        await binding.init({"url": "https://example.invalid", **metadata})
    assert getattr(failure.value, "field", None) == field
    await binding.close()
