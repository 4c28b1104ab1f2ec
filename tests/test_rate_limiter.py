"""The shared budgets every worker process draws from: token buckets, and for writes a log of
Graph's 150-second window as well.

The file-backed limiter is the embedded (demo) equivalent of the Redis one; both run the same
bucket arithmetic, so the cross-process behaviour is proven here with real processes.
"""

from __future__ import annotations

import json
import multiprocessing
import time

import pytest

from provisioning.graph.ratelimit import (
    INTERACTIVE,
    FileRateLimiter,
    NoRateLimiter,
    RedisRateLimiter,
    WriteWindow,
    _penalize,
    _step,
    build_rate_limiter,
)


def test_it_grants_a_full_bucket_without_waiting():
    state: dict[str, float] = {}
    for _ in range(5):
        granted, wait = _step(state, 100.0, rate=5, capacity=5, cost=1, max_wait=-1)
        assert granted
        assert wait == 0


def test_it_reserves_and_names_the_exact_wait_when_empty():
    state = {"tokens": 0.0, "ts": 100.0}
    granted, wait = _step(state, 100.0, rate=4, capacity=4, cost=1, max_wait=-1)
    assert granted
    assert wait == pytest.approx(0.25)
    granted, wait = _step(state, 100.0, rate=4, capacity=4, cost=1, max_wait=-1)
    assert wait == pytest.approx(0.5)  # the second waiter queues behind the first


def test_it_refuses_a_reservation_longer_than_the_timeout():
    state = {"tokens": 0.0, "ts": 100.0}
    granted, wait = _step(state, 100.0, rate=1, capacity=1, cost=1, max_wait=0.5)
    assert not granted
    assert wait == pytest.approx(1.0)
    assert state["tokens"] == 0.0  # nothing reserved


def test_it_refills_no_more_than_the_capacity():
    state = {"tokens": 0.0, "ts": 0.0}
    _step(state, 1000.0, rate=10, capacity=10, cost=1, max_wait=-1)
    assert state["tokens"] == pytest.approx(9.0)


def test_a_penalty_blocks_the_bucket_and_then_refills_from_empty():
    state: dict[str, float] = {}
    _penalize(state, 100.0, rate=10, retry_after=3.0)
    granted, wait = _step(state, 101.0, rate=10, capacity=10, cost=1, max_wait=-1)
    assert not granted
    assert wait == pytest.approx(2.0)
    granted, wait = _step(state, 103.05, rate=10, capacity=10, cost=1, max_wait=-1)
    assert granted
    assert wait == pytest.approx(0.05)  # 0.05 s after the block there is half a token


def test_it_times_out_rather_than_sleeping_past_the_deadline(tmp_path):
    slept: list[float] = []
    limiter = FileRateLimiter(
        tmp_path / "bucket.json", rate=1, sleep=slept.append, clock=lambda: 1000.0
    )
    assert limiter.acquire()
    assert limiter.acquire(timeout=0.2) is False  # the next token is 1 s away
    assert slept == []  # it said so at once, without sleeping


def test_it_rejects_a_cost_larger_than_the_bucket(tmp_path):
    limiter = FileRateLimiter(tmp_path / "bucket.json", rate=2)
    with pytest.raises(ValueError, match="capacity"):
        limiter.acquire(5)


def test_it_survives_a_corrupt_state_file(tmp_path):
    path = tmp_path / "bucket.json"
    path.write_text("not json")
    assert FileRateLimiter(path, rate=5).acquire(timeout=0)


def _worker(path, rate, count, queue, barrier):
    limiter = FileRateLimiter(path, rate=rate)
    barrier.wait()
    for _ in range(count):
        limiter.acquire()
        queue.put(time.time())


def _frozen_clock() -> float:
    return 1000.0


def _reserving_worker(path, rate, count, queue, barrier):
    """Takes `count` grants at one frozen instant, reporting each grant's reserved wait."""
    waits: list[float] = []
    limiter = FileRateLimiter(path, rate=rate, clock=_frozen_clock, sleep=waits.append)
    barrier.wait()
    for _ in range(count):
        before = len(waits)
        limiter.acquire()
        queue.put(waits[-1] if len(waits) > before else 0.0)


def _penalizer(path, rate, queue, barrier):
    limiter = FileRateLimiter(path, rate=rate)
    barrier.wait()
    limiter.penalize(1.0)
    queue.put(("penalized", time.time()))


