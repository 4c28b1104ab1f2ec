"""The read budget and priority as the Graph client uses them, against graphsim over HTTPS.

Reads are charged their resource units (docs/graph-contract.md §7.3) to a read bucket of their
own, writes one token each to the write bucket; a 429 holds only the bucket of the kind of request
it answered (§7.2). Limiters run on a frozen clock and record the waits they would sleep.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import pytest

from graphsim import demo
from provisioning.graph import (
    AppTokenProvider,
    GraphClient,
    GraphConfig,
    GraphRequest,
    build_client,
)
from provisioning.graph import operations as ops
from provisioning.graph.ratelimit import INTERACTIVE, FileRateLimiter, NoRateLimiter


@pytest.fixture
def config(graphsim, tmp_path):
    return GraphConfig(
        tenant_id=graphsim.tenant.id,
        client_id=demo.DEMO_CLIENT_ID,
        client_secret=demo.DEMO_CLIENT_SECRET,
        authority_host=graphsim.base_url,
        graph_endpoint=graphsim.base_url,
        rate_limiter_url=str(tmp_path / "ratelimit"),
        timeout=(5.0, 10.0),
    )


def _frozen() -> float:
    return 5000.0


def store_workers(graphsim, count):
    tenant = graphsim.tenant
    found = [
        user_id
        for unit_id in graphsim.people.stores
        for user_id in tenant.administrative_units[unit_id].member_ids
    ]
    assert len(found) >= count
    return found[:count]


def workers_without_qr(graphsim, count):
    tenant = graphsim.tenant
    found = [
        user_id
        for unit_id in graphsim.people.stores
        for user_id in tenant.administrative_units[unit_id].member_ids
        if tenant.users[user_id].user_type == "Member"
        and tenant.users[user_id].account_enabled
        and tenant.users[user_id].licensed
        and user_id not in tenant.qr_methods
    ]
    assert len(found) >= count
    return found[:count]


def create(user_id):
    start = datetime.now(UTC).replace(microsecond=0)
    return ops.qr_method_create_request(user_id, start=start, expire=start + timedelta(days=30))


def test_batched_reads_are_charged_their_units_to_the_read_bucket(graphsim, config, tmp_path):
    read_waits: list[float] = []
    write_waits: list[float] = []
    reads = FileRateLimiter(
        tmp_path / "reads.json", rate=1, capacity=30, sleep=read_waits.append, clock=_frozen
    )
    writes = FileRateLimiter(
        tmp_path / "writes.json", rate=1, capacity=1, sleep=write_waits.append, clock=_frozen
    )
    client = GraphClient(config, AppTokenProvider(config), writes, read_limiter=reads)
    users = store_workers(graphsim, 20)
    # 20 GETs of a QR method: 1 unit each (not listed in §7.3) = 20 of the 30 units.
    results = client.batch([ops.qr_method_get_request(u) for u in users])
    assert all(r.status in (200, 404) for r in results)
    assert read_waits == []
    # The next 20 units: 10 are there, the other 10 are reserved, 10 s at 1 unit a second.
    client.batch([ops.qr_method_get_request(u) for u in users])
    assert read_waits == [pytest.approx(10.0)]
    assert write_waits == []  # reads take nothing from the write budget


def test_a_listed_read_costs_its_listed_units(graphsim, config, tmp_path):
    waits: list[float] = []
    reads = FileRateLimiter(
        tmp_path / "reads.json", rate=1, capacity=10, sleep=waits.append, clock=_frozen
    )
    client = GraphClient(config, AppTokenProvider(config), NoRateLimiter(), read_limiter=reads)
    for _ in range(5):
        client.get("/users?$top=999")  # /users: 2 units, and $top ≥ 20 takes none off
    assert waits == []
    client.get("/users?$top=999")
    assert waits == [pytest.approx(2.0)]  # the bucket was empty: 2 units at 1 a second


def test_pages_are_charged_page_by_page(graphsim, config, tmp_path):
    waits: list[float] = []
    reads = FileRateLimiter(
        tmp_path / "reads.json", rate=1, capacity=100, sleep=waits.append, clock=_frozen
    )
    client = GraphClient(config, AppTokenProvider(config), NoRateLimiter(), read_limiter=reads)
    pages = list(client.iter_pages(GraphRequest("GET", "/users?$select=id&$top=5")))
    assert len(pages) > 1
    state = json.loads((tmp_path / "reads.json").read_text())
    # /users 2, $select −1, $top < 20 −1 → never below 1: one unit a page.
    assert state["tokens"] == pytest.approx(100 - len(pages))


def test_a_read_429_holds_the_read_bucket_and_not_the_write_bucket(
    graphsim, graphsim_time, config, tmp_path
):
    graphsim.sim.config.read_units_per_10s = 10  # Graph's bucket: 10 units, 1 a second
    reads = FileRateLimiter(
        tmp_path / "reads.json", rate=1000, sleep=graphsim_time.sleep, clock=graphsim_time.clock
    )
    writes = FileRateLimiter(
        tmp_path / "writes.json", rate=1000, sleep=graphsim_time.sleep, clock=graphsim_time.clock
    )
    client = GraphClient(
        config, AppTokenProvider(config), writes, read_limiter=reads, sleep=graphsim_time.sleep
    )
    for _ in range(6):  # 2 units each: the sixth is throttled, then retried after Retry-After
        client.get("/users?$top=999")
    assert graphsim.stats["requests"].get("GET 429", 0) >= 1
    read_state = json.loads((tmp_path / "reads.json").read_text())
    assert read_state["blocked_until"] > 0
    assert not (tmp_path / "writes.json").exists()  # the write bucket was never touched


def test_a_write_429_holds_the_write_bucket_and_not_the_read_bucket(
    graphsim, graphsim_time, config, tmp_path
):
    reads = FileRateLimiter(
        tmp_path / "reads.json", rate=1000, sleep=graphsim_time.sleep, clock=graphsim_time.clock
    )
    writes = FileRateLimiter(
        tmp_path / "writes.json", rate=1000, sleep=graphsim_time.sleep, clock=graphsim_time.clock
    )
    client = GraphClient(
        config, AppTokenProvider(config), writes, read_limiter=reads, sleep=graphsim_time.sleep
    )
    graphsim.sim.config.write_budget_per_s = 2
    graphsim.sim.config.write_burst = 2
    for user in workers_without_qr(graphsim, 3):  # 3 writes in one simulated second, 2 allowed
        client.request(create(user))
    assert graphsim.stats["requests"].get("PUT 429", 0) >= 1
    assert json.loads((tmp_path / "writes.json").read_text())["blocked_until"] > 0
    read_state = (
        json.loads((tmp_path / "reads.json").read_text())
        if (tmp_path / "reads.json").exists()
        else {}
    )
    assert "blocked_until" not in read_state


def test_a_managers_client_takes_writes_ahead_of_the_bulk_queue(graphsim, config, tmp_path):
    waits: list[float] = []
    path = tmp_path / "writes.json"
    bulk = FileRateLimiter(path, rate=10, sleep=waits.append, clock=_frozen)
    for _ in range(40):  # a bulk backlog: 3 s of reservations
        bulk.acquire()
    waits.clear()
    manager_limiter = FileRateLimiter(path, rate=10, sleep=waits.append, clock=_frozen)
    manager = GraphClient(
        config,
        AppTokenProvider(config),
        manager_limiter,
        read_limiter=NoRateLimiter(),
        priority=INTERACTIVE,
    )
    first, second = workers_without_qr(graphsim, 2)
    manager.request(create(first))
    assert waits == []  # not behind the 30 reserved writes
    bulk_client = build_client(config, rate_limiter=bulk, read_limiter=NoRateLimiter())
    bulk_client.request(create(second))
    assert waits == [pytest.approx(3.2)]  # behind 30 reserved + 1 borrowed


def test_the_write_limiter_plans_within_graphs_window(config):
    # docs/graph-contract.md §7.3: 3,000 writes in any 150 s. Our window is a second longer (the
    # delay between a grant and Graph counting it), holds 10 fewer, and bulk work leaves the
    # interactive room of it; the pace is at least 97.5 % of 20/s; a $batch fits the burst.
    window, room = config.limiter_window, config.limiter_room
    assert window.seconds == 151.0
    assert window.limit == 2990.0
    assert window.bulk_limit == window.limit - room and room >= 20
    assert config.limiter_rate >= 0.975 * 20
    assert config.limiter_capacity >= 20 * 10
    faster = dataclasses.replace(config, writes_per_second=40.0)
    assert faster.limiter_window.limit == 5990.0
    assert faster.limiter_capacity > config.limiter_capacity


def test_writes_at_the_limiters_pace_are_never_throttled_by_graphs_window(
    graphsim, graphsim_time, config, tmp_path
):
    """The configured limiter against graphsim's own 150 s window over HTTPS, on simulated time,
    with a budget of 2 writes/s (300 per window, 270 of them bulk work's): QR methods created and
    then deleted through $batch, more writes than one window holds. The first batch goes at once
    (the burst), none is answered 429, and the window pauses bulk work only until its oldest
    writes leave it."""
    graphsim.sim.config.write_budget_per_s = 2.0
    graphsim.sim.config.write_burst = 300.0  # Graph's 150 s window at 2 writes/s
    slow = dataclasses.replace(config, writes_per_second=2.0)
    writes = FileRateLimiter(
        tmp_path / "writes.json",
        slow.limiter_rate,
        slow.limiter_capacity,
        room=slow.limiter_room,
        horizon=slow.limiter_horizon,
        window=slow.limiter_window,
        sleep=graphsim_time.sleep,
        clock=graphsim_time.clock,
    )
    client = GraphClient(
        slow, AppTokenProvider(slow), writes, read_limiter=NoRateLimiter(),
        sleep=graphsim_time.sleep,
    )  # fmt: skip
    users = workers_without_qr(graphsim, 180)
    started = graphsim_time.clock()
    created = client.batch([create(u) for u in users[:20]])
    assert graphsim_time.clock() == started  # the burst: sent at once
    created += client.batch([create(u) for u in users[20:]])
    deleted = client.batch([ops.qr_method_delete_request(u) for u in users])
    assert [r.status for r in created] == [201] * 180
    assert [r.status for r in deleted] == [204] * 180
    assert not any("429" in name for name in graphsim.stats["requests"])
    assert graphsim.stats.get("batch_item_429", 0) == 0
    assert not any(user in graphsim.tenant.qr_methods for user in users)
    elapsed = graphsim_time.clock() - started
    paced = (360 - slow.limiter_capacity) / slow.limiter_rate  # 174 s at 1.95 writes/s
    assert elapsed > paced  # the window held bulk work back once 270 were sent (at ~133 s)…
    # …until the first batch left it (151 s), and the last 90 followed at the pace.
    window = slow.limiter_window
    assert elapsed <= window.seconds + (360 - window.bulk_limit) / slow.limiter_rate + 1.0


class _Recording(NoRateLimiter):
    def __init__(self):
        self.costs: list[float] = []

    def acquire(self, cost=1, timeout=None, priority="bulk"):
        self.costs.append(cost)
        return True


def test_a_batchs_writes_are_reserved_in_one_acquire(graphsim, config):
    writes = _Recording()
    client = build_client(config, rate_limiter=writes, read_limiter=NoRateLimiter())
    results = client.batch([create(u) for u in workers_without_qr(graphsim, 25)])
    assert [r.status for r in results] == [201] * 25
    assert writes.costs == [20, 5]  # reserved as they are sent, not one at a time


def test_a_client_built_without_django_gets_the_same_write_bucket(config):
    # Scripts, benchmarks and the graphsim suites build clients with build_client: their bucket
    # must hold a whole $batch (one reservation of 20), as the workers' does.
    client = build_client(config)
    assert client.rate_limiter.capacity == config.limiter_capacity
    assert client.rate_limiter.rate == config.limiter_rate
    assert client.rate_limiter.window == config.limiter_window
    assert client.rate_limiter.acquire(20, timeout=0)
