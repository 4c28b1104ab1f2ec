"""Crash recovery of bulk jobs (provisioning/bulk/engine.py steps 1 and 4): a live task's leases
are renewed, a dead holder's rows come back after the lease, a task that lost its rows writes and
records nothing, and rows whose answers were lost are re-checked and re-issued through $batch."""

from __future__ import annotations

import copy
import threading
from datetime import timedelta

import pytest
import requests
import time_machine
from django.conf import settings
from django.utils import timezone

from provisioning.bulk import engine, leases
from provisioning.graph import get_app_client
from provisioning.models import BulkJob, BulkJobRow, VaultSecret
from tests.fixtures_bulk import assert_qr_exactly_once, fresh_workers, run_job


def _lease() -> timedelta:
    return timedelta(seconds=settings.BULK_LEASE_SECONDS)


def test_renewal_keeps_a_live_tasks_rows(bulk_graph, make_qr_job):
    job = make_qr_job([w.user_principal_name for w in fresh_workers(bulk_graph, 3)])
    t0 = timezone.now()
    rows = leases.rows_claim(job_id=job.pk, token="alive", limit=20, now=t0)
    assert len(rows) == 3
    beat = timedelta(seconds=settings.BULK_HEARTBEAT_SECONDS)
    # The holder's heartbeat, long past the first lease.
    at = t0
    while at < t0 + 3 * _lease():
        at += beat
        assert leases.rows_lease_renew(token="alive", now=at) == 3
    assert at - t0 >= 3 * _lease()
    assert leases.rows_claim(job_id=job.pk, token="other", limit=20, now=at + beat) == []
    assert engine.jobs_sweep(enqueue=lambda job_id: None, now=at + beat)["released"] == 0
    assert leases.row_finish(rows[0], "alive", BulkJobRow.Status.SUCCEEDED, "done")


def test_a_dead_holders_rows_are_taken_over_after_the_lease_without_a_sweep(
    bulk_graph, make_qr_job
):
    job = make_qr_job([w.user_principal_name for w in fresh_workers(bulk_graph, 3)])
    t0 = timezone.now()
    dead = leases.rows_claim(job_id=job.pk, token="dead", limit=20, now=t0)
    assert leases.rows_claim(job_id=job.pk, token="new", limit=20, now=t0 + _lease()) == []
    taken = leases.rows_claim(
        job_id=job.pk, token="new", limit=20, now=t0 + _lease() + timedelta(seconds=1)
    )
    assert sorted(r.pk for r in taken) == sorted(r.pk for r in dead)
    assert all(r.attempts == 2 for r in taken)
    # The dead holder can record nothing any more, and its heartbeat renews nothing.
    assert not leases.row_finish(dead[0], "dead", BulkJobRow.Status.SUCCEEDED, "late")
    assert leases.rows_lease_renew(token="dead") == 0
    assert leases.rows_hold(dead, "dead") == []


def test_a_job_whose_tasks_all_died_gets_new_tasks_once_its_heartbeat_is_missed(
    bulk_graph, make_qr_job
):
    job = make_qr_job([w.user_principal_name for w in fresh_workers(bulk_graph, 3)])
    t0 = timezone.now()
    leases.job_alive_note(job_id=job.pk, now=t0)  # a task's last heartbeat and chunk
    BulkJob.objects.filter(pk=job.pk).update(last_progress_at=t0)
    leases.rows_claim(job_id=job.pk, token="dead", limit=20, now=t0)
    missed = timedelta(seconds=settings.BULK_HEARTBEAT_SECONDS * leases.HEARTBEATS_MISSED)
    queued: list[int] = []
    # Heartbeats missed, but the dead task's rows are leased and none is pending: nothing to do.
    assert engine.jobs_sweep(enqueue=queued.append, now=t0 + missed + timedelta(seconds=1)) == {
        "released": 0,
        "restarted": 0,
    }
    after_lease = t0 + _lease() + timedelta(seconds=1)
    assert engine.jobs_sweep(enqueue=queued.append, now=after_lease) == {
        "released": 3,
        "restarted": 1,
    }
    assert queued == [job.pk]
    # The new tasks get time to start, as long as the job had been stalled (about a lease)...
    stalled = after_lease - t0
    assert engine.jobs_sweep(enqueue=queued.append, now=after_lease + stalled * 0.9) == {
        "released": 0,
        "restarted": 0,
    }
    assert queued == [job.pk]
    # ... and if they never report (the workers are busy elsewhere), restarts back off.
    again = after_lease + stalled * 1.1
    assert engine.jobs_sweep(enqueue=queued.append, now=again)["restarted"] == 1
    assert engine.jobs_sweep(enqueue=queued.append, now=again + stalled * 1.5)["restarted"] == 0
    assert queued == [job.pk, job.pk]


