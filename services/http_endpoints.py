"""Dapr ``HTTPEndpoint`` resources: non-Dapr services invoked by name (dapr-http-api.md section 5.4).

``spec.baseUrl`` (http or https), ``spec.headers`` (``{name, value}`` or ``{name, secretKeyRef:
{name, key}}``) and ``spec.clientTLS``: ``rootCA`` (PEM: the authorities that may sign the
service's certificate, in place of the system's), ``certificate`` + ``privateKey`` (PEM: a client
certificate, for services that ask for one), each as ``{value: ...}`` or ``{secretKeyRef: {name,
key}}``. References read the endpoint's ``auth.secretStore`` (services/secret_refs.py).
``renegotiation`` is accepted and has no effect (Python's TLS client never renegotiates).
Top-level ``scopes`` limit an endpoint to app ids. Every problem fails start-up with the file, the
endpoint and the field named.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.resources import ResourceError, secret_key_ref
from services.secret_refs import SecretRefs

_RENEGOTIATION = {"RenegotiateNever", "RenegotiateOnceAsClient", "RenegotiateFreelyAsClient"}


@dataclass(slots=True, frozen=True)
class HttpEndpoint:
    """A Dapr ``HTTPEndpoint`` resource: a non-Dapr service invoked by name."""

    name: str
    base_url: str
    headers: dict[str, str] = field(default_factory=dict)
    tls: ssl.SSLContext | None = None
    """From ``clientTLS``; None: the system's authorities, no client certificate."""


async def http_endpoints(
    others: Iterable[tuple[str, dict[str, Any], str]], app_id: str, secrets: SecretRefs | None = None
) -> dict[str, HttpEndpoint]:
    """The ``HTTPEndpoint`` resources in scope for ``app_id``, their ``secretKeyRef`` values read
    through ``secrets``; a bad one fails start-up."""
    secrets = secrets if secrets is not None else SecretRefs(())
    found: dict[str, HttpEndpoint] = {}
    for kind, document, source in others:
        if kind != "HTTPEndpoint":
            continue
        name = str((document.get("metadata") or {}).get("name") or "")
        if not name:
            raise ResourceError(source, "HTTPEndpoint has no metadata.name")
        scopes = document.get("scopes") or []
        if scopes and app_id not in scopes:
            continue
        spec = document.get("spec") or {}
        auth = document.get("auth") or {}
        auth_store = str(auth.get("secretStore") or "") if isinstance(auth, Mapping) else ""
        reference = _Reference(secrets, auth_store, source, name)

        base_url = str(spec.get("baseUrl") or "")
        if not base_url.startswith(("http://", "https://")):
            raise ResourceError(source, "baseUrl must be an http:// or https:// URL", name, "spec.baseUrl")
        headers: dict[str, str] = {}
        for index, header in enumerate(spec.get("headers") or []):
            where = f"spec.headers[{index}]"
            if not isinstance(header, dict) or not header.get("name"):
                raise ResourceError(source, "a header needs a name", name, where)
            if "secretKeyRef" in header:
                headers[str(header["name"])] = await reference.value(header, where)
            else:
                headers[str(header["name"])] = str(header.get("value", ""))
        client_tls = spec.get("clientTLS")
        if isinstance(client_tls, Mapping):
            client_tls = dict(client_tls)
            for part in ("rootCA", "certificate", "privateKey"):
                entry = client_tls.get(part)
                if isinstance(entry, Mapping) and "secretKeyRef" in entry:
                    client_tls[part] = {"value": await reference.value(entry, f"spec.clientTLS.{part}")}
        tls = _client_tls(client_tls, base_url, source, name)
        found[name] = HttpEndpoint(name, base_url.rstrip("/"), headers, tls)
    return found


@dataclass(slots=True, frozen=True)
class _Reference:
    """An endpoint's ``secretKeyRef`` entries, read from its ``auth.secretStore``."""

    secrets: SecretRefs
    auth_store: str
    source: str
    endpoint: str

    async def value(self, entry: Mapping[str, Any], where: str) -> str:
        name, key = secret_key_ref(entry["secretKeyRef"], self.source, self.endpoint, where)
        return await self.secrets.value(
            self.auth_store, name, key, source=self.source, resource=self.endpoint, field=where
        )


def _client_tls(spec: Any, base_url: str, source: str, name: str) -> ssl.SSLContext | None:
    if spec is None:
        return None

    def fail(message: str, where: str = "") -> ResourceError:
        return ResourceError(source, message, name, "spec.clientTLS" + (f".{where}" if where else ""))

    if not isinstance(spec, Mapping):
        raise fail("clientTLS must be a mapping")
    if not base_url.startswith("https://"):
        raise fail("clientTLS needs an https:// baseUrl")
    renegotiation = spec.get("renegotiation")
    if renegotiation is not None and renegotiation not in _RENEGOTIATION:
        raise fail(f"renegotiation must be one of {', '.join(sorted(_RENEGOTIATION))}", "renegotiation")

    def pem(part: str) -> str | None:
        entry = spec.get(part)
        if entry is None:
            return None
        if not isinstance(entry, Mapping):
            raise fail("give the PEM text as {value: ...} or {secretKeyRef: {name, key}}", part)
        value = entry.get("value")
        if not isinstance(value, str) or "-----BEGIN" not in value:
            raise fail("value must be PEM text", part)
        return value

    root, certificate, key = pem("rootCA"), pem("certificate"), pem("privateKey")
    if (certificate is None) != (key is None):
        raise fail("certificate and privateKey go together", "certificate" if key else "privateKey")
    try:
        context = ssl.create_default_context(cadata=root) if root else ssl.create_default_context()
    except ssl.SSLError as exc:
        raise fail(f"rootCA is not a usable certificate: {exc}", "rootCA") from None
    if certificate is not None and key is not None:
        _load_client_certificate(context, certificate, key, fail)
    return context


def _load_client_certificate(context: ssl.SSLContext, certificate: str, key: str, fail: Any) -> None:
    # The ssl module reads a certificate chain from files only: written for the call, owner-only.
    with tempfile.TemporaryDirectory(prefix="l8-client-tls-") as folder:
        paths = []
        for file_name, text in (("certificate.pem", certificate), ("key.pem", key)):
            path = Path(folder) / file_name
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as out:
                out.write(text)
            paths.append(path)
        try:
            context.load_cert_chain(paths[0], paths[1])
        except ssl.SSLError as exc:
            raise fail(f"certificate and privateKey are not a usable pair: {exc}", "certificate") from None
