"""The production limiter: one bucket in Redis, changed only by Lua scripts, shared by processes."""

from __future__ import annotations

import multiprocessing
import time
import uuid

import pytest

from provisioning.graph.ratelimit import RedisRateLimiter, WriteWindow, build_rate_limiter

pytestmark = pytest.mark.integration

REDIS_URL = "redis://127.0.0.1:6379/15"


@pytest.fixture
def key():
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail("Redis is not running on 127.0.0.1:6379 (make test-integration starts it)")
    name = f"lanyard:test-bucket:{uuid.uuid4()}"
    yield name
    client.delete(name, f"{name}:log")


def _worker(key, rate, count, queue, barrier):
    limiter = build_rate_limiter(REDIS_URL, key, rate)
    barrier.wait()
    for _ in range(count):
        limiter.acquire()
        queue.put(time.time())


def test_processes_sharing_the_redis_bucket_stay_within_the_budget(key):
    rate, per_process, processes = 50, 40, 4
    ctx = multiprocessing.get_context("spawn")
    queue, barrier = ctx.Queue(), ctx.Barrier(processes)
    procs = [
        ctx.Process(target=_worker, args=(key, rate, per_process, queue, barrier))
        for _ in range(processes)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    stamps = sorted(queue.get() for _ in range(per_process * processes))
    expected = (len(stamps) - rate) / rate
    assert stamps[-1] - stamps[0] >= expected * 0.95  # no upper bound: a busy machine is slower
    # A stamp is taken after its grant, so a process descheduled in between stamps late; allow
    # one late stamp per process in any window.
    for i in range(len(stamps)):
        for j in range(i, len(stamps)):
            assert j - i + 1 <= rate + rate * (stamps[j] - stamps[i]) + processes


def test_a_penalty_pauses_every_holder_of_the_bucket(key):
    first = build_rate_limiter(REDIS_URL, key, 100)
    second = build_rate_limiter(REDIS_URL, key, 100)
    assert isinstance(first, RedisRateLimiter)
    first.penalize(0.8)
    started = time.monotonic()
    second.acquire()
    assert time.monotonic() - started >= 0.75


def test_it_times_out_without_reserving(key):
    limiter = build_rate_limiter(REDIS_URL, key, 1)
    assert limiter.acquire()
    assert limiter.acquire(timeout=0.1) is False
    # Had the refused call reserved a token, the next would be 2 s away, beyond this timeout.
    assert limiter.acquire(timeout=1.5)


def test_interactive_work_passes_the_bulk_queue(key):
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    bulk_waits: list[float] = []
    bulk = RedisRateLimiter(client, key, 10, sleep=bulk_waits.append)
    for _ in range(30):  # the bucket's 10 tokens, then 20 reservations (2 s of queue)
        bulk.acquire()
    assert bulk_waits[-1] > 1.5
    manager_waits: list[float] = []
    manager = RedisRateLimiter(client, key, 10, sleep=manager_waits.append)
    for _ in range(5):
        assert manager.acquire(priority="interactive")
    assert manager_waits == []  # granted at once, ahead of the 20 reservations
    bulk.acquire()
    # The borrowed tokens push the bulk queue back: 20 reserved + 5 borrowed + this one.
    assert bulk_waits[-1] > 2.0


def test_interactive_borrowing_stops_at_the_room(key):
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    waits: list[float] = []
    bulk = RedisRateLimiter(client, key, 10, sleep=waits.append)
    for _ in range(30):
        bulk.acquire()
    manager = RedisRateLimiter(client, key, 10, room=3, sleep=lambda s: None)
    for _ in range(3):
        assert manager.acquire(timeout=0, priority="interactive")
    assert manager.acquire(timeout=0.5, priority="interactive") is False


# A minute long, so the grants of one test stay in it however slow the machine is.
WINDOW = WriteWindow(seconds=60.0, limit=30.0, bulk_limit=25.0)


def test_the_write_window_in_redis_keeps_bulk_and_interactive_shares(key):
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    waits: list[float] = []
    bulk = RedisRateLimiter(client, key, 1000, 1000, window=WINDOW, sleep=waits.append)
    manager = RedisRateLimiter(client, key, 1000, 1000, window=WINDOW, sleep=waits.append)
    assert bulk.acquire(20, timeout=0)
    assert bulk.acquire(5, timeout=0)
    assert bulk.acquire(1, timeout=0) is False  # bulk work's 25 of the window are used
    assert manager.acquire(5, timeout=0, priority="interactive")  # the interactive room
    assert manager.acquire(1, timeout=0, priority="interactive") is False
    granted, wait = bulk._try(1, 0.0, 0.0)
    assert not granted
    assert 30.0 < wait <= 60.0  # when the first grant leaves the window
    assert waits == []
    assert bulk.acquire(20)  # reserved for when the first 20 have left: slept on, not polled
    assert len(waits) == 1 and 30.0 < waits[0] <= 60.0
    assert client.zcard(f"{key}:log") == 4  # every grant logged once, under its own member


def _window_worker(key, count, queue, barrier):
    limiter = build_rate_limiter(REDIS_URL, key, 1000, 1000, window=WriteWindow(1.0, 20.0, 20.0))
    barrier.wait()
    for _ in range(count):
        limiter.acquire()
        queue.put(time.time())


def test_processes_sharing_the_redis_window_never_overfill_it(key):
    per_process, processes = 15, 4
    ctx = multiprocessing.get_context("spawn")
    queue, barrier = ctx.Queue(), ctx.Barrier(processes)
    procs = [
        ctx.Process(target=_window_worker, args=(key, per_process, queue, barrier))
        for _ in range(processes)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    stamps = sorted(queue.get() for _ in range(per_process * processes))
    assert stamps[-1] - stamps[0] >= 2.0 * 0.95  # 60 grants, 20 per second-long window
    # A stamp is taken after its grant, so a process descheduled in between stamps late; allow
    # one late stamp per process in any window.
    for i in range(len(stamps)):
        within = sum(1 for later in stamps[i:] if later - stamps[i] < 1.0)
        assert within <= 20 + processes


def test_recovery_writes_in_redis_skip_the_pace_but_not_the_window(key):
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    limiter = RedisRateLimiter(client, key, 0.1, 10, window=WINDOW, sleep=lambda s: None)
    assert limiter.acquire(10, timeout=0)  # the bucket's 10
    assert limiter.acquire(10, timeout=0) is False  # paced: the next 10 are 100 s away
    assert limiter.acquire(10, timeout=0, priority="recovery")  # not paced
    assert limiter.acquire(5, timeout=0, priority="recovery")  # 25: bulk work's share
    assert limiter.acquire(1, timeout=0, priority="recovery") is False
    assert limiter.acquire(5, timeout=0, priority="interactive")  # the room is still there
