"""`bulk_import` without --dry-run: the job starts writing while the rest of the file is checked
(provisioning/bulk/streaming.py), and ends exactly as a preview confirmed from the upload page."""

from __future__ import annotations

import copy
import csv
import io

import pytest
from django.core.cache import cache

from graphsim.app import Stats
from graphsim.model import Group
from provisioning.bulk import csvfile, engine, jobs, preview, streaming
from provisioning.models import AuditEvent, BulkJob, BulkJobRow, DirectoryUser
from tests.fixtures_bulk import assert_qr_exactly_once, fresh_workers, run_job

DOMAIN = "lanyard-demo.onmicrosoft.com"


def _inputs(data: bytes) -> list[preview.RowInput]:
    rows = csvfile.read_rows(data, kind="qr")
    return [preview.RowInput(r.line, r.values["userPrincipalName"], r.values) for r in rows]


@pytest.fixture
def mixed_file(bulk_graph) -> bytes:
    """Duplicates (merged, and conflicting, far apart in the file), invalid rows, a guest, a
    disabled account, a user the QR policy excludes, unknown UPNs, and workers whose UPNs the
    directory cache does not know (resolved through Graph)."""
    tenant = bulk_graph.tenant
    workers = fresh_workers(bulk_graph, 9)
    cold, excluded = workers[:3], workers[3]
    DirectoryUser.objects.filter(pk__in=[w.id for w in cold]).update(user_principal_name="x@y.z")
    tenant.groups["g-out"] = Group(id="g-out", display_name="No QR", member_ids=[excluded.id])
    tenant.qr_policy.exclude_targets = [{"targetType": "group", "id": "g-out"}]
    cache.delete("lanyard:qr-policy")
    w = [x.user_principal_name for x in workers]
    lines = [
        "userPrincipalName,startDateTime,expireDateTime,pin",
        f"{w[0]},,,",
        f"{w[4]},,2027-01-01,",  # conflicts with the last line
        f"{w[1]},,,",
        f"{w[3]},,,",  # excluded by the policy
        f"nobody.here@{DOMAIN},,,",
        f"{w[5]},not-a-date,,",
        f"sam.guest_fabrikam.com#EXT#@{DOMAIN},,,",
        f"camille.jones@{DOMAIN},,,",
        f"{w[0].upper()},,,",  # the same as line 2: merged
        f"{w[2]},,,",
        f"{w[6]},,,",
        "not a upn,,,",
        f"{w[7]},,,",
        f"{w[8]},,,",
        f"{w[4]},,2027-02-01,",
    ]
    return ("\r\n".join(lines) + "\r\n").encode()


def _outcomes(job: BulkJob) -> list[tuple]:
    """Each row as planned and as it ended (dates a confirmation fills in from "now" aside)."""
    return [
        (r.line, r.upn, r.user_id, r.action, r.reason, r.warning, r.status, r.outcome,
         bool(r.params.get("expire")), r.input_secret_id is not None)
        for r in job.rows.order_by("line")
    ]  # fmt: skip


def _results(job: BulkJob) -> list[dict]:
    """The results CSV without Graph's request-ids and the filled-in expiry (both vary)."""
    text = jobs.bulk_job_results_csv(job=job).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    for row in rows:
        row["requestId"] = ""
        row["expireDateTime"] = bool(row["expireDateTime"])
    return rows


def _audit(job: BulkJob) -> list[tuple]:
    events = AuditEvent.objects.filter(detail__contains=f"Bulk job {job.pk}")
    return sorted(
        (e.action, e.outcome, e.target_user_id, e.detail.split(":", 1)[-1]) for e in events
    )


