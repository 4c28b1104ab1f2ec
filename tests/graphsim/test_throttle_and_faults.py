"""Throttling (docs/graph-contract.md §7.2-7.3), injected faults and counters, over HTTPS."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from graphsim.throttle import format_retry_after


@pytest.fixture
def app(graphsim):
    return graphsim.session(graphsim.issue_app_token())


def worker_ids(graphsim, count, *, without_phone=True):
    tenant = graphsim.tenant
    found = []
    for unit_id in graphsim.people.stores:
        for user_id in tenant.administrative_units[unit_id].member_ids:
            user = tenant.users.get(user_id)
            if user is None or not user.account_enabled or user.user_type != "Member":
                continue
            if without_phone and user_id in tenant.phone_methods:
                continue
            if user_id in tenant.qr_methods:
                continue
            found.append(user_id)
    return found[:count]


def add_phone(graphsim, session, user_id):
    return session.post(
        graphsim.graph_url(f"/users/{user_id}/authentication/phoneMethods"),
        json={"phoneNumber": "+44 7700900123", "phoneType": "mobile"},
    )


def create_qr_method(graphsim, session, user_id):
    start = datetime.now(UTC).replace(microsecond=0)
    return session.put(
        graphsim.graph_url(f"/users/{user_id}/authentication/qrCodePinMethod"),
        json={
            "@odata.type": "#microsoft.graph.qrCodePinAuthenticationMethod",
            "standardQRCode": {
                "startDateTime": start.isoformat().replace("+00:00", "Z"),
                "expireDateTime": (start + timedelta(days=365)).isoformat().replace("+00:00", "Z"),
            },
        },
    )


# -- throttling ------------------------------------------------------------------------------


def test_the_default_write_budget_is_graphs_3000_per_150_seconds(graphsim):
    config = graphsim.sim.config
    assert config.write_budget_per_s == 20
    assert config.write_burst == 3000  # docs/graph-contract.md §7.3: 3,000 writes / 2 min 30 s


def test_the_21st_write_within_a_second_is_throttled(graphsim, graphsim_time, app):
    graphsim.sim.config.write_burst = None  # a strict 1-second window of 20 writes
    workers = worker_ids(graphsim, 21)
    statuses = [add_phone(graphsim, app, w).status_code for w in workers]  # all at one instant
    assert statuses[:20] == [201] * 20
    assert statuses[20] == 429
    r = add_phone(graphsim, app, workers[20])
    assert r.status_code == 429
    retry_after = float(r.headers["Retry-After"])
    assert 0 < retry_after <= 1.0
    assert r.headers["x-ms-throttle-information"] == "WriteLimitExceeded"
    assert r.headers["x-ms-throttle-scope"].startswith("Tenant_Application/Write/")
    error = r.json()["error"]
    assert error["code"] == "TooManyRequests"
    assert error["innerError"]["code"] == "429" and error["innerError"]["status"] == "429"
    assert error["innerError"]["message"] == "Please retry after"

    # Reads keep passing while writes are throttled.
    assert app.get(graphsim.graph_url("/users?$top=1")).status_code == 200
    graphsim_time.sleep(retry_after * 0.9)
    assert add_phone(graphsim, app, workers[20]).status_code == 429  # Retry-After is exact
    graphsim_time.sleep(retry_after * 0.1)
    assert add_phone(graphsim, app, workers[20]).status_code == 201
    assert graphsim.stats["throttled"] == 3


def test_spaced_writes_never_throttle(graphsim, graphsim_time, app):
    graphsim.sim.config.write_budget_per_s = 50
    graphsim.sim.config.write_burst = None  # a strict 1-second window
    for worker in worker_ids(graphsim, 80):  # 80 writes in 1.6 s, never more than 50 in 1 s
        assert add_phone(graphsim, app, worker).status_code == 201
        graphsim_time.sleep(0.021)


def test_read_units_are_charged(graphsim, graphsim_time, app):
    graphsim.sim.config.read_units_per_10s = 6  # GET /users costs 2 RU, 1 with $select
    url = graphsim.graph_url("/users")
    assert [app.get(url).status_code for _ in range(4)] == [200, 200, 200, 429]
    r = app.get(url)
    assert r.headers["x-ms-throttle-information"] == "ResourceUnitLimitExceeded"


def test_throttle_can_be_switched_off(graphsim, app):
    graphsim.sim.config.throttle_enabled = False
    graphsim.sim.config.write_budget_per_s = 1
    graphsim.sim.config.write_burst = None  # a strict 1-second window
    assert all(add_phone(graphsim, app, w).status_code == 201 for w in worker_ids(graphsim, 5))


def test_integer_retry_after_option(graphsim, graphsim_time, app):
    graphsim.sim.config.write_budget_per_s = 1
    graphsim.sim.config.write_burst = None  # a strict 1-second window
    graphsim.sim.config.retry_after_integer = True
    workers = worker_ids(graphsim, 2)
    add_phone(graphsim, app, workers[0])
    assert add_phone(graphsim, app, workers[1]).headers["Retry-After"] == "1"


def test_retry_after_format():
    assert format_retry_after(10) == "10"
    assert format_retry_after(2.128) == "2.128"


def test_429_storm_for_a_window(graphsim, graphsim_time, app):
    graphsim.sim.config.storm_retry_after_s = 3
    graphsim.sim.start_storm(0.4)
    r = app.get(graphsim.graph_url("/users?$top=1"))
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "3"
    assert r.headers["x-ms-throttle-information"] == "CPULimitExceeded"
    graphsim_time.sleep(0.39)
    assert app.get(graphsim.graph_url("/users?$top=1")).status_code == 429
    graphsim_time.sleep(0.01)
    assert app.get(graphsim.graph_url("/users?$top=1")).status_code == 200


def test_partial_storm(graphsim, graphsim_time, app):
    graphsim.sim.config.storm_fraction = 0.5
    graphsim.sim.start_storm(30)
    statuses = [app.get(graphsim.graph_url("/users?$top=1")).status_code for _ in range(40)]
    assert 5 < statuses.count(429) < 35
    assert statuses.count(200) + statuses.count(429) == 40


# -- faults ----------------------------------------------------------------------------------


def test_latency_with_jitter(graphsim, app):
    graphsim.sim.config.latency_min_ms = 100
    graphsim.sim.config.latency_max_ms = 150
    started = time.monotonic()
    assert app.get(graphsim.graph_url("/users?$top=1")).status_code == 200
    assert time.monotonic() - started >= 0.1  # no upper bound: a busy machine may be slower
    assert graphsim.stats["faults"]["latency"] == 1


def test_injected_503_with_retry_after_and_504(graphsim, app):
    graphsim.sim.config.error_5xx_rate = 1.0
    graphsim.sim.config.error_503_retry_after_s = 2
    r = app.get(graphsim.graph_url("/users?$top=1"))
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "2"
    assert r.json()["error"]["code"] == "serviceNotAvailable"
    graphsim.sim.config.error_504_share = 1.0
    assert app.get(graphsim.graph_url("/users?$top=1")).status_code == 504
    assert graphsim.stats["faults"] == {"503": 1, "504": 1}


def test_injected_5xx_does_not_apply_the_write(graphsim, app):
    graphsim.sim.config.error_5xx_rate = 1.0
    [worker] = worker_ids(graphsim, 1)
    assert add_phone(graphsim, app, worker).status_code == 503
    assert worker not in graphsim.tenant.phone_methods


def test_connection_reset(graphsim, app):
    graphsim.sim.config.reset_rate = 1.0
    [worker] = worker_ids(graphsim, 1)
    with pytest.raises(requests.ConnectionError):
        add_phone(graphsim, app, worker)
    assert worker not in graphsim.tenant.phone_methods  # reset before handling
    graphsim.sim.config.reset_rate = 0.0
    assert app.get(graphsim.graph_url("/users?$top=1")).status_code == 200
    assert graphsim.stats["faults"]["reset"] == 1


def test_lost_response_applies_the_write_then_drops_the_connection(graphsim, app):
    graphsim.sim.config.lost_response_rate = 1.0
    [worker] = worker_ids(graphsim, 1)
    with pytest.raises(requests.ConnectionError):
        create_qr_method(graphsim, app, worker)
    assert worker in graphsim.tenant.qr_methods  # the write happened
    stats = graphsim.stats
    assert stats["qr_method_creations"] == {worker: 1}
    assert stats["writes_applied"] == 1
    assert stats["faults"]["lost"] == 1
    # Reads are never "lost": only applied writes are.
    assert app.get(graphsim.graph_url("/users?$top=1")).status_code == 200


def test_lost_response_as_504(graphsim, app):
    graphsim.sim.config.lost_response_rate = 1.0
    graphsim.sim.config.lost_response_mode = "504"
    [worker] = worker_ids(graphsim, 1)
    r = add_phone(graphsim, app, worker)
    assert r.status_code == 504
    assert "mobile" in graphsim.tenant.phone_methods[worker]


def test_lost_response_in_a_batch_loses_the_whole_batch(graphsim, app):
    graphsim.sim.config.lost_response_rate = 1.0
    [worker] = worker_ids(graphsim, 1)
    item = {
        "id": "1",
        "method": "POST",
        "url": f"/users/{worker}/authentication/phoneMethods",
        "headers": {"Content-Type": "application/json"},
        "body": {"phoneNumber": "+1 2065550100", "phoneType": "mobile"},
    }
    batch = {"requests": [item]}
    with pytest.raises(requests.ConnectionError):
        app.post(graphsim.graph_url("/$batch"), json=batch)
    assert worker in graphsim.tenant.phone_methods


def test_counters_by_method_and_status(graphsim, app):
    [worker] = worker_ids(graphsim, 1)
    assert create_qr_method(graphsim, app, worker).status_code == 201
    assert create_qr_method(graphsim, app, worker).status_code == 409
    app.get(graphsim.graph_url("/users?$top=1"))
    stats = graphsim.stats
    assert stats["requests"] == {"PUT 201": 1, "PUT 409": 1, "GET 200": 1}
    assert stats["qr_method_creations"] == {worker: 1}
    assert stats["writes_applied"] == 1


def test_reset_restores_config_and_tenant(graphsim, app):
    [worker] = worker_ids(graphsim, 1)
    add_phone(graphsim, app, worker)
    graphsim.sim.config.latency_max_ms = 500
    graphsim.sim.shift_clock(3600)
    graphsim.reset()
    assert worker not in graphsim.tenant.phone_methods
    assert graphsim.sim.config.latency_max_ms == 0
    assert graphsim.sim.clock_offset.total_seconds() == 0
    assert graphsim.stats["requests"] == {}


def test_concurrent_creates_for_one_user_make_one_method(graphsim):
    from concurrent.futures import ThreadPoolExecutor

    graphsim.sim.config.write_budget_per_s = 1000

    graphsim.sim.config.write_burst = None  # a strict 1-second window
    [worker] = worker_ids(graphsim, 1)
    token = graphsim.issue_app_token()

    def create(_):
        return create_qr_method(graphsim, graphsim.session(token), worker).status_code

    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(create, range(12)))
    assert statuses.count(201) == 1
    assert statuses.count(409) == 11
    assert graphsim.stats["qr_method_creations"] == {worker: 1}
