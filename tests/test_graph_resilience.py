"""Acceptance: the Graph client pages through 10,000 users and completes 1,000 QR-method creations
through $batch while graphsim injects 20 % 503s, 429 storms and 60-second tokens; no request is
lost or repeated in effect.

The provisioning loop below is what a bulk task does with the client (docs/architecture.md §6):
writes go in $batch; any item whose outcome is not a 201 — a 5xx, a lost answer, a conflict — is
resolved by reading Graph's state before anything is written again. A method found without its
secrets (its create answer was lost) is recovered by replacing the standard QR code and resetting
the PIN. Graphsim's own state and counters are the judge.
"""

from __future__ import annotations

import base64
import contextlib
import json
import random
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from graphsim import demo
from graphsim.tenantgen import large_tenant
from provisioning.graph import (
    AppTokenProvider,
    GraphConfig,
    GraphError,
    GraphNotFound,
    GraphRequest,
    build_client,
)
from provisioning.graph import operations as ops
from provisioning.graph.models import QrCode, QrMethod, QrPin

USERS = 10_000
CREATIONS = 1_000
# Graph's real write budget (docs/architecture.md §6), in graphsim and in our limiter. At 20/s the
# run lasts longer than a 60-second token, so tokens expire and are renewed while the batches flow.
WRITES_PER_SECOND = 20.0


@dataclass
class Credentials:
    """What a badge and a PIN slip need: the standard code (with image) and the PIN."""

    code: QrCode
    pin: QrPin
    recovered: bool


def provision(client, users, pins, start, expire, received):
    """Create a QR method for every user; returns user id → Credentials."""
    creds: dict[str, Credentials] = {}
    to_create = list(users)
    to_check: list[str] = []
    to_recover: list[str] = []
    rounds = 0
    while to_create or to_check or to_recover:
        rounds += 1
        assert rounds <= 60, "provisioning did not converge"
        if to_check:
            # Resolve unknown outcomes by reading Graph (a GET never creates anything).
            reads = [
                GraphRequest("GET", f"/users/{u}/authentication/qrCodePinMethod") for u in to_check
            ]
            still_unknown = []
            for user, result in zip(to_check, client.batch(reads), strict=True):
                if result.status == 404:
                    to_create.append(user)  # not created: safe to create
                elif result.status == 200:
                    to_recover.append(user)  # created, but its answer never reached us
                else:
                    still_unknown.append(user)
            to_check = still_unknown
        if to_create:
            sending, to_create = to_create, []
            writes = [
                ops.qr_method_create_request(u, start=start, expire=expire, pin=pins[u])
                for u in sending
            ]
            for user, result in zip(sending, client.batch(writes), strict=True):
                if result.status == 201:
                    method = QrMethod.from_graph(result.body)
                    assert method.has_secrets
                    received[user] = received.get(user, 0) + 1
                    creds[user] = Credentials(method.standard_qr_code, method.pin, False)
                elif result.status == 409 or result.error is None or not result.error.permanent:
                    to_check.append(user)
                else:
                    raise AssertionError(f"permanent failure for {user}: {result.error}")
        for user in list(to_recover):
            try:
                creds[user] = recover(client, user, start, expire)
                received[user] = received.get(user, 0) + 1
                to_recover.remove(user)
            except GraphError as error:
                assert not error.permanent, str(error)  # transient: try again next round
    return creds, rounds


def recover(client, user, start, expire) -> Credentials:
    """Replace the standard QR code and reset the PIN: new secrets for a method that lost them."""
    with contextlib.suppress(GraphNotFound):
        ops.qr_code_delete(client, user, "standardQRCode")
    code = ops.qr_code_set(client, user, "standardQRCode", start=start, expire=expire)
    if code.image is None:
        raise GraphError("a standard code reappeared before ours was made", permanent=False)
    pin = ops.qr_pin_reset(client, user, pin="48207315")
    return Credentials(code, pin, True)


class Storms(threading.Thread):
    """A 429 storm of `length` seconds every `every` seconds while provisioning runs."""

    def __init__(self, sim, every=10.0, length=1.0):
        super().__init__(daemon=True)
        self.sim, self.every, self.length = sim, every, length
        self.stop = threading.Event()
        self.count = 0

    def run(self):
        while not self.stop.wait(self.every):
            self.sim.faults.start_storm(self.length)
            self.count += 1