def test_a_streamed_job_ends_as_a_confirmed_preview(bulk_graph, mixed_file):
    pristine = copy.deepcopy(bulk_graph.sim.tenant)
    inputs = _inputs(mixed_file)
    confirmed = preview.bulk_job_preview(kind="qr", source="csv", source_label="f.csv",
                                         inputs=inputs, created_by=None)  # fmt: skip
    confirmed = jobs.bulk_job_confirm(job=confirmed, previewed_hash=confirmed.preview_hash,
                                      confirmed_by=None)  # fmt: skip
    run_job(confirmed.pk)
    # The same tenant again, before anything was written.
    bulk_graph.sim.tenant = pristine
    bulk_graph.sim.stats = Stats()
    chunks: list[int] = []
    streamed = streaming.bulk_job_stream(
        kind="qr", source_label="f.csv", inputs=inputs, created_by=None,
        first_chunk_rows=2, chunk_rows=3, start_tasks=lambda job_id: None,
        on_chunk=lambda job, rows: chunks.append(len(rows)),
    )  # fmt: skip
    run_job(streamed.pk)
    streamed.refresh_from_db()
    confirmed.refresh_from_db()

    assert len(chunks) > 3  # the file really went in several chunks
    assert streamed.preview_hash == confirmed.preview_hash
    assert streamed.summary == confirmed.summary
    assert streamed.policy == confirmed.policy
    assert streamed.status == confirmed.status == BulkJob.Status.FINISHED
    assert _outcomes(streamed) == _outcomes(confirmed)
    outcomes = {r.line: (r.action, r.status) for r in streamed.rows.all()}
    assert outcomes[10] == ("skip", "skipped")  # merged with line 2 (another chunk's size apart)
    assert outcomes[3] == outcomes[16] == ("invalid", "failed")  # conflicting, 13 lines apart
    assert outcomes[5] == ("skip", "skipped")  # the policy excludes this user
    assert outcomes[4] == outcomes[11] == ("create", "succeeded")  # resolved through Graph
    # Exactly once: one method for each succeeded row's worker, none for anyone else.
    created = bulk_graph.stats["qr_method_creations"]
    succeeded = set(streamed.rows.filter(status="succeeded").values_list("user_id", flat=True))
    assert created == dict.fromkeys(succeeded, 1)
    assert _results(streamed) == _results(confirmed)
    assert _audit(streamed) == _audit(confirmed)
    assert [e.action for e in AuditEvent.objects.filter(action__startswith="bulk_job_")].count(
        "bulk_job_finished"
    ) == 2


def test_a_job_is_never_finished_while_rows_are_still_added(bulk_graph):
    workers = fresh_workers(bulk_graph, 7)
    data = "userPrincipalName\r\n" + "".join(f"{w.user_principal_name}\r\n" for w in workers)
    seen: list[tuple] = []

    def work_what_is_there(job: BulkJob, rows: list[BulkJobRow]) -> None:
        # Every row added so far is written, then the tasks and the sweeper look at the job.
        while BulkJobRow.objects.filter(job=job, status="pending").exists():
            engine.job_work(job_id=job.pk, budget_s=0)
        waiting = engine.job_work(job_id=job.pk, budget_s=0)
        engine.jobs_sweep(enqueue=lambda job_id: None)
        finished = engine.job_finish_if_done(job_id=job.pk)
        job.refresh_from_db()
        seen.append((job.status, job.rows_complete, finished, waiting, job.rows.count()))

    job = streaming.bulk_job_stream(
        kind="qr", source_label="f.csv", inputs=_inputs(data.encode()), created_by=None,
        first_chunk_rows=2, chunk_rows=2, start_tasks=lambda job_id: None,
        on_chunk=work_what_is_there,
    )  # fmt: skip
    assert [count for *_, count in seen] == [2, 4, 6, 7]
    # While rows were being added: running, and a task with nothing to claim keeps waiting for
    # them (a number of seconds, not None, which would end it).
    assert all(
        status == "running" and not complete and not finished and waiting is not None
        for status, complete, finished, waiting, _ in seen
    )
    assert job.rows_complete and job.status == BulkJob.Status.FINISHED
    assert job.summary == {"rows": 7, "create": 7, "update": 0, "skip": 0, "invalid": 0}
    assert_qr_exactly_once(bulk_graph, job)


def test_the_sweeper_completes_a_job_whose_streaming_process_died(bulk_graph, settings):
    from datetime import timedelta

    from django.utils import timezone

    job = BulkJob.objects.create(kind="qr", source="csv", source_label="f.csv",
                                 status=BulkJob.Status.RUNNING, rows_complete=False,
                                 last_progress_at=timezone.now())  # fmt: skip
    engine.jobs_sweep(enqueue=lambda job_id: None)
    job.refresh_from_db()
    assert job.status == BulkJob.Status.RUNNING and not job.rows_complete
    BulkJob.objects.filter(pk=job.pk).update(
        last_progress_at=timezone.now() - timedelta(seconds=engine.ADDER_GONE_SECONDS + 1)
    )
    engine.jobs_sweep(enqueue=lambda job_id: None)
    job.refresh_from_db()
    assert job.rows_complete and job.status == BulkJob.Status.FINISHED