def test_a_lost_queue_is_noticed_from_the_heartbeat_and_a_broker_outage_is_retried(
    bulk_graph, make_qr_job
):
    # Redis restarted empty: the job's queued tasks are gone and no task is alive. Its rows are
    # pending and due, so the first sweep after the missed heartbeats queues new tasks; while the
    # broker is still down the sweep does not fail, and the next one tries again.
    job = make_qr_job([w.user_principal_name for w in fresh_workers(bulk_graph, 2)])
    t0 = timezone.now()
    leases.job_alive_note(job_id=job.pk, now=t0)
    BulkJob.objects.filter(pk=job.pk).update(alive_until=t0)

    def broker_down(job_id: int) -> None:
        raise ConnectionError("Redis is restarting")

    later = t0 + timedelta(seconds=1)
    assert engine.jobs_sweep(enqueue=broker_down, now=later)["restarted"] == 0
    queued: list[int] = []
    assert engine.jobs_sweep(enqueue=queued.append, now=later)["restarted"] == 1
    assert queued == [job.pk]


class _TakeoverSession(requests.Session):
    """A stale task's HTTP session: right after its first re-issue delete is answered, another task
    takes its rows over (their leases ran out) and finishes them."""

    def __init__(self, takeover) -> None:
        super().__init__()
        self.takeover = takeover
        self.done = False

    def request(self, method, url, *args, **kwargs):
        response = super().request(method, url, *args, **kwargs)
        body = kwargs.get("data") or ""
        deletes = method == "DELETE" or url.endswith("/$batch") and '"DELETE"' in body
        if not self.done and deletes:
            self.done = True
            self.takeover()
        return response


def test_a_task_that_lost_its_rows_mid_reissue_writes_and_records_nothing(
    bulk_graph, make_qr_job, pin_reset_reading
):
    workers = fresh_workers(bulk_graph, 4)
    job = make_qr_job([w.user_principal_name for w in workers])
    # Task A's creates reached Graph but every answer was lost: its rows need a re-issue.
    bulk_graph.sim.config.update({"lost_response_rate": 1.0})
    engine.job_work(job_id=job.pk, budget_s=0)
    bulk_graph.sim.config.update({"lost_response_rate": 0.0})
    BulkJobRow.objects.filter(job=job).update(not_before=None)  # due now, not after a backoff
    stale_rows = leases.rows_claim(job_id=job.pk, token="A", limit=20)
    assert len(stale_rows) == 4 and all(r.write_sent_at for r in stale_rows)

    after_b: dict[str, int] = {}

    def takeover() -> None:
        # A's leases run out (it was frozen); task B takes the rows over and re-issues them.
        with time_machine.travel(timezone.now() + _lease() + timedelta(seconds=1), tick=False):
            engine.job_work(job_id=job.pk, budget_s=0)
        after_b["secrets"] = VaultSecret.objects.count()
        after_b["writes"] = _writes(bulk_graph)

    session = _TakeoverSession(takeover)
    client_a = copy.copy(get_app_client())
    client_a.session = session
    from provisioning.bulk.qr_rows import qr_chunk

    qr_chunk(job, stale_rows, "A", client_a)
    assert session.done, "task A never reached its re-issue"
    # A went on after its deletes, but sent no more writes (B's codes and PINs stand) and put
    # nothing in the vault; B's payloads and PINs are the ones Graph holds.
    assert _writes(bulk_graph) == after_b["writes"]
    assert VaultSecret.objects.count() == after_b["secrets"]
    counts = assert_qr_exactly_once(bulk_graph, job)
    assert counts["succeeded"] == 4
    assert all(r.result["issued"] == "recovered" for r in job.rows.all())


def _writes(graphsim) -> int:
    return sum(
        n
        for key, n in graphsim.stats["requests"].items()
        if key.split(" ")[0] in ("PUT", "PATCH", "DELETE", "POST") and "$batch" not in key
    )


