"""Graph's identity-and-access throttling (docs/graph-contract.md §7.2, §7.3).

Per (app, tenant) there are two limits: write requests (POST/PATCH/PUT/DELETE) in a sliding
window (20 per second by default), and resource units (every request, costed per
docs/graph-contract.md §7.3) in a token bucket that refills continuously. A client that spaces its
writes at the budget never sees a 429, and one that bursts gets 429 with a `Retry-After` equal to
the time until its request would fit. Reads keep passing while writes are throttled: only writes
count against the write window.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from graphsim.faults import SimConfig


@dataclass
class TokenBucket:
    capacity: float
    rate_per_s: float
    tokens: float
    updated: float  # time.monotonic()

    def take(self, cost: float, now: float) -> float | None:
        """Take `cost` tokens, or return the seconds to wait until they would be there."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate_per_s)
        self.updated = now
        if self.tokens >= cost:
            self.tokens -= cost
            return None
        if self.rate_per_s <= 0:
            return 60.0
        return (cost - self.tokens) / self.rate_per_s


@dataclass
class SlidingWindow:
    """At most `limit` events in any `window_s` seconds; deterministic, unlike a refilling
    bucket: the 21st write inside one second is refused at 20/s however fast the first 20 were."""

    limit: float
    window_s: float
    events: deque[float]

    def take(self, now: float) -> float | None:
        while self.events and self.events[0] <= now - self.window_s:
            self.events.popleft()
        if len(self.events) < self.limit:
            self.events.append(now)
            return None
        if not self.events:
            return self.window_s
        # Wait until enough of the oldest events leave the window.
        excess = int(len(self.events) - self.limit)
        return self.events[excess] + self.window_s - now


@dataclass(frozen=True)
class Throttled:
    retry_after_s: float
    scope: str  # x-ms-throttle-scope
    information: str  # x-ms-throttle-information


# GET costs from docs/graph-contract.md §7.3 (path patterns after the /me rewrite); others cost 1.
_READ_COSTS = [
    (re.compile(r"^/users/?$", re.I), 2),
    (re.compile(r"^/groups/[^/]+/members", re.I), 3),
    (re.compile(r"^/groups/[^/]+/transitiveMembers", re.I), 5),
    (re.compile(r"^/users/[^/]+/memberOf", re.I), 2),
    (re.compile(r"^/users/[^/]+/transitiveMemberOf", re.I), 2),
    (re.compile(r"^/directoryObjects/getByIds", re.I), 5),
]


def resource_units(method: str, path: str, query: dict[str, str]) -> int:
    """The request's cost in resource units, with the docs/graph-contract.md §7.3 modifiers, never
    below 1."""
    cost = 1
    if method == "GET":
        for pattern, value in _READ_COSTS:
            if pattern.search(path):
                cost = value
                break
    if "$select" in query:
        cost -= 1
    if "$expand" in query:
        cost += 1
    top = query.get("$top", "")
    if top.isdigit() and int(top) < 20:
        cost -= 1
    return max(cost, 1)


class Throttle:
    """Buckets per (app, tenant); thread-safe. `clock` (seconds, monotonic) is replaceable so a
    test can run a client's pacing and this throttle on one simulated time line."""

    def __init__(self, config: SimConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self._lock = threading.Lock()
        self._writes: dict[tuple[str, str], SlidingWindow] = {}
        self._reads: dict[tuple[str, str], TokenBucket] = {}

    def reset(self) -> None:
        with self._lock:
            self._writes.clear()
            self._reads.clear()

    def _bucket(self, table: dict, key: tuple[str, str], capacity: float, rate: float, now: float):
        bucket = table.get(key)
        if bucket is None:
            bucket = table[key] = TokenBucket(capacity, rate, capacity, now)
        # Config may change at run time (tests, control API): follow it.
        bucket.capacity, bucket.rate_per_s = capacity, rate
        return bucket

    def check(self, *, app_id: str, tenant_id: str, is_write: bool, units: int) -> Throttled | None:
        """Charge one request; return why and for how long it is throttled, or None."""
        if not self.config.throttle_enabled:
            return None
        key = (app_id, tenant_id)
        now = self.clock()
        with self._lock:
            if is_write:
                # Writes: `burst` requests per `burst / rate` seconds, i.e. 20 per second by
                # default — the documented 3,000 per 150 s without allowing 3,000 at once.
                rate = self.config.write_budget_per_s
                burst = self.config.write_burst or rate
                window = self._writes.get(key)
                if window is None:
                    window = self._writes[key] = SlidingWindow(burst, 1.0, deque())
                window.limit = burst
                window.window_s = burst / rate if rate > 0 else 3600.0
                wait = window.take(now)
                if wait is not None:
                    return Throttled(
                        self.format_wait(wait),
                        f"Tenant_Application/Write/{app_id}/{tenant_id}",
                        "WriteLimitExceeded",
                    )
            ru_capacity = self.config.read_units_per_10s
            wait = self._bucket(self._reads, key, ru_capacity, ru_capacity / 10, now).take(
                units, now
            )
            if wait is not None:
                return Throttled(
                    self.format_wait(wait),
                    f"Tenant_Application/ReadWrite/{app_id}/{tenant_id}",
                    "ResourceUnitLimitExceeded",
                )
        return None

    def format_wait(self, seconds: float) -> float:
        if self.config.retry_after_integer:
            return float(max(1, math.ceil(seconds)))
        # Graph's samples show fractional values such as 2.128 (docs/graph-contract.md §7.2).
        # DOC-GAP: the docs do not say how Retry-After is computed; ours is the exact wait, rounded
        # up to ms.
        return max(0.001, math.ceil(seconds * 1000) / 1000)


def format_retry_after(seconds: float) -> str:
    """`10` or `2.128`: whole numbers without a decimal point, like Graph's samples."""
    if float(seconds).is_integer():
        return str(int(seconds))
    return f"{seconds:.3f}".rstrip("0").rstrip(".")
