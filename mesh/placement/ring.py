"""The placement table of one actor type: a consistent-hash ring with virtual nodes over the
addresses of the sidecars hosting it.

It follows Dapr's placement tables (dapr/dapr ``pkg/placement/hashing/consistent_hash.go``) where
that is cheap, so a reader who knows Dapr finds the same ring:

* a key's hash is the first 8 bytes of its BLAKE2b-512 digest read as a little-endian unsigned
  64-bit integer;
* every host puts ``REPLICATION_FACTOR`` (Dapr's default, 100) virtual nodes on the ring, the hash
  of ``f"{host}{i}"`` for ``i`` in ``0..99``;
* an actor id is placed on the first virtual node at or after its hash, wrapping past the end.

Where two virtual nodes hash alike (never seen with 64-bit hashes, but possible), Dapr keeps the
one added last in whatever order its placement service met the hosts; l8 adds hosts in sorted
order, so every sidecar that read the same members builds the same table. Dapr's bounded-load
variant (``GetLeast``) is not used by its actor lookup, nor here. A table remembers the ids it
placed (up to ``KNOWN_IDS``): it never changes, and the hash is most of a first lookup's cost.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable

REPLICATION_FACTOR = 100
"""Virtual nodes per host, Dapr placement's ``--replicationFactor`` default."""
KNOWN_IDS = 16_384
"""Placements a table remembers (about 2 MB at most)."""


def ring_hash(key: str) -> int:
    """Dapr's hash: BLAKE2b-512, its first 8 bytes as a little-endian uint64."""
    digest = hashlib.blake2b(key.encode(), digest_size=64).digest()
    return int.from_bytes(digest[:8], "little")


class Ring:
    """An immutable table: build a new one when the members change."""

    __slots__ = ("_known", "_owners", "_points", "hosts")

    def __init__(self, hosts: Iterable[str], replication_factor: int = REPLICATION_FACTOR) -> None:
        self.hosts: frozenset[str] = frozenset(hosts)
        nodes: dict[int, str] = {}
        for host in sorted(self.hosts):
            for i in range(replication_factor):
                nodes[ring_hash(f"{host}{i}")] = host
        self._points = sorted(nodes)
        self._owners = [nodes[point] for point in self._points]
        self._known: dict[str, str] = {}
        """Ids placed already: the table never changes, and hashing is most of a lookup's cost."""

    def get(self, actor_id: str) -> str | None:
        """The host of ``actor_id``; None when the ring is empty."""
        known = self._known.get(actor_id)
        if known is not None:
            return known
        points = self._points
        if not points:
            return None
        index = bisect.bisect_left(points, ring_hash(actor_id))
        owner = self._owners[index if index < len(points) else 0]
        if len(self._known) >= KNOWN_IDS:
            self._known.clear()  # callers naming ever new ids do not grow it without end
        self._known[actor_id] = owner
        return owner

    def __bool__(self) -> bool:
        return bool(self.hosts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ring) and other.hosts == self.hosts

    def __hash__(self) -> int:
        return hash(self.hosts)

    def __repr__(self) -> str:
        return f"Ring({sorted(self.hosts)!r})"


EMPTY = Ring(())