def test_lost_answers_are_rechecked_and_reissued_through_batch(
    bulk_graph, make_qr_job, pin_reset_reading
):
    workers = fresh_workers(bulk_graph, 20)
    job = make_qr_job([w.user_principal_name for w in workers])
    bulk_graph.sim.config.update({"lost_response_rate": 1.0})
    engine.job_work(job_id=job.pk, budget_s=0)  # one chunk; every answer is lost
    bulk_graph.sim.config.update({"lost_response_rate": 0.0})
    # Due now, not after a backoff: each row drew its own jitter, and a task that wakes for the
    # first takes only the rows due by then, so how many chunks (five requests each) the recovery
    # took depended on this machine's speed. All due, they are one chunk, as after a lease ran out.
    BulkJobRow.objects.filter(job=job).update(not_before=None)
    import provisioning.graph

    provisioning.graph._singletons.clear()  # a fresh client: its own request counts
    run_job(job.pk)
    counts = assert_qr_exactly_once(bulk_graph, job)
    assert counts["succeeded"] == 20
    assert all(r.result["issued"] == "recovered" for r in job.rows.all())
    # One chunk of 20 rows: the frontline re-check, the QR re-check, delete, set and PIN reset
    # are one $batch each (the policy for the PIN length was read by the preview and is cached),
    # where a row-at-a-time re-issue sends three requests per row.
    stats = get_app_client().stats
    assert stats["requests"] == 5
    assert stats["batch_item_204"] == 20  # the deletes, inside batches


@pytest.mark.django_db(transaction=True)
def test_the_lease_keeper_renews_from_its_own_thread(portal_graph, settings):
    settings.BULK_HEARTBEAT_SECONDS = 1
    job = BulkJob.objects.create(
        kind="qr", source="csv", source_label="t.csv", status="running", preview_hash="x"
    )
    soon = timezone.now() + timedelta(seconds=1)
    BulkJobRow.objects.create(job=job, line=2, upn="a@x", action="create", status="running",
                              claim_token="T", lease_until=soon)  # fmt: skip
    renewed = threading.Event()
    with leases.LeaseKeeper(job_id=job.pk, token="T") as keeper:
        assert keeper._thread is not None and keeper._thread.is_alive()
        for _ in range(100):
            if BulkJobRow.objects.get(job=job).lease_until > soon:
                renewed.set()
                break
            renewed.wait(0.1)
    assert renewed.is_set(), "the heartbeat never renewed the lease"
    assert not keeper._thread.is_alive()
    job.refresh_from_db()
    assert job.alive_until is not None and job.alive_until > soon


def test_an_unreachable_rate_limiter_puts_rows_back_without_counting_the_attempt(
    bulk_graph, make_qr_job, settings
):
    # Redis (the shared limiter) is restarting: a real Redis client to a port nobody listens on.
    import socket

    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from provisioning.graph.ratelimit import RedisRateLimiter

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = RedisRateLimiter(
        redis.Redis(port=port, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)),
        "lanyard:test",
        rate=20.0,
    )
    settings.BULK_MAX_ATTEMPTS = 2
    job = make_qr_job([w.user_principal_name for w in fresh_workers(bulk_graph, 5)])
    client = copy.copy(get_app_client())
    client.rate_limiter = down
    for _ in range(settings.BULK_MAX_ATTEMPTS + 1):  # more outages than attempts allowed
        assert engine.job_work(job_id=job.pk, budget_s=0, client=client) == engine.LIMITER_RETRY_S
        BulkJobRow.objects.filter(job=job).update(not_before=None)
    rows = list(job.rows.all())
    assert {r.status for r in rows} == {"pending"}
    assert {r.attempts for r in rows} == {0}
    assert all("rate limiter" in r.outcome for r in rows)
    run_job(job.pk)  # Redis is back
    assert assert_qr_exactly_once(bulk_graph, job)["succeeded"] == 5


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],  # noqa: S603
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(proc.stdout)


