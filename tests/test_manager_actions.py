"""The worker page's QR code + PIN actions, end to end: view → Operation → task → graphsim."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from provisioning.models import AuditEvent, Operation, VaultSecret, WorkerMethodState
from tests.fixtures_manager import add_qr

HTMX = {"HTTP_HX_REQUEST": "true"}


def test_it_adds_a_qr_method_with_a_custom_pin(
    alice_client, alice_worker, run_tasks, directory, known_pin
):
    response = add_qr(alice_client, alice_worker, run_tasks, pin=known_pin)
    assert response.status_code == 200
    op = Operation.objects.get(worker_id=alice_worker.user_id)
    assert op.kind == "qr_create"
    assert op.status == "succeeded", op.error
    method = directory.tenant.qr_methods[alice_worker.user_id]
    assert method.pin.code == known_pin
    assert op.payload_secret_id and op.pin_secret_id
    assert known_pin not in str(op.params)
    state = WorkerMethodState.objects.get(user_id=alice_worker.user_id)
    assert state.has_qr_method and state.qr_never_used
    assert state.qr_status()[0] == "active"
    # The custom PIN that waited in the vault for the task is destroyed.
    assert VaultSecret.objects.filter(destroyed_reason="used").count() == 1


def test_the_new_pin_is_shown_once_then_gone(alice_client, alice_worker, run_tasks, known_pin):
    add_qr(alice_client, alice_worker, run_tasks, pin=known_pin)
    op = Operation.objects.get(worker_id=alice_worker.user_id)
    page = alice_client.get(alice_worker.url())
    assert "Show PIN" in page.content.decode()
    assert known_pin not in page.content.decode()
    reveal = alice_client.post(alice_worker.url(f"operations/{op.id}/pin"), **HTMX)
    assert reveal.status_code == 200
    assert known_pin in reveal.content.decode()
    assert "no-store" in reveal["Cache-Control"] or "no-cache" in reveal["Cache-Control"]
    assert "data-copy-target" in reveal.content.decode()
    again = alice_client.post(alice_worker.url(f"operations/{op.id}/pin"), **HTMX)
    assert known_pin not in again.content.decode()
    assert "no longer available" in again.content.decode()
    handed = alice_client.post(alice_worker.url(f"operations/{op.id}/handed-over"), **HTMX)
    assert handed.status_code == 200
    assert "handed over" in handed.content.decode()
    op.refresh_from_db()
    assert op.pin_handed_over_at is not None
    assert AuditEvent.objects.filter(action="pin-revealed", target_user_id=op.worker_id).exists()


def test_a_generated_pin_and_a_badge(alice_client, alice_worker, run_tasks):
    add_qr(alice_client, alice_worker, run_tasks)
    op = Operation.objects.get(worker_id=alice_worker.user_id)
    assert op.status == "succeeded"
    svg = alice_client.get(alice_worker.url(f"operations/{op.id}/qr.svg"))
    assert svg.status_code == 200 and svg["Content-Type"] == "image/svg+xml"
    assert "no-cache" in svg["Cache-Control"] or "no-store" in svg["Cache-Control"]
    pdf = alice_client.get(alice_worker.url(f"operations/{op.id}/badge.pdf"))
    assert pdf.status_code == 200
    assert pdf.content.startswith(b"%PDF")
    assert "attachment" in pdf["Content-Disposition"]


def test_a_weak_custom_pin_is_refused_before_graph(alice_client, alice_worker, run_tasks):
    response = add_qr(alice_client, alice_worker, run_tasks, pin="12121212")
    assert response.status_code == 200
    assert response["HX-Retarget"] == "#action-feedback"
    assert "repeat a group" in response.content.decode()
    assert not Operation.objects.exists()
    plain = alice_client.post(
        alice_worker.url("qr/"),
        {"add-activation": "now", "add-expiry": "2099-01-01", "add-pin_mode": "custom",
         "add-pin": "0123456789"},
    )  # fmt: skip
    assert plain.status_code == 422


def test_expiry_never_goes_beyond_395_days(alice_client, alice_worker, run_tasks, directory):
    far = (timezone.localdate() + timedelta(days=500)).isoformat()
    add_qr(alice_client, alice_worker, run_tasks, **{"add-expiry": far})
    method = directory.tenant.qr_methods[alice_worker.user_id]
    lifetime = method.standard.expire_date_time - method.standard.start_date_time
    assert lifetime <= timedelta(days=395)


def test_a_second_method_is_explained_in_plain_words(
    alice_client, alice_worker, run_tasks, directory, undocumented_status
):
    # Graph documents no status for it: 409 or 400, the re-read method decides.
    add_qr(alice_client, alice_worker, run_tasks)
    WorkerMethodState.objects.filter(user_id=alice_worker.user_id).update(has_qr_method=False)
    add_qr(alice_client, alice_worker, run_tasks)
    failed = Operation.objects.filter(worker_id=alice_worker.user_id, status="failed").get()
    assert "already has a QR code + PIN method" in failed.error
    assert "request-id" in failed.error
    assert failed.graph_request_id
    page = alice_client.get(alice_worker.url())
    assert "already has a QR code + PIN method" in page.content.decode()
    assert "Traceback" not in page.content.decode()


def test_activation_later(alice_client, alice_worker, run_tasks, directory):
    later = timezone.localtime() + timedelta(days=3)
    add_qr(
        alice_client,
        alice_worker,
        run_tasks,
        **{"add-activation": "later", "add-start": later.strftime("%Y-%m-%dT%H:%M")},
    )
    method = directory.tenant.qr_methods[alice_worker.user_id]
    assert method.standard.start_date_time > timezone.now() + timedelta(days=2)
    state = WorkerMethodState.objects.get(user_id=alice_worker.user_id)
    assert state.qr_status()[0] == "scheduled"


def test_edit_expiry_replace_temporary_reset_and_delete(
    alice_client, alice_worker, run_tasks, directory, pin_reset_reading
):
    add_qr(alice_client, alice_worker, run_tasks)
    tenant = directory.tenant
    first_code = tenant.qr_methods[alice_worker.user_id].standard.id
    pin_before = tenant.qr_methods[alice_worker.user_id].pin.code

    new_expiry = timezone.localdate() + timedelta(days=20)
    with run_tasks():
        alice_client.post(alice_worker.url("qr/expiry"), {"expiry-expiry": new_expiry}, **HTMX)
    op = Operation.objects.filter(kind="qr_expiry_set").get()
    assert op.status == "succeeded", op.error
    code = tenant.qr_methods[alice_worker.user_id].standard
    assert timezone.localtime(code.expire_date_time).date() == new_expiry
    state = WorkerMethodState.objects.get(user_id=alice_worker.user_id)
    assert state.expires_soon
    assert "expires within 30 days" in alice_client.get(alice_worker.url()).content.decode()

    replace_expiry = timezone.localdate() + timedelta(days=100)
    with run_tasks():
        alice_client.post(
            alice_worker.url("qr/replace"), {"replace-expiry": replace_expiry}, **HTMX
        )
    op = Operation.objects.filter(kind="qr_replace").get()
    assert op.status == "succeeded", op.error
    assert op.payload_secret_id and not op.pin_secret_id
    assert tenant.qr_methods[alice_worker.user_id].standard.id != first_code
    assert tenant.qr_methods[alice_worker.user_id].pin.code == pin_before  # the PIN stays

    with run_tasks():
        alice_client.post(
            alice_worker.url("qr/temporary"),
            {"temporary-activation": "now", "temporary-hours": "4"},
            **HTMX,
        )
    op = Operation.objects.filter(kind="qr_temporary_create").get()
    assert op.status == "succeeded", op.error
    temporary = tenant.qr_methods[alice_worker.user_id].temporary
    assert (
        timedelta(hours=3, minutes=59)
        < (temporary.expire_date_time - temporary.start_date_time)
        <= timedelta(hours=4)
    )
    state = WorkerMethodState.objects.get(user_id=alice_worker.user_id)
    assert state.qr_status()[0] == "temporary"
    badge = alice_client.get(alice_worker.url(f"operations/{op.id}/badge.pdf"))
    assert badge.status_code == 200

    with run_tasks():
        alice_client.post(alice_worker.url("qr/temporary/delete"), **HTMX)
    assert tenant.qr_methods[alice_worker.user_id].temporary is None

    with run_tasks():
        alice_client.post(alice_worker.url("qr/pin-reset"), **HTMX)
    op = Operation.objects.filter(kind="qr_pin_reset").get()
    assert op.status == "succeeded", op.error
    new_pin = tenant.qr_methods[alice_worker.user_id].pin.code
    assert new_pin != pin_before
    reveal = alice_client.post(alice_worker.url(f"operations/{op.id}/pin"), **HTMX)
    assert new_pin in reveal.content.decode()

    with run_tasks():
        alice_client.post(alice_worker.url("qr/delete"), **HTMX)
    assert alice_worker.user_id not in tenant.qr_methods
    state = WorkerMethodState.objects.get(user_id=alice_worker.user_id)
    assert not state.has_qr_method


def test_a_replaced_qr_code_says_the_pin_stayed_not_that_a_response_was_lost(
    alice_client, alice_worker, run_tasks, directory
):
    add_qr(alice_client, alice_worker, run_tasks)
    created = Operation.objects.get(kind="qr_create")
    assert created.result["issued"] == "created"
    page = alice_client.get(alice_worker.url()).content.decode()
    assert "lost response" not in page
    with run_tasks():
        alice_client.post(
            alice_worker.url("qr/replace"),
            {"replace-expiry": timezone.localdate() + timedelta(days=100)},
            **HTMX,
        )
    replaced = Operation.objects.get(kind="qr_replace")
    assert replaced.status == "succeeded", replaced.error
    assert replaced.result["issued"] == "replaced"
    page = alice_client.get(alice_worker.url()).content.decode()
    assert "A new QR code replaces the lost one; the PIN did not change." in page
    assert "lost response" not in page


def test_a_temporary_code_outside_1_to_12_hours_is_refused(alice_client, alice_worker, run_tasks):
    add_qr(alice_client, alice_worker, run_tasks)
    response = alice_client.post(
        alice_worker.url("qr/temporary"),
        {"temporary-activation": "now", "temporary-hours": "13"},
        **HTMX,
    )
    assert response["HX-Retarget"] == "#action-feedback"
    assert not Operation.objects.filter(kind="qr_temporary_create").exists()


def test_progress_polls_until_done_then_stops(alice_client, alice_worker, eager_tasks):
    # Without running the on-commit callbacks the task never starts: the fragment keeps polling.
    expiry = (timezone.localdate() + timedelta(days=30)).isoformat()
    response = alice_client.post(
        alice_worker.url("qr/"),
        {"add-activation": "now", "add-expiry": expiry, "add-pin_mode": "generated"},
        **HTMX,
    )
    op = Operation.objects.get()
    assert op.status == "pending"
    assert 'hx-trigger="load delay:150ms, poll-retry delay:1s"' in response.content.decode()
    status = alice_client.get(alice_worker.url(f"operations/{op.id}/"), **HTMX)
    assert status.status_code == 200
    from provisioning.tasks import operation_run

    operation_run.apply(args=[op.id])
    done = alice_client.get(alice_worker.url(f"operations/{op.id}/"), **HTMX)
    assert done.status_code == 286
    assert "hx-trigger" not in done.content.decode()
    assert "worker-changed" in done["HX-Trigger"]


def test_a_new_badge_can_be_sent_to_the_store_kiosk(alice_client, alice_worker, run_tasks):
    from badges.models import PrintJob

    add_qr(alice_client, alice_worker, run_tasks)
    op = Operation.objects.get(worker_id=alice_worker.user_id)
    page = alice_client.get(alice_worker.url()).content.decode()
    assert "Send to the store&#x27;s kiosk" in page or "Send to the store's kiosk" in page
    response = alice_client.post(alice_worker.url(f"operations/{op.id}/kiosk"), **HTMX)
    assert response.status_code == 200
    assert "kiosk print queue" in response.content.decode()
    job = PrintJob.objects.get()
    assert job.items.count() == 1


def test_an_existing_temporary_code_is_explained_whatever_the_status(
    alice_client, alice_worker, run_tasks, directory, undocumented_status
):
    from provisioning.graph import get_app_client, operations

    add_qr(alice_client, alice_worker, run_tasks)
    # Someone else (another admin, in Entra) adds a temporary code the portal has not seen.
    now = timezone.now()
    theirs = operations.qr_code_set(
        get_app_client(), alice_worker.user_id, "temporaryQRCode",
        start=now, expire=now + timedelta(hours=2),
    )  # fmt: skip
    with run_tasks():
        alice_client.post(
            alice_worker.url("qr/temporary"),
            {"temporary-activation": "now", "temporary-hours": "4"},
            **HTMX,
        )
    failed = Operation.objects.get(kind="qr_temporary_create")
    assert failed.status == "failed"
    assert "already has a temporary QR code" in failed.error
    assert "request-id" in failed.error
    assert directory.tenant.qr_methods[alice_worker.user_id].temporary.id == theirs.id


def test_a_policy_refusal_is_not_called_an_existing_method(
    alice_client, alice_worker, run_tasks, directory, undocumented_status
):
    directory.tenant.users[alice_worker.user_id].licensed = False
    add_qr(alice_client, alice_worker, run_tasks)
    failed = Operation.objects.get(kind="qr_create", status="failed")
    assert "not enabled for QR code sign-in" in failed.error
    assert "already has" not in failed.error


def test_a_pin_reset_sends_a_compliant_code_and_keeps_the_answer(
    alice_client, alice_worker, run_tasks, directory, caplog
):
    import logging

    from django.core.cache import cache

    from provisioning.models import AuditEvent
    from provisioning.rules import pin_problem

    add_qr(alice_client, alice_worker, run_tasks)
    # The strict reading: a reset must carry a code, and that code becomes the PIN.
    directory.sim.config.update({"pin_reset_requires_code": True, "pin_reset_uses_code": True})
    directory.tenant.qr_policy.pin_length = 12
    cache.delete("lanyard:qr-policy")
    caplog.set_level(logging.DEBUG)
    with run_tasks():
        alice_client.post(alice_worker.url("qr/pin-reset"), **HTMX)
    op = Operation.objects.get(kind="qr_pin_reset")
    assert op.status == "succeeded", op.error
    pin = directory.tenant.qr_methods[alice_worker.user_id].pin.code
    assert len(pin) == 12
    assert pin_problem(pin, min_length=12) is None
    reveal = alice_client.post(alice_worker.url(f"operations/{op.id}/pin"), **HTMX)
    assert pin in reveal.content.decode()
    # The PIN lives only in the vault: not in logs, the operation's params or the audit trail.
    assert pin not in caplog.text
    assert pin not in str(op.params) and pin not in str(op.result) and pin not in op.error
    assert not any(pin in str(e.detail) for e in AuditEvent.objects.all())


def test_an_unreadable_policy_refuses_custom_pins_and_says_why(
    alice_client, alice_worker, run_tasks, qr_policy_unreadable
):
    page = alice_client.get(alice_worker.url()).content.decode()
    assert "the minimum PIN length and the standard QR lifetime are unknown" in page
    assert "Standard lifetime: 365 days" not in page  # no guessed lifetime
    response = add_qr(alice_client, alice_worker, run_tasks, pin="48271593")
    assert response["HX-Retarget"] == "#action-feedback"
    assert "custom PIN cannot be checked" in response.content.decode()
    assert not Operation.objects.exists()
    # A PIN Entra generates needs no policy value: it still works.
    add_qr(alice_client, alice_worker, run_tasks)
    op = Operation.objects.get(kind="qr_create")
    assert op.status == "succeeded", op.error
    # A reset then sends a generated PIN of the maximum length, which any policy accepts.
    qr_policy_unreadable.sim.config.update({"pin_reset_uses_code": True})
    with run_tasks():
        alice_client.post(alice_worker.url("qr/pin-reset"), **HTMX)
    assert Operation.objects.get(kind="qr_pin_reset").status == "succeeded"
    assert len(qr_policy_unreadable.tenant.qr_methods[alice_worker.user_id].pin.code) == 20


def test_the_service_refuses_a_custom_pin_it_cannot_check(alice_worker, qr_policy_unreadable):
    import pytest

    from provisioning import actions
    from provisioning.models import AdministrativeUnit, DirectoryUser

    with pytest.raises(actions.ActionRefused, match="could not read the tenant's QR"):
        actions.qr_method_add(
            worker=DirectoryUser.objects.get(id=alice_worker.user_id),
            unit=AdministrativeUnit.objects.get(id=alice_worker.au_id),
            requested_by=None,
            start=timezone.now(),
            expire=timezone.now() + timedelta(days=30),
            custom_pin="48271593",
        )