def test_a_failure_while_planning_cancels_the_rows_not_started(bulk_graph, monkeypatch):
    from provisioning.graph import get_app_client

    get_app_client().tokens.get_token()  # a token first: only Graph fails below
    monkeypatch.setattr(get_app_client(), "_sleep", lambda seconds: None)
    workers = fresh_workers(bulk_graph, 6)
    DirectoryUser.objects.filter(pk__in=[w.id for w in workers[2:]]).update(
        user_principal_name="x@y.z"
    )  # the later rows need Graph
    data = "userPrincipalName\r\n" + "".join(f"{w.user_principal_name}\r\n" for w in workers)

    def graph_fails(job: BulkJob, rows: list[BulkJobRow]) -> None:
        bulk_graph.sim.config.error_5xx_rate = 1.0

    from provisioning.graph import GraphError

    with pytest.raises(GraphError):
        streaming.bulk_job_stream(
            kind="qr", source_label="f.csv", inputs=_inputs(data.encode()), created_by=None,
            first_chunk_rows=2, chunk_rows=4, start_tasks=lambda job_id: None,
            on_chunk=graph_fails,
        )  # fmt: skip
    job = BulkJob.objects.get()
    assert job.rows_complete and job.status == BulkJob.Status.CANCELLED
    assert sorted(job.rows.values_list("status", flat=True)) == ["cancelled", "cancelled"]


def _cold_upns(bulk_graph, n: int) -> list[str]:
    """`n` workers whose UPNs the directory cache does not know, and three nobody has."""
    workers = fresh_workers(bulk_graph, n)
    DirectoryUser.objects.filter(pk__in=[w.id for w in workers]).update(user_principal_name="x@y.z")
    return [w.user_principal_name for w in workers] + [f"nobody{i}@{DOMAIN}" for i in range(3)]


def test_concurrent_lookups_find_what_sequential_ones_find(bulk_graph, monkeypatch):
    import threading

    from provisioning.graph import GraphClient, get_app_client

    upns = _cold_upns(bulk_graph, 65)  # four $batch reads
    client = get_app_client()
    threads: set[str] = set()
    batch = GraphClient.batch

    def noting_the_thread(self, requests_):  # calls through: only notes who sends
        threads.add(threading.current_thread().name)
        return batch(self, requests_)

    monkeypatch.setattr(GraphClient, "batch", noting_the_thread)
    concurrent = preview.people_lookup(upns, client=client)
    assert all(name.startswith("lookup") for name in threads) and len(threads) > 1
    monkeypatch.setattr(preview, "LOOKUP_CONCURRENCY", 1)
    sequential = preview.people_lookup(upns, client=client)
    assert concurrent == sequential
    assert sorted(concurrent) == sorted(u.lower() for u in upns[:65])


def test_a_lookup_graph_cannot_answer_raises(bulk_graph, monkeypatch):
    from provisioning.graph import GraphError, get_app_client

    upns = _cold_upns(bulk_graph, 45)
    client = get_app_client()
    client.tokens.get_token()  # a token first: only Graph fails below
    monkeypatch.setattr(client, "_sleep", lambda seconds: None)
    bulk_graph.sim.config.error_5xx_rate = 1.0
    with pytest.raises(GraphError) as error:
        preview.people_lookup(upns, client=client)
    assert not error.value.permanent


def test_following_a_job_notices_its_end_without_the_poll_interval(bulk_graph, make_qr_job,
                                                                   settings):  # fmt: skip
    settings.BULK_CHUNK_ROWS = 1
    job = make_qr_job([w.user_principal_name for w in fresh_workers(bulk_graph, 6)])
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:  # one row is written while the command waits
        sleeps.append(seconds)
        now[0] += seconds
        engine.job_work(job_id=job.pk, budget_s=0)

    lines: list[str] = []
    counts = engine.job_follow(job=job, poll_seconds=1.0, report=lines.append,
                               check_seconds=0.25, sleep=sleep, clock=lambda: now[0])  # fmt: skip
    assert counts["succeeded"] == 6
    assert sleeps == [0.25] * 6  # ended 0.25 s after the last row, not at the next 1 s poll
    # Progress lines at most once per poll interval, and the last one at the end.
    assert [line.split(" —")[0].strip() for line in lines] == ["0% 0/6", "67% 4/6", "100% 6/6"]


def test_chunks_grow_and_keep_each_users_rows_together():
    upns = [f"w{i}@{DOMAIN}" for i in range(60)]
    inputs = [preview.RowInput(i + 2, upn) for i, upn in enumerate(upns)]
    inputs.append(preview.RowInput(62, f" W3@{DOMAIN.upper()} "))  # line 5's user again
    inputs.append(preview.RowInput(63, ""))
    chunks = list(streaming.input_chunks(inputs, first=4, size=30))
    assert [len(c) for c in chunks] == [5, 20, 30, 7]
    assert [r.line for r in chunks[0]] == [2, 3, 4, 5, 62]
    assert sorted(r.line for c in chunks for r in c) == [r.line for r in inputs]
