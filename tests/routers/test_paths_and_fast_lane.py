"""Keys that look like paths, hostile query pages and falsy bodies."""

from __future__ import annotations

from typing import Any

import pytest

from tests.routers.conftest import BY_ID, STATE, StartSidecar, assert_error


async def test_encoded_slashes_address_their_own_keys(
    start_sidecar: StartSidecar, request: pytest.FixtureRequest
) -> None:
    sidecar = await start_sidecar(BY_ID["in-memory"].component("s", request))
    for key in ("a", "a/", "a/b", "a//b"):
        await sidecar.saved("s", key, key)
    assert (await sidecar.request("GET", f"{STATE}/s/a%2F")).json() == "a/"
    assert (await sidecar.request("GET", f"{STATE}/s/a%2F%2Fb")).json() == "a//b"
    assert (await sidecar.request("DELETE", f"{STATE}/s/a%2F")).status_code == 204
    assert (await sidecar.request("GET", f"{STATE}/s/a%2F")).status_code == 204
    assert (await sidecar.request("GET", f"{STATE}/s/a")).json() == "a"  # untouched


@pytest.mark.parametrize(
    "page",
    [
        {"limit": 1, "token": "99999999999999999999"},
        {"limit": 1, "token": "²"},
        {"limit": 2**63},
        {"limit": -1},
    ],
)
async def test_hostile_pages_are_failed_queries(
    start_sidecar: StartSidecar, request: pytest.FixtureRequest, page: dict[str, Any]
) -> None:
    sidecar = await start_sidecar(BY_ID["sqlite"].component("s", request))
    await sidecar.saved("s", "k", {"n": 1})
    response = await sidecar.query("s", {"filter": {"EQ": {"n": 1}}, "page": page})
    assert_error(response, 500, "ERR_STATE_QUERY", details=["ErrorInfo", "ResourceInfo"])


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("bulk", {"keys": {}}),
        ("bulk", {"keys": ""}),
        ("bulk", {"keys": ["k"], "parallelism": False}),
        ("transaction", {"operations": {}}),
        ("transaction", {"operations": ""}),
        ("transaction", {"operations": 0}),
    ],
)
async def test_falsy_values_of_the_wrong_type_are_malformed(
    start_sidecar: StartSidecar, request: pytest.FixtureRequest, path: str, body: Any
) -> None:
    sidecar = await start_sidecar(BY_ID["in-memory"].component("s", request))
    response = await sidecar.request("POST", f"{STATE}/s/{path}", json=body)
    assert_error(response, 400, "ERR_MALFORMED_REQUEST")
