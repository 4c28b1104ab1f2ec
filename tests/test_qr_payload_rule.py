"""One rule for drawing a QR code from its payload (issue 10, finding 11; docs/architecture.md §5
"QR payloads"): only the manager who created the code, within QR_PAYLOAD_VIEW_MINUTES of creating
it — the preview, the badge PDF, a store sheet and a sheet's PDF alike."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from badges.models import PrintJob
from provisioning.models import Operation, ScopedRoleAssignment
from provisioning.roles import AUTHENTICATION_ADMINISTRATOR
from tests.fixtures_manager import add_qr
from tests.fixtures_portal import sign_in


@pytest.fixture
def bob_in_alices_store(bob, alice_store, directory):
    """bob, signed in on his own browser, then made a second manager of alice's store (sign-in
    re-reads his roles from Entra, where he has none there)."""
    browser = Client()
    sign_in(browser, bob)
    ScopedRoleAssignment.objects.create(
        id="bob-in-alices-store",
        administrative_unit_id=alice_store,
        principal_id=bob.user_id,
        role_template_id=AUTHENTICATION_ADMINISTRATOR,
        synced_at=timezone.now(),
    )
    return browser


@pytest.fixture
def new_code(alice_client, alice_worker, run_tasks) -> Operation:
    add_qr(alice_client, alice_worker, run_tasks)
    operation = Operation.objects.get(kind="qr_create")
    assert operation.status == "succeeded", operation.error
    return operation


def _urls(worker, operation):
    base = worker.url(f"operations/{operation.pk}/")
    return base + "qr.svg", base + "badge.pdf"


def test_another_manager_of_the_store_cannot_draw_the_code(
    alice_client, bob_in_alices_store, alice_worker, alice_store, new_code
):
    """The attack: a co-manager prints a badge of a code alice just created."""
    bob = bob_in_alices_store
    assert bob.get(f"/stores/{alice_store}/").status_code == 200  # bob manages the store
    for url in _urls(alice_worker, new_code):
        assert alice_client.get(url).status_code == 200
        assert bob.get(url).status_code == 404
    # Not through a sheet of his own either: the code is not his to print.
    queued = bob.post(f"/badges/stores/{alice_store}/sheets/new",
                      {"user_id": [alice_worker.user_id], "layout": "sheet-a4"})  # fmt: skip
    assert queued.status_code == 422
    assert not PrintJob.objects.exists()
    # Nor through alice's sheet.
    alice_client.post(f"/badges/stores/{alice_store}/sheets/new",
                      {"user_id": [alice_worker.user_id], "layout": "sheet-a4"})  # fmt: skip
    job = PrintJob.objects.get()
    pdf = f"/badges/stores/{alice_store}/sheets/{job.pk}/sheet.pdf"
    assert bob.get(pdf).status_code == 404
    assert alice_client.get(pdf).status_code == 200


def test_after_the_window_the_payload_is_not_served(
    alice_client, alice_worker, alice_store, new_code, settings
):
    settings.QR_PAYLOAD_VIEW_MINUTES = 60
    with time_machine.travel(timezone.now() + timedelta(minutes=59), tick=False):
        assert alice_client.get(_urls(alice_worker, new_code)[0]).status_code == 200
    with time_machine.travel(timezone.now() + timedelta(minutes=61), tick=False):
        for url in _urls(alice_worker, new_code):
            assert alice_client.get(url).status_code == 404
        sheet = {"user_id": [alice_worker.user_id], "layout": "sheet-a4"}
        queued = alice_client.post(f"/badges/stores/{alice_store}/sheets/new", sheet)
        assert queued.status_code == 422
        assert not PrintJob.objects.exists()
