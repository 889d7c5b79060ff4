"""A download read ahead of its consumer: the store's side and the client's side of a transfer
overlap instead of taking turns, with a bounded number of blocks held in between."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator

_END = object()


async def read_ahead(source: AsyncIterator[bytes], blocks: int = 2) -> AsyncGenerator[bytes, None]:
    """The blocks of ``source``, read by a task of their own up to ``blocks`` ahead of the caller
    (so at most ``blocks`` + 2 blocks are held). An error of ``source`` comes out in its place in
    the sequence; closing this generator stops the reading task and waits for it, and closes
    ``source`` when it is an async generator."""
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize=blocks)

    async def produce() -> None:
        try:
            async for block in source:
                await queue.put(block)
        except Exception as exc:
            await queue.put(exc)
            return
        finally:
            closing = getattr(source, "aclose", None)
            if closing is not None:
                await closing()
        await queue.put(_END)

    producer = asyncio.create_task(produce())
    try:
        while True:
            item = await queue.get()
            if item is _END:
                return
            if isinstance(item, Exception):
                raise item
            assert isinstance(item, bytes)
            yield item
    finally:
        if not producer.done():
            producer.cancel()
        await asyncio.wait([producer])
        if not producer.cancelled():
            producer.exception()  # retrieved: an error was handed on through the queue already
