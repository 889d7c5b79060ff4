"""The placement table of one actor type (mesh/placement/ring.py): Dapr's hash, the same table on
every sidecar, an even spread, and few actors moving when a host joins or leaves."""

from __future__ import annotations

import collections
import hashlib
import random

from mesh.placement.ring import REPLICATION_FACTOR, Ring, ring_hash

HOSTS = ["10.0.0.1:3500", "10.0.0.2:3500", "10.0.0.3:3500"]
IDS = [f"actor-{n}" for n in range(10_000)]


def test_the_hash_is_daprs_blake2b_512_read_little_endian() -> None:
    # BLAKE2b-512("") begins 78 6a 02 f7 42 01 59 03 (RFC 7693's test vector): read little-endian.
    assert ring_hash("") == 0x03590142F7026A78
    digest = hashlib.blake2b(b"10.0.0.1:35007", digest_size=64).digest()
    assert ring_hash("10.0.0.1:35007") == int.from_bytes(digest[:8], "little")
    assert REPLICATION_FACTOR == 100


def test_the_same_members_give_the_same_table_whatever_their_order() -> None:
    ring = Ring(HOSTS)
    shuffled = HOSTS[:]
    random.Random(7).shuffle(shuffled)
    again = Ring(shuffled)
    assert [ring.get(actor_id) for actor_id in IDS] == [again.get(actor_id) for actor_id in IDS]
    assert ring == again and ring.hosts == frozenset(HOSTS)


def test_an_id_maps_to_the_first_virtual_node_at_or_after_its_hash() -> None:
    ring = Ring(HOSTS)
    nodes = sorted((ring_hash(f"{host}{i}"), host) for host in HOSTS for i in range(REPLICATION_FACTOR))
    for actor_id in IDS[:500]:
        point = ring_hash(actor_id)
        expected = next((host for hashed, host in nodes if hashed >= point), nodes[0][1])
        assert ring.get(actor_id) == expected


def test_ten_thousand_ids_spread_evenly_over_three_hosts() -> None:
    counts = collections.Counter(Ring(HOSTS).get(actor_id) for actor_id in IDS)
    assert set(counts) == set(HOSTS)
    for host in HOSTS:
        assert 0.25 < counts[host] / len(IDS) < 0.42, counts


def test_a_joining_host_takes_about_its_share_and_nothing_else_moves() -> None:
    before, after = Ring(HOSTS), Ring([*HOSTS, "10.0.0.4:3500"])
    moved = [actor_id for actor_id in IDS if before.get(actor_id) != after.get(actor_id)]
    assert 0.15 < len(moved) / len(IDS) < 0.35
    assert {after.get(actor_id) for actor_id in moved} == {"10.0.0.4:3500"}


def test_a_leaving_host_gives_away_its_ids_only() -> None:
    before, after = Ring(HOSTS), Ring(HOSTS[:2])
    moved = [actor_id for actor_id in IDS if before.get(actor_id) != after.get(actor_id)]
    assert {before.get(actor_id) for actor_id in moved} == {HOSTS[2]}
    assert len(moved) == sum(1 for actor_id in IDS if before.get(actor_id) == HOSTS[2])


def test_an_empty_ring_places_nothing() -> None:
    assert Ring(()).get("a") is None and not Ring(())
    assert Ring(["only:1"]).get("anything") == "only:1"
