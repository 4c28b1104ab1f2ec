"""After the hourly directory sync only the stores whose QR/phone columns need it are re-read
(issue 12): a store with a worker never read, with columns older than STATES_STALE_AFTER, or with
a worker a bulk job wrote to since; not every store every hour."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from graphsim.model import User as SimUser
from graphsim.model import new_id
from provisioning.models import (
    AdministrativeUnit,
    AUMembership,
    DirectoryUser,
    WorkerMethodState,
)
from provisioning.worker_state import STATES_STALE_AFTER, worker_states_refresh_claim_due
from tests.fixtures_bulk import fresh_workers, run_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued_refreshes():
    """Store ids of the `worker_states_refresh` tasks sent to the broker (Celery's own signal)."""
    from celery import signals

    sent: list[str] = []

    def record(sender=None, body=None, **kwargs):
        if sender == "provisioning.worker_states_refresh":
            sent.append(body[0][0])  # protocol 2: (args, kwargs, embed)

    signals.before_task_publish.connect(record, weak=False)
    yield sent
    signals.before_task_publish.disconnect(record)


def hourly_sync(queued: list[str]) -> set[str]:
    """Run the beat's `sync_directory` task here; the store ids it queued refreshes for."""
    from provisioning.tasks import sync_directory

    queued.clear()
    sync_directory()
    assert len(queued) == len(set(queued))  # never two refreshes of one store
    return set(queued)


def refresh(store_ids: set[str]) -> None:
    """Run the queued store refreshes here, as a worker would (graphsim answers)."""
    from provisioning.tasks import worker_states_refresh

    for au_id in sorted(store_ids):
        worker_states_refresh(au_id)


def stores_with_members() -> set[str]:
    return set(AUMembership.objects.values_list("administrative_unit_id", flat=True))


def stores_of(user_id: str) -> set[str]:
    return set(
        AUMembership.objects.filter(user_id=user_id).values_list(
            "administrative_unit_id", flat=True
        )
    )


def single_store_worker(exclude: set[str] = frozenset()) -> tuple[str, str]:
    """(worker id, store id) of a cached worker who is a member of exactly one store."""
    for user_id in DirectoryUser.objects.order_by("id").values_list("id", flat=True):
        stores = stores_of(user_id)
        if len(stores) == 1 and not stores & exclude:
            return user_id, stores.pop()
    raise AssertionError("no worker in exactly one store")


@pytest.fixture
def refreshed(portal_graph, queued_refreshes) -> set[str]:
    """Synced and every store's columns read once, as after the first hour; the stores."""
    first = hourly_sync(queued_refreshes)
    refresh(first)
    return first


def test_the_first_sync_queues_every_store_with_workers(portal_graph, queued_refreshes):
    queued = hourly_sync(queued_refreshes)

    assert queued == stores_with_members()
    assert len(queued) > 1
    # Each is claimed, so a manager's "Refresh" does not queue a second pass meanwhile.
    assert not AdministrativeUnit.objects.filter(
        id__in=queued, states_refresh_queued_at__isnull=True
    ).exists()


def test_a_store_with_a_refresh_pending_is_not_queued_again(portal_graph, queued_refreshes):
    first = hourly_sync(queued_refreshes)
    assert first

    assert hourly_sync(queued_refreshes) == set()  # the first passes have not run yet


def test_fresh_unchanged_stores_are_not_read_again(refreshed, queued_refreshes):
    assert WorkerMethodState.objects.count() == DirectoryUser.objects.count()

    assert hourly_sync(queued_refreshes) == set()
    assert not AdministrativeUnit.objects.filter(states_refresh_queued_at__isnull=False).exists()


def test_a_new_worker_gets_their_store_refreshed_within_the_hour(
    refreshed, queued_refreshes, portal_graph
):
    tenant = portal_graph.tenant
    store = next(unit for unit in tenant.administrative_units.values() if unit.id in refreshed)
    newcomer = SimUser(id=new_id(), user_principal_name=f"newcomer@{tenant.domain}",
                       display_name="Newcomer", employee_id="E-NEW")  # fmt: skip
    tenant.users[newcomer.id] = newcomer
    store.member_ids.append(newcomer.id)

    queued = hourly_sync(queued_refreshes)

    assert queued == {store.id}
    refresh(queued)
    state = WorkerMethodState.objects.get(user_id=newcomer.id)
    assert state.has_qr_method is False and state.refresh_error == ""
    assert hourly_sync(queued_refreshes) == set()


def test_a_store_whose_columns_are_older_than_the_threshold_is_refreshed(
    refreshed, queued_refreshes
):
    now = timezone.now()
    stale, stale_store = single_store_worker()
    nearly, nearly_store = single_store_worker(exclude={stale_store})
    # Time is controlled through the timestamps: one read just over a day ago, one just under.
    WorkerMethodState.objects.filter(user_id=stale).update(
        refreshed_at=now - STATES_STALE_AFTER - timedelta(minutes=1)
    )
    WorkerMethodState.objects.filter(user_id=nearly).update(
        refreshed_at=now - STATES_STALE_AFTER + timedelta(hours=1)
    )

    queued = hourly_sync(queued_refreshes)

    assert queued == {stale_store}
    refresh(queued)
    assert WorkerMethodState.objects.get(user_id=stale).refreshed_at >= now


def test_a_store_an_it_admin_bulk_job_wrote_to_is_refreshed(
    bulk_graph, make_qr_job, queued_refreshes
):
    # IT admin jobs (app identity) do not note their results in the columns: the next hourly
    # sync re-reads the stores of the workers they wrote to.
    refresh(hourly_sync(queued_refreshes))
    worker = fresh_workers(bulk_graph, 1)[0]
    assert WorkerMethodState.objects.get(user_id=worker.id).has_qr_method is False
    job = make_qr_job([worker.user_principal_name])
    run_job(job.pk)
    assert job.rows.get().status == "succeeded"

    queued = hourly_sync(queued_refreshes)

    assert queued == stores_of(worker.id)
    refresh(queued)
    assert WorkerMethodState.objects.get(user_id=worker.id).has_qr_method is True
    assert hourly_sync(queued_refreshes) == set()


# -- the choice is a constant number of SQL statements, whatever the number of stores --------


def _stores(count: int, *, members: int = 3) -> None:
    """`count` stores of new workers whose columns were never read (no Graph involved)."""
    now = timezone.now()
    for number in range(count):
        unit = AdministrativeUnit.objects.create(
            id=f"au-{count}-{number}", display_name=f"Store {number}", synced_at=now
        )
        users = DirectoryUser.objects.bulk_create(
            DirectoryUser(
                id=f"u-{count}-{number}-{m}",
                user_principal_name=f"w{m}@{unit.id}",
                display_name=f"Worker {m}",
                synced_at=now,
            )  # fmt: skip
            for m in range(members)
        )
        AUMembership.objects.bulk_create(
            AUMembership(administrative_unit=unit, user=user) for user in users
        )


def _claim_queries() -> tuple[list[str], int]:
    with CaptureQueriesContext(connection) as queries:
        due = worker_states_refresh_claim_due()
    statements = [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]
    return due, len(statements)


def test_choosing_the_stores_takes_the_same_queries_for_3_or_60_stores(db):
    _stores(3)
    few, few_queries = _claim_queries()
    AdministrativeUnit.objects.all().delete()
    _stores(60)
    many, many_queries = _claim_queries()

    assert len(few) == 3 and len(many) == 60
    assert few_queries == many_queries == 2  # one SELECT of the ids, one UPDATE claiming them