def _run_processes(target, args_list):
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    barrier = ctx.Barrier(len(args_list))
    procs = [ctx.Process(target=target, args=(*args, queue, barrier)) for args in args_list]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    items = []
    while not queue.empty():
        items.append(queue.get())
    return items


def _assert_within_budget(stamps, rate, capacity, slack=1):
    stamps = sorted(stamps)
    for i, start in enumerate(stamps):
        for j in range(i, len(stamps)):
            window = stamps[j] - start
            allowed = capacity + rate * window + slack
            assert j - i + 1 <= allowed, f"{j - i + 1} grants in {window:.3f} s"


def test_processes_sharing_a_file_bucket_stay_within_the_budget(tmp_path):
    # Time stands still, so the result does not depend on the machine's speed: 160 grants from
    # 4 processes form one queue — 50 at once, then one every 1/50 s — only if no process ever
    # lost another's update of the shared file.
    rate, per_process, processes = 50, 40, 4
    path = tmp_path / "bucket.json"
    waits = _run_processes(_reserving_worker, [(path, rate, per_process)] * processes)
    grants = per_process * processes
    assert len(waits) == grants
    expected = [0.0] * rate + [k / rate for k in range(1, grants - rate + 1)]
    assert sorted(waits) == pytest.approx(expected)
    _assert_within_budget([1000.0 + wait for wait in waits], rate, capacity=rate, slack=1e-6)


def test_a_penalty_from_one_process_pauses_the_others(tmp_path):
    path = tmp_path / "bucket.json"
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    barrier = ctx.Barrier(1)
    penalizer = ctx.Process(target=_penalizer, args=(path, 100, queue, barrier))
    penalizer.start()
    penalizer.join(10)
    _, penalized_at = queue.get()
    stamps = _run_processes(_worker, [(path, 100, 5)] * 2)
    assert min(stamps) >= penalized_at + 0.95


def test_the_url_picks_the_backend(tmp_path):
    file_limiter = build_rate_limiter(str(tmp_path), "lanyard:graph-writes:t:c", 20)
    assert isinstance(file_limiter, FileRateLimiter)
    assert file_limiter.path.parent == tmp_path
    assert ":" not in file_limiter.path.name
    assert isinstance(build_rate_limiter(f"file://{tmp_path}", "k", 20), FileRateLimiter)
    assert isinstance(build_rate_limiter("redis://127.0.0.1:6379/0", "k", 20), RedisRateLimiter)
    assert NoRateLimiter().acquire(10)


def test_a_penalty_during_a_reservations_wait_delays_the_send(tmp_path):
    """A worker sleeping on its reservation does not send inside another worker's 429 pause."""
    slept: list[float] = []
    path = tmp_path / "bucket.json"
    other = FileRateLimiter(path, rate=10.0, capacity=1.0)

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 1:  # while we wait, another worker sees a 429 with Retry-After: 0.5
            other.penalize(0.5)
        time.sleep(seconds)

    limiter = FileRateLimiter(path, rate=10.0, capacity=1.0, sleep=sleep)
    assert limiter.acquire()  # the full bucket's token
    started = time.monotonic()
    assert limiter.acquire()  # a reservation: ~0.1 s, then the 0.5 s pause
    assert time.monotonic() - started >= 0.5
    assert len(slept) >= 2


# -- priority: interactive work ahead of bulk reservations --------------------------------------


def _backlogged(rate: float = 10, queued: int = 20) -> dict[str, float]:
    """A bucket emptied by a burst and then `queued` bulk reservations, at time 0."""
    state: dict[str, float] = {}
    for _ in range(int(rate) + queued):
        assert _step(state, 0.0, rate=rate, capacity=rate, cost=1, max_wait=-1)[0]
    return state


def test_interactive_work_is_granted_ahead_of_the_bulk_queue():
    state = _backlogged(rate=10, queued=20)  # the next bulk write is 2.1 s away
    assert _step(state, 0.0, rate=10, capacity=10, cost=1, max_wait=-1) == (
        True,
        pytest.approx(2.1),
    )
    granted, wait = _step(state, 0.0, rate=10, capacity=10, cost=1, max_wait=-1, room=10)
    assert granted
    assert wait == 0.0  # not behind the 21 reservations
    # Bulk earns the borrowed token back: the next reservation is pushed back by one token.
    assert _step(state, 0.0, rate=10, capacity=10, cost=1, max_wait=-1) == (
        True,
        pytest.approx(2.3),
    )


