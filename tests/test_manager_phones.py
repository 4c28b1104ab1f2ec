"""Phone numbers on the worker page: add, change, remove, and Graph's rules in plain words."""

from __future__ import annotations

from provisioning.models import Operation, WorkerMethodState

HTMX = {"HTTP_HX_REQUEST": "true"}


def _set(client, worker, run_tasks, phone_type, number):
    with run_tasks():
        return client.post(
            worker.url(f"phones/{phone_type}"), {f"{phone_type}-number": number}, **HTMX
        )


def test_it_adds_changes_and_removes_phone_numbers(
    alice_client, alice_worker, run_tasks, directory
):
    phones = lambda: directory.tenant.phone_methods.get(alice_worker.user_id, {})  # noqa: E731
    _set(alice_client, alice_worker, run_tasks, "mobile", "0044 (0)7911-123456")
    op = Operation.objects.get(kind="phone_set")
    assert op.status == "succeeded", op.error
    assert op.params["number"] == "+44 7911123456"  # normalised for Graph
    assert phones()["mobile"].phone_number == "+44 7911123456"
    state = WorkerMethodState.objects.get(user_id=alice_worker.user_id)
    # A manager (AU-scoped Authentication Administrator) reads masked numbers; stored as read.
    assert state.mobile_phone.endswith("56") and "X" in state.mobile_phone

    _set(alice_client, alice_worker, run_tasks, "alternateMobile", "+1 (415) 555-2671")
    assert phones()["alternateMobile"].phone_number == "+1 4155552671"
    _set(alice_client, alice_worker, run_tasks, "office", "+44 20 7946 0018 ext. 42")
    assert phones()["office"].phone_number == "+44 2079460018x42"
    _set(alice_client, alice_worker, run_tasks, "mobile", "+44 7400 123457")
    assert phones()["mobile"].phone_number == "+44 7400123457"
    assert Operation.objects.filter(kind="phone_set", result__changed="updated").exists()

    # The mobile cannot go while there is an alternate: refused before Graph, in plain words.
    response = alice_client.post(alice_worker.url("phones/mobile/delete"), **HTMX)
    assert "remove the alternate first" in response.content.decode()
    assert "mobile" in phones()

    with run_tasks():
        alice_client.post(alice_worker.url("phones/alternateMobile/delete"), **HTMX)
    with run_tasks():
        alice_client.post(alice_worker.url("phones/office/delete"), **HTMX)
    assert set(phones()) == {"mobile"}


def test_an_alternate_needs_a_mobile(alice_client, alice_worker, run_tasks):
    response = _set(alice_client, alice_worker, run_tasks, "alternateMobile", "+1 415 555 2671")
    assert response["HX-Retarget"] == "#action-feedback"
    assert "needs a mobile number first" in response.content.decode()
    assert not Operation.objects.exists()


def test_a_number_that_is_not_a_number_is_explained(alice_client, alice_worker, run_tasks):
    response = _set(alice_client, alice_worker, run_tasks, "mobile", "call me maybe")
    assert "is not a phone number" in response.content.decode()
    assert not Operation.objects.exists()


def test_the_default_method_cannot_be_removed(alice_client, alice_store, directory, run_tasks):
    tenant = directory.tenant
    user_id = next(
        uid
        for uid in tenant.administrative_units[alice_store].member_ids
        if uid in tenant.phone_methods and uid in tenant.sign_in_preferences
    )
    url = f"/stores/{alice_store}/workers/{user_id}/"
    alice_client.post(url + "refresh", **HTMX)  # read the worker's methods from Graph
    state = WorkerMethodState.objects.get(user_id=user_id)
    assert state.default_method == "sms"
    response = alice_client.post(url + "phones/mobile/delete", **HTMX)
    assert "default sign-in method" in response.content.decode()
    assert "mobile" in tenant.phone_methods[user_id]


def test_graph_refusing_a_delete_is_explained(alice_client, alice_store, directory, run_tasks):
    # The cache does not know the default method yet: Graph refuses, the page explains.
    tenant = directory.tenant
    user_id = next(
        uid
        for uid in tenant.administrative_units[alice_store].member_ids
        if uid in tenant.phone_methods and uid in tenant.sign_in_preferences
    )
    url = f"/stores/{alice_store}/workers/{user_id}/"
    with run_tasks():
        alice_client.post(url + "phones/mobile/delete", **HTMX)
    op = Operation.objects.get(kind="phone_delete")
    assert op.status == "failed"
    assert "default sign-in method" in op.error and "request-id" in op.error


def test_the_examples_come_from_the_region_the_numbers_are_read_in(
    alice_client, alice_worker, run_tasks
):
    from provisioning.models import DirectoryUser

    # A Berlin worker: national numbers are read as German ones, so the examples are German.
    DirectoryUser.objects.filter(id=alice_worker.user_id).update(
        usage_location="DE", country="Germany"
    )
    page = alice_client.get(alice_worker.url()).content.decode()
    assert 'placeholder="01512 3456789"' in page  # a German mobile, written nationally
    assert "+49 1512 3456789" in page  # and internationally
    assert 'placeholder="030 123456"' in page  # the office field: a German landline
    assert "read as Germany numbers" in page
    assert "07700" not in page and "+44" not in page  # no UK example left

    _set(alice_client, alice_worker, run_tasks, "mobile", "01512 3456789")  # as the example
    assert Operation.objects.get(kind="phone_set").params["number"] == "+49 15123456789"


def test_remove_is_offered_only_for_numbers_that_exist(alice_client, alice_worker, run_tasks):
    page = alice_client.get(alice_worker.url()).content.decode()
    assert "/phones/" in page  # the forms to add numbers are there
    assert "/delete" not in page.split('id="phone-heading"')[1]  # no number, nothing to remove

    _set(alice_client, alice_worker, run_tasks, "mobile", "+44 7400 123457")
    phones = alice_client.get(alice_worker.url()).content.decode().split('id="phone-heading"')[1]
    assert alice_worker.url("phones/mobile/delete") in phones
    assert alice_worker.url("phones/alternateMobile/delete") not in phones
    assert alice_worker.url("phones/office/delete") not in phones
