"""$batch through graphsim: splitting, unordered answers, per-item throttling, secrets once."""

from __future__ import annotations

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
from provisioning.graph.models import QrMethod
from provisioning.graph.ratelimit import FileRateLimiter, NoRateLimiter


@pytest.fixture
def config(graphsim, tmp_path):
    return GraphConfig(
        tenant_id=graphsim.tenant.id,
        client_id=demo.DEMO_CLIENT_ID,
        client_secret=demo.DEMO_CLIENT_SECRET,
        authority_host=graphsim.base_url,
        graph_endpoint=graphsim.base_url,
        rate_limiter_url=str(tmp_path / "ratelimit"),
        writes_per_second=200,
    )


def workers_without_qr(graphsim, count):
    tenant = graphsim.tenant
    found = []
    for unit_id in graphsim.people.stores:
        for user_id in tenant.administrative_units[unit_id].member_ids:
            user = tenant.users[user_id]
            if (
                user.user_type == "Member"
                and user.account_enabled
                and user.licensed
                and user_id not in tenant.qr_methods
            ):
                found.append(user)
    assert len(found) >= count
    return found[:count]


def create_requests(users):
    start = datetime.now(UTC).replace(microsecond=0)
    return [
        ops.qr_method_create_request(
            u.id, start=start, expire=start + timedelta(days=90), pin=None if i % 2 else "48207315"
        )
        for i, u in enumerate(users)
    ]


def test_it_splits_into_batches_of_20_and_returns_results_in_order(graphsim, config):
    graphsim.sim.config.write_budget_per_s = 1000.0
    users = workers_without_qr(graphsim, 45)
    results = build_client(config).batch(create_requests(users))
    assert graphsim.stats["batches"] == 3
    assert [r.status for r in results] == [201] * 45
    for user, result in zip(users, results, strict=True):
        method = QrMethod.from_graph(result.body)
        assert method.has_secrets
        assert graphsim.tenant.qr_methods[user.id].id == method.id
        assert result.request_id
    assert QrMethod.from_graph(results[0].body).pin.secret_code.reveal() == "48207315"
    assert graphsim.stats["qr_method_creations"] == {u.id: 1 for u in users}


def test_throttled_items_are_resent_after_their_retry_after(graphsim, graphsim_time, config):
    graphsim.sim.config.write_budget_per_s = 10.0  # graphsim allows 10 writes/s …
    graphsim.sim.config.write_burst = None  # … in any one second
    users = workers_without_qr(graphsim, 40)
    # … and nothing holds us back. Both batches land in the same simulated second however slow
    # the machine, and the client waits out Retry-After on the same clock.
    client = GraphClient(
        config, AppTokenProvider(config), NoRateLimiter(), sleep=graphsim_time.sleep
    )
    results = client.batch(create_requests(users))
    assert [r.status for r in results] == [201] * 40
    assert client.stats["batch_item_429"] >= 1
    assert graphsim.stats["qr_method_creations"] == {u.id: 1 for u in users}


def test_the_rate_limiter_keeps_batches_under_graphs_write_budget(
    graphsim, graphsim_time, config, tmp_path
):
    graphsim.sim.config.write_budget_per_s = 20.0
    graphsim.sim.config.write_burst = None  # strict: 20 in any one second
    # One time line for the client's limiter and graphsim's throttle: when a batch reaches
    # graphsim does not depend on the machine's speed or load.
    time = graphsim_time
    limiter = FileRateLimiter(
        tmp_path / "paced", rate=18.0, capacity=20.0, sleep=time.sleep, clock=time.clock
    )
    users = workers_without_qr(graphsim, 60)
    client = build_client(config, rate_limiter=limiter)
    start = time.now
    results = client.batch(create_requests(users))
    assert [r.status for r in results] == [201] * 60
    assert client.stats["batch_item_429"] == 0
    # It paced the writes (one $batch's burst, each batch reserved whole, then 18 a second)
    # rather than being lucky.
    assert time.now - start >= (60 - 20) / 18.0


def test_write_items_that_fail_with_5xx_are_returned_not_resent(graphsim, config):
    graphsim.sim.config.error_5xx_rate = 1.0
    users = workers_without_qr(graphsim, 5)
    client = build_client(config)
    results = client.batch(create_requests(users))
    for result in results:
        assert result.status in (503, 504, None)
        assert result.error is not None and not result.error.permanent
        assert "request-id unknown" not in str(result.error)
    assert graphsim.stats["qr_method_creations"] == {}


def test_read_items_are_resent_through_5xx(graphsim, config):
    graphsim.sim.config.error_5xx_rate = 0.4
    users = workers_without_qr(graphsim, 30)
    client = build_client(config)
    gets = [GraphRequest("GET", f"/users/{u.id}?$select=id,displayName") for u in users]
    results = client.batch(gets)
    assert [r.body["id"] for r in results] == [u.id for u in users]