@pytest.mark.slow
def test_it_pages_10000_users_and_creates_1000_methods_through_faults(graphsim, tmp_path):
    graphsim.reset(large_tenant(USERS))
    sim, tenant = graphsim.sim, graphsim.tenant
    big_store = next(u for u in tenant.administrative_units.values() if len(u.member_ids) >= USERS)
    config = GraphConfig(
        tenant_id=tenant.id,
        client_id=demo.DEMO_CLIENT_ID,
        client_secret=demo.DEMO_CLIENT_SECRET,
        authority_host=graphsim.base_url,
        graph_endpoint=graphsim.base_url,
        rate_limiter_url=str(tmp_path / "ratelimit"),
        writes_per_second=WRITES_PER_SECOND,
    )
    tokens = AppTokenProvider(config)
    client = build_client(config, tokens)
    sim.config.token_lifetime_s = 60
    sim.config.error_5xx_rate = 0.20
    sim.config.error_504_share = 0.25
    sim.config.write_budget_per_s = WRITES_PER_SECOND
    # Graph: 3,000 writes per 150 s (docs/graph-contract.md §7.3)
    sim.config.write_burst = WRITES_PER_SECOND * 150
    sim.config.storm_retry_after_s = 1.0
    sim.config.latency_max_ms = 20

    # (a) every user of the big store, through @odata.nextLink, under 20 % 503s.
    started = time.monotonic()
    listed = [u.id for u in ops.administrative_unit_users(client, big_store.id, select="id")]
    paging_s = time.monotonic() - started
    assert len(listed) == len(set(listed)) == USERS
    assert set(listed) == set(big_store.member_ids)
    paging_stats = dict(client.stats)

    # (b) 1,000 QR methods through $batch under 503s, lost answers, 429 storms, expiring tokens.
    targets = [u for u in listed if u not in tenant.qr_methods][:CREATIONS]
    assert len(targets) == CREATIONS
    pins = custom_pins(targets)
    sim.config.lost_response_rate = 0.005  # per write; a lost one loses its whole $batch
    start = datetime.now(UTC).replace(microsecond=0)
    expire = start + timedelta(days=365)
    storms = Storms(sim)
    received: dict[str, int] = {}
    storms.start()
    started = time.monotonic()
    try:
        creds, rounds = provision(client, targets, pins, start, expire, received)
    finally:
        storms.stop.set()
        storms.join()
    provisioning_s = time.monotonic() - started

    # Graph's own state: exactly one method per user, each created once, nobody else touched.
    stats = graphsim.stats
    assert set(stats["qr_method_creations"]) == set(targets)
    assert set(stats["qr_method_creations"].values()) == {1}
    assert all(u in tenant.qr_methods for u in targets)
    # Every method's secrets came back exactly once and are the live ones.
    assert set(creds) == set(targets)
    assert set(received.values()) == {1}
    for user in targets:
        live = tenant.qr_methods[user]
        cred = creds[user]
        assert cred.pin.secret_code.reveal() == live.pin.code
        payload = base64.b64decode(cred.code.image.secret_raw_content.reveal()).decode()
        assert f"|{live.standard.id}|" in payload
        if pins[user] and not cred.recovered:
            assert cred.pin.secret_code.reveal() == pins[user]

    requests_sent = sum(stats["requests"].values())
    figures = {
        "users_listed": len(listed),
        "paging_seconds": round(paging_s, 2),
        "paging_http_requests": paging_stats.get("requests", 0),
        "paging_retries": paging_stats.get("retries", 0),
        "methods_created": len(stats["qr_method_creations"]),
        "provisioning_seconds": round(provisioning_s, 2),
        "provisioning_rounds": rounds,
        "recovered_after_lost_answer": sum(c.recovered for c in creds.values()),
        "client_http_requests": client.stats["requests"],
        "client_http_retries": client.stats["retries"],
        "client_batch_item_retries": client.stats["batch_item_retries"],
        "graphsim_requests_incl_batch_items": requests_sent,
        "graphsim_429s": stats["throttled"],
        "graphsim_faults": stats["faults"],
        "batches": stats["batches"],
        "tokens_acquired_client": tokens.tokens_acquired,
        "graphsim_token_requests": stats["token_requests"],
        "token_refreshes_after_401": client.stats["token_refreshes"],
        "storms": storms.count,
        "status_counts": {
            k: v for k, v in client.stats.items() if k.startswith(("status_", "batch_item_"))
        },
    }
    print("\nACCEPTANCE FIGURES " + json.dumps(figures, sort_keys=True))
    assert stats["faults"].get("503", 0) > 0
    assert stats["throttled"] > 0
    assert stats["faults"].get("lost", 0) > 0
    assert figures["recovered_after_lost_answer"] > 0
    assert tokens.tokens_acquired >= 2  # 60-second tokens were renewed during the run


def custom_pins(users):
    """A custom PIN for every other user, None (Entra generates one) for the rest."""
    rng = random.Random(1000)
    pins = {}
    for i, user in enumerate(users):
        pin = None
        while i % 2 == 0 and (pin is None or not _acceptable(pin)):
            pin = str(rng.randrange(10**7, 10**8))
        pins[user] = pin
    return pins


def _acceptable(pin: str) -> bool:
    """Graph's PIN rules (docs/graph-contract.md §1.2) for the custom PINs this test hands out."""
    if "0123456789" in pin or "9876543210" in pin:
        return False
    for size in (2, 3):
        for i in range(len(pin) - 2 * size + 1):
            if pin[i : i + size] == pin[i + size : i + 2 * size]:
                return False
    return True
