"""The web upload's preview runs as a task with progress, never inside the request (ISSUE 12
item 1): the request stores the rows sealed and enqueues the job id; the task checks the rows
against Entra, reporting progress; the page polls until the preview is there. The sealed upload
(custom PINs) never reaches a plaintext column, a task message or a log, and is destroyed once
previewed, when the preview fails, when the job is discarded, or when it expires."""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.db.models import Value
from django.db.models.functions import Concat
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from kombu.utils.json import dumps as kombu_dumps

from provisioning import vault
from provisioning.bulk import preview, previewing
from provisioning.models import BulkJob, DirectoryUser, VaultSecret
from tests.fixtures_bulk import fresh_workers, qr_csv
from tests.fixtures_portal import sign_in
from tests.test_leaks import _db_dump

HTMX = {"HTTP_HX_REQUEST": "true"}
PINS = ["58203917", "69314028", "70425139"]
# The task's progress writes, as the database receives them.
PROGRESS_UPDATE = re.compile(r'"preview_done" = (\d+), "preview_total" = (\d+)')


@pytest.fixture
def charlie_client(client, charlie, bulk_graph, directory):
    sign_in(client, charlie)
    return client


@pytest.fixture
def task_messages(monkeypatch) -> list[str]:
    """Every message the preview task is sent, as the broker would carry it."""
    from provisioning.tasks import bulk_job_preview_run

    sent: list[str] = []
    original = bulk_job_preview_run.apply_async

    def recording(args=None, kwargs=None, **options):
        sent.append(kombu_dumps({"args": args, "kwargs": kwargs}))
        return original(args=args, kwargs=kwargs, **options)

    monkeypatch.setattr(bulk_job_preview_run, "apply_async", recording)
    return sent


def _not_cached(workers) -> None:
    """The directory cache holds these workers under an old UPN (renamed since the last sync):
    the preview must read them from Graph, as it does users Lanyard has never synced."""
    DirectoryUser.objects.filter(id__in=[w.id for w in workers]).update(
        user_principal_name=Concat(Value("renamed."), "user_principal_name")
    )


def _csv_with_pins(upns: list[str]) -> bytes:
    lines = ["userPrincipalName,startDateTime,expireDateTime,pin"]
    lines += [f"{upn},,,{PINS[i]}" if i < len(PINS) else f"{upn},,," for i, upn in enumerate(upns)]
    return ("\r\n".join(lines) + "\r\n").encode()


def _upload(client, data: bytes):
    return client.post(
        "/admin/bulk/new", {"kind": "qr", "file": SimpleUploadedFile("stores.csv", data)}
    )


