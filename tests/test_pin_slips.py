"""PIN slips: one per worker, printable once; the PIN leaves the vault as its slip is made."""

from __future__ import annotations

import pytest

from badges.pin_slips import pin_slips_pdf
from portal.models import User
from provisioning import vault
from provisioning.models import AuditEvent, AUMembership, Operation, VaultSecret
from tests.fixtures_badges import pdf_text, store_pin
from tests.fixtures_manager import add_qr

HTMX = {"HTTP_HX_REQUEST": "true"}


def _members(au_id: str, count: int) -> list[str]:
    rows = AUMembership.objects.filter(administrative_unit_id=au_id).order_by("user_id")
    return list(rows.values_list("user_id", flat=True)[:count])


def _alice(alice) -> User:
    return User.objects.get(entra_object_id=alice.user_id.lower())


def test_secret_take_returns_the_value_once_and_destroys_it(db):
    secret = vault.secret_store(
        kind=VaultSecret.Kind.PIN, owner_id="ABC-1", value="73914862", created_by=None
    )
    assert (
        vault.secret_take(secret_id=secret.pk, kind="pin", owner_id="abc-1", reason="printed")
        == "73914862"
    )
    secret.refresh_from_db()
    assert secret.destroyed_at is not None and secret.destroyed_reason == "printed"
    assert bytes(secret.ciphertext) == b""
    with pytest.raises(vault.SecretUnavailable):
        vault.secret_take(secret_id=secret.pk, kind="pin", owner_id="abc-1", reason="printed")


def test_secret_take_checks_kind_and_owner(db):
    secret = vault.secret_store(
        kind=VaultSecret.Kind.PIN, owner_id="abc-1", value="73914862", created_by=None
    )
    with pytest.raises(vault.SecretUnavailable):
        vault.secret_take(secret_id=secret.pk, kind="qr_payload", owner_id="abc-1", reason="x")
    with pytest.raises(vault.SecretUnavailable):
        vault.secret_take(secret_id=secret.pk, kind="pin", owner_id="abc-2", reason="x")
    secret.refresh_from_db()
    assert secret.destroyed_at is None


def test_pin_slips_print_once(alice_client, alice, alice_store):
    workers = _members(alice_store, 2)
    pins = ["73914862", "58204719"]
    ids = [
        store_pin(uid, created_by=_alice(alice), pin=pin)
        for uid, pin in zip(workers, pins, strict=True)
    ]
    response = alice_client.post(f"/badges/stores/{alice_store}/pin-slips", {"user_id": workers})
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert "no-store" in response["Cache-Control"]
    text = pdf_text(response.content).replace(" ", "")
    assert all(pin in text for pin in pins)
    assert "Changethis" in text or "change" in text.lower()
    for secret_id in ids:
        secret = VaultSecret.objects.get(pk=secret_id)
        assert secret.destroyed_at is not None and secret.destroyed_reason == "printed"
    event = AuditEvent.objects.get(action="pin-slips-printed")
    assert event.administrative_unit_id == alice_store
    assert all(pin not in event.detail for pin in pins)

    again = alice_client.post(f"/badges/stores/{alice_store}/pin-slips", {"user_id": workers})
    assert again.status_code == 410
    assert all(pin not in again.content.decode() for pin in pins)
    assert "printed once" in again.content.decode()


def test_only_the_person_who_set_the_pin_prints_it(alice_client, alice_store, db):
    worker = _members(alice_store, 1)[0]
    someone_else = User.objects.create(username="another-manager")
    secret_id = store_pin(worker, created_by=someone_else)
    response = alice_client.post(f"/badges/stores/{alice_store}/pin-slips", {"user_id": [worker]})
    assert response.status_code == 410
    assert VaultSecret.objects.get(pk=secret_id).destroyed_at is None


def test_an_it_admin_prints_a_bulk_jobs_pins_by_vault_id(alice_store, db):
    admin = User.objects.create(username="it-admin", is_it_admin=True)
    manager = User.objects.create(username="a-manager")
    workers = _members(alice_store, 2)
    ids = [store_pin(uid, created_by=manager) for uid in workers]
    not_allowed = pin_slips_pdf(requester=manager, pin_secret_ids=[])
    assert not_allowed.pdf is None
    other = User.objects.create(username="other")
    refused = pin_slips_pdf(requester=other, pin_secret_ids=ids)
    assert refused.pdf is None and len(refused.unavailable) == 2
    result = pin_slips_pdf(requester=admin, pin_secret_ids=ids, page="letter")
    assert result.pdf.startswith(b"%PDF") and sorted(result.printed) == sorted(workers)
    assert all(VaultSecret.objects.get(pk=i).destroyed_at for i in ids)
    assert pin_slips_pdf(requester=admin, pin_secret_ids=ids).pdf is None


def test_a_new_pin_from_the_worker_page_can_be_printed_instead_of_shown(
    alice_client, alice_worker, run_tasks, known_pin
):

    add_qr(alice_client, alice_worker, run_tasks, pin=known_pin)
    op = Operation.objects.get(worker_id=alice_worker.user_id)
    response = alice_client.post(
        f"/badges/stores/{alice_worker.au_id}/pin-slips", {"user_id": [alice_worker.user_id]}
    )
    assert response.status_code == 200
    assert known_pin in pdf_text(response.content).replace(" ", "")
    assert VaultSecret.objects.get(pk=op.pin_secret_id).destroyed_at is not None


def test_pin_slips_of_another_store_are_a_404(alice_client, bob_store, bob_worker, alice):
    secret_id = store_pin(bob_worker.user_id, created_by=_alice(alice))
    response = alice_client.post(
        f"/badges/stores/{bob_store}/pin-slips", {"user_id": [bob_worker.user_id]}
    )
    assert response.status_code == 404
    assert VaultSecret.objects.get(pk=secret_id).destroyed_at is None


def test_a_worker_of_another_store_gets_no_slip_here(alice_client, alice_store, bob_worker, alice):
    secret_id = store_pin(bob_worker.user_id, created_by=_alice(alice))
    response = alice_client.post(
        f"/badges/stores/{alice_store}/pin-slips", {"user_id": [bob_worker.user_id]}
    )
    assert response.status_code == 410
    assert VaultSecret.objects.get(pk=secret_id).destroyed_at is None


def test_pin_slips_need_sign_in_post_and_a_selection(alice_client, alice_store, db):
    from django.test import Client

    url = f"/badges/stores/{alice_store}/pin-slips"
    response = Client().post(url, {"user_id": ["x"]})
    assert response.status_code == 302 and "/auth/sign-in" in response["Location"]
    assert alice_client.get(url).status_code == 405
    assert alice_client.post(url, {}).status_code == 422
