"""Previews run as a task, never inside the request (docs/architecture.md §11.2).

Checking 10,000 users Lanyard has not synced means 500 `$batch` reads, so the IT admin's request
does only what needs no Graph: the upload view reads the file's shape (csvfile.read_rows: size,
encoding, header, row count) and calls `bulk_preview_start_upload`, which creates the BulkJob in
status "previewing", seals the rows in the vault and enqueues the preview task (job id only) on
commit. A group or store source (`bulk_preview_start_source`) takes the same path with nothing
sealed: its members are read by the task. Small uploads take this path too: one path to test and
to trust, and the job page's first polls come 150 ms apart (portal/templatetags/polling.py), so a
small preview still shows as soon as the worker has made it.

The task (`bulk_preview_run`) runs the same preview as the command line (preview.bulk_job_preview)
into that job, recording users looked up / to look up after every step (the page's progress bar,
and the heartbeat the sweeper watches). The job becomes a draft exactly as an in-request preview
made it, or, when Graph cannot answer (after the client's retries), the file's rows cannot be read
or the group is gone, it ends "cancelled" with `preview_error` saying why, and no rows.

Secrets: a QR CSV may carry custom PINs, so the uploaded rows are a vault secret (kind
"bulk_upload", owner "bulkjob:<id>"), never a task argument, a log line or a plaintext column. The
sealed upload is destroyed once the preview has vaulted each custom PIN on its own row, and also
when the preview fails, when the job is discarded while previewing, or by the vault's expiry purge
(UPLOAD_TTL) if no task ever ran.

Safe to run twice: the job is filled under a row lock only while it is still previewing
(preview.PreviewSuperseded otherwise, nothing written), so a redelivered task, or one the sweeper
starts for a preview that stopped reporting progress (its worker was killed), never creates rows
twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import timedelta

from django.contrib.auth.models import AbstractUser
from django.db import transaction
from django.utils import timezone

from provisioning import vault
from provisioning.bulk import sources
from provisioning.bulk.csvfile import CsvRow
from provisioning.bulk.preview import Person, PreviewSuperseded, RowInput, bulk_job_preview
from provisioning.graph import GraphError
from provisioning.models import BulkJob, VaultSecret

logger = logging.getLogger(__name__)

# A preview task records progress after every 100 users it reads (five $batch requests), so four
# minutes without any means its worker died, even under heavy read throttling. Bulk rows use the
# liveness record instead (engine.py step 4); a preview has no rows to lease.
PREVIEW_STALL_SECONDS = 240

# A sealed upload no task has read by then is destroyed by the vault purge; its job then ends
# with "upload again" when a task finally runs.
UPLOAD_TTL = timedelta(hours=24)
UPN_COLUMN = {BulkJob.Kind.QR: "userPrincipalName", BulkJob.Kind.PHONE: "UPN"}


def _owner(job_id: int) -> str:
    return f"bulkjob:{job_id}"


def _enqueue(job_id: int) -> None:
    # Imported here: the tasks module imports this one.
    from provisioning.tasks.bulk import bulk_job_preview_run

    bulk_job_preview_run.delay(job_id)


def bulk_preview_start_upload(
    *, kind: str, rows: list[CsvRow], source_label: str, created_by: AbstractUser | None
) -> BulkJob:
    """A previewing job for the rows of an uploaded file (already read by csvfile.read_rows);
    its preview task is enqueued when the transaction commits."""
    columns = sorted({name for row in rows for name in row.values})
    sealed = json.dumps(
        {
            "columns": columns,
            "rows": [[row.line, [row.values.get(c, "") for c in columns]] for row in rows],
        },
        separators=(",", ":"),
    )
    with transaction.atomic():
        job = BulkJob.objects.create(
            kind=kind,
            source=BulkJob.Source.CSV,
            source_label=source_label[:300],
            created_by=created_by,
            status=BulkJob.Status.PREVIEWING,
            summary={"rows": len(rows)},
            preview_total=len(rows),  # until the lookups count the distinct users
            last_progress_at=timezone.now(),
        )
        job.upload_secret_id = vault.secret_store(
            kind=VaultSecret.Kind.UPLOAD,
            owner_id=_owner(job.pk),
            value=sealed,
            created_by=created_by,
            ttl=UPLOAD_TTL,
        ).pk
        job.save(update_fields=["upload_secret_id"])
        transaction.on_commit(lambda: _enqueue(job.pk))
    logger.info("Bulk job %s: %d uploaded rows queued for preview", job.pk, len(rows))
    return job


def bulk_preview_start_source(*, source: str, ref: str, created_by: AbstractUser | None) -> BulkJob:
    """A previewing QR job for every member of a group or store (read by the task)."""
    if source not in (BulkJob.Source.GROUP, BulkJob.Source.STORE):
        raise ValueError(f"not a member source: {source!r}")
    label = f"{'Group' if source == BulkJob.Source.GROUP else 'Store'} {ref}"
    with transaction.atomic():
        job = BulkJob.objects.create(
            kind=BulkJob.Kind.QR,
            source=source,
            source_ref=ref,
            source_label=label,
            created_by=created_by,
            status=BulkJob.Status.PREVIEWING,
            last_progress_at=timezone.now(),
        )
        transaction.on_commit(lambda: _enqueue(job.pk))
    return job


class _Unusable(Exception):
    """The preview cannot be made; the message is for the IT admin."""


def _upload_inputs(job: BulkJob) -> list[RowInput]:
    try:
        sealed = vault.secret_read(
            secret_id=job.upload_secret_id or 0,
            kind=VaultSecret.Kind.UPLOAD,
            owner_id=_owner(job.pk),
        )
    except vault.SecretUnavailable as exc:
        raise _Unusable(
            "The uploaded file is no longer held (it expired before it could be checked): "
            "upload it again."
        ) from exc
    data = json.loads(sealed)
    key = UPN_COLUMN[job.kind]
    inputs = []
    for line, cells in data["rows"]:
        values = dict(zip(data["columns"], cells, strict=True))
        inputs.append(RowInput(line, values.get(key, ""), values))
    return inputs


def _source_inputs(job: BulkJob) -> tuple[str, list[RowInput], dict[str, Person]]:
    try:
        if job.source == BulkJob.Source.GROUP:
            return sources.group_members(group_id=job.source_ref)
        return sources.store_members(au_id=job.source_ref)
    except sources.SourceProblem as exc:
        raise _Unusable(str(exc)) from exc


def _progress_recorder(job_id: int) -> Callable[[int, int], None]:
    def record(done: int, total: int) -> None:
        # Also the heartbeat the sweeper watches (previews_sweep).
        BulkJob.objects.filter(pk=job_id, status=BulkJob.Status.PREVIEWING).update(
            preview_done=done, preview_total=total, last_progress_at=timezone.now()
        )

    return record


def _upload_destroy(job: BulkJob, *, reason: str) -> None:
    if job.upload_secret_id:
        vault.secret_destroy(secret_id=job.upload_secret_id, reason=reason)


def _failed(job: BulkJob, message: str) -> None:
    ended = BulkJob.objects.filter(pk=job.pk, status=BulkJob.Status.PREVIEWING).update(
        status=BulkJob.Status.CANCELLED, preview_error=message, finished_at=timezone.now()
    )
    _upload_destroy(job, reason="preview failed")
    if ended:
        logger.warning("Bulk job %s: preview failed: %s", job.pk, message)


def bulk_preview_run(*, job_id: int) -> None:
    """The preview task's work: check the job's rows against Entra and make it a draft (or end
    it with the reason it could not be previewed). Returns early if it is not previewing."""
    job = BulkJob.objects.select_related("created_by").filter(pk=job_id).first()
    if job is None:
        return
    if job.status != BulkJob.Status.PREVIEWING:
        _upload_destroy(job, reason="preview done")  # a discarded job's, if still held
        return
    BulkJob.objects.filter(pk=job.pk).update(last_progress_at=timezone.now())
    try:
        if job.source == BulkJob.Source.CSV:
            label, people = job.source_label, None
            inputs = _upload_inputs(job)
        else:
            label, inputs, people = _source_inputs(job)
            _progress_recorder(job.pk)(len(people), len(people))  # read with the members
        bulk_job_preview(
            kind=job.kind,
            source=job.source,
            source_ref=job.source_ref,
            source_label=label,
            inputs=inputs,
            people=people,
            created_by=job.created_by,
            job=job,
            progress=_progress_recorder(job.pk),
        )
    except PreviewSuperseded:
        logger.info("Bulk job %s: already previewed or discarded", job.pk)
    except _Unusable as exc:
        _failed(job, str(exc))
        return
    except GraphError as exc:
        _failed(job, f"Lanyard could not check the users in Entra: {exc} Try again.")
        return
    except Exception:
        # A bug, or the task's time limit: say so on the page rather than retry forever.
        _failed(job, "The preview stopped on an unexpected error (in the worker's log). Try again.")
        raise
    # The custom PINs are in the vault, each on its row: the sealed upload is no longer needed.
    _upload_destroy(job, reason="previewed")


def previews_sweep(*, enqueue: Callable[[int], None] | None = None) -> int:
    """Start a new task for every preview that has reported no progress for
    PREVIEW_STALL_SECONDS (its worker died); returns how many. A conditional update claims each one,
    so two sweepers never both restart it."""
    now = timezone.now()
    stall = now - timedelta(seconds=PREVIEW_STALL_SECONDS)
    restarted = 0
    stalled = BulkJob.objects.filter(status=BulkJob.Status.PREVIEWING, last_progress_at__lt=stall)
    for job_id, seen in stalled.values_list("pk", "last_progress_at"):
        claimed = BulkJob.objects.filter(
            pk=job_id, status=BulkJob.Status.PREVIEWING, last_progress_at=seen
        ).update(last_progress_at=now)
        if claimed:
            (enqueue or _enqueue)(job_id)
            restarted += 1
    if restarted:
        logger.info("Bulk sweep: %d stalled previews restarted", restarted)
    return restarted
