"""The group commit under every publish and Redis ack (components/pubsub/batching.py): what goes
together, who gets which outcome, and how many flushes may be out at once. Pure asyncio; the
backends' use of it is checked against real servers in test_redis_pubsub.py and
test_kafka_pubsub.py."""

from __future__ import annotations

import asyncio

import pytest

from components.pubsub.batching import Coalescer


class Recorder:
    """A flush that records its batches, fails the items named in ``bad`` and can be held."""

    def __init__(self, bad: frozenset[str] = frozenset()) -> None:
        self.batches: list[list[str]] = []
        self.bad = bad
        self.gate = asyncio.Event()
        self.gate.set()
        self.out = self.most_out = 0

    async def __call__(self, items: list[str]) -> list[BaseException | None]:
        self.batches.append(list(items))
        self.out += 1
        self.most_out = max(self.most_out, self.out)
        try:
            await self.gate.wait()
        finally:
            self.out -= 1
        return [ValueError(item) if item in self.bad else None for item in items]


async def test_items_submitted_together_go_in_one_flush_each_with_its_own_outcome() -> None:
    flush = Recorder(bad=frozenset({"b"}))
    coalescer: Coalescer[str] = Coalescer(flush)
    outcomes = await asyncio.gather(*(coalescer.submit(x) for x in "abc"), return_exceptions=True)
    assert flush.batches == [["a", "b", "c"]]
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], ValueError) and str(outcomes[1]) == "b"


async def test_a_lone_item_leaves_at_once() -> None:
    flush = Recorder()
    coalescer: Coalescer[str] = Coalescer(flush)
    await asyncio.wait_for(coalescer.submit("a"), 1)
    await asyncio.wait_for(coalescer.submit("b"), 1)
    assert flush.batches == [["a"], ["b"]]


async def test_a_failing_flush_fails_its_whole_batch_and_only_it() -> None:
    calls = 0

    async def flush(items: list[str]) -> list[BaseException | None]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("down")
        return [None] * len(items)

    coalescer: Coalescer[str] = Coalescer(flush)
    first = await asyncio.gather(coalescer.submit("a"), coalescer.submit("b"), return_exceptions=True)
    assert all(isinstance(outcome, ConnectionError) for outcome in first)
    await coalescer.submit("c")


@pytest.mark.parametrize("max_in_flight", [1, 2])
async def test_items_wait_while_max_in_flight_flushes_are_out_then_leave_together(max_in_flight: int) -> None:
    flush = Recorder()
    flush.gate.clear()
    coalescer: Coalescer[str] = Coalescer(flush, max_in_flight=max_in_flight)
    first = []
    for n in range(max_in_flight):  # a loop iteration apart: each leaves in a flush of its own
        first.append(asyncio.ensure_future(coalescer.submit(f"first-{n}")))
        await asyncio.sleep(0.01)
    later = [asyncio.ensure_future(coalescer.submit(f"later-{n}")) for n in range(5)]
    await asyncio.sleep(0.01)
    assert flush.out == max_in_flight
    assert all(not future.done() for future in later)
    flush.gate.set()
    await asyncio.gather(*first, *later)
    assert flush.most_out <= max_in_flight
    assert [f"later-{n}" for n in range(5)] in flush.batches


async def test_batches_are_capped_and_keep_submission_order() -> None:
    flush = Recorder()
    coalescer: Coalescer[str] = Coalescer(flush, max_in_flight=1, max_batch=3)
    await asyncio.gather(*(coalescer.submit(x) for x in "abcdefg"))
    assert flush.batches == [["a", "b", "c"], ["d", "e", "f"], ["g"]]


async def test_submit_all_answers_in_order() -> None:
    flush = Recorder(bad=frozenset({"y"}))
    coalescer: Coalescer[str] = Coalescer(flush)
    outcomes = await coalescer.submit_all(["x", "y", "z"])
    assert outcomes[0] is None and isinstance(outcomes[1], ValueError) and outcomes[2] is None
    assert flush.batches == [["x", "y", "z"]]


async def test_a_submitter_that_gives_up_does_not_take_its_item_back() -> None:
    flush = Recorder()
    flush.gate.clear()
    coalescer: Coalescer[str] = Coalescer(flush)
    impatient = asyncio.ensure_future(coalescer.submit("a"))
    patient = asyncio.ensure_future(coalescer.submit("b"))
    await asyncio.sleep(0.01)
    impatient.cancel()
    flush.gate.set()
    await patient
    assert flush.batches == [["a", "b"]]
    assert impatient.cancelled()


async def test_drain_waits_for_every_outcome() -> None:
    flush = Recorder()
    flush.gate.clear()
    coalescer: Coalescer[str] = Coalescer(flush, max_in_flight=1)
    futures = [asyncio.ensure_future(coalescer.submit(x)) for x in "abc"]
    await asyncio.sleep(0)
    assert coalescer.busy
    drained = asyncio.ensure_future(coalescer.drain())
    await asyncio.sleep(0.01)
    assert not drained.done()
    flush.gate.set()
    await asyncio.wait_for(drained, 1)
    assert all(future.done() for future in futures) and not coalescer.busy
