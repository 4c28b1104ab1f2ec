"""Managers see phone numbers masked, as Entra shows them (issue 10, finding 2;
docs/graph-contract.md §3, §9.9): the store refresh reads with the app identity, which Graph answers
with full numbers; those are masked before they are stored, so no manager page carries them."""

from __future__ import annotations

import pytest

from graphsim.model import PhoneMethod
from graphsim.phone import mask_phone_number
from provisioning.models import WorkerMethodState
from provisioning.phone_numbers import phone_number_mask

FULL = {"mobile": "+44 7911123456", "office": "+1 4255550100x42"}


def test_an_app_identity_refresh_shows_managers_no_full_number(
    alice_client, alice_worker, directory, run_tasks
):
    """The attack: a manager presses Refresh and reads the numbers the app identity fetched."""
    directory.tenant.phone_methods[alice_worker.user_id] = {
        kind: PhoneMethod(phone_type=kind, phone_number=number) for kind, number in FULL.items()
    }
    with run_tasks():
        alice_client.post(f"/stores/{alice_worker.au_id}/refresh")
    state = WorkerMethodState.objects.get(user_id=alice_worker.user_id)
    assert state.mobile_phone == "+44 XXXXXXXX56"
    assert state.office_phone == "+1 XXXXXXXX00xXX"
    name = alice_worker.display_name.split()[0]
    store_page = alice_client.get(f"/stores/{alice_worker.au_id}/?q={name}").content.decode()
    worker_page = alice_client.get(alice_worker.url()).content.decode()
    assert "+44 XXXXXXXX56" in store_page
    assert "+44 XXXXXXXX56" in worker_page
    for page in (store_page, worker_page):
        for number in FULL.values():
            digits = number.split(" ", 1)[1].split("x")[0]
            assert digits not in page
            assert digits[:4] not in page.replace(" ", "")


def test_a_number_a_manager_typed_is_shown_masked_in_the_recent_actions(
    alice_client, alice_worker, run_tasks
):
    with run_tasks():
        alice_client.post(
            alice_worker.url("phones/mobile"),
            {"mobile-number": "+44 7911 123456"},
            HTTP_HX_REQUEST="true",
        )
    page = alice_client.get(alice_worker.url()).content.decode()
    assert "7911123456" not in page and "+44 XXXXXXXX56" in page


@pytest.mark.parametrize("number", ["+1 4255550123", "+44 2079460018x42", "+49 15123456789"])
def test_the_mask_is_the_one_graphsim_answers_managers_with(number):
    assert phone_number_mask(number) == mask_phone_number(number)
    assert phone_number_mask(phone_number_mask(number)) == phone_number_mask(number)
