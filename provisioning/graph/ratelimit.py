"""The Graph budgets shared by every worker process (docs/architecture.md §6, docs/graph-contract.md
§7.3).

Two limiters per app and tenant, kept where every worker sees them: Redis in production
(`RedisRateLimiter`, one atomic Lua script), a small fcntl-locked file in demo mode
(`FileRateLimiter`).

- **Writes**: Graph allows 3,000 writes in any 150 s per app and tenant (docs/graph-contract.md
  §7.3). The write limiter keeps a log of what it granted (`WriteWindow`) and never lets any
  window of `seconds` (Graph's 150 s plus a second of jitter) hold more than `limit` writes
  (Graph's 3,000 less a small margin), so it can use Graph's whole allowance, and a token bucket
  paces bulk work at `rate` (97.5 % of the budget) with a burst of `capacity` writes (ten
  seconds' worth): a job starts with a burst, a gap (a worker killed and restarted) is made up
  afterwards, and when the window is full bulk work waits for its oldest writes to leave it.
  It is charged one token per POST/PATCH/PUT/DELETE, and per write inside a $batch — a batch's
  writes in one reservation, so they are reserved when they are sent. Writes that redo what a
  crash lost (RECOVERY) keep to bulk work's share of the window without being paced.
- **Reads**: every request costs resource units (RU) in a second Graph bucket (3,500 to 8,000 RU
  per 10 s by tenant size). The read bucket is charged `resource_units()` per GET, and per GET
  inside a $batch. A 429 on a read penalises only the read bucket, one on a write only the write
  bucket: Graph throttles them separately (docs/graph-contract.md §7.2).

`acquire()` reserves tokens and sleeps exactly as long as the reservation needs, so waiting workers
are served in arrival order without polling. With a `horizon` (the write limiter's, a quarter of a
second) bulk work reserves at most that far ahead and sleeps unreserved before: tokens reserved by
a worker that is then killed are lost to everyone, so the horizon bounds that waste (a few seconds
of budget per kill otherwise, with four tasks queued); the bucket's burst absorbs a late wake-up.
`penalize(retry_after)` is called when Graph answers with 429: it empties the bucket and holds it
for `retry_after` seconds, pausing every worker sharing it, not only the one that was throttled.

**Priority.** `acquire(cost, priority=INTERACTIVE)` (a manager's action or job) does not queue
behind bulk reservations. On the write limiter, bulk work may fill Graph's window only up to
`limit − room` (`WriteWindow.bulk_limit`), so the last `room` writes of every window (two seconds
of budget, a manager's 20-row $batch fits) are kept for interactive work, which is checked
against the window alone, not the bulk pacing: it is sent at once while the window has room, and
otherwise as soon as the oldest writes leave it. On the read bucket (no window), interactive work
borrows up to `room` tokens from the future when the bucket is empty and is granted at once; the
borrowed tokens push the bulk queue back by as much, so bulk work earns the room back, and over
any interval the grants stay within `capacity + rate × interval + room`. When the room is used up,
interactive work waits for whichever comes first: room to borrow again, or its turn in the queue.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import tempfile
import time
from bisect import insort
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qsl, urlsplit

BULK = "bulk"
INTERACTIVE = "interactive"
# Writes that redo what a crash lost (a create whose answer was lost is re-issued: three writes per
# row). They keep to bulk work's share of the write window but are not paced: the pace spreads a
# job's own progress, and a crash's cost should not be paid again at it. Elsewhere as BULK.
RECOVERY = "recovery"


@dataclass(frozen=True)
class WriteWindow:
    """Graph's write window as the write limiter plans it (GraphConfig.limiter_window).

    No `seconds` of our grants may hold more than `limit` writes (interactive work) or
    `bulk_limit` (bulk work, which leaves the rest to interactive work). `seconds` is Graph's
    window plus the spread of the delays between a grant and Graph counting the request, so any
    window Graph looks at lies within one of ours.
    """

    seconds: float
    limit: float
    bulk_limit: float


class RateLimiter(Protocol):
    def acquire(
        self, cost: float = 1, timeout: float | None = None, priority: str = BULK
    ) -> bool: ...

    def penalize(self, retry_after: float) -> None: ...


# GET costs listed in docs/graph-contract.md §7.3; any other request costs 1 RU. `/me/…` costs what
# `/users/{id}/…` costs (Graph rewrites one into the other).
_READ_COSTS = (
    (re.compile(r"^/users/?$", re.I), 2),
    (re.compile(r"^/groups/[^/]+/members", re.I), 3),
    (re.compile(r"^/groups/[^/]+/transitiveMembers", re.I), 5),
    (re.compile(r"^/(?:me|users/[^/]+)/memberOf", re.I), 2),
    (re.compile(r"^/(?:me|users/[^/]+)/transitiveMemberOf", re.I), 2),
    (re.compile(r"^/directoryObjects/getByIds", re.I), 5),
)
_VERSION_ROOT = re.compile(r"^/(?:v1\.0|beta)(?=/|$)", re.I)


def resource_units(method: str, url: str) -> int:
    """What one request costs in Graph's resource units (docs/graph-contract.md §7.3).

    `url` is relative to the version root (`/users/x?$select=id`, as in GraphRequest) or absolute
    (an @odata.nextLink). Base cost 1, or the listed cost of a GET; `$select` −1, `$expand` +1,
    `$top` below 20 −1; never below 1.
    """
    parts = urlsplit(url)
    path = _VERSION_ROOT.sub("", parts.path) if parts.scheme else parts.path
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    cost = 1
    if method.upper() == "GET":
        cost = next((value for pattern, value in _READ_COSTS if pattern.search(path)), 1)
    if "$select" in query:
        cost -= 1
    if "$expand" in query:
        cost += 1
    top = query.get("$top", "")
    if top.isdigit() and int(top) < 20:
        cost -= 1
    return max(cost, 1)


def _step(
    state: dict,
    now: float,
    rate: float,
    capacity: float,
    cost: float,
    max_wait: float,
    room: float = 0.0,
    window: WriteWindow | None = None,
    paced: bool = True,
) -> tuple[bool, float]:
    """One limiter decision; mutates `state`. (granted, seconds to wait). Mirrors _LUA_ACQUIRE.

    `room` > 0 for interactive work: on a bucket without a window, the tokens it may borrow ahead
    of the bulk queue; with a `window`, it is checked against the window's whole `limit` and not
    paced by the bucket. `paced=False` (RECOVERY) with a `window`: checked against the window's
    `bulk_limit` only. `state["log"]` holds the window's grants, [[time, cost], …] in time order.
    """
    blocked = state.get("blocked_until", 0.0)
    if now < blocked:
        return False, blocked - now
    fits_at = now
    if window is not None:
        log = [entry for entry in state.get("log", []) if entry[0] > now - window.seconds]
        state["log"] = log
        fits_at = max(
            now,
            _window_fits_at(
                log, cost, window.limit if room > 0 else window.bulk_limit, window.seconds
            ),
        )
        if room > 0 or not paced:
            wait = fits_at - now
            if max_wait >= 0 and wait > max_wait:
                return False, wait
            insort(log, [fits_at, cost])
            return True, wait
    tokens = state.get("tokens", capacity)
    last = state.get("ts", now)
    tokens = min(capacity, tokens + max(0.0, now - last) * rate)
    wait = (cost - tokens) / rate if tokens < cost else 0.0
    if wait > 0 and room > 0:
        # Borrowed tokens are counted in two generations (b1 until u1, b2 until u2): a borrowed
        # token is repaid when the queue reaches its slot, at the latest at its generation's end.
        if now >= state.get("u1", 0.0):
            state["b1"], state["u1"] = state.get("b2", 0.0), state.get("u2", 0.0)
            state["b2"], state["u2"] = 0.0, 0.0
        b1 = state.get("b1", 0.0) if now < state.get("u1", 0.0) else 0.0
        b2 = state.get("b2", 0.0) if now < state.get("u2", 0.0) else 0.0
        if b1 + b2 + cost <= room:
            # Sent now; its slot is at the end of the queue, reached when the bucket is back at 0.
            state["tokens"] = tokens - cost
            state["ts"] = max(now, last)
            state["b2"] = b2 + cost
            state["u2"] = max(state.get("u2", 0.0), now + (cost - tokens) / rate)
            return True, 0.0
        repaid = (state["u1"] if b1 else state["u2"]) - now
        if b1 + b2 > 0 and repaid < wait:  # room comes back before its turn in the queue would
            return False, repaid
    wait = max(wait, fits_at - now)
    if max_wait >= 0 and wait > max_wait:
        return False, wait
    state["tokens"] = tokens - cost  # may go negative: a reservation paid back by waiting
    state["ts"] = max(now, last)
    if window is not None:
        insort(state["log"], [now + wait, cost])
    return True, wait


def _window_fits_at(log: list, cost: float, limit: float, seconds: float) -> float:
    """The earliest time at which `cost` more writes keep every window of `seconds` within
    `limit`: once enough of the oldest grants have left it. Grants reserved for later are counted
    too, so a write placed before them cannot overfill a window that ends at one of them."""
    excess = sum(entry[1] for entry in log) + cost - limit
    if excess <= 0:
        return float("-inf")
    leaving = 0.0
    for sent_at, spent in log:
        leaving += spent
        if leaving >= excess:
            return sent_at + seconds  # a grant leaves the window `seconds` after it was sent
    return float("inf")  # cost > limit: acquire() refuses that before asking


def _penalize(state: dict[str, float], now: float, rate: float, retry_after: float) -> None:
    until = now + retry_after
    state["blocked_until"] = max(state.get("blocked_until", 0.0), until)
    state["tokens"] = min(state.get("tokens", 0.0), 0.0)
    state["ts"] = state["blocked_until"]  # no refill while Graph is holding us back


class _BucketLimiter:
    rate: float
    capacity: float
    room: float  # what interactive work may borrow ahead of the bulk queue: 2 s of budget

    def __init__(
        self,
        rate: float,
        capacity: float | None = None,
        *,
        room: float | None = None,
        horizon: float | None = None,
        window: WriteWindow | None = None,
        sleep=time.sleep,
        clock=time.time,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.capacity = float(capacity if capacity is not None else max(1.0, rate))
        self.room = float(room if room is not None else max(1.0, 2 * rate))
        # Bulk work reserves tokens at most `horizon` seconds ahead (None: any time ahead); a
        # caller further back sleeps, unreserved, until its turn is that close. Reserved tokens
        # are spent whether or not they are sent, so this bounds what a killed worker's sleeping
        # reservations waste to about `horizon` seconds of budget plus one request's cost.
        self.horizon = None if horizon is None else max(0.0, float(horizon))
        self.window = window  # Graph's write window (writes only): see WriteWindow
        self._sleep: Callable[[float], None] = sleep
        # Wall-clock seconds shared by every process on this machine (the file limiter's "now";
        # the Redis limiter uses Redis's time). Tests inject a simulated clock with `sleep`.
        self._clock: Callable[[], float] = clock

    def _try(
        self, cost: float, max_wait: float, room: float, paced: bool = True
    ) -> tuple[bool, float]:
        raise NotImplementedError

    def _blocked_for(self) -> float:
        """Seconds left of a pause set by `penalize` (0 when none)."""
        raise NotImplementedError

    def acquire(self, cost: float = 1, timeout: float | None = None, priority: str = BULK) -> bool:
        """Take `cost` tokens, sleeping as needed; False if that would exceed `timeout`.

        `priority=INTERACTIVE` may borrow up to `room` tokens ahead of bulk reservations (with a
        window: is checked against the window alone); `priority=RECOVERY` keeps to bulk work's
        share of the window without being paced (without a window: as BULK).
        """
        if cost <= 0:
            return True
        if cost > self.capacity:
            raise ValueError(f"cost {cost} exceeds the bucket capacity {self.capacity:g}")
        if self.window is not None and cost > self.window.bulk_limit:
            raise ValueError(f"cost {cost} exceeds the window's {self.window.bulk_limit:g}")
        room = self.room if priority == INTERACTIVE else 0.0
        horizon = self.horizon if priority != INTERACTIVE else None
        paced = priority != RECOVERY
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = -1.0 if deadline is None else max(0.0, deadline - time.monotonic())
            reserve = remaining
            if horizon is not None:
                reserve = horizon if remaining < 0 else min(remaining, horizon)
            granted, wait = self._try(cost, reserve, room, paced)
            if granted:
                if wait > 0:
                    self._sleep(wait)
                    # A 429 seen by another worker while this one slept on its reservation
                    # pauses it too: sending now would land inside Graph's Retry-After.
                    blocked = self._blocked_for()
                    while blocked > 0:
                        self._sleep(blocked)
                        blocked = self._blocked_for()
                return True
            if deadline is not None and wait > remaining:
                return False
            if horizon is not None and wait > horizon:
                # Then reserve: by then the turn is within the horizon. At least a millisecond,
                # so a turn a rounding error beyond the horizon is not asked about again at once.
                wait = max(wait - horizon, 0.001)
            self._sleep(wait)


def _state_parse(raw: bytes) -> dict:
    """The file limiter's state: floats, and the write window's log of [time, cost] pairs."""
    if not raw:
        return {}
    state = {}
    for name, value in json.loads(raw).items():
        if name == "log":
            state[name] = sorted([float(entry[0]), float(entry[1])] for entry in value)
        else:
            state[name] = float(value)
    return state


class FileRateLimiter(_BucketLimiter):
    """The bucket in a small JSON file under an exclusive fcntl lock (demo mode, one machine)."""

    def __init__(self, path: str | os.PathLike, rate: float, capacity: float | None = None, **kw):
        super().__init__(rate, capacity, **kw)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def _locked(self, change: Callable[[dict, float], tuple[bool, float] | None]):
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            raw = os.pread(fd, os.fstat(fd).st_size, 0)
            try:
                state = _state_parse(raw)
            except (ValueError, TypeError, AttributeError, IndexError):
                state = {}  # a torn or foreign file: start with a full bucket
            result = change(state, self._clock())
            data = json.dumps(state).encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
            return result
        finally:
            os.close(fd)  # releases the lock

    def _try(
        self, cost: float, max_wait: float, room: float, paced: bool = True
    ) -> tuple[bool, float]:
        return self._locked(
            lambda s, now: _step(
                s, now, self.rate, self.capacity, cost, max_wait, room, self.window, paced
            )
        )

    def penalize(self, retry_after: float) -> None:
        self._locked(lambda s, now: _penalize(s, now, self.rate, retry_after))

    def _blocked_for(self) -> float:
        return self._locked(lambda s, now: max(0.0, s.get("blocked_until", 0.0) - now))


# KEYS[1] bucket, KEYS[2] write window log (a sorted set: score = send time, member = "seq:cost");
# ARGV rate, capacity, cost, max_wait (-1 = unbounded), ttl ms, room (0 = bulk), window seconds
# (0 = no window), window limit, window bulk limit, paced (0 = RECOVERY). Redis time, not the
# workers' clocks, so skewed hosts share one notion of "now". Floats are returned as strings:
# Redis truncates Lua numbers to integers.
_LUA_ACQUIRE = """
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local max_wait = tonumber(ARGV[4])
local room = tonumber(ARGV[6]) or 0
local window_s = tonumber(ARGV[7]) or 0
local paced = tonumber(ARGV[10]) ~= 0
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local s = redis.call('HMGET', KEYS[1], 'tokens', 'ts', 'blocked_until', 'b1', 'u1', 'b2', 'u2')
local tokens = tonumber(s[1]) or capacity
local last = tonumber(s[2]) or now
local blocked = tonumber(s[3]) or 0
if now < blocked then
  return {0, tostring(blocked - now)}
