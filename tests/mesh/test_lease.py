"""The lease keeper (mesh/lease.py): renewals every third of the ttl, and the lapse told in time
whatever the renewals do (hang, fail, or hear from the store that the lease is gone)."""

from __future__ import annotations

import asyncio

from mesh.lease import FENCE_FRACTION, LeaseKeeper

TTL = 0.6


async def test_renewals_every_third_of_the_ttl_keep_the_lease_from_lapsing() -> None:
    renewals: list[float] = []
    lapses: list[float] = []
    loop = asyncio.get_running_loop()

    async def renew() -> bool:
        renewals.append(loop.time())
        return True

    keeper = LeaseKeeper(TTL, renew, name="test", on_lapse=lambda: lapses.append(loop.time()))
    keeper.start(loop.time())
    await asyncio.sleep(TTL * 2)
    await keeper.stop()
    assert 4 <= len(renewals) <= 6 and lapses == [] and not keeper.lapsed


async def test_a_renewal_that_hangs_does_not_delay_the_lapse() -> None:
    loop = asyncio.get_running_loop()
    lapses: list[float] = []

    async def renew() -> bool:
        await asyncio.sleep(3600)  # a frozen store
        return True

    started = loop.time()
    keeper = LeaseKeeper(TTL, renew, name="test", on_lapse=lambda: lapses.append(loop.time()))
    keeper.start(started)
    await asyncio.sleep(TTL)
    await keeper.stop()
    assert len(lapses) == 1 and keeper.lapsed
    assert TTL * FENCE_FRACTION <= lapses[0] - started < TTL * FENCE_FRACTION + 0.15


async def test_failing_renewals_lapse_once_and_a_later_success_renews_again() -> None:
    loop = asyncio.get_running_loop()
    lapses: list[float] = []
    outcome: list[bool | Exception] = [ConnectionError("away")]

    async def renew() -> bool:
        found = outcome[0]
        if isinstance(found, Exception):
            raise found
        return found

    keeper = LeaseKeeper(TTL, renew, name="test", on_lapse=lambda: lapses.append(loop.time()))
    keeper.start(loop.time())
    await asyncio.sleep(TTL * 1.2)
    assert len(lapses) == 1  # told once, however many renewals failed
    outcome[0] = True
    await asyncio.sleep(TTL / 2)
    assert not keeper.lapsed
    outcome[0] = False  # the store says the lease is gone: lapsed at the next renewal, not later
    await asyncio.sleep(TTL / 3 + 0.05)
    await keeper.stop()
    assert len(lapses) == 2 and keeper.lapsed


async def test_without_a_listener_renewals_only_go_on() -> None:
    renewals = 0

    async def renew() -> bool:
        nonlocal renewals
        renewals += 1
        raise ConnectionError("away")

    keeper = LeaseKeeper(TTL, renew, name="test")
    keeper.start(asyncio.get_running_loop().time())
    await asyncio.sleep(TTL * 1.1)
    await keeper.stop()
    await keeper.stop()
    assert renewals >= 2
