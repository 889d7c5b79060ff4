"""Dapr's key prefix strategies."""

from __future__ import annotations

import pytest

from components.errors import MetadataError
from components.key_prefix import KeyPrefix


@pytest.mark.parametrize(
    ("strategy", "app_id", "storage_key"),
    [
        (None, "shop", "shop||k"),
        ("AppID", "shop", "shop||k"),
        (None, "", "k"),
        ("name", "shop", "store||k"),
        ("none", "shop", "k"),
        ("Tenant-A", "shop", "tenant-a||k"),
    ],
)
def test_strategies(strategy: str | None, app_id: str, storage_key: str) -> None:
    prefix = KeyPrefix.from_metadata(strategy, app_id=app_id, store_name="store")
    assert prefix.storage_key("k") == storage_key
    assert prefix.user_key(storage_key) == "k"


def test_namespace_strategy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAMESPACE", "prod")
    assert (
        KeyPrefix.from_metadata("namespace", app_id="shop", store_name="s").storage_key("k") == "prod.shop||k"
    )


def test_custom_prefix_cannot_hold_the_separator() -> None:
    with pytest.raises(MetadataError) as caught:
        KeyPrefix.from_metadata("a||b", app_id="x", store_name="s")
    assert caught.value.field == "keyPrefix"
