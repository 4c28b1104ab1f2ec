"""The bulk engine in-process against graphsim: results, faults, and the exactly-once effect."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from provisioning.bulk import engine, jobs, leases, selectors
from provisioning.graph.models import parse_datetime
from provisioning.models import BulkJob, BulkJobRow
from tests.fixtures_bulk import assert_qr_exactly_once, fresh_workers, run_job


def test_it_creates_one_method_per_worker_and_vaults_the_secrets(bulk_graph, make_qr_job):
    workers = fresh_workers(bulk_graph, 45)
    job = make_qr_job([w.user_principal_name for w in workers])
    run_job(job.pk)
    job.refresh_from_db()
    assert job.status == BulkJob.Status.FINISHED
    counts = assert_qr_exactly_once(bulk_graph, job)
    assert counts["succeeded"] == 45
    assert selectors.summary_line(counts) == "45 rows: 45 succeeded, 0 failed, 0 skipped"
    # $batch: 45 creates went out in 3 batches, not 45 requests.
    from provisioning.graph import get_app_client

    assert get_app_client().stats["requests"] <= 8  # 3 lookup batches + 3 create batches + token
    assert bulk_graph.stats["requests"]["PUT 201"] == 45


def test_it_skips_a_worker_who_already_has_a_method(bulk_graph, make_qr_job, undocumented_status):
    # Whichever status Graph uses for "already has a method" (undocumented, 409 or 400), the
    # engine re-reads the method and skips the row.
    tenant = bulk_graph.tenant
    has = next(u for uid, u in tenant.users.items() if uid in tenant.qr_methods)
    fresh = fresh_workers(bulk_graph, 1)[0]
    job = make_qr_job([has.user_principal_name, fresh.user_principal_name])
    run_job(job.pk)
    rows = {r.upn: r for r in job.rows.all()}
    assert rows[has.user_principal_name].status == "skipped"
    assert "Already has" in rows[has.user_principal_name].outcome
    assert rows[fresh.user_principal_name].status == "succeeded"
    assert_qr_exactly_once(bulk_graph, job)
    assert bulk_graph.stats["requests"].get(f"PUT {undocumented_status}") == 1


@pytest.mark.parametrize(
    "faults",
    [
        {"error_5xx_rate": 0.25, "error_504_share": 0.5},
        {"reset_rate": 0.2},
        {"lost_response_rate": 0.1, "lost_response_mode": "drop"},
        {"lost_response_rate": 0.1, "lost_response_mode": "504"},
        {"token_lifetime_s": 60},
    ],
    ids=["5xx", "resets", "lost-drop", "lost-504", "short-tokens"],
)
def test_it_survives_faults_exactly_once(bulk_graph, make_qr_job, faults):
    workers = fresh_workers(bulk_graph, 40)
    job = make_qr_job([w.user_principal_name for w in workers])
    bulk_graph.sim.config.update(faults)
    run_job(job.pk, timeout=180)
    bulk_graph.sim.config.update(
        {"error_5xx_rate": 0.0, "reset_rate": 0.0, "lost_response_rate": 0.0}
    )
    counts = assert_qr_exactly_once(bulk_graph, job)
    assert counts["succeeded"] == 40, [r.outcome for r in job.rows.exclude(status="succeeded")]


def test_lost_responses_are_recovered_by_reissuing(bulk_graph, make_qr_job, pin_reset_reading):
    # The re-issue resets the PIN: under either reading of the reset (docs/graph-contract.md
    # §1.7) the vault ends with the PIN Graph holds (assert_qr_exactly_once).
    workers = fresh_workers(bulk_graph, 20)
    job = make_qr_job([w.user_principal_name for w in workers])
    bulk_graph.sim.config.update({"lost_response_rate": 1.0})
    engine.job_work(job_id=job.pk, budget_s=0)  # one chunk; every answer is lost
    bulk_graph.sim.config.update({"lost_response_rate": 0.0})
    assert set(job.rows.values_list("status", flat=True)) == {"pending"}
    assert all(r.write_sent_at for r in job.rows.all())
    run_job(job.pk)
    counts = assert_qr_exactly_once(bulk_graph, job)
    assert counts["succeeded"] == 20
    assert all(r.result["issued"] == "recovered" for r in job.rows.all())


def test_a_429_storm_delays_but_loses_nothing(bulk_graph, make_qr_job):
    workers = fresh_workers(bulk_graph, 40)
    job = make_qr_job([w.user_principal_name for w in workers])
    bulk_graph.sim.config.update({"storm_fraction": 0.7, "storm_retry_after_s": 0.2})
    bulk_graph.sim.start_storm(2.0)
    run_job(job.pk, timeout=180)
    counts = assert_qr_exactly_once(bulk_graph, job)
    assert counts["succeeded"] == 40
    assert bulk_graph.stats["throttled"] > 0


def test_a_row_claimed_by_a_dead_worker_is_resumed_after_its_lease(
    bulk_graph, make_qr_job, pin_reset_reading
):
    workers = fresh_workers(bulk_graph, 5)
    job = make_qr_job([w.user_principal_name for w in workers])
    # A worker claimed the rows, sent the writes, and died before recording anything.
    rows = leases.rows_claim(job_id=job.pk, token="dead-worker", limit=20)
    leases.rows_mark_write_intent(rows, "dead-worker", phase="create")
    from provisioning.graph import get_app_client, operations

    client = get_app_client()
    for row in rows[:3]:
        operations.qr_method_create(
            client, row.user_id, start=parse_datetime(row.params["start"]),
            expire=parse_datetime(row.params["expire"]),
        )  # fmt: skip
    assert engine.job_work(job_id=job.pk, budget_s=0) is None  # nothing claimable yet
    BulkJobRow.objects.filter(job=job).update(lease_until=timezone.now() - timedelta(seconds=1))
    run_job(job.pk)
    counts = assert_qr_exactly_once(bulk_graph, job)
    assert counts["succeeded"] == 5
    issued = sorted(r.result["issued"] for r in job.rows.all())
    assert issued == ["created", "created", "recovered", "recovered", "recovered"]


def test_someone_elses_method_found_on_recheck_is_skipped(bulk_graph, make_qr_job):
    worker = fresh_workers(bulk_graph, 1)[0]
    job = make_qr_job([worker.user_principal_name])
    rows = leases.rows_claim(job_id=job.pk, token="dead", limit=20)
    leases.rows_mark_write_intent(rows, "dead", phase="create")
    from provisioning.graph import get_app_client, operations

    now = timezone.now()
    operations.qr_method_create(get_app_client(), worker.id, start=now, expire=now + timedelta(
        days=30))  # fmt: skip
    BulkJobRow.objects.filter(job=job).update(lease_until=now - timedelta(seconds=1))
    run_job(job.pk)
    row = job.rows.get()
    assert row.status == "skipped"
    assert "outside this job" in row.outcome
    assert row.payload_secret_id is None


def test_a_refused_create_of_our_own_method_is_reissued(
    bulk_graph, make_qr_job, undocumented_status
):
    # An earlier attempt's create reached Entra but its answer was lost, and the next attempt
    # went straight to a create (as after a stale 404 on the re-check, Graph being eventually
    # consistent). Entra refuses it (409 or 400): the re-read finds the row's own method (same
    # dates) and re-issues its secrets instead of skipping or failing the row.
    worker = fresh_workers(bulk_graph, 1)[0]
    job = make_qr_job([worker.user_principal_name])
    rows = leases.rows_claim(job_id=job.pk, token="dead", limit=20)
    from provisioning.graph import get_app_client, operations

    row = rows[0]
    operations.qr_method_create(
        get_app_client(), row.user_id, start=parse_datetime(row.params["start"]),
        expire=parse_datetime(row.params["expire"]),
    )  # fmt: skip
    BulkJobRow.objects.filter(job=job).update(
        lease_until=timezone.now() - timedelta(seconds=1), write_sent_at=None
    )
    run_job(job.pk)
    row = job.rows.get()
    assert row.status == "succeeded", row.outcome
    assert row.result["issued"] == "recovered"
    assert bulk_graph.stats["requests"].get(f"PUT {undocumented_status}") == 1
    assert_qr_exactly_once(bulk_graph, job)


def test_permanent_errors_fail_the_row_with_the_request_id(
    bulk_graph, make_qr_job, undocumented_status
):
    worker = fresh_workers(bulk_graph, 1)[0]
    bulk_graph.tenant.users[worker.id].licensed = False
    job = make_qr_job([worker.user_principal_name])
    run_job(job.pk)
    row = job.rows.get()
    assert row.status == "failed"
    assert "request-id" in row.outcome
    assert "not enabled for QR code sign-in" in row.outcome
    assert "Already has" not in row.outcome  # the re-read found no method
    assert row.attempts == 1


def test_cancel_stops_rows_not_started_and_rerun_failed_retries(bulk_graph, make_qr_job):
    workers = fresh_workers(bulk_graph, 30)
    job = make_qr_job([w.user_principal_name for w in workers])
    cancelled = jobs.bulk_job_cancel(job=job, cancelled_by=None)
    assert cancelled == 30
    run_job(job.pk)
    job.refresh_from_db()
    assert job.status == BulkJob.Status.CANCELLED
    assert not bulk_graph.stats["qr_method_creations"]
    # Re-run: failed rows only.
    job.rows.filter(line__lte=5).update(status="failed", outcome="boom")
    assert jobs.bulk_job_rerun_failed(job=job, requested_by=None) == 4  # lines 2..5
    run_job(job.pk)
    counts = assert_qr_exactly_once(bulk_graph, job)
    assert counts["succeeded"] == 4


def test_confirm_is_bound_to_the_preview(bulk_graph, make_qr_job):
    workers = fresh_workers(bulk_graph, 3)
    job = make_qr_job([w.user_principal_name for w in workers], confirm=False)
    with pytest.raises(jobs.JobRefused, match="differ"):
        jobs.bulk_job_confirm(job=job, previewed_hash="0" * 64, confirmed_by=None)
    job.rows.filter(line=2).update(params={"start": "", "expire": "", "pin": "custom"})
    with pytest.raises(jobs.JobRefused, match="differ"):
        jobs.bulk_job_confirm(job=job, previewed_hash=job.preview_hash, confirmed_by=None)


def test_confirm_refuses_when_the_policy_changed(bulk_graph, make_qr_job):
    from django.core.cache import cache

    workers = fresh_workers(bulk_graph, 2)
    job = make_qr_job([w.user_principal_name for w in workers], confirm=False)
    bulk_graph.tenant.qr_policy.pin_length = 10
    cache.delete("lanyard:qr-policy")
    with pytest.raises(jobs.JobRefused, match="policy"):
        jobs.bulk_job_confirm(job=job, previewed_hash=job.preview_hash, confirmed_by=None)
    assert not BulkJob.objects.filter(status="running").exists()


def test_every_finished_row_is_audited_without_secrets(bulk_graph, make_qr_job):
    from provisioning import vault
    from provisioning.models import AuditEvent

    workers = fresh_workers(bulk_graph, 3)
    job = make_qr_job([w.user_principal_name for w in workers])
    run_job(job.pk)
    events = AuditEvent.objects.filter(action="bulk_qr_create")
    assert sorted(e.target_user_id for e in events) == sorted(w.id for w in workers)
    assert {e.outcome for e in events} == {"succeeded"}
    assert AuditEvent.objects.filter(action="bulk_job_finished").count() == 1
    text = " ".join(e.detail for e in AuditEvent.objects.all())
    for row in job.rows.all():
        pin = vault.secret_read(secret_id=row.pin_secret_id, kind="pin", owner_id=row.user_id)
        assert pin not in text


def test_a_task_hands_over_when_another_job_waits_for_a_worker(bulk_graph, make_qr_job, settings):
    """Two IT admin jobs, more tasks than worker processes: the job holding the processes hands
    over after a chunk once the other has waited BULK_SHARE_SECONDS (issue 12, item 6)."""
    settings.BULK_SHARE_SECONDS = 5
    workers = fresh_workers(bulk_graph, 65)
    first = make_qr_job([w.user_principal_name for w in workers[:45]])
    waiting = make_qr_job([w.user_principal_name for w in workers[45:]])
    BulkJob.objects.filter(pk=waiting.pk).update(
        last_progress_at=timezone.now() - timedelta(seconds=6)
    )
    assert engine.job_work(job_id=first.pk, budget_s=120) == 0.0  # handed over
    assert selectors.job_counts(first)["succeeded"] == 20  # after one chunk, not all three
    # The waiting job works (its progress is fresh again), then the first finishes undisturbed.
    run_job(waiting.pk)
    assert engine.job_work(job_id=first.pk, budget_s=120) is None
    assert selectors.job_counts(first)["succeeded"] == 45


def test_a_job_alone_does_not_hand_over(bulk_graph, make_qr_job, settings):
    settings.BULK_SHARE_SECONDS = 5
    workers = fresh_workers(bulk_graph, 45)
    job = make_qr_job([w.user_principal_name for w in workers])
    finished = make_qr_job([w.user_principal_name for w in fresh_workers(bulk_graph, 50)[45:]])
    run_job(finished.pk)  # a finished job with old progress is not waiting for anything
    BulkJob.objects.filter(pk=finished.pk).update(
        last_progress_at=timezone.now() - timedelta(seconds=60)
    )
    assert engine.job_work(job_id=job.pk, budget_s=120) is None
    assert selectors.job_counts(job)["succeeded"] == 45
