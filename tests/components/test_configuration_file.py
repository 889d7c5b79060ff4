"""What only configuration.file does: a file that stops parsing keeps its last good content (and a
save will not overwrite it), an editor that replaces the file by a rename is followed, and the YAML
scalars are read as the text written."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from components import registry
from components.configuration.base import ConfigurationItem, GetRequest, SaveRequest
from components.errors import BackendError


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Any]:
    path = tmp_path / "settings.yaml"
    path.write_text("limit: 10\nflag: yes\nhex: 0x10\n")
    instance = registry.create("configuration.file")
    await instance.init({"path": str(path)})
    try:
        yield instance
    finally:
        await instance.close()


async def values(store: Any) -> dict[str, str]:
    return {item.key: item.value for item in await store.get(GetRequest())}


async def test_scalars_are_the_text_written(store: Any) -> None:
    assert await values(store) == {"limit": "10", "flag": "yes", "hex": "0x10"}


async def test_a_broken_file_keeps_the_last_good_content(store: Any, tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("limit: [unclosed\n")
    assert (await values(store))["limit"] == "10"
    with pytest.raises(BackendError, match="not overwritten"):
        await store.save(SaveRequest([ConfigurationItem("limit", "11")]))
    assert path.read_text() == "limit: [unclosed\n"  # the user's edit is left for them to fix
    path.write_text("limit: 12\n")
    assert await values(store) == {"limit": "12"}


async def test_a_file_replaced_by_a_rename_is_followed(store: Any, tmp_path: Path) -> None:
    seen: list[list[ConfigurationItem]] = []

    async def handler(items: list[ConfigurationItem]) -> None:
        seen.append(items)

    subscription = await store.subscribe(GetRequest(["limit"]), handler)
    try:
        replacement = tmp_path / ".settings.yaml.swp"
        replacement.write_text("limit: 20\nflag: yes\nhex: 0x10\n")
        os.replace(replacement, tmp_path / "settings.yaml")  # what editors and ConfigMaps do
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
        assert [[(item.key, item.value) for item in items] for items in seen] == [[("limit", "20")]]
    finally:
        await subscription.close()