def test_interactive_borrowing_is_bounded_by_the_room_and_comes_back():
    state = _backlogged(rate=10, queued=20)  # tokens -20
    for _ in range(3):
        assert _step(state, 0.0, rate=10, capacity=10, cost=1, max_wait=-1, room=3) == (True, 0.0)
    # The room is used up: the fourth waits until the first borrowed slot is reached (2.1 s), which
    # is sooner than its turn at the back of the queue (2.4 s); nothing is reserved meanwhile.
    granted, wait = _step(state, 0.0, rate=10, capacity=10, cost=1, max_wait=-1, room=3)
    assert not granted
    assert wait == pytest.approx(2.1)
    assert state["tokens"] == pytest.approx(-23.0)
    granted, wait = _step(state, 2.1, rate=10, capacity=10, cost=1, max_wait=-1, room=3)
    assert granted
    assert wait == 0.0
    # The other slots borrowed at 0 s are reached at 2.3 s at the latest: room again then.
    granted, wait = _step(state, 2.1, rate=10, capacity=10, cost=1, max_wait=-1, room=3)
    assert not granted
    assert wait == pytest.approx(0.2)


def test_bulk_work_never_borrows():
    state = _backlogged(rate=10, queued=0)
    granted, wait = _step(state, 0.0, rate=10, capacity=10, cost=1, max_wait=-1)
    assert granted
    assert wait == pytest.approx(0.1)
    assert not state.get("b2")


def test_interactive_work_without_a_queue_takes_tokens_like_anyone():
    state: dict[str, float] = {}
    assert _step(state, 0.0, rate=10, capacity=10, cost=1, max_wait=-1, room=10) == (True, 0.0)
    assert not state.get("b2")  # a full bucket: nothing borrowed


def test_a_penalty_holds_interactive_work_too():
    state: dict[str, float] = {}
    _penalize(state, 100.0, rate=10, retry_after=2.0)
    granted, wait = _step(state, 100.5, rate=10, capacity=10, cost=1, max_wait=-1, room=10)
    assert not granted
    assert wait == pytest.approx(1.5)


def test_bulk_and_interactive_together_stay_within_capacity_rate_and_room():
    """Eight bulk workers sending flat out and a manager clicking every 0.37 s, on one simulated
    time line: the combined sends never exceed capacity + rate × window + room, and the manager's
    writes wait far less than the bulk ones."""
    import heapq

    rate, capacity, room = 20.0, 20.0, 20.0
    state: dict[str, float] = {}
    sends: list[float] = []
    bulk_waits: list[float] = []
    interactive_waits: list[float] = []
    # (time, kind, arrived): bulk workers loop; the manager's writes arrive on a schedule.
    events = [(0.0, "bulk", 0.0)] * 8 + [(0.37 * k, "interactive", 0.37 * k) for k in range(80)]
    heapq.heapify(events)
    while events:
        now, kind, arrived = heapq.heappop(events)
        if now > 30.0:
            break
        granted, wait = _step(state, now, rate, capacity, 1, -1, room if kind != "bulk" else 0.0)
        if not granted:
            heapq.heappush(events, (now + wait, kind, arrived))
            continue
        sends.append(now + wait)
        if kind == "bulk":
            bulk_waits.append(wait)
            heapq.heappush(events, (now + wait, "bulk", now + wait))
        else:
            interactive_waits.append(now + wait - arrived)
    sends.sort()
    assert len(interactive_waits) == 80
    horizon = 30.0
    within = [t for t in sends if t <= horizon]
    assert len(within) >= rate * horizon * 0.95  # the budget is used
    _assert_within_budget(within, rate, capacity=capacity + room, slack=1e-6)
    assert max(interactive_waits) == 0.0
    assert sum(bulk_waits) / len(bulk_waits) > 0.3  # bulk queues (8 workers, 20/s)


def test_the_file_limiter_lets_interactive_work_pass_the_queue(tmp_path):
    slept: list[float] = []
    path = tmp_path / "bucket.json"
    bulk = FileRateLimiter(path, rate=10, sleep=slept.append, clock=_frozen_clock)
    for _ in range(30):
        bulk.acquire()
    assert slept[-1] == pytest.approx(2.0)
    slept.clear()
    manager = FileRateLimiter(path, rate=10, sleep=slept.append, clock=_frozen_clock)
    assert manager.acquire(priority="interactive")
    assert slept == []
    bulk.acquire()
    assert slept == [pytest.approx(2.2)]


# -- what a request costs in resource units ------------------------------------------------------

