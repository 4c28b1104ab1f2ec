"""Bulk jobs on real services: kill -9 the worker processes at random points of a 2,000-row job,
restart them, and run jobs through graphsim's faults; every run must end with each row in a correct
final state, no worker with a second method or a credential nobody can print, and the job's counts
equal to graphsim's own state (provisioning/bulk/engine.py explains why this holds)."""

from __future__ import annotations

import random

import pytest

import provisioning.graph
from graphsim.tenantgen import large_tenant
from provisioning.bulk import csvfile, engine, jobs, preview, selectors
from provisioning.models import BulkJob
from tests.fixtures_bulk import assert_qr_exactly_once, fresh_workers, qr_csv
from tests.integration.conftest import wait_for

# Worker processes read these from the environment (portal/settings.py "Bulk jobs"): short leases
# so a killed worker's rows come back within seconds (a live task renews its leases every
# heartbeat, so a lease shorter than the task's budget is fine), a budget that keeps the test short.
FAST_ENGINE = {
    "BULK_LEASE_SECONDS": "6",
    "BULK_HEARTBEAT_SECONDS": "1",
    "BULK_TASK_SECONDS": "15",
    "BULK_BACKOFF_MAX_SECONDS": "2",
    "GRAPH_WRITES_PER_SECOND": "150",
}


@pytest.fixture
def engine_env(monkeypatch, settings):
    for name, value in FAST_ENGINE.items():
        monkeypatch.setenv(name, value)
        setattr(settings, name, int(value))


def _qr_job(upns: list[str]) -> BulkJob:
    rows = csvfile.read_rows(qr_csv(upns), kind="qr")
    inputs = [preview.RowInput(r.line, r.values["userPrincipalName"], r.values) for r in rows]
    job = preview.bulk_job_preview(
        kind="qr", source="csv", source_label="kill.csv", inputs=inputs, created_by=None
    )
    return jobs.bulk_job_confirm(job=job, previewed_hash=job.preview_hash, confirmed_by=None)


def _rows_done(job: BulkJob) -> int:
    engine.jobs_sweep()  # as celery beat would: a killed worker's job gets new tasks
    return selectors.job_counts(job)["done"]


def _done(job: BulkJob) -> bool:
    engine.jobs_sweep()  # what celery beat does every 30 s, and `bulk_import --wait`
    counts = selectors.job_counts(job)
    return counts["pending"] == 0 and counts["running"] == 0


def _big_tenant(portal_graph, users: int) -> list:
    portal_graph.reset(large_tenant(users=users))
    from provisioning.graph import _singletons

    _singletons.clear()
    portal_graph.sim.config.write_budget_per_s = 1000.0
    # Bulk jobs write only to members of synced stores (docs/architecture.md §5): sync first.
    from provisioning.directory import directory_sync

    directory_sync(client=provisioning.graph.get_app_client())
    return fresh_workers(portal_graph)


def test_kill_9_at_random_points_of_a_2000_row_job(
    start_worker, portal_graph, engine_env, transactional_db
):
    workers = _big_tenant(portal_graph, 3000)
    tenant = portal_graph.tenant
    # 2,000 rows: mostly fresh workers, some who already have a method (to be skipped).
    has_method = [
        u.user_principal_name
        for uid, u in sorted(tenant.users.items())
        if uid in tenant.qr_methods and u.account_enabled and u.licensed and u.user_type == "Member"
    ][:100]
    upns = [w.user_principal_name for w in workers[: 2000 - len(has_method)]] + has_method
    assert len(upns) == 2000
    job = _qr_job(upns)
    rng = random.Random(20261123)
    for _ in range(4):
        worker = start_worker(concurrency=4)
        engine.jobs_sweep()
        # A random point of the job, counted in rows rather than seconds: on any machine the
        # worker has done some work when it dies, and the job is not over.
        target = _rows_done(job) + rng.randint(50, 200)
        wait_for(lambda target=target: _rows_done(job) >= target, timeout=120,
                 message="the worker made no progress before the kill")  # fmt: skip
        worker.kill()  # kill -9 of the whole process group, mid-batch
        assert selectors.job_counts(job)["pending"] > 0, "the job ended before the kills"
    start_worker(concurrency=4)
    wait_for(lambda: _done(job), timeout=300, message="the job did not finish after the kills")
    job.refresh_from_db()
    assert job.status == BulkJob.Status.FINISHED
    counts = assert_qr_exactly_once(portal_graph, job)
    creations = portal_graph.stats["qr_method_creations"]
    assert counts["succeeded"] == 1900, selectors.summary_line(counts)
    assert counts["skipped"] == 100 and counts["failed"] == 0, selectors.summary_line(counts)
    assert sum(creations.values()) == 1900  # graphsim's count: one method per fresh worker


@pytest.mark.parametrize(
    "faults",
    [
        {"error_5xx_rate": 0.1, "reset_rate": 0.05, "token_lifetime_s": 60},
        {"lost_response_rate": 0.05, "lost_response_mode": "drop"},
        {"lost_response_rate": 0.05, "lost_response_mode": "504"},
        {"storm": 6.0, "storm_fraction": 0.8, "storm_retry_after_s": 1.0},
    ],
    ids=["5xx-resets-short-tokens", "lost-drop", "lost-504", "429-storm"],
)
def test_real_workers_under_graph_faults(
    start_worker, portal_graph, engine_env, transactional_db, faults
):
    workers = _big_tenant(portal_graph, 700)[:400]
    job = _qr_job([w.user_principal_name for w in workers])
    faults = dict(faults)
    storm = faults.pop("storm", None)
    portal_graph.sim.config.update(faults)
    if storm:
        portal_graph.sim.start_storm(storm)
    first = start_worker(concurrency=2)
    start_worker(concurrency=2)
    wait_for(lambda: _rows_done(job) >= 20, timeout=120, message="no progress under faults")
    first.kill()  # and one worker dies on top of the faults
    wait_for(lambda: _done(job), timeout=300, message="the job did not finish under faults")
    portal_graph.sim.config.update({"error_5xx_rate": 0.0, "reset_rate": 0.0,
                                    "lost_response_rate": 0.0})  # fmt: skip
    counts = assert_qr_exactly_once(portal_graph, job)
    assert counts["succeeded"] == 400, selectors.summary_line(counts)