end
local fits_at = now
local function log_add(at)
  local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
  redis.call('ZADD', KEYS[2], string.format('%.6f', at), seq .. ':' .. tostring(cost))
  redis.call('PEXPIRE', KEYS[2], math.floor(window_s * 1000) + 60000)
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
end
if window_s > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', string.format('%.6f', now - window_s))
  local limit = tonumber(ARGV[9])
  if room > 0 then limit = tonumber(ARGV[8]) end
  local log = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
  local excess = cost - limit
  for i = 1, #log, 2 do
    excess = excess + tonumber(string.match(log[i], ':(.+)$'))
  end
  if excess > 0 then
    local leaving = 0
    for i = 1, #log, 2 do
      leaving = leaving + tonumber(string.match(log[i], ':(.+)$'))
      if leaving >= excess then
        fits_at = math.max(now, tonumber(log[i + 1]) + window_s)
        break
      end
    end
  end
  if room > 0 or not paced then
    local wait = fits_at - now
    if max_wait >= 0 and wait > max_wait then
      return {0, tostring(wait)}
    end
    log_add(fits_at)
    return {1, tostring(wait)}
  end
end
tokens = math.min(capacity, tokens + math.max(0, now - last) * rate)
local wait = 0
if tokens < cost then wait = (cost - tokens) / rate end
if wait > 0 and room > 0 then
  local b1, u1 = tonumber(s[4]) or 0, tonumber(s[5]) or 0
  local b2, u2 = tonumber(s[6]) or 0, tonumber(s[7]) or 0
  if now >= u1 then
    b1, u1, b2, u2 = b2, u2, 0, 0
  end
  if now >= u1 then b1 = 0 end
  if now >= u2 then b2 = 0 end
  if b1 + b2 + cost <= room then
    redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - cost),
               'ts', tostring(math.max(now, last)), 'b1', tostring(b1), 'u1', tostring(u1),
               'b2', tostring(b2 + cost),
               'u2', tostring(math.max(u2, now + (cost - tokens) / rate)))
    redis.call('PEXPIRE', KEYS[1], ARGV[5])
    return {1, '0'}
  end
  local repaid = u2 - now
  if b1 > 0 then repaid = u1 - now end
  if b1 + b2 > 0 and repaid < wait then
    return {0, tostring(repaid)}
  end