def test_a_starting_worker_resumes_running_jobs_at_once(bulk_graph, make_qr_job):
    import os
    import socket

    host = socket.gethostname()[:30]
    upns = [w.user_principal_name for w in fresh_workers(bulk_graph, 10)]
    t0 = timezone.now()
    # A job whose only task was killed with its worker a moment ago: its rows are leased to a
    # process of this host that is gone, and its liveness record has not run out yet.
    killed = make_qr_job(upns[:3])
    leases.job_alive_note(job_id=killed.pk, now=t0)
    dead_token = f"{host}:{_dead_pid()}:abc"
    assert len(leases.rows_claim(job_id=killed.pk, token=dead_token, limit=20, now=t0)) == 3
    # A manager's job with pending rows (its tasks were lost with Redis): on its own queue.
    manager = make_qr_job(upns[3:5])
    BulkJob.objects.filter(pk=manager.pk).update(source=BulkJob.Source.MANAGER)
    # A job held by live processes: this one, and one on another machine.
    live = make_qr_job(upns[5:7])
    leases.rows_claim(job_id=live.pk, token=f"{host}:{os.getpid()}:x", limit=1, now=t0)
    leases.rows_claim(job_id=live.pk, token="elsewhere:1:y", limit=1, now=t0)
    # Not started, or done: nothing to resume.
    draft = make_qr_job(upns[7:8], confirm=False)
    previewing = make_qr_job(upns[8:9], confirm=False)
    BulkJob.objects.filter(pk=previewing.pk).update(status=BulkJob.Status.PREVIEWING)
    finished = make_qr_job(upns[9:10])
    BulkJob.objects.filter(pk=finished.pk).update(status=BulkJob.Status.FINISHED)
    assert BulkJob.objects.get(pk=draft.pk).status == BulkJob.Status.DRAFT

    queued: list[tuple[int, dict]] = []
    now = t0 + timedelta(seconds=1)
    result = engine.jobs_resume_on_worker_start(
        enqueue=lambda job_id: queued.append((job_id, engine.job_queue_options(job_id))), now=now
    )

    assert result == {"released": 3, "resumed": 2}
    assert sorted(queued) == sorted(
        [(killed.pk, {}), (manager.pk, {"queue": settings.MANAGER_JOBS_QUEUE})]
    )
    assert not BulkJobRow.objects.filter(job=killed, status=BulkJobRow.Status.RUNNING).exists()
    # The live holders keep their rows; the job with nothing due is left to its tasks.
    assert BulkJobRow.objects.filter(job=live, status=BulkJobRow.Status.RUNNING).count() == 2
    # The queued tasks have three heartbeats to start before the sweeper steps in.
    assert BulkJob.objects.get(pk=killed.pk).alive_until > now
    # The dead process's claim records nothing any more; a new task takes the rows.
    assert leases.rows_claim(job_id=killed.pk, token="new", limit=20, now=now)
    assert leases.rows_lease_renew(token=dead_token, now=now) == 0


def test_a_starting_worker_with_the_broker_down_leaves_the_job_to_the_sweeper(
    bulk_graph, make_qr_job
):
    job = make_qr_job([w.user_principal_name for w in fresh_workers(bulk_graph, 2)])

    def broker_down(job_id: int) -> None:
        raise ConnectionError("Redis is restarting")

    assert engine.jobs_resume_on_worker_start(enqueue=broker_down)["resumed"] == 0
    queued: list[int] = []
    assert engine.jobs_sweep(enqueue=queued.append)["restarted"] == 1
    assert queued == [job.pk]


class _PrioritySpy:
    """The client's real write limiter, noting what each acquire asked for."""

    def __init__(self, limiter):
        self.limiter = limiter
        self.asked: list[tuple[float, str]] = []

    def acquire(self, cost=1, timeout=None, priority="bulk"):
        self.asked.append((cost, priority))
        return self.limiter.acquire(cost, timeout=timeout, priority=priority)

    def penalize(self, retry_after):
        self.limiter.penalize(retry_after)


def test_a_lost_answers_reissue_keeps_to_the_window_without_being_paced_again(
    bulk_graph, make_qr_job
):
    # A crash's cost (three writes per row whose create answer was lost) is not paid again at the
    # bulk pace: the re-issue's writes ask the limiter as RECOVERY (bulk work's share of Graph's
    # window, no pacing), and the job's own creates as bulk work.
    import provisioning.graph
    from provisioning.graph import BULK, RECOVERY

    workers = fresh_workers(bulk_graph, 20)
    job = make_qr_job([w.user_principal_name for w in workers])
    provisioning.graph._singletons.clear()
    spy = _PrioritySpy(get_app_client().rate_limiter)
    get_app_client().rate_limiter = spy
    bulk_graph.sim.config.update({"lost_response_rate": 1.0})
    engine.job_work(job_id=job.pk, budget_s=0)  # one chunk; every answer is lost
    bulk_graph.sim.config.update({"lost_response_rate": 0.0})
    assert spy.asked == [(20, BULK)]
    run_job(job.pk)
    assert all(r.result["issued"] == "recovered" for r in job.rows.all())
    # Delete, set a new code and reset the PIN of each row, in as many chunks as it took.
    assert {priority for _, priority in spy.asked[1:]} == {RECOVERY}
    assert sum(cost for cost, _ in spy.asked[1:]) == 3 * 20
    assert assert_qr_exactly_once(bulk_graph, job)["succeeded"] == 20
