"""The Graph client against graphsim over real HTTPS: tokens, paging, retries, errors.

Every test goes through the production path: MSAL (client credentials, secret or certificate)
against graphsim's identity endpoints, then requests to graphsim's Graph, trusting graphsim's CA
through REQUESTS_CA_BUNDLE. Faults are switched on in graphsim's config; outcomes are checked in
graphsim's own state and counters.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from graphsim import demo, identity
from provisioning.graph import (
    AppTokenProvider,
    GraphBadRequest,
    GraphClient,
    GraphConfig,
    GraphConnectionError,
    GraphNotFound,
    GraphRequest,
    GraphUnauthorized,
    GraphUnavailable,
    TokenError,
    build_client,
)
from provisioning.graph import operations as ops
from provisioning.graph.ratelimit import FileRateLimiter, NoRateLimiter


def make_config(graphsim, tmp_path, **overrides) -> GraphConfig:
    values = {
        "tenant_id": graphsim.tenant.id,
        "client_id": demo.DEMO_CLIENT_ID,
        "client_secret": demo.DEMO_CLIENT_SECRET,
        "authority_host": graphsim.base_url,
        "graph_endpoint": graphsim.base_url,
        "rate_limiter_url": str(tmp_path / "ratelimit"),
        "timeout": (5.0, 10.0),
        "max_retry_seconds": 30.0,
    }
    values.update(overrides)
    return GraphConfig(**values)


@pytest.fixture
def config(graphsim, tmp_path):
    return make_config(graphsim, tmp_path)


@pytest.fixture
def client(config):
    return build_client(config)


def a_worker(graphsim, *, without_qr=True):
    """A store worker of the demo tenant (one without a QR method unless told otherwise)."""
    tenant = graphsim.tenant
    for unit_id in graphsim.people.stores:
        for user_id in tenant.administrative_units[unit_id].member_ids:
            user = tenant.users[user_id]
            if user.user_type != "Member" or not user.account_enabled or not user.licensed:
                continue
            if without_qr == (user_id not in tenant.qr_methods):
                return user
    raise AssertionError("the demo tenant has no such worker")


def soon():
    start = datetime.now(UTC).replace(microsecond=0)
    return start, start + timedelta(days=200)


def graph_requests(graphsim, key):
    return graphsim.stats["requests"].get(key, 0)


# -- tokens -----------------------------------------------------------------------------------


def test_it_calls_graph_with_a_client_secret(graphsim, client):
    worker = a_worker(graphsim)
    user = ops.user_get(client, worker.user_principal_name)
    assert user.id == worker.id
    assert user.display_name == worker.display_name
    assert graphsim.stats["token_requests"] == {"client_credentials 200": 1}


def _self_signed_pem() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Lanyard test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def test_it_calls_graph_with_a_certificate(graphsim, tmp_path):
    key_pem, cert_pem = _self_signed_pem()
    path = tmp_path / "lanyard.pem"
    path.write_bytes(key_pem + cert_pem)
    app = graphsim.tenant.apps[demo.DEMO_CLIENT_ID]
    identity.register_certificate(app, cert_pem)
    app.client_secret = None  # only the certificate can work now
    config = make_config(graphsim, tmp_path, client_secret=None, client_certificate_path=str(path))
    worker = a_worker(graphsim)
    assert ops.user_get(build_client(config), worker.id).id == worker.id
    assert graphsim.stats["token_requests"] == {"client_credentials 200": 1}


def test_a_wrong_secret_is_a_permanent_token_error(graphsim, tmp_path):
    config = make_config(graphsim, tmp_path, client_secret="not-the-secret")
    with pytest.raises(TokenError) as info:
        ops.user_get(build_client(config), a_worker(graphsim).id)
    assert info.value.permanent
    assert "not-the-secret" not in str(info.value)


def test_60_second_tokens_are_reused_until_they_near_expiry(graphsim, config):
    graphsim.sim.config.token_lifetime_s = 60
    provider = AppTokenProvider(config)
    client = build_client(config, provider)
    worker = a_worker(graphsim)
    for _ in range(10):
        ops.user_get(client, worker.id)
    # MSAL alone would fetch a token per call: it treats < 5 minutes left as expired.
    assert graphsim.stats["token_requests"] == {"client_credentials 200": 1}
    assert provider.tokens_acquired == 1


def test_a_401_for_an_expired_token_fetches_a_new_one_once(graphsim, config):
    provider = AppTokenProvider(config)
    client = build_client(config, provider)
    worker = a_worker(graphsim)
    ops.user_get(client, worker.id)
    # Graph's clock runs two hours ahead of ours: it has expired the token we still think good.
    # The next token is issued on Graph's clock, so it lasts however slow the machine is.
    graphsim.sim.shift_clock(2 * 3600)
    assert ops.user_get(client, worker.id).id == worker.id
    assert graphsim.stats["token_requests"] == {"client_credentials 200": 2}
    assert client.stats["token_refreshes"] == 1
    assert client.stats["status_401"] == 1  # graphsim counts authenticated requests only


def test_a_second_401_is_an_error_not_a_loop(graphsim, client):
    graphsim.sim.config.token_lifetime_s = 0  # every token graphsim issues is already expired
    with pytest.raises(GraphUnauthorized) as info:
        ops.user_get(client, a_worker(graphsim).id)
    assert client.stats["status_401"] == 2
    assert info.value.request_id in str(info.value)
    assert not client.tokens._memo.token  # nothing bad is kept for the next call


# -- paging ------------------------------------------------------------------------------------


def test_it_follows_nextlink_through_tiny_pages_resending_consistency_level(graphsim, client):
    graphsim.sim.config.max_page_size = 3
    graphsim.sim.config.default_page_size = 3
    store = graphsim.people.stores[0]
    expected = {
        uid
        for uid in graphsim.tenant.administrative_units[store].member_ids
        if uid in graphsim.tenant.users
    }
    users = list(ops.administrative_unit_users(client, store))
    assert {u.id for u in users} == expected
    assert len(users) == len(expected)
    pages = graph_requests(graphsim, "GET 200")
    assert pages == -(-len(expected) // 3)


# -- retries -----------------------------------------------------------------------------------


def test_reads_are_retried_through_503s_and_504s(graphsim, client):
    graphsim.sim.config.error_5xx_rate = 0.3
    graphsim.sim.config.error_504_share = 0.5
    graphsim.sim.config.default_page_size = 10
    users = list(client.iter_values(GraphRequest("GET", "/users")))
    assert {u["id"] for u in users} == set(graphsim.tenant.users)
    assert graph_requests(graphsim, "GET 503") + graph_requests(graphsim, "GET 504") > 0
    assert client.stats["retries"] >= 1


def test_reads_are_retried_through_connection_resets(graphsim, client):
    graphsim.sim.config.reset_rate = 0.3
    graphsim.sim.config.default_page_size = 20
    users = list(client.iter_values(GraphRequest("GET", "/users")))
    assert {u["id"] for u in users} == set(graphsim.tenant.users)
    assert graphsim.stats["faults"].get("reset", 0) > 0
    assert client.stats["connection_errors"] == graphsim.stats["faults"]["reset"]


def test_a_write_whose_connection_was_reset_is_reported_as_maybe_performed(graphsim, client):
    graphsim.sim.config.reset_rate = 1.0
    worker = a_worker(graphsim)
    start, expire = soon()
    with pytest.raises(GraphConnectionError) as info:
        ops.qr_method_create(client, worker.id, start=start, expire=expire)
    assert info.value.maybe_performed  # the client cannot tell; the task must re-read Graph
    assert client.stats["requests"] == 1


def test_a_503_retry_after_is_honoured(graphsim, client):
    graphsim.sim.config.error_5xx_rate = 1.0
    graphsim.sim.config.error_503_retry_after_s = 0.3
    worker = a_worker(graphsim)
    started = time.monotonic()
    with pytest.raises(GraphUnavailable) as info:
        ops.user_get(client, worker.id)
    # Every attempt waited the 0.3 s Graph asked for (the retry budget is bounded).
    assert time.monotonic() - started >= 0.3 * client.config.max_retries
    assert graph_requests(graphsim, "GET 503") == client.config.max_retries + 1
    assert info.value.request_id


def test_a_429_storm_is_waited_out_for_reads_and_writes(graphsim, graphsim_time, config, tmp_path):
    # The storm, the client's waits and the shared limiter's pause on one simulated time line:
    # the first attempt always meets the storm, however long it takes to arrive.
    limiter = FileRateLimiter(
        tmp_path / "paced",
        rate=config.limiter_rate,
        sleep=graphsim_time.sleep,
        clock=graphsim_time.clock,
    )
    client = GraphClient(config, AppTokenProvider(config), limiter, sleep=graphsim_time.sleep)
    graphsim.sim.config.storm_retry_after_s = 0.4
    graphsim.sim.faults.start_storm(0.3)
    worker = a_worker(graphsim)
    start, expire = soon()
    started = graphsim_time.now
    method = ops.qr_method_create(client, worker.id, start=start, expire=expire)
    assert graphsim_time.now - started >= 0.4
    assert method.has_secrets
    assert graph_requests(graphsim, "PUT 429") >= 1
    assert graphsim.stats["qr_method_creations"] == {worker.id: 1}


def test_a_write_is_not_retried_after_a_503(graphsim, client):
    graphsim.sim.config.error_5xx_rate = 1.0
    worker = a_worker(graphsim)
    start, expire = soon()
    with pytest.raises(GraphUnavailable) as info:
        ops.qr_method_create(client, worker.id, start=start, expire=expire, pin="48207315")
    assert not info.value.permanent
    assert graph_requests(graphsim, "PUT 503") == 1
    assert worker.id not in graphsim.tenant.qr_methods


def test_a_lost_write_response_is_reported_not_retried(graphsim, client):
    graphsim.sim.config.lost_response_rate = 1.0
    worker = a_worker(graphsim)
    start, expire = soon()
    with pytest.raises(GraphConnectionError) as info:
        ops.qr_method_create(client, worker.id, start=start, expire=expire)
    assert info.value.maybe_performed
    graphsim.sim.config.lost_response_rate = 0.0
    # The caller re-checks Graph: the method is there, created exactly once, without secrets.
    found = ops.qr_method_get(client, worker.id)
    assert found is not None
    assert not found.has_secrets
    assert graphsim.stats["qr_method_creations"] == {worker.id: 1}


def test_a_lost_write_answered_504_is_not_retried(graphsim, client):
    graphsim.sim.config.lost_response_rate = 1.0
    graphsim.sim.config.lost_response_mode = "504"
    worker = a_worker(graphsim)
    with pytest.raises(GraphUnavailable):
        ops.qr_pin_reset(client, a_worker(graphsim, without_qr=False).id, pin="48207315")
    assert graphsim.stats["pin_resets"] == {a_worker(graphsim, without_qr=False).id: 1}
    assert worker.id not in graphsim.tenant.qr_methods


# -- errors ------------------------------------------------------------------------------------


def test_errors_are_plain_language_with_the_request_id_and_no_secret(graphsim, client):
    worker = a_worker(graphsim)
    start, expire = soon()
    with pytest.raises(GraphBadRequest) as info:
        ops.qr_method_create(client, worker.id, start=start, expire=expire, pin="1212121212")
    text = str(info.value)
    assert "1212121212" not in text
    assert "1212121212" not in repr(info.value)
    assert text.startswith("Microsoft Graph rejected the request as invalid")
    assert info.value.request_id and info.value.request_id in text
    assert info.value.permanent


def test_a_missing_method_is_none_and_a_missing_user_is_not_found(graphsim, client):
    assert ops.qr_method_get(client, a_worker(graphsim).id) is None
    with pytest.raises(GraphNotFound) as info:
        ops.user_get(client, "nobody@lanyard-demo.onmicrosoft.com")
    assert "could not find" in str(info.value)


def test_no_limiter_means_no_waiting(graphsim, config):
    client = build_client(config, rate_limiter=NoRateLimiter())
    assert ops.qr_policy_get(client).state == "enabled"
