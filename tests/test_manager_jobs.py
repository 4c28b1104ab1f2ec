"""Many workers at once for store managers (docs/architecture.md §11.2 "A manager's job"): the
store page's state filters, one job for the selected workers run with the manager's own delegated
token on the bulk engine, one kiosk sheet, PIN slips printed once."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from badges.models import PrintJob
from portal.models import User
from provisioning.bulk import engine
from provisioning.models import (
    AdministrativeUnit,
    AUMembership,
    BulkJob,
    DirectoryUser,
    VaultSecret,
    WorkerMethodState,
)
from tests.fixtures_bulk import assert_qr_exactly_once, run_job
from tests.fixtures_portal import sign_in

HTMX = {"HTTP_HX_REQUEST": "true"}


def _fresh(graphsim, au_id: str, n: int) -> list[str]:
    """`n` enabled, licensed member workers of the store with no QR method (graphsim's state)."""
    tenant = graphsim.tenant
    found = [
        uid
        for uid in sorted(tenant.administrative_units[au_id].member_ids)
        if uid not in tenant.qr_methods
        and tenant.users[uid].account_enabled
        and tenant.users[uid].licensed
        and tenant.users[uid].user_type == "Member"
    ]
    assert len(found) >= n, f"the store has only {len(found)} fresh workers"
    return found[:n]


def _start(client, au_id: str, user_ids: list[str], action: str = "create", **extra):
    return client.post(
        f"/stores/{au_id}/jobs/", {"worker": user_ids, "action": action}, **{**HTMX, **extra}
    )


def _alice(alice) -> User:
    return User.objects.get(entra_object_id=alice.user_id.lower())


# -- filters -----------------------------------------------------------------------------------


def _seed_states(store_id: str) -> dict[str, str]:
    """Five workers, one per state, named after it."""
    now = timezone.now()
    specs = {
        "NoQr": {"has_qr_method": False},
        "Expiring": {"has_qr_method": True, "standard_start": now - timedelta(days=100),
                         "standard_expires": now + timedelta(days=20),
                         "standard_last_used": now - timedelta(days=1)},
        "Later": {"has_qr_method": True, "standard_start": now - timedelta(days=10),
                      "standard_expires": now + timedelta(days=200),
                      "standard_last_used": now - timedelta(days=1)},
        "Unused": {"has_qr_method": True, "standard_start": now - timedelta(days=10),
                       "standard_expires": now + timedelta(days=300)},
        "Expired": {"has_qr_method": True, "standard_start": now - timedelta(days=400),
                        "standard_expires": now - timedelta(days=1),
                        "standard_last_used": now - timedelta(days=30)},
    }  # fmt: skip
    unit = AdministrativeUnit.objects.get(id=store_id)
    ids = {}
    for i, (name, fields) in enumerate(specs.items()):
        user = DirectoryUser.objects.create(
            id=f"00000000-0000-4000-9000-{i:012d}",
            user_principal_name=f"state.{name.lower()}@example.test",
            display_name=f"State {name}",
            synced_at=now,
        )
        AUMembership.objects.create(administrative_unit=unit, user=user)
        WorkerMethodState.objects.create(user=user, refreshed_at=now, **fields)
        ids[name] = user.id
    return ids


def _shown(client, store: str, **params) -> set[str]:
    page = client.get(f"/stores/{store}/", {"q": "State ", **params}, **HTMX).content.decode()
    return {name for name in ("NoQr", "Expiring", "Later", "Unused", "Expired")
            if f"State {name}<" in page}  # fmt: skip


def test_the_state_filters(alice_client, alice_store):
    _seed_states(alice_store)
    assert _shown(alice_client, alice_store) == {"NoQr", "Expiring", "Later", "Unused", "Expired"}
    assert _shown(alice_client, alice_store, state="no_qr") == {"NoQr"}
    assert _shown(alice_client, alice_store, state="expiring", days=30) == {"Expiring"}
    assert _shown(alice_client, alice_store, state="expiring", days=250) == {"Expiring", "Later"}
    assert _shown(alice_client, alice_store, state="never_used") == {"Unused"}
    assert _shown(alice_client, alice_store, state="unusable") == {"Expired"}
    # An unknown state or a silly N is ignored, never an error.
    assert len(_shown(alice_client, alice_store, state="nope", days="x")) == 5


def test_expiring_follows_the_clock(alice_client, alice_store):
    from provisioning.selectors import worker_search_for_administrative_unit

    _seed_states(alice_store)
    unit = AdministrativeUnit.objects.get(id=alice_store)

    def names(state: str, days: int = 30) -> set[str]:
        found = worker_search_for_administrative_unit(
            unit=unit, query="State ", state=state, days=days
        )
        return {w.display_name.removeprefix("State ") for w in found}

    assert names("expiring") == {"Expiring"}
    # (The page's session would have ended: the selector the page uses is asked directly.)
    with time_machine.travel(timezone.now() + timedelta(days=175)):
        # 175 days on: "Expiring" has expired, "Later" now expires within 30 days.
        assert names("expiring") == {"Later"}
        assert names("unusable") == {"Expiring", "Expired"}


def test_filters_keep_search_paging_and_constant_queries(
    alice_client, alice_store, django_assert_num_queries
):
    from tests.test_worker_list import _seed

    _seed(alice_store, 240)
    url = f"/stores/{alice_store}/"
    alice_client.get(url)  # warm the session
    with django_assert_num_queries(5) as first:
        page1 = alice_client.get(url, {"q": "Seed", "state": "no_qr"}, **HTMX).content.decode()
    with django_assert_num_queries(len(first.captured_queries)):
        alice_client.get(url, {"q": "Seed", "state": "expiring", "days": 90, "page": 2}, **HTMX)
    # 240 seeded workers, one in six without a QR code: 40, on one page, paging links keep it.
    assert "40 workers" in page1 and "No QR code" in page1
    assert page1.count('name="worker"') == 40
    many = alice_client.get(url, {"q": "Seed", "state": "never_used"}, **HTMX).content.decode()
    assert "state=never_used" not in many or "page=2" in many


# -- one job for many workers ----------------------------------------------------------------


def test_one_job_for_ten_workers_uses_the_managers_token(
    alice, alice_client, alice_store, bulk_graph, run_tasks
):
    ids = _fresh(bulk_graph, alice_store, 10)
    before = bulk_graph.sim.stats.snapshot()["writes_by_caller"]
    with run_tasks():
        response = _start(alice_client, alice_store, ids)
    assert response.status_code == 200, response.content.decode()
    job = BulkJob.objects.get()
    assert (job.source, job.identity, job.scope_au_id) == ("manager", "delegated", alice_store)
    assert job.requested_by == _alice(alice) and job.rows.count() == 10
    counts = assert_qr_exactly_once(bulk_graph, job)
    assert counts["succeeded"] == 10, [r.outcome for r in job.rows.all()]
    creations = bulk_graph.sim.stats.snapshot()["qr_method_creations"]
    assert sorted(uid for uid in creations if uid in ids) == sorted(ids)
    # Every write was the manager's (delegated token), none the app's.
    after = bulk_graph.sim.stats.snapshot()["writes_by_caller"]
    assert (
        after.get(f"delegated:{alice.user_id}", 0) - before.get(f"delegated:{alice.user_id}", 0)
        == 10
    )
    assert after.get("app", 0) == before.get("app", 0)
    # The store page shows the new codes at once: none of them is left under "No QR code".
    page = alice_client.get(f"/stores/{alice_store}/", {"state": "no_qr"}, **HTMX)
    assert not any(uid in page.content.decode() for uid in ids)
    assert all(
        state.qr_status()[0] == "active"
        for state in WorkerMethodState.objects.filter(user_id__in=ids)
    )
    assert WorkerMethodState.objects.filter(user_id__in=ids).count() == 10


@pytest.mark.parametrize(
    "faults",
    [
        {"error_5xx_rate": 0.25, "error_504_share": 0.5},
        {"lost_response_rate": 0.15, "lost_response_mode": "drop"},
        {"lost_response_rate": 0.15, "lost_response_mode": "504"},
    ],
    ids=["5xx", "lost-drop", "lost-504"],
)
def test_each_worker_gets_exactly_one_method_under_faults(
    alice_client, alice_store, bulk_graph, faults
):
    ids = _fresh(bulk_graph, alice_store, 10)
    assert _start(alice_client, alice_store, ids).status_code == 200
    job = BulkJob.objects.get()
    bulk_graph.sim.config.update(faults)
    run_job(job.pk, timeout=120)
    bulk_graph.sim.config.update(
        {"error_5xx_rate": 0.0, "reset_rate": 0.0, "lost_response_rate": 0.0}
    )
    counts = assert_qr_exactly_once(bulk_graph, job)
    assert counts["succeeded"] == 10, [r.outcome for r in job.rows.all()]


def test_out_of_scope_workers_in_the_post_are_refused(
    alice_client, alice_store, bob_store, bulk_graph
):
    ids = _fresh(bulk_graph, alice_store, 3)
    bobs = _fresh(bulk_graph, bob_store, 1)
    response = _start(alice_client, alice_store, [*ids, *bobs])
    assert response.status_code == 400
    assert "not workers of this store" in response.content.decode()
    assert not BulkJob.objects.exists()
    # And another store's page is a 404 before anything is read.
    assert _start(alice_client, bob_store, bobs).status_code == 404
    assert not BulkJob.objects.exists()


def test_each_row_rechecks_the_scope_before_writing(alice_client, alice_store, bulk_graph):
    ids = _fresh(bulk_graph, alice_store, 4)
    assert _start(alice_client, alice_store, ids).status_code == 200
    job = BulkJob.objects.get()
    # The worker left the store (as synced) after the job started: not written.
    AUMembership.objects.filter(administrative_unit_id=alice_store, user_id=ids[0]).delete()
    run_job(job.pk)
    rows = {r.user_id: r for r in job.rows.all()}
    assert rows[ids[0]].status == "skipped" and "no longer manage" in rows[ids[0]].outcome
    assert ids[0] not in bulk_graph.tenant.qr_methods
    assert all(rows[uid].status == "succeeded" for uid in ids[1:])


def test_a_claims_challenge_ends_the_job_with_sign_in_again(
    alice_client, alice_store, bulk_graph, monkeypatch
):
    from provisioning.graph import InteractionRequired

    ids = _fresh(bulk_graph, alice_store, 3)
    assert _start(alice_client, alice_store, ids).status_code == 200
    job = BulkJob.objects.get()

    def challenged(**_kw):
        raise InteractionRequired(claims='{"access_token":{"acrs":{"essential":true}}}')

    monkeypatch.setattr(engine, "delegated_client_for", challenged)
    run_job(job.pk)
    assert {r.status for r in job.rows.all()} == {"failed"}
    assert all(r.outcome == engine.SIGN_IN_AGAIN for r in job.rows.all())
    assert not any(uid in bulk_graph.tenant.qr_methods for uid in ids)
    page = alice_client.get(f"/stores/{alice_store}/jobs/{job.pk}/", **HTMX)
    assert page.status_code == 286 and "Sign in again" in page.content.decode()
    # After signing in again, a re-run finishes them: nothing was lost.
    monkeypatch.undo()
    assert alice_client.post(f"/stores/{alice_store}/jobs/{job.pk}/rerun").status_code == 302
    run_job(job.pk)
    assert assert_qr_exactly_once(bulk_graph, job)["succeeded"] == 3


def test_renew_replaces_the_standard_codes_and_keeps_the_pins(
    alice_client, alice_store, bulk_graph, run_tasks
):
    ids = _fresh(bulk_graph, alice_store, 3)
    with run_tasks():
        _start(alice_client, alice_store, ids)
    first = BulkJob.objects.get()
    pins = {uid: bulk_graph.tenant.qr_methods[uid].pin.code for uid in ids}
    codes = {uid: bulk_graph.tenant.qr_methods[uid].standard.id for uid in ids}
    with run_tasks():
        assert _start(alice_client, alice_store, ids, action="renew").status_code == 200
    renew = BulkJob.objects.exclude(pk=first.pk).get()
    assert renew.action == "renew"
    assert {r.status for r in renew.rows.all()} == {"succeeded"}, [
        r.outcome for r in renew.rows.all()
    ]
    for row in renew.rows.all():
        method = bulk_graph.tenant.qr_methods[row.user_id]
        assert method.pin.code == pins[row.user_id]
        assert method.standard.id != codes[row.user_id]
        assert row.pin_secret_id is None and row.payload_secret_id


# -- progress, the kiosk sheet and PIN slips ----------------------------------------------------


def test_progress_then_one_kiosk_sheet_and_pin_slips_once(alice_client, alice_store, bulk_graph):
    ids = _fresh(bulk_graph, alice_store, 10)
    started = _start(alice_client, alice_store, ids)
    job = BulkJob.objects.get()
    assert f"/stores/{alice_store}/jobs/{job.pk}/" in started.content.decode()
    assert 'hx-trigger="load delay:150ms, poll-retry delay:1s"' in started.content.decode()
    polling = alice_client.get(f"/stores/{alice_store}/jobs/{job.pk}/", **HTMX)
    assert polling.status_code == 200 and "Working" in polling.content.decode()
    run_job(job.pk)
    done = alice_client.get(f"/stores/{alice_store}/jobs/{job.pk}/", **HTMX)
    assert done.status_code == 286  # htmx: stop polling
    assert "One badge sheet with 10 QR codes" in done.content.decode()
    again = alice_client.get(f"/stores/{alice_store}/jobs/{job.pk}/", **HTMX)
    assert again.status_code == 286
    sheets = PrintJob.objects.filter(store_id=alice_store)
    assert sheets.count() == 1 and sheets.get().items.count() == 10
    payloads = set(job.rows.values_list("payload_secret_id", flat=True))
    assert set(sheets.get().items.values_list("payload_secret_id", flat=True)) == payloads
    slips = alice_client.post(f"/stores/{alice_store}/jobs/{job.pk}/pin-slips.pdf")
    assert slips.status_code == 200 and slips["Content-Type"] == "application/pdf"
    assert not VaultSecret.objects.filter(
        id__in=job.rows.values("pin_secret_id"), destroyed_at__isnull=True
    ).exists()
    assert (
        alice_client.post(f"/stores/{alice_store}/jobs/{job.pk}/pin-slips.pdf").status_code == 410
    )


def test_another_manager_cannot_see_the_job(client, alice_client, alice_store, bob, bulk_graph):
    ids = _fresh(bulk_graph, alice_store, 2)
    _start(alice_client, alice_store, ids)
    job = BulkJob.objects.get()
    alice_client.logout()
    sign_in(client, bob)
    for url in (f"/stores/{alice_store}/jobs/{job.pk}/",):
        assert client.get(url).status_code == 404
        assert client.get(url, **HTMX).status_code == 404
    for suffix in ("rerun", "pin-slips.pdf"):
        assert client.post(f"/stores/{alice_store}/jobs/{job.pk}/{suffix}").status_code == 404


def test_manager_jobs_have_their_own_queue_which_workers_consume(
    alice_client, alice_store, bulk_graph, make_qr_job, settings
):
    ids = _fresh(bulk_graph, alice_store, 1)
    _start(alice_client, alice_store, ids)
    manager_job = BulkJob.objects.get()
    it_job = make_qr_job([fresh.user_principal_name for fresh in _it_workers(bulk_graph, ids)])
    assert engine.job_queue_options(manager_job.pk) == {"queue": settings.MANAGER_JOBS_QUEUE}
    assert engine.job_queue_options(it_job.pk) == {}
    # A worker started without -Q consumes every queue of CELERY_TASK_QUEUES.
    assert {q.name for q in settings.CELERY_TASK_QUEUES} == {"celery", settings.MANAGER_JOBS_QUEUE}


def _it_workers(graphsim, taken: list[str]):
    from tests.fixtures_bulk import fresh_workers

    return [w for w in fresh_workers(graphsim, 5) if w.id not in taken][:1]


def test_single_manager_actions_go_to_the_managers_queue(settings):
    """A manager's single action is not queued behind IT admins' bulk tasks (issue 12, item 6)."""
    from celery.app.routes import prepare

    from portal.celery import app
    from provisioning.tasks.actions import operation_run
    from provisioning.tasks.bulk import bulk_job_work

    routes = prepare(app.conf.task_routes)
    queue = next(r(operation_run.name) for r in routes)
    assert queue == {"queue": settings.MANAGER_JOBS_QUEUE}
    assert settings.MANAGER_JOBS_QUEUE in {q.name for q in settings.CELERY_TASK_QUEUES}
    assert all(r(bulk_job_work.name) is None for r in routes)  # default queue