def test_the_upload_returns_at_once_and_a_task_previews_it_with_progress(
    charlie_client, bulk_graph, run_tasks, task_messages, caplog
):
    caplog.set_level(logging.DEBUG)
    workers = fresh_workers(bulk_graph, 130)
    assert len(workers) == 130
    _not_cached(workers[:120])
    upns = [w.user_principal_name for w in workers]
    graph_calls = sum(bulk_graph.stats["requests"].values())

    # The request: the file's shape only; no Graph call, no rows; the job id is enqueued on
    # commit (not run here: the default suite has no worker).
    response = _upload(charlie_client, _csv_with_pins(upns))
    assert response.status_code == 302
    job = BulkJob.objects.get()
    assert job.status == "previewing" and not job.rows.exists()
    assert sum(bulk_graph.stats["requests"].values()) == graph_calls
    page = charlie_client.get(response["Location"])
    assert b"Checking 130 rows against Entra" in page.content
    assert b"Run this job" not in page.content
    poll = charlie_client.get(f"/admin/bulk/{job.pk}/progress?stage=preview", **HTMX)
    assert poll.status_code == 200
    assert b'hx-trigger="load delay:150ms' in poll.content  # the adaptive poll, young job
    assert b"users looked up" in poll.content

    # The sealed upload is the only place the PINs are, encrypted.
    sealed = VaultSecret.objects.get(pk=job.upload_secret_id)
    assert sealed.kind == "bulk_upload" and sealed.owner_id == f"bulkjob:{job.pk}"
    dump = _db_dump()
    assert all(pin.encode() not in dump for pin in PINS)

    # The task (as the worker runs it), recording progress on the job as it reads 120 users
    # from Graph: after the cache (10 known), then per 100 users read: 110, 130.
    from provisioning.tasks import bulk_job_preview_run

    with CaptureQueriesContext(connection) as queries, run_tasks():
        bulk_job_preview_run.delay(job.pk)
    steps = [
        (int(done), int(total))
        for query in queries.captured_queries
        for done, total in PROGRESS_UPDATE.findall(query["sql"])
    ]
    assert steps == [(10, 130), (110, 130), (130, 130)]

    job.refresh_from_db()
    assert job.status == "draft" and job.preview_hash
    assert job.summary["create"] == 130 and job.rows.count() == 130
    done = charlie_client.get(f"/admin/bulk/{job.pk}/progress?stage=preview", **HTMX)
    assert done.headers.get("HX-Refresh") == "true"  # the page reloads into the preview
    page = charlie_client.get(f"/admin/bulk/{job.pk}/")
    assert b"130</strong> to create" in page.content and b"Run this job" in page.content

    # The upload is gone; the custom PINs are each in the vault, bound to their row's worker.
    sealed.refresh_from_db()
    assert sealed.destroyed_at is not None and bytes(sealed.ciphertext) == b""
    held = {
        vault.secret_read(secret_id=row.input_secret_id, kind="pin", owner_id=row.user_id)
        for row in job.rows.exclude(input_secret_id=None)
    }
    assert held == set(PINS)
    # Never in a column, a task message or a log line.
    dump = _db_dump()
    for pin in PINS:
        assert pin.encode() not in dump
        assert all(pin not in message for message in task_messages)
        assert pin not in caplog.text
    # The task's only argument is the job's id.
    assert [json.loads(message) for message in task_messages] == [{"args": [job.pk], "kwargs": {}}]


def test_a_small_upload_takes_the_same_path(charlie_client, bulk_graph, run_tasks):
    upns = [w.user_principal_name for w in fresh_workers(bulk_graph, 2)]
    with run_tasks():
        response = _upload(charlie_client, qr_csv(upns))
    job = BulkJob.objects.get()
    assert job.status == "draft" and job.preview_done == job.preview_total == 2
    page = charlie_client.get(response["Location"])
    assert b"2</strong> to create" in page.content


def test_a_graph_failure_ends_the_preview_with_a_clear_message(
    charlie_client, bulk_graph, run_tasks
):
    workers = fresh_workers(bulk_graph, 3)
    _not_cached(workers)
    bulk_graph.sim.config.error_5xx_rate = 1.0
    bulk_graph.sim.config.error_503_retry_after_s = 0.01
    with run_tasks():
        response = _upload(charlie_client, _csv_with_pins([w.user_principal_name for w in workers]))
    job = BulkJob.objects.get()
    assert job.status == "cancelled" and job.finished_at and not job.rows.exists()
    assert "could not check the users in Entra" in job.preview_error
    sealed = VaultSecret.objects.get(pk=job.upload_secret_id)
    assert sealed.destroyed_at is not None and bytes(sealed.ciphertext) == b""
    page = charlie_client.get(response["Location"]).content.decode()
    assert "The preview failed." in page and "Upload again" in page
    # The IT admin can upload again once Graph answers.
    bulk_graph.sim.config.error_5xx_rate = 0.0
    with run_tasks():
        _upload(charlie_client, _csv_with_pins([w.user_principal_name for w in workers]))
    assert BulkJob.objects.order_by("-pk").first().status == "draft"


