"""Kiosks: registration and pairing, the device credential, the print queue, revocation."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import time_machine
from django.conf import settings
from django.test import Client
from django.utils import timezone

from badges import print_jobs
from badges.models import Kiosk, KioskPairing, PrintJob
from provisioning.models import AdministrativeUnit, AuditEvent, AUMembership, VaultSecret
from tests.fixtures_badges import decoded_qr_codes
from tests.fixtures_manager import add_qr

HTMX = {"HTTP_HX_REQUEST": "true"}


def _register(client, au_ids, name="Till 2"):
    return client.post("/badges/kiosks/new", {"name": name, "stores": au_ids})


def _code(response) -> str:
    body = response.content.decode()
    start = body.index('class="pairing-code"')
    return body[body.index(">", start) + 1 : body.index("</p>", start)].strip()


def _queue(au_id, user_ids):
    return print_jobs.print_job_create_from_users(
        unit=AdministrativeUnit.objects.get(pk=au_id),
        created_by=None,
        layout="cr80",
        user_ids=user_ids,
    ).job


# -- registration (managers) -------------------------------------------------------------------


def test_a_manager_registers_a_kiosk_and_the_kiosk_pairs_with_the_code(alice_client, alice_store):
    page = alice_client.get("/badges/kiosks/new")
    assert page.status_code == 200 and "Get a pairing code" in page.content.decode()
    response = _register(alice_client, [alice_store])
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    code = _code(response)
    assert len(code) == 9 and code[4] == "-"
    pairing = KioskPairing.objects.get()
    assert code not in pairing.code_hash and pairing.used_at is None

    kiosk_browser = Client()
    assert kiosk_browser.get("/badges/kiosk/pair").status_code == 200
    paired = kiosk_browser.post("/badges/kiosk/pair", {"code": code.lower().replace("-", " ")})
    assert paired.status_code == 302 and paired["Location"] == "/badges/kiosk/"
    cookie = paired.cookies[settings.KIOSK_COOKIE_NAME]
    assert cookie["httponly"] and cookie["samesite"] == "Strict"
    assert cookie["path"] == "/badges/kiosk/"
    kiosk = Kiosk.objects.get()
    assert kiosk.name == "Till 2" and [s.id for s in kiosk.stores.all()] == [alice_store]
    assert kiosk.credential_hash and kiosk.credential_hash not in cookie.value
    home = kiosk_browser.get("/badges/kiosk/")
    assert home.status_code == 200 and "Nothing to print" in home.content.decode()
    kiosk.refresh_from_db()
    assert kiosk.last_seen_at is not None
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"kiosk-pairing-started", "kiosk-paired"} <= actions
    assert not AuditEvent.objects.filter(detail__icontains=code).exists()


def test_the_credential_cookie_is_secure_in_production(pair_kiosk, alice_store, settings):
    settings.SESSION_COOKIE_SECURE = True
    browser = pair_kiosk([alice_store])
    assert browser.cookies[settings.KIOSK_COOKIE_NAME]["secure"]


def test_a_manager_cannot_register_a_kiosk_for_another_store(alice_client, bob_store):
    response = _register(alice_client, [bob_store])
    assert response.status_code == 422
    assert not KioskPairing.objects.exists()


def test_an_it_admin_registers_a_kiosk_for_any_store(client, charlie, directory, bob_store):
    from tests.fixtures_portal import sign_in

    user = sign_in(client, charlie)
    assert user.is_it_admin
    response = _register(client, [bob_store])
    assert response.status_code == 200 and _code(response)


def test_registration_needs_sign_in_and_the_right_method(client, alice_client, db):
    anonymous = Client()
    for url in ("/badges/kiosks/", "/badges/kiosks/new"):
        response = anonymous.get(url)
        assert response.status_code == 302 and "/auth/sign-in" in response["Location"]
    assert anonymous.post("/badges/kiosks/1/revoke").status_code == 302
    assert alice_client.get("/badges/kiosks/1/revoke").status_code == 405
    assert alice_client.post("/badges/kiosks/").status_code == 405
    assert alice_client.put("/badges/kiosks/new").status_code == 405


def test_managers_see_their_kiosks_status(
    alice_client, alice_store, bob_store, pair_kiosk, alice_badged
):
    pair_kiosk([alice_store], name="Alice kiosk")
    pair_kiosk([bob_store], name="Bob kiosk")
    _queue(alice_store, [alice_badged[0].user_id])
    page = alice_client.get("/badges/kiosks/")
    body = page.content.decode()
    assert page.status_code == 200
    assert "Alice kiosk" in body and "Bob kiosk" not in body
    assert "never" in body  # paired, but has not opened its queue yet
    fragment = alice_client.get("/badges/kiosks/", **HTMX)
    assert 'id="kiosks"' in fragment.content.decode() and "<html" not in fragment.content.decode()
    row = body[body.index("Alice kiosk") :]
    assert "<td>1</td>" in row  # one sheet waiting


def test_another_stores_kiosk_is_a_404(alice_client, bob_store, pair_kiosk):
    bob_kiosk = pair_kiosk([bob_store])
    kiosk = Kiosk.objects.get()
    assert alice_client.post(f"/badges/kiosks/{kiosk.pk}/revoke").status_code == 404
    assert bob_kiosk.get("/badges/kiosk/").status_code == 200


# -- pairing codes -----------------------------------------------------------------------------


def test_a_pairing_code_works_once(alice_client, alice_store):
    code = _code(_register(alice_client, [alice_store]))
    assert Client().post("/badges/kiosk/pair", {"code": code}).status_code == 302
    again = Client().post("/badges/kiosk/pair", {"code": code})
    assert again.status_code == 422
    assert "wrong, used or expired" in again.content.decode()
    assert Kiosk.objects.count() == 1


def test_a_pairing_code_expires(alice_client, alice_store):
    code = _code(_register(alice_client, [alice_store]))
    with time_machine.travel(
        timezone.now() + timedelta(minutes=settings.KIOSK_PAIRING_MINUTES + 1)
    ):
        response = Client().post("/badges/kiosk/pair", {"code": code})
    assert response.status_code == 422
    assert not Kiosk.objects.exists()


def test_guessing_codes_is_throttled(alice_client, alice_store):
    code = _code(_register(alice_client, [alice_store]))
    browser = Client()
    statuses = [
        browser.post("/badges/kiosk/pair", {"code": f"AAAA-AAA{i}"}).status_code for i in range(12)
    ]
    assert statuses[:10] == [422] * 10
    assert statuses[10:] == [429, 429]
    # Even the right code waits until the window has passed.
    assert browser.post("/badges/kiosk/pair", {"code": code}).status_code == 429


# -- the kiosk's credential --------------------------------------------------------------------


def test_without_a_credential_the_kiosk_area_asks_to_pair(db):
    browser = Client()
    response = browser.get("/badges/kiosk/")
    assert response.status_code == 302 and response["Location"] == "/badges/kiosk/pair"
    assert browser.get("/badges/kiosk/sheets/1.pdf").status_code == 302
    assert browser.post("/badges/kiosk/sheets/1/printed").status_code == 403
    htmx = browser.get("/badges/kiosk/", **HTMX)
    assert htmx["HX-Redirect"] == "/badges/kiosk/pair"


def test_a_forged_or_tampered_credential_is_refused(alice_kiosk):
    value = alice_kiosk.cookies[settings.KIOSK_COOKIE_NAME].value
    kiosk_id, _, signed = value.partition(".")
    for forged in (f"{kiosk_id}.{signed[:-2]}xx", f"{int(kiosk_id) + 1}.{signed}", "1.abc", "x"):
        browser = Client()
        browser.cookies[settings.KIOSK_COOKIE_NAME] = forged
        response = browser.get("/badges/kiosk/")
        assert response.status_code == 302, forged
        assert "/badges/kiosk/pair" in response["Location"]


def test_a_user_session_is_not_a_kiosk(alice_client):
    # A signed-in manager without a device credential does not get a kiosk queue.
    response = alice_client.get("/badges/kiosk/")
    assert response.status_code == 302 and "/badges/kiosk/pair" in response["Location"]


def test_a_kiosk_sees_nothing_else_of_the_portal(alice_kiosk, alice_store):
    # The landing page is the anonymous welcome, as for any visitor.
    assert "Sign in" in alice_kiosk.get("/").content.decode()
    for url in ("/stores/", f"/stores/{alice_store}/", "/badges/kiosks/", "/admin/"):
        response = alice_kiosk.get(url)
        assert response.status_code in (302, 404), url
        if response.status_code == 302:
            assert "/auth/sign-in" in response["Location"] or response["Location"] == "/welcome"
    sheets = alice_kiosk.get(f"/badges/stores/{alice_store}/sheets/")
    assert sheets.status_code == 302 and "/auth/sign-in" in sheets["Location"]


def test_a_revoked_kiosk_is_refused(alice_client, alice_kiosk, alice_store, alice_badged):
    job = _queue(alice_store, [alice_badged[0].user_id])
    kiosk = Kiosk.objects.get()
    response = alice_client.post(f"/badges/kiosks/{kiosk.pk}/revoke", **HTMX)
    assert response.status_code == 200 and "revoked" in response.content.decode()
    kiosk.refresh_from_db()
    assert kiosk.revoked_at is not None and not kiosk.credential_hash
    refused = alice_kiosk.get("/badges/kiosk/")
    assert refused.status_code == 302 and "reason=revoked" in refused["Location"]
    assert refused.cookies[settings.KIOSK_COOKIE_NAME].value == ""  # the dead cookie is dropped
    pdf = alice_kiosk.get(f"/badges/kiosk/sheets/{job.pk}.pdf")
    assert pdf.status_code == 302
    assert AuditEvent.objects.filter(
        action="kiosk-revoked", administrative_unit_id=alice_store
    ).exists()


def test_an_old_credential_stops_working_when_the_version_changes(alice_kiosk):
    kiosk = Kiosk.objects.get()
    assert alice_kiosk.get("/badges/kiosk/").status_code == 200
    Kiosk.objects.filter(pk=kiosk.pk).update(credential_version=kiosk.credential_version + 1)
    assert alice_kiosk.get("/badges/kiosk/").status_code == 302


def test_the_credential_expires(alice_kiosk):
    with time_machine.travel(timezone.now() + timedelta(days=settings.KIOSK_CREDENTIAL_DAYS + 1)):
        assert alice_kiosk.get("/badges/kiosk/").status_code == 302


# -- the queue ---------------------------------------------------------------------------------


def test_a_kiosk_prints_its_stores_sheet_and_the_payloads_are_destroyed(
    alice_kiosk, alice_store, alice_badged
):
    job = _queue(alice_store, [b.user_id for b in alice_badged])
    home = alice_kiosk.get("/badges/kiosk/")
    body = home.content.decode()
    assert f"Sheet {job.pk}" in body and "Open PDF to print" in body
    assert 'hx-trigger="every 1s"' in body
    fragment = alice_kiosk.get("/badges/kiosk/", **HTMX)
    assert 'id="queue"' in fragment.content.decode() and "<html" not in fragment.content.decode()

    pdf = alice_kiosk.get(f"/badges/kiosk/sheets/{job.pk}.pdf")
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    assert pdf["Content-Disposition"].startswith("inline")
    assert "no-store" in pdf["Cache-Control"]
    assert Counter(decoded_qr_codes(pdf.content)) == Counter(b.payload for b in alice_badged)
    job.refresh_from_db()
    assert job.status == "printing" and job.kiosk.name == "Back office PC"

    printed = alice_kiosk.post(f"/badges/kiosk/sheets/{job.pk}/printed", **HTMX)
    assert printed.status_code == 200 and "Nothing to print" in printed.content.decode()
    job.refresh_from_db()
    assert job.status == "printed"
    for badged in alice_badged:
        secret = VaultSecret.objects.get(pk=badged.secret_id)
        assert secret.destroyed_at is not None and secret.destroyed_reason == "printed"
    assert alice_kiosk.get(f"/badges/kiosk/sheets/{job.pk}.pdf").status_code == 404
    events = AuditEvent.objects.filter(action__startswith="badge-sheet-")
    assert {"badge-sheet-opened", "badge-sheet-printed"} <= set(
        events.values_list("action", flat=True)
    )
    assert events.get(action="badge-sheet-printed").actor_label == "kiosk Back office PC"
    for event in AuditEvent.objects.all():
        for badged in alice_badged:
            assert badged.payload.decode() not in f"{event.detail} {event.target_label}"


def test_a_kiosk_cannot_see_or_print_another_stores_sheet(
    alice_kiosk, alice_store, bob_store, bob_badged, alice_badged
):
    bob_job = _queue(bob_store, [bob_badged[0].user_id])
    alice_job = _queue(alice_store, [alice_badged[0].user_id])
    body = alice_kiosk.get("/badges/kiosk/").content.decode()
    assert f"Sheet {alice_job.pk}" in body and f"Sheet {bob_job.pk}" not in body
    assert bob_badged[0].display_name not in body
    assert alice_kiosk.get(f"/badges/kiosk/sheets/{bob_job.pk}.pdf").status_code == 404
    assert alice_kiosk.post(f"/badges/kiosk/sheets/{bob_job.pk}/printed").status_code == 404
    bob_job.refresh_from_db()
    assert bob_job.status == "queued"
    assert VaultSecret.objects.get(pk=bob_badged[0].secret_id).destroyed_at is None


def test_a_kiosk_of_two_stores_sees_both_queues(
    pair_kiosk, alice_store, bob_store, alice_badged, bob_badged
):
    browser = pair_kiosk([alice_store, bob_store])
    jobs = [
        _queue(alice_store, [alice_badged[0].user_id]),
        _queue(bob_store, [bob_badged[0].user_id]),
    ]
    body = browser.get("/badges/kiosk/").content.decode()
    assert all(f"Sheet {job.pk}" in body for job in jobs)


def test_kiosk_wrong_methods(alice_kiosk, alice_store, alice_badged):
    job = _queue(alice_store, [alice_badged[0].user_id])
    assert alice_kiosk.post("/badges/kiosk/").status_code == 405
    assert alice_kiosk.post(f"/badges/kiosk/sheets/{job.pk}.pdf").status_code == 405
    assert alice_kiosk.get(f"/badges/kiosk/sheets/{job.pk}/printed").status_code == 405
    assert alice_kiosk.put("/badges/kiosk/pair").status_code == 405


def test_an_expired_sheet_leaves_the_queue(alice_kiosk, alice_store, alice_badged):
    job = _queue(alice_store, [alice_badged[0].user_id])
    with time_machine.travel(job.expires_at + timedelta(minutes=1)):
        body = alice_kiosk.get("/badges/kiosk/").content.decode()
        assert f"Sheet {job.pk}" not in body
        assert alice_kiosk.get(f"/badges/kiosk/sheets/{job.pk}.pdf").status_code in (302, 404)


def test_printing_twice_is_harmless(alice_kiosk, pair_kiosk, alice_store, alice_badged):
    other = pair_kiosk([alice_store], name="Second kiosk")
    job = _queue(alice_store, [alice_badged[0].user_id])
    assert alice_kiosk.post(f"/badges/kiosk/sheets/{job.pk}/printed", **HTMX).status_code == 200
    late = other.post(f"/badges/kiosk/sheets/{job.pk}/printed", **HTMX)
    assert late.status_code == 200  # the queue, refreshed
    assert AuditEvent.objects.filter(action="badge-sheet-printed").count() == 1
    assert PrintJob.objects.get().kiosk.name == "Back office PC"


def test_the_kiosk_page_loads_only_its_own_static_files(alice_kiosk):
    body = alice_kiosk.get("/badges/kiosk/").content.decode()
    assert "/static/js/kiosk.js" in body
    assert "<script>" not in body and "style=" not in body
    assert "Sign out" not in body


# -- forgotten badge --------------------------------------------------------------------------


def test_a_forgotten_badge_goes_to_the_kiosk_in_one_action(
    alice_client, alice_worker, alice_kiosk, run_tasks
):

    add_qr(alice_client, alice_worker, run_tasks)
    url = f"/badges/stores/{alice_worker.au_id}/workers/{alice_worker.user_id}/forgotten"
    with run_tasks():
        response = alice_client.post(url, {"hours": "4", "layout": "cr80"}, **HTMX)
    assert response.status_code == 200, response.content.decode()
    assert "will print at the store" in response.content.decode()
    job = PrintJob.objects.get(source="forgotten")
    body = alice_kiosk.get("/badges/kiosk/").content.decode()
    assert f"Sheet {job.pk}" in body and "(temporary)" in body
    pdf = alice_kiosk.get(f"/badges/kiosk/sheets/{job.pk}.pdf")
    assert pdf.status_code == 200
    item = job.items.get()
    assert item.temporary and item.payload_secret_id
    payload = VaultSecret.objects.get(pk=item.payload_secret_id)
    assert payload.destroyed_at is None
    assert decoded_qr_codes(pdf.content)[0].startswith(b"ms-qrpin")
    alice_kiosk.post(f"/badges/kiosk/sheets/{job.pk}/printed")
    payload.refresh_from_db()
    assert payload.destroyed_at is not None


def test_a_forgotten_badge_waits_for_its_code(alice_client, alice_worker, alice_kiosk, run_tasks):

    add_qr(alice_client, alice_worker, run_tasks)
    url = f"/badges/stores/{alice_worker.au_id}/workers/{alice_worker.user_id}/forgotten"
    response = alice_client.post(url, {"hours": "2", "layout": "cr80"})  # the task has not run
    assert response.status_code == 200
    job = PrintJob.objects.get(source="forgotten")
    body = alice_kiosk.get("/badges/kiosk/").content.decode()
    assert "Waiting for the QR code" in body
    assert alice_kiosk.get(f"/badges/kiosk/sheets/{job.pk}.pdf").status_code == 409


def test_a_forgotten_badge_is_refused_without_a_qr_method(alice_client, alice_worker, alice_kiosk):
    url = f"/badges/stores/{alice_worker.au_id}/workers/{alice_worker.user_id}/forgotten"
    response = alice_client.post(url, {"hours": "4", "layout": "cr80"})
    assert response.status_code == 422
    assert "needs a QR code + PIN method" in response.content.decode()
    assert not PrintJob.objects.exists()


def test_a_forgotten_badge_for_another_stores_worker_is_a_404(alice_client, bob_worker):
    url = f"/badges/stores/{bob_worker.au_id}/workers/{bob_worker.user_id}/forgotten"
    assert alice_client.post(url, {"hours": "4", "layout": "cr80"}).status_code == 404
    assert alice_client.get(url).status_code == 405
    assert Client().post(url, {"hours": "4"}).status_code == 302


def test_a_worker_of_another_store_under_alices_store_is_a_404(
    alice_client, alice_store, bob_worker
):
    url = f"/badges/stores/{alice_store}/workers/{bob_worker.user_id}/forgotten"
    assert alice_client.post(url, {"hours": "4", "layout": "cr80"}).status_code == 404
    assert AUMembership.objects.filter(user_id=bob_worker.user_id).exists()


def test_a_forgotten_badge_whose_code_failed_leaves_the_queue(
    alice_client, alice_worker, alice_kiosk, run_tasks
):
    from provisioning.models import Operation

    add_qr(alice_client, alice_worker, run_tasks)
    url = f"/badges/stores/{alice_worker.au_id}/workers/{alice_worker.user_id}/forgotten"
    alice_client.post(url, {"hours": "2", "layout": "cr80"})  # the task has not run
    job = PrintJob.objects.get(source="forgotten")
    Operation.objects.filter(pk=job.items.get().operation_id).update(status="failed")
    body = alice_kiosk.get("/badges/kiosk/").content.decode()
    assert f"Sheet {job.pk}" not in body
    job.refresh_from_db()
    assert job.status == "cancelled"
    assert AuditEvent.objects.filter(action="badge-sheet-cancelled", outcome="failed").exists()


def test_a_revoked_kiosk_can_be_paired_again_as_a_new_kiosk(
    alice_client, alice_kiosk, alice_store, pair_kiosk
):
    old = Kiosk.objects.get()
    alice_client.post(f"/badges/kiosks/{old.pk}/revoke")
    old.refresh_from_db()
    assert old.credential_version == 2  # bumped at revocation
    fresh = pair_kiosk([alice_store], name="Replacement")
    assert fresh.get("/badges/kiosk/").status_code == 200
    assert alice_kiosk.get("/badges/kiosk/").status_code == 302