# (method, url as the product sends it, the path graphsim sees after its /me rewrite, units)
COSTS = [
    ("GET", "/users", "/users", 2),
    ("GET", "/users?$select=id,displayName&$top=999", "/users", 1),
    ("GET", "/users?$top=5", "/users", 1),
    ("GET", "/users?$filter=startswith(displayName,'a')&$expand=manager", "/users", 3),
    ("GET", "/users/u1", "/users/u1", 1),
    ("GET", "/users/u1?$select=id", "/users/u1", 1),
    (
        "GET",
        "/users/u1/authentication/qrCodePinMethod",
        "/users/u1/authentication/qrCodePinMethod",
        1,
    ),
    ("GET", "/groups/g1/members?$select=id&$top=999", "/groups/g1/members", 2),
    ("GET", "/groups/g1/members", "/groups/g1/members", 3),
    ("GET", "/groups/g1/transitiveMembers", "/groups/g1/transitiveMembers", 5),
    ("GET", "/groups/g1/transitiveMembers?$select=id&$top=10", "/groups/g1/transitiveMembers", 3),
    ("GET", "/me/memberOf", "/users/u1/memberOf", 2),
    ("GET", "/users/u1/transitiveMemberOf?$expand=x", "/users/u1/transitiveMemberOf", 3),
    (
        "GET",
        "/directory/administrativeUnits/a1/members?$top=999",
        "/directory/administrativeUnits/a1/members",
        1,
    ),
    ("POST", "/directoryObjects/getByIds", "/directoryObjects/getByIds", 1),
    (
        "PUT",
        "/users/u1/authentication/qrCodePinMethod",
        "/users/u1/authentication/qrCodePinMethod",
        1,
    ),
    ("GET", "https://graph.example/v1.0/users?$top=999&$skiptoken=abc", "/users", 2),
    ("GET", "https://graph.example/beta/groups/g1/members?$top=5", "/groups/g1/members", 2),
]


@pytest.mark.parametrize(("method", "url", "sim_path", "units"), COSTS)
def test_the_products_cost_function_agrees_with_graphsim(method, url, sim_path, units):
    from urllib.parse import parse_qsl, urlsplit

    from graphsim.throttle import resource_units as graphsim_units
    from provisioning.graph.ratelimit import resource_units

    query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    assert resource_units(method, url) == units
    assert graphsim_units(method, sim_path, query) == units


def test_a_cost_above_the_room_queues_like_bulk_work():
    state = _backlogged(rate=10, queued=20)
    granted, wait = _step(state, 0.0, rate=10, capacity=10, cost=5, max_wait=-1, room=3)
    assert granted
    assert wait == pytest.approx(2.5)  # nothing to borrow: its turn at the back of the queue


def test_bulk_work_reserves_no_further_ahead_than_the_horizon(tmp_path):
    # Tokens reserved by a worker that is then killed are wasted budget, so with a horizon bulk
    # work sleeps unreserved until its turn is that close, then reserves and is sent on time.
    import json

    now = [100.0]
    path = tmp_path / "writes.json"
    queue = FileRateLimiter(path, rate=10.0, capacity=10.0, sleep=lambda s: None,
                            clock=lambda: now[0])  # fmt: skip
    for _ in range(3):  # three batches queued by other tasks: the bucket is 20 tokens in debt
        assert queue.acquire(10)
    sleeps: list[tuple[float, float]] = []

    def sleep(seconds: float) -> None:
        sleeps.append((seconds, json.loads(path.read_text())["tokens"]))
        now[0] += seconds

    late = FileRateLimiter(path, rate=10.0, capacity=10.0, horizon=1.0, sleep=sleep,
                           clock=lambda: now[0])  # fmt: skip
    assert late.acquire(10)
    # Two seconds asleep holding nothing (the debt is still the others' 20), then one second on
    # its reservation: sent at 103.0, exactly when its tokens are there.
    assert sleeps == [(2.0, -20.0), (1.0, -10.0)]
    assert now[0] == 103.0
    # Interactive work ignores the horizon: it borrows its room at once.
    assert late.acquire(5, priority=INTERACTIVE)
    assert now[0] == 103.0


# -- the write window: Graph's 3,000 writes in any 150 s ------------------------------------------

WINDOW = WriteWindow(seconds=10.0, limit=30.0, bulk_limit=25.0)


