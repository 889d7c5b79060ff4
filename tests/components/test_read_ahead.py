"""components/files/read_ahead.py: the blocks in order, an error in its place, a bounded lead, and
the source closed when the consumer stops early."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from components.files.read_ahead import read_ahead


class Source:
    def __init__(self, count: int, fail_at: int | None = None) -> None:
        self.count = count
        self.fail_at = fail_at
        self.produced = 0
        self.closed = False

    async def blocks(self) -> AsyncIterator[bytes]:
        try:
            for index in range(self.count):
                if index == self.fail_at:
                    raise OSError("the store went away")
                self.produced += 1
                yield bytes([index])
        finally:
            self.closed = True


async def test_every_block_comes_in_order() -> None:
    source = Source(20)
    assert [block async for block in read_ahead(source.blocks())] == [bytes([i]) for i in range(20)]
    assert source.closed


async def test_an_error_comes_after_the_blocks_before_it() -> None:
    source = Source(10, fail_at=4)
    seen = []
    with pytest.raises(OSError, match="went away"):
        async for block in read_ahead(source.blocks()):
            seen.append(block)
    assert seen == [bytes([i]) for i in range(4)]


async def test_the_lead_is_bounded_and_an_early_stop_closes_the_source() -> None:
    source = Source(1000)
    ahead = read_ahead(source.blocks(), blocks=2)
    assert await ahead.__anext__() == b"\x00"
    await asyncio.sleep(0.05)
    assert source.produced <= 1 + 2 + 1  # the one taken, the queue, the one waiting to be queued
    await ahead.aclose()
    assert source.closed
