"""The secrets API over ASGI: Dapr's routes, answers, statuses and error codes (dapr-http-api.md
section 7), Configuration ``spec.secrets.scopes``, and the 204 of a store with no data."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest

from services.secret_scopes import SecretScopes
from services.secrets import SecretsService, SecretStoreHandle
from tests.routers.conftest import StartSidecar, assert_error, component

SECRETS = {
    "db-password": "hunter2",
    "api/key": "k-1",
    "zeta": "z",
    "alpha": "a",
    "nested": {"user": "u", "pass": "p"},
}


@pytest.fixture
def secrets_file(tmp_path: Path) -> Path:
    path = tmp_path / "secrets.json"
    path.write_bytes(orjson.dumps(SECRETS))
    return path


@pytest.fixture
def local_file(secrets_file: Path) -> str:
    return component("vault", "secretstores.local.file", secretsFile=str(secrets_file))


async def test_get_answers_the_secret_as_json(start_sidecar: StartSidecar, local_file: str) -> None:
    sidecar = await start_sidecar(local_file)
    response = await sidecar.request("GET", "/v1.0/secrets/vault/db-password")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"db-password": "hunter2"}
    nested = await sidecar.request("GET", "/v1.0/secrets/vault/nested:user")
    assert nested.json() == {"nested:user": "u"}


async def test_a_name_with_a_slash_is_sent_escaped(start_sidecar: StartSidecar, local_file: str) -> None:
    sidecar = await start_sidecar(local_file)
    response = await sidecar.request("GET", "/v1.0/secrets/vault/api%2Fkey")
    assert response.status_code == 200
    assert response.json() == {"api/key": "k-1"}


async def test_bulk_answers_every_secret_with_keys_sorted(
    start_sidecar: StartSidecar, local_file: str
) -> None:
    sidecar = await start_sidecar(local_file)
    response = await sidecar.request("GET", "/v1.0/secrets/vault/bulk")
    assert response.status_code == 200
    assert list(response.json()) == sorted(response.json())  # Go's json.Marshal sorts map keys
    assert response.json() == {
        "alpha": {"alpha": "a"},
        "api/key": {"api/key": "k-1"},
        "db-password": {"db-password": "hunter2"},
        "nested:pass": {"nested:pass": "p"},
        "nested:user": {"nested:user": "u"},
        "zeta": {"zeta": "z"},
    }


async def test_multi_valued_store_answers_every_key(start_sidecar: StartSidecar, secrets_file: Path) -> None:
    store = component("vault", "secretstores.local.file", secretsFile=str(secrets_file), multiValued="true")
    sidecar = await start_sidecar(store)
    response = await sidecar.request("GET", "/v1.0/secrets/vault/nested")
    assert response.json() == {"pass": "p", "user": "u"}
    assert response.content == b'{"pass":"p","user":"u"}'
    assert await sidecar.capabilities("vault") == {"MULTIPLE_KEY_VALUES_PER_SECRET"}


async def test_a_missing_secret_is_err_secret_get(start_sidecar: StartSidecar, local_file: str) -> None:
    sidecar = await start_sidecar(local_file)
    response = await sidecar.request("GET", "/v1.0/secrets/vault/absent")
    assert_error(
        response,
        500,
        "ERR_SECRET_GET",
        message="failed getting secret with key absent from secret store vault: secret absent not found",
    )


async def test_an_unknown_store_is_401(start_sidecar: StartSidecar, local_file: str) -> None:
    sidecar = await start_sidecar(local_file)
    for path in ("/v1.0/secrets/nope/db-password", "/v1.0/secrets/nope/bulk"):
        assert_error(
            await sidecar.request("GET", path),
            401,
            "ERR_SECRET_STORE_NOT_FOUND",
            message="failed finding secret store with key nope",
        )


async def test_without_secret_stores_every_request_is_not_configured(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar(component("statestore", "state.in-memory"))
    for path in ("/v1.0/secrets/vault/x", "/v1.0/secrets/vault/bulk"):
        assert_error(
            await sidecar.request("GET", path),
            500,
            "ERR_SECRET_STORES_NOT_CONFIGURED",
            message="secret store is not configured",
        )


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
async def test_only_get_is_routed(start_sidecar: StartSidecar, local_file: str, method: str) -> None:
    sidecar = await start_sidecar(local_file)
    response = await sidecar.request(method, "/v1.0/secrets/vault/db-password")
    assert response.status_code in (404, 405)
    assert "hunter2" not in response.text


def _scopes(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"secrets": {"scopes": list(entries)}}


@pytest.mark.parametrize(
    ("scope", "allowed"),
    [
        ({"storeName": "vault", "defaultAccess": "deny"}, set()),
        ({"storeName": "vault", "defaultAccess": "DENY", "allowedSecrets": ["alpha"]}, {"alpha"}),
        ({"storeName": "vault", "allowedSecrets": ["alpha", "zeta"]}, {"alpha", "zeta"}),
        (
            {"storeName": "vault", "deniedSecrets": ["alpha"]},
            {"api/key", "db-password", "nested:pass", "nested:user", "zeta"},
        ),
        (
            {"storeName": "vault", "allowedSecrets": ["alpha"], "deniedSecrets": ["alpha"]},
            {"alpha"},  # Dapr: a non-empty allow list decides alone
        ),
        (
            {"storeName": "other", "defaultAccess": "deny"},
            {"alpha", "api/key", "db-password", "nested:pass", "nested:user", "zeta"},
        ),
    ],
)
async def test_scopes_decide_single_reads_and_filter_bulk(
    start_sidecar: StartSidecar, local_file: str, scope: dict[str, Any], allowed: set[str]
) -> None:
    sidecar = await start_sidecar(local_file, dapr_configuration=_scopes(scope))
    bulk = await sidecar.request("GET", "/v1.0/secrets/vault/bulk")
    assert bulk.status_code == 200
    assert set(bulk.json()) == allowed
    for name in ("alpha", "zeta", "db-password"):
        response = await sidecar.request("GET", f"/v1.0/secrets/vault/{name}")
        if name in allowed:
            assert response.status_code == 200, response.text
        else:
            assert_error(
                response,
                403,
                "ERR_PERMISSION_DENIED",
                message=f'access denied by policy to get "{name}" from "vault"',
            )


async def test_scope_is_checked_before_the_store_is_read(
    start_sidecar: StartSidecar, local_file: str
) -> None:
    sidecar = await start_sidecar(
        local_file, dapr_configuration=_scopes({"storeName": "vault", "defaultAccess": "deny"})
    )
    # A name the store lacks is refused by policy, not reported missing: nothing about it leaks.
    assert_error(await sidecar.request("GET", "/v1.0/secrets/vault/absent"), 403, "ERR_PERMISSION_DENIED")


async def test_request_metadata_reaches_the_store(start_sidecar: StartSidecar, local_file: str) -> None:
    sidecar = await start_sidecar(local_file)
    response = await sidecar.request(
        "GET", "/v1.0/secrets/vault/alpha?metadata.version_id=3&metadata.namespace=x"
    )
    assert response.json() == {"alpha": "a"}


class _NoData:
    """A store that finds the name but has no data for it (some of Dapr's cloud stores do)."""

    async def get(self, name: str, metadata: Mapping[str, str]) -> dict[str, str] | None:
        return None

    async def bulk_get(self, metadata: Mapping[str, str]) -> dict[str, dict[str, str]]:
        return {}


async def test_a_store_with_no_data_for_a_name_answers_204() -> None:
    service = SecretsService({"s": SecretStoreHandle("s", _NoData())})  # type: ignore[arg-type]
    assert await service.get("s", "x", {}) is None
    assert await service.bulk_get("s", {}) == {}


def test_bad_scopes_name_the_field() -> None:
    from components.resources import ResourceError

    bad = [
        ({"secrets": {"scopes": {"storeName": "x"}}}, "spec.secrets.scopes"),
        ({"secrets": {"scopes": [{"defaultAccess": "deny"}]}}, "spec.secrets.scopes[0].storeName"),
        (
            {"secrets": {"scopes": [{"storeName": "x", "defaultAccess": "maybe"}]}},
            "spec.secrets.scopes[0].defaultAccess",
        ),
        (
            {"secrets": {"scopes": [{"storeName": "x", "allowedSecrets": "a"}]}},
            "spec.secrets.scopes[0].allowedSecrets",
        ),
    ]
    for spec, field in bad:
        with pytest.raises(ResourceError) as caught:
            SecretScopes.from_configurations([(spec, "config.yaml")])
        assert caught.value.field == field


async def test_the_route_answers_204_when_the_store_has_no_data(
    start_sidecar: StartSidecar, local_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from components.secretstores.local_file import LocalFileSecretStore

    monkeypatch.setattr(LocalFileSecretStore, "get", _NoData.get)
    sidecar = await start_sidecar(local_file)
    response = await sidecar.request("GET", "/v1.0/secrets/vault/alpha")
    assert response.status_code == 204
    assert response.content == b""