def test_bulk_work_fills_the_window_up_to_its_bulk_limit_and_waits_for_the_oldest_to_leave():
    state: dict = {}
    for _ in range(5):  # a fast bucket: only the window holds bulk work back
        assert _step(state, 0.0, 100, 100, 5, -1, window=WINDOW) == (True, 0.0)
    # The window holds 25: the next 5 fit when the first grant (5 writes at 0 s) leaves, at 10 s.
    granted, wait = _step(state, 3.0, 100, 100, 5, -1, window=WINDOW)
    assert granted
    assert wait == pytest.approx(7.0)
    # 10 writes need the two oldest grants gone; the one reserved at 10 s counts as well.
    granted, wait = _step(state, 3.0, 100, 100, 10, -1, window=WINDOW)
    assert wait == pytest.approx(7.0)  # 25 + 5 + 10 − 25 = 15: three grants of 5 leave at 10 s
    assert sum(cost for _, cost in state["log"]) == 40


def test_a_grant_leaves_the_window_exactly_its_seconds_after_it_was_sent():
    state: dict = {}
    assert _step(state, 0.0, 100, 100, 25, -1, window=WINDOW) == (True, 0.0)
    assert _step(state, 9.999, 100, 100, 1, 0, window=WINDOW)[0] is False
    assert _step(state, 10.0, 100, 100, 25, 0, window=WINDOW) == (True, 0.0)
    assert state["log"] == [[10.0, 25]]  # the first grant is forgotten once it has left


def test_interactive_work_has_the_rest_of_the_window_and_is_not_paced_by_the_bucket():
    state: dict = {}
    # Bulk work: the bucket's 10 tokens, then reservations 2 s deep (rate 10/s).
    for _ in range(30):
        assert _step(state, 0.0, 10, 10, 1, -1, window=WINDOW)[0]
    granted, wait = _step(state, 0.0, 10, 10, 1, -1, window=WINDOW)
    assert wait > 2.0 or not granted
    state = {}
    assert _step(state, 0.0, 10, 10, 10, -1, window=WINDOW) == (True, 0.0)
    assert _step(state, 0.0, 10, 10, 10, -1, window=WINDOW) == (True, pytest.approx(1.0))
    # A manager's write is sent at once: the window has 10 left, and the queue is not its concern.
    assert _step(state, 0.0, 10, 10, 1, -1, room=5, window=WINDOW) == (True, 0.0)
    # Bulk work stops at 25 whoever filled the window; interactive work at 30.
    assert _step(state, 0.0, 10, 10, 5, -1, window=WINDOW) == (True, pytest.approx(10.0))
    assert _step(state, 0.0, 10, 10, 4, -1, room=5, window=WINDOW) == (True, 0.0)
    granted, wait = _step(state, 0.0, 10, 10, 1, 1.0, room=5, window=WINDOW)
    assert (granted, wait) == (False, pytest.approx(10.0))  # full: it waits for the oldest


def test_a_refused_window_reservation_reserves_nothing():
    state: dict = {}
    assert _step(state, 0.0, 100, 100, 25, -1, window=WINDOW)[0]
    before = json.loads(json.dumps(state))
    granted, wait = _step(state, 1.0, 100, 100, 5, 1.0, window=WINDOW)
    assert (granted, wait) == (False, pytest.approx(9.0))
    assert state == before


def test_a_penalty_holds_work_the_window_would_let_through():
    state: dict = {}
    _penalize(state, 0.0, rate=10, retry_after=2.0)
    assert _step(state, 1.0, 10, 10, 1, -1, room=5, window=WINDOW) == (False, pytest.approx(1.0))
    assert _step(state, 1.0, 10, 10, 1, -1, window=WINDOW) == (False, pytest.approx(1.0))


def test_the_file_limiter_shares_its_window_between_holders(tmp_path):
    path = tmp_path / "writes.json"
    first = FileRateLimiter(
        path, 100, 100, window=WINDOW, sleep=lambda s: None, clock=_frozen_clock
    )
    second = FileRateLimiter(
        path, 100, 100, window=WINDOW, sleep=lambda s: None, clock=_frozen_clock
    )
    assert first.acquire(20, timeout=0)
    assert second.acquire(5, timeout=0)
    assert second.acquire(1, timeout=0) is False  # 25: bulk work's share of the window is used
    assert first.acquire(5, timeout=0, priority=INTERACTIVE)
    log = json.loads(path.read_text())["log"]
    assert sorted(log) == [[1000.0, 5.0], [1000.0, 5.0], [1000.0, 20.0]]
    path.write_text('{"tokens": 1, "log": [["x"]]}')  # torn: a fresh limiter, not a crash
    assert first.acquire(25, timeout=0)


