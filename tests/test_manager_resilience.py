"""Manager actions when things go wrong: lost responses, lost scope, a sign-in that ended."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import requests
from django.utils import timezone

from provisioning import rules
from provisioning.models import AuditEvent, Operation, ScopedRoleAssignment, TokenCache

HTMX = {"HTTP_HX_REQUEST": "true"}


def _request_create(alice_client, alice_worker):
    expiry = (timezone.localdate() + timedelta(days=90)).isoformat()
    alice_client.post(
        alice_worker.url("qr/"),
        {"add-activation": "now", "add-expiry": expiry, "add-pin_mode": "generated"},
        **HTMX,
    )
    return Operation.objects.get(kind="qr_create")


def test_a_lost_create_response_is_recovered_by_reissuing(
    alice_client, alice_worker, eager_tasks, directory, monkeypatch, pin_reset_reading
):
    from provisioning.tasks import actions as task_module
    from provisioning.tasks import operation_run

    op = _request_create(alice_client, alice_worker)
    directory.sim.config.update({"lost_response_rate": 1.0, "lost_response_mode": "drop"})

    def graph_recovers(retries, retry_after):  # time passes; Graph answers again
        directory.sim.config.update({"lost_response_rate": 0.0})
        return 0

    monkeypatch.setattr(task_module, "_backoff", graph_recovers)
    operation_run.apply(args=[op.id], throw=False)
    op.refresh_from_db()
    assert op.status == "succeeded", op.error
    assert op.attempts == 2
    assert op.result["issued"] == "recovered"
    assert op.payload_secret_id and op.pin_secret_id
    tenant = directory.tenant
    assert tenant.qr_method_creations[alice_worker.user_id] == 1  # created once, never twice
    assert tenant.qr_methods[alice_worker.user_id].standard is not None
    pin = tenant.qr_methods[alice_worker.user_id].pin.code
    page = alice_client.get(alice_worker.url()).content.decode()
    assert "re-issued the QR code and PIN after a lost response from Entra" in page
    reveal = alice_client.post(alice_worker.url(f"operations/{op.id}/pin"), **HTMX)
    assert pin in reveal.content.decode()


def test_a_transient_graph_error_is_retried(
    alice_client, alice_worker, eager_tasks, directory, monkeypatch
):
    from provisioning.tasks import actions as task_module
    from provisioning.tasks import operation_run

    op = _request_create(alice_client, alice_worker)
    waits = []
    directory.sim.config.update({"error_5xx_rate": 1.0})

    def wait(retries, retry_after):
        waits.append(retry_after)
        directory.sim.config.update({"error_5xx_rate": 0.0})
        return 0

    monkeypatch.setattr(task_module, "_backoff", wait)
    operation_run.apply(args=[op.id], throw=False)
    op.refresh_from_db()
    assert op.status == "succeeded", op.error
    assert waits, "the transient error was retried"


def test_the_task_rechecks_scope_before_writing(
    alice_client, alice_worker, alice, eager_tasks, directory
):
    from provisioning.tasks import operation_run

    op = _request_create(alice_client, alice_worker)
    ScopedRoleAssignment.objects.filter(principal_id=alice.user_id).delete()
    operation_run.apply(args=[op.id], throw=False)
    op.refresh_from_db()
    assert op.status == "failed"
    assert "no longer manage" in op.error
    assert alice_worker.user_id not in directory.tenant.qr_methods


def test_a_task_runs_once_even_if_delivered_twice(alice_client, alice_worker, eager_tasks):
    from provisioning.tasks import operation_run

    op = _request_create(alice_client, alice_worker)
    assert operation_run.apply(args=[op.id]).get() == "succeeded"
    assert operation_run.apply(args=[op.id]).get() == "skipped"


def test_an_ended_sign_in_asks_to_sign_in_again_and_resumes(
    client, alice, alice_worker, run_tasks, directory
):
    from tests.fixtures_portal import sign_in

    sign_in(client, alice)
    TokenCache.objects.all().delete()  # the manager's Entra session ended
    expiry = (timezone.localdate() + timedelta(days=90)).isoformat()
    with run_tasks():
        client.post(
            alice_worker.url("qr/"),
            {"add-activation": "now", "add-expiry": expiry, "add-pin_mode": "generated"},
            **HTMX,
        )
    op = Operation.objects.get()
    assert op.status == "needs_sign_in"
    page = client.get(alice_worker.url()).content.decode()
    assert "Sign in again" in page
    assert f"resume%3D{op.id}" in page

    # Sign in again, through Entra, and come back to the worker page with the action to resume.
    start = client.get(
        "/auth/sign-in", {"next": f"{alice_worker.url()}?resume={op.id}", "login_hint": alice.upn}
    )
    picked = requests.post(start["Location"], data={"user": alice.user_id}, allow_redirects=False)
    callback = urlsplit(picked.headers["Location"])
    back = client.get(f"{callback.path}?{callback.query}")
    assert back["Location"] == f"{alice_worker.url()}?resume={op.id}"
    page = client.get(back["Location"]).content.decode()
    assert 'hx-trigger="load, submit"' in page  # resumes by itself in the browser
    with run_tasks():
        client.post(alice_worker.url(f"operations/{op.id}/resume"), **HTMX)
    op.refresh_from_db()
    assert op.status == "succeeded", op.error
    assert alice_worker.user_id in directory.tenant.qr_methods
    assert AuditEvent.objects.filter(action="qr_create", outcome="denied").exists()


def test_pin_reveal_is_throttled(alice_client, alice_worker, run_tasks):
    op = _request_create(alice_client, alice_worker)
    url = alice_worker.url(f"operations/{op.id}/pin")
    codes = [alice_client.post(url, **HTMX).status_code for _ in range(rules.PIN_MIN_LENGTH + 5)]
    assert 429 in codes


def test_backoff_honours_retry_after_with_jitter():
    from provisioning.tasks.actions import BACKOFF_MAX_S, _backoff

    assert all(5.0 <= _backoff(0, 5.0) <= 6.0 for _ in range(20))
    delays = {_backoff(3, None) for _ in range(20)}
    assert len(delays) > 1  # jitter
    assert all(0 < d <= BACKOFF_MAX_S for d in delays)