end
wait = math.max(wait, fits_at - now)
if max_wait >= 0 and wait > max_wait then
  return {0, tostring(wait)}
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - cost), 'ts', tostring(math.max(now, last)))
redis.call('PEXPIRE', KEYS[1], ARGV[5])
if window_s > 0 then log_add(now + wait) end
return {1, tostring(wait)}
"""

_LUA_PENALIZE = """
local retry_after = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local s = redis.call('HMGET', KEYS[1], 'tokens', 'blocked_until')
local tokens = tonumber(s[1]) or 0
local blocked = math.max(tonumber(s[2]) or 0, now + retry_after)
redis.call('HSET', KEYS[1], 'tokens', tostring(math.min(tokens, 0)), 'ts', tostring(blocked),
           'blocked_until', tostring(blocked))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""


_LUA_BLOCKED_FOR = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local blocked = tonumber(redis.call('HGET', KEYS[1], 'blocked_until')) or 0
return tostring(math.max(0, blocked - now))
"""


class RedisRateLimiter(_BucketLimiter):
    """The bucket in a Redis hash, changed only by Lua scripts (atomic across all workers)."""

    def __init__(self, redis_client, key: str, rate: float, capacity: float | None = None, **kw):
        super().__init__(rate, capacity, **kw)
        self.redis = redis_client
        self.key = key
        self.log_key = f"{key}:log"  # the write window's grants (a sorted set)
        self._acquire = redis_client.register_script(_LUA_ACQUIRE)
        self._penalize = redis_client.register_script(_LUA_PENALIZE)
        self._blocked = redis_client.register_script(_LUA_BLOCKED_FOR)

    def _ttl_ms(self, extra: float = 0.0) -> int:
        # Long enough to remember debt, blocks and, as long as the window's log lives, the
        # sequence that keeps its members unique; an idle bucket expires and starts full.
        window = self.window.seconds if self.window is not None else 0.0
        return int((max(self.capacity / self.rate + extra, window) + 60) * 1000)

    def _try(
        self, cost: float, max_wait: float, room: float, paced: bool = True
    ) -> tuple[bool, float]:
        window = self.window or WriteWindow(0.0, 0.0, 0.0)
        granted, wait = self._acquire(
            keys=[self.key, self.log_key],
            args=[
                self.rate,
                self.capacity,
                cost,
                max_wait,
                self._ttl_ms(),
                room,
                window.seconds,
                window.limit,
                window.bulk_limit,
                1 if paced else 0,
            ],
        )
        return bool(int(granted)), float(wait)

    def penalize(self, retry_after: float) -> None:
        self._penalize(keys=[self.key], args=[retry_after, self._ttl_ms(retry_after)])

    def _blocked_for(self) -> float:
        return float(self._blocked(keys=[self.key]))


class NoRateLimiter:
    """No shared budget (unit tests, one-off scripts)."""

    def acquire(self, cost: float = 1, timeout: float | None = None, priority: str = BULK) -> bool:
        return True

    def penalize(self, retry_after: float) -> None:
        return None


def build_rate_limiter(
    url: str | None,
    key: str,
    rate: float,
    capacity: float | None = None,
    *,
    room: float | None = None,
    horizon: float | None = None,
    window: WriteWindow | None = None,
) -> RateLimiter:
    """A limiter from GRAPH_RATE_LIMITER_URL: redis[s]:// or unix:// → Redis; else a directory."""
    if url and url.startswith(("redis://", "rediss://", "unix://")):
        import redis

        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        return RedisRateLimiter(
            client, key, rate, capacity, room=room, horizon=horizon, window=window
        )
    if url and url.startswith("file://"):
        url = url[len("file://") :]
    directory = Path(url) if url else Path(tempfile.gettempdir()) / "lanyard-ratelimit"
    path = directory / (re.sub(r"[^A-Za-z0-9_.-]", "_", key) + ".json")
    return FileRateLimiter(path, rate, capacity, room=room, horizon=horizon, window=window)