def test_it_rejects_a_cost_larger_than_the_windows_bulk_share(tmp_path):
    limiter = FileRateLimiter(tmp_path / "w.json", 100, 100, window=WINDOW)
    with pytest.raises(ValueError, match="window"):
        limiter.acquire(26)


def _graph_window_peak(send_times: list[float], seconds: float) -> int:
    """The most sends any window of `seconds` holds (Graph drops an event `seconds` after it)."""
    import bisect

    send_times = sorted(send_times)
    return max(
        bisect.bisect_left(send_times, start + seconds) - i for i, start in enumerate(send_times)
    )


def test_the_configured_write_limiter_uses_graphs_window_and_never_overfills_it():
    """Eight bulk tasks sending $batches of 20 flat out and a manager clicking every 0.37 s, on one
    simulated time line for three of Graph's windows, with the product's write settings: Graph
    (each request reaching it 80–250 ms after its grant) never sees more than 3,000 writes in
    150 s; together they use at least 97.5 % of the budget; a job starts with its burst; and the
    manager's writes almost never wait."""
    import heapq
    import random

    from provisioning.graph.config import GraphConfig

    config = GraphConfig(tenant_id="t", client_id="c", client_secret="s")
    rate, capacity = config.limiter_rate, config.limiter_capacity
    room, window, horizon = config.limiter_room, config.limiter_window, config.limiter_horizon
    duration = 3 * 151.0
    state: dict = {}
    sends: list[tuple[float, int, str]] = []
    manager_waits: list[float] = []
    events = [(0.0, "bulk", 0.0)] * 8
    events += [(0.37 * k, "manager", 0.37 * k) for k in range(int(duration / 0.37))]
    heapq.heapify(events)
    while events:
        now, kind, arrived = heapq.heappop(events)
        if now > duration:
            break
        bulk = kind == "bulk"
        cost = 20 if bulk else 1
        granted, wait = _step(
            state, now, rate, capacity, cost, horizon if bulk else -1, 0.0 if bulk else room, window
        )
        if not granted:  # as acquire(): sleep unreserved until the turn is within the horizon
            heapq.heappush(events, (now + max(1e-6, wait - horizon), kind, arrived))
            continue
        sends.append((now + wait, cost, kind))
        if bulk:  # the task's next $batch after this one's answer
            heapq.heappush(events, (now + wait + 0.3, "bulk", now + wait))
        else:
            manager_waits.append(now + wait - arrived)
    delay = random.Random(12).uniform
    at_graph = [at + delay(0.08, 0.25) for at, cost, _ in sends for _ in range(cost)]
    assert _graph_window_peak(at_graph, 150.0) <= 3000
    assert _graph_window_peak([at for at, cost, _ in sends for _ in range(cost)], 151.0) <= 2990
    written = sum(cost for at, cost, _ in sends if at <= duration)
    assert written >= 0.975 * 20 * duration
    assert sum(cost for at, cost, kind in sends if at < 1.0 and kind == "bulk") >= capacity
    manager_waits.sort()
    assert manager_waits[int(len(manager_waits) * 0.95)] == 0.0
    assert manager_waits[-1] <= 10.0  # at worst the end of a full window's pause


def test_recovery_writes_keep_to_bulk_works_share_of_the_window_without_the_pace():
    state: dict = {}
    assert _step(state, 0.0, 10, 10, 10, -1, window=WINDOW) == (True, 0.0)  # the bucket's 10
    assert _step(state, 0.0, 10, 10, 10, -1, window=WINDOW) == (True, pytest.approx(1.0))
    # A re-issue after a crash is sent at once, not behind the paced reservation; it takes no
    # tokens from the bucket…
    assert _step(state, 0.0, 10, 10, 5, -1, window=WINDOW, paced=False) == (True, 0.0)
    assert state["tokens"] == pytest.approx(-10.0)
    # …but keeps to bulk work's 25 of the window, whose last 5 stay interactive work's.
    assert _step(state, 0.0, 10, 10, 1, 0, window=WINDOW, paced=False) == (
        False,
        pytest.approx(10.0),
    )
    assert _step(state, 0.0, 10, 10, 5, -1, room=5, window=WINDOW) == (True, 0.0)
    # Without a window (the read bucket) it is bulk work.
    reads: dict = {"tokens": 0.0, "ts": 0.0}
    assert _step(reads, 0.0, 10, 10, 5, -1, paced=False) == (True, pytest.approx(0.5))