def test_discarding_a_previewing_job_destroys_the_upload(charlie_client, bulk_graph, run_tasks):
    upns = [w.user_principal_name for w in fresh_workers(bulk_graph, 3)]
    _upload(charlie_client, _csv_with_pins(upns))
    job = BulkJob.objects.get()
    refused = charlie_client.post(f"/admin/bulk/{job.pk}/confirm", {"preview_hash": "0" * 64},
                                  follow=True)  # fmt: skip
    assert b"The preview is not ready yet" in refused.content
    assert job.rows.count() == 0 and BulkJob.objects.get().status == "previewing"
    charlie_client.post(f"/admin/bulk/{job.pk}/cancel")
    job.refresh_from_db()
    assert job.status == "cancelled" and job.finished_at
    assert VaultSecret.objects.get(pk=job.upload_secret_id).destroyed_at is not None
    # Its task, if it still runs, writes nothing.
    from provisioning.tasks import bulk_job_preview_run

    with run_tasks():
        bulk_job_preview_run.delay(job.pk)
    assert not job.rows.exists() and BulkJob.objects.get().status == "cancelled"


def test_an_upload_no_task_read_expires_with_the_vault(charlie_client, bulk_graph, run_tasks):
    upns = [w.user_principal_name for w in fresh_workers(bulk_graph, 2)]
    _upload(charlie_client, _csv_with_pins(upns))
    job = BulkJob.objects.get()
    with time_machine.travel(timezone.now() + previewing.UPLOAD_TTL + timedelta(minutes=1)):
        assert vault.secrets_purge_expired() == 1
        from provisioning.tasks import bulk_job_preview_run

        with run_tasks():
            bulk_job_preview_run.delay(job.pk)
    job.refresh_from_db()
    assert job.status == "cancelled" and "upload it again" in job.preview_error
    assert not job.rows.exists()


def test_a_stalled_preview_is_restarted_once_and_never_makes_rows_twice(
    charlie_client, bulk_graph, run_tasks
):
    upns = [w.user_principal_name for w in fresh_workers(bulk_graph, 4)]
    _upload(charlie_client, _csv_with_pins(upns))  # its task never ran: a worker died
    job = BulkJob.objects.get()
    restarted: list[int] = []
    assert previewing.previews_sweep(enqueue=restarted.append) == 0  # not stalled yet
    later = timezone.now() + timedelta(seconds=previewing.PREVIEW_STALL_SECONDS + 1)
    with time_machine.travel(later):
        assert previewing.previews_sweep(enqueue=restarted.append) == 1
        assert previewing.previews_sweep(enqueue=restarted.append) == 0  # claimed: not twice
    assert restarted == [job.pk]
    from provisioning.tasks import bulk_job_preview_run

    with run_tasks():
        bulk_job_preview_run.delay(job.pk)
        bulk_job_preview_run.delay(job.pk)  # the original task, redelivered late
    job.refresh_from_db()
    assert job.status == "draft" and job.rows.count() == 4
    assert VaultSecret.objects.filter(kind="pin", destroyed_at=None).count() == 3


def test_the_progress_callback_counts_users_in_steps(bulk_graph):
    workers = fresh_workers(bulk_graph, 105)
    _not_cached(workers[:101])
    steps: list[tuple[int, int]] = []
    found = preview.people_lookup(
        [w.user_principal_name for w in workers] + ["not a upn"],
        progress=lambda done, total: steps.append((done, total)),
    )
    assert len(found) == 105
    assert steps == [(4, 105), (104, 105), (105, 105)]


def test_only_it_admins_see_a_previewing_job(client, alice, charlie, bulk_graph, directory):
    sign_in(client, charlie)
    _upload(client, qr_csv([fresh_workers(bulk_graph, 1)[0].user_principal_name]))
    job = BulkJob.objects.get()
    sign_in(client, alice)
    assert client.get(f"/admin/bulk/{job.pk}/").status_code == 403
    assert client.get(f"/admin/bulk/{job.pk}/progress", **HTMX).status_code == 403
