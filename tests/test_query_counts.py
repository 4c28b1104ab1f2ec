"""The pages a manager keeps open cost a constant, small number of queries (issue 8 item 5):
the operation poll (every second per open action), the store picker and the worker page."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from provisioning.models import Operation

HTMX = {"HTTP_HX_REQUEST": "true"}

# Every signed-in request reads its session and its user: two queries before the view runs.
SESSION_AND_USER = 2


def _qr_add(client, worker) -> None:
    """Request a QR code; without running the on-commit callbacks the action stays pending."""
    expiry = (timezone.localdate() + timedelta(days=30)).isoformat()
    client.post(
        worker.url("qr/"),
        {"add-activation": "now", "add-expiry": expiry, "add-pin_mode": "generated"},
        **HTMX,
    )


def _pending_operation(client, worker) -> Operation:
    _qr_add(client, worker)
    return Operation.objects.get(worker_id=worker.user_id)


def test_the_operation_poll_costs_a_constant_few_queries(
    alice_client, alice_worker, eager_tasks, django_assert_num_queries
):
    # Without running the on-commit callbacks the task never starts: the action stays pending.
    operation = _pending_operation(alice_client, alice_worker)
    url = alice_worker.url(f"operations/{operation.id}/")
    # The operation with its store, in the manager's scope; the worker, a member of the store.
    with django_assert_num_queries(SESSION_AND_USER + 2):
        response = alice_client.get(url, **HTMX)
    assert response.status_code == 200 and "load delay:150ms" in response.content.decode()

    from provisioning.tasks import operation_run

    operation_run.apply(args=[operation.id])
    with django_assert_num_queries(SESSION_AND_USER + 2):
        done = alice_client.get(url, **HTMX)
    assert done.status_code == 286  # htmx: stop polling


def test_the_store_picker_costs_a_constant_few_queries(
    alice_client, alice_store, django_assert_num_queries
):
    alice_client.get(f"/stores/{alice_store}/")  # remembered as the last store
    # The count, the list, the last store.
    with django_assert_num_queries(SESSION_AND_USER + 3):
        page = alice_client.get("/stores/")
    assert page.status_code == 200


def test_the_worker_page_costs_a_constant_few_queries(
    alice_client, alice_worker, eager_tasks, django_assert_num_queries
):
    for _ in range(3):  # recent actions are listed without a query each
        _qr_add(alice_client, alice_worker)
    alice_client.get(alice_worker.url())  # the QR policy is read once, then cached
    # The store, the worker with their method state, the recent actions.
    with django_assert_num_queries(SESSION_AND_USER + 3):
        page = alice_client.get(alice_worker.url())
    assert page.status_code == 200 and page.content.decode().count('class="operation ') == 3
