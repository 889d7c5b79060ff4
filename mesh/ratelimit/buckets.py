"""Token buckets: in the process, and in Redis for limits every sidecar shares.

A bucket holds up to ``burst`` tokens and gains ``rate`` a second. Taking one answers how long the
caller must wait for it: 0 when a token is there; for a queueing rule up to ``max_wait``, in which
case the token is reserved (the bucket goes below zero, so later callers queue behind); past that
the request is refused and the answer says when a token would be free (``Retry-After``).

The Redis bucket is one hash per key (``t`` tokens, ``s`` the moment they were counted, in Redis's
own clock) updated by one Lua script per check, so the check is atomic across sidecars and
independent of their clocks.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Verdict:
    granted: bool
    wait: float
    """Granted: seconds to wait for the reserved token. Refused: seconds until one is free."""


class LocalBuckets:
    """Buckets of one rule in this process, keyed by the rule's ``per`` values; the least recently
    used are dropped past ``max_keys`` (a dropped bucket starts again full)."""

    def __init__(self, rate: float, burst: int, max_wait: float, max_keys: int = 10_000) -> None:
        self._rate, self._burst, self._max_wait, self._max_keys = rate, float(burst), max_wait, max_keys
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()

    def take(self, key: str) -> Verdict:
        now = time.monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = [self._burst, now]
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket[0] = min(self._burst, bucket[0] + (now - bucket[1]) * self._rate)
            bucket[1] = now
        if bucket[0] >= 1.0:
            bucket[0] -= 1.0
            return Verdict(True, 0.0)
        wait = (1.0 - bucket[0]) / self._rate
        if wait <= self._max_wait:
            bucket[0] -= 1.0
            return Verdict(True, wait)
        return Verdict(False, wait - self._max_wait)

    def give_back(self, key: str) -> None:
        """Return a token taken for a request another rule then refused."""
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket[0] = min(self._burst, bucket[0] + 1.0)


# KEYS[1] bucket; ARGV: rate per ms, burst, max wait in ms. Returns {granted, wait in ms * 1000}.
_TAKE = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + tonumber(now[2]) / 1000
local rate, burst, max_wait = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 't', 's')
local tokens, stamp = tonumber(state[1]), tonumber(state[2])
if tokens == nil then
  tokens = burst
else
  tokens = math.min(burst, tokens + (ms - stamp) * rate)
end
local granted, wait = 1, 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
  if wait <= max_wait then
    tokens = tokens - 1
  else
    granted, wait = 0, wait - max_wait
  end
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 's', tostring(ms))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate + 1000))
return {granted, math.floor(wait * 1000)}
"""

KEY_PREFIX = "l8||rl||"


class RedisBuckets:
    """Buckets of one rule in Redis, shared by every sidecar using the same rule name."""

    def __init__(self, client: Any, rule_name: str, rate: float, burst: int, max_wait: float) -> None:
        self._client = client
        self._script = client.register_script(_TAKE)  # EVALSHA, loaded again if Redis forgot it
        self._prefix = f"{KEY_PREFIX}{rule_name}||"
        self._args = (rate / 1000, burst, max_wait * 1000)

    async def give_back(self, key: str) -> None:
        await self._client.hincrbyfloat(self._prefix + key, "t", 1)  # the next take caps it at burst

    async def take(self, key: str) -> Verdict:
        granted, wait_us = await self._script(keys=[self._prefix + key], args=self._args)
        return Verdict(bool(granted), int(wait_us) / 1_000_000)
