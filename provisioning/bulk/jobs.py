"""Services on bulk jobs after the preview: confirm, cancel, re-run failed rows, results CSV.
Selectors for the admin pages are at the end, with the job's printable rows (badges/ prints
their badges and PIN slips)."""

from __future__ import annotations

import csv
import io
import logging
from datetime import timedelta

from django.contrib.auth.models import AbstractUser
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from provisioning import audit, vault
from provisioning.bulk import engine
from provisioning.bulk.preview import current_policy, preview_hash
from provisioning.csv_cells import neutralise
from provisioning.graph.models import format_datetime, parse_datetime
from provisioning.models import BulkJob, BulkJobRow, VaultSecret

logger = logging.getLogger(__name__)

Row = BulkJobRow


class JobRefused(ValueError):
    """The request cannot be carried out; the message says why in plain words."""


def bulk_job_confirm(
    *, job: BulkJob, previewed_hash: str, confirmed_by: AbstractUser | None
) -> BulkJob:
    """Start a previewed job, only if it is exactly what was previewed under the same policy."""
    with transaction.atomic():
        job = BulkJob.objects.select_for_update().get(pk=job.pk)
        if job.status == BulkJob.Status.PREVIEWING:
            raise JobRefused("The preview is not ready yet: wait for it, then confirm.")
        if job.status != BulkJob.Status.DRAFT:
            raise JobRefused("This job has already been confirmed or cancelled.")
        rows = list(job.rows.all())
        if previewed_hash != job.preview_hash or previewed_hash != preview_hash(
            kind=job.kind, policy=job.policy, rows=rows
        ):
            raise JobRefused("The rows differ from the preview you confirmed: preview again.")
        if current_policy().as_dict() != job.policy:
            raise JobRefused(
                "The tenant's QR policy (PIN length or QR lifetime) changed since the preview: "
                "preview again."
            )
        now = timezone.now().replace(microsecond=0)
        pending = [r for r in rows if r.status == Row.Status.PENDING]
        if job.kind == BulkJob.Kind.QR:
            rows_dates_fix(job=job, rows=pending, now=now)
            Row.objects.bulk_update(pending, ["params"], batch_size=1000)
        job.status = BulkJob.Status.RUNNING if pending else BulkJob.Status.FINISHED
        job.confirmed_at = now
        job.finished_at = None if pending else now
        job.save(update_fields=["status", "confirmed_at", "finished_at"])
        bulk_job_confirm_audit(job=job, confirmed_by=confirmed_by, pending=len(pending))
        if pending:
            transaction.on_commit(lambda: engine.job_start_tasks(job.pk))
    return job


def rows_dates_fix(*, job: BulkJob, rows: list[BulkJobRow], now) -> None:
    """A QR job's confirmed rows: missing dates become real ones now, so every attempt of a row
    sends the same values (the engine recognises its own method by them). Changes `params` in
    place; the caller saves them."""
    # The preview refused rows without an expiry when the lifetime was unknown (None).
    lifetime = timedelta(days=job.policy.get("lifetime_days") or 0)
    for row in rows:
        start = row.params.get("start") or format_datetime(now)
        if not row.params.get("expire"):
            if not lifetime:
                raise JobRefused(
                    "The tenant's QR lifetime is unknown (its QR policy could not be read): "
                    "preview again."
                )
            begin = parse_datetime(start)
            row.params["expire"] = format_datetime(begin + lifetime)
        row.params["start"] = start


def bulk_job_confirm_audit(*, job: BulkJob, confirmed_by: AbstractUser | None, pending: int):
    """The audit event of a confirmation (also written by a streamed job, bulk/streaming.py)."""
    audit.record(
        actor=confirmed_by,
        action="bulk_job_confirm",
        outcome="succeeded",
        target_label=job.source_label,
        detail=f"Bulk job {job.pk} ({job.kind}): {pending} rows to do",
    )


def bulk_job_cancel(*, job: BulkJob, cancelled_by: AbstractUser | None) -> int:
    """Stop a job: rows not started are cancelled; rows being worked finish their step."""
    with transaction.atomic():
        active = [BulkJob.Status.PREVIEWING, BulkJob.Status.DRAFT, BulkJob.Status.RUNNING]
        updated = BulkJob.objects.filter(pk=job.pk, status__in=active).update(
            status=BulkJob.Status.CANCELLED
        )
        if not updated:
            raise JobRefused("This job is not running.")
        # Discarded while previewing: the sealed upload goes now (its task, if it runs, finds
        # the job cancelled and writes nothing).
        upload = BulkJob.objects.filter(pk=job.pk).values_list("upload_secret_id", flat=True)[0]
        if upload:
            vault.secret_destroy(secret_id=upload, reason="cancelled")
        # A row whose write may have reached Graph is not cancelled: it is still resolved.
        cancelling = Row.objects.filter(
            job=job, status=Row.Status.PENDING, write_sent_at__isnull=True
        )
        for secret_id in cancelling.exclude(input_secret_id=None).values_list(
            "input_secret_id", flat=True
        ):
            vault.secret_destroy(secret_id=secret_id, reason="cancelled")
        count = cancelling.update(status=Row.Status.CANCELLED, outcome="Cancelled before it ran.",
                 finished_at=timezone.now())  # fmt: skip
        audit.record(actor=cancelled_by, action="bulk_job_cancel", outcome="succeeded",
                     target_label=job.source_label, detail=f"Bulk job {job.pk}: {count} rows "
                     "cancelled")  # fmt: skip
    engine.job_finish_if_done(job_id=job.pk)
    return count


def bulk_job_rerun_failed(*, job: BulkJob, requested_by: AbstractUser | None) -> int:
    """Put the failed rows (not the invalid ones) back to work; Entra's state is checked first."""
    with transaction.atomic():
        job = BulkJob.objects.select_for_update().get(pk=job.pk)
        if job.status not in (BulkJob.Status.FINISHED, BulkJob.Status.CANCELLED):
            raise JobRefused("Wait for the job to finish before re-running its failed rows.")
        count = (
            Row.objects.filter(job=job, status=Row.Status.FAILED)
            .exclude(action=Row.Action.INVALID)
            .update(status=Row.Status.PENDING, attempts=0, not_before=None, finished_at=None,
                    outcome="Re-run requested.")
        )  # fmt: skip
        if not count:
            raise JobRefused("There are no failed rows to re-run.")
        job.status = BulkJob.Status.RUNNING
        job.finished_at = None
        job.save(update_fields=["status", "finished_at"])
        audit.record(actor=requested_by, action="bulk_job_rerun", outcome="succeeded",
                     target_label=job.source_label, detail=f"Bulk job {job.pk}: {count} failed "
                     "rows re-run")  # fmt: skip
        transaction.on_commit(lambda: engine.job_start_tasks(job.pk))
    return count


# -- results -------------------------------------------------------------------------------


RESULT_COLUMNS = (
    "line", "userPrincipalName", "displayName", "plan", "result", "reason", "requestId",
    "expireDateTime", "smsSignInState",
)  # fmt: skip


def bulk_job_results_csv(*, job: BulkJob) -> bytes:
    """Every row's result, without secrets, cells neutralised; UTF-8 with BOM for Excel.

    Every cell is quoted, so a `;` or `,` inside a value never splits it, whichever separator the
    reader's locale uses."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_ALL)
    writer.writerow(RESULT_COLUMNS)
    for row in job.rows.order_by("line").iterator(chunk_size=2000):
        writer.writerow(
            neutralise(v)
            for v in (
                row.line,
                row.upn,
                row.display_name,
                row.action,
                row.status,
                row.outcome or row.reason,
                row.graph_request_id,
                (row.result or {}).get("expires_at") or (row.params or {}).get("expire", ""),
                (row.result or {}).get("sms_sign_in_state", ""),
            )
        )
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


# -- selectors -----------------------------------------------------------------------------


def bulk_job_list() -> QuerySet[BulkJob]:
    return BulkJob.objects.select_related("created_by").order_by("-created_at")[:100]


def bulk_job_rows(*, job: BulkJob, status: str = "") -> QuerySet[BulkJobRow]:
    rows = job.rows.order_by("line")
    if status == "problems":
        return rows.filter(Q(status=Row.Status.FAILED) | Q(status=Row.Status.SKIPPED))
    if status:
        return rows.filter(status=status)
    return rows


def bulk_job_printable_rows(*, job: BulkJob, kind: str) -> QuerySet[BulkJobRow]:
    """The job's succeeded rows with something left to print, in file order: `kind="badge"`, a
    new QR code whose payload is still in the vault and whose badge was not printed; `"pin_slip"`,
    a new PIN still in the vault whose slip was not printed."""
    live = VaultSecret.objects.filter(
        destroyed_at__isnull=True, expires_at__gt=timezone.now()
    ).values("id")
    rows = job.rows.filter(status=Row.Status.SUCCEEDED).order_by("line")
    if kind == "badge":
        return rows.filter(payload_secret_id__in=live, badge_printed_at__isnull=True)
    if kind == "pin_slip":
        return rows.filter(pin_secret_id__in=live, pin_printed_at__isnull=True)
    raise ValueError(f"Unknown printable kind {kind!r}")


def bulk_job_printables(*, job: BulkJob) -> dict[str, int]:
    return {
        "badges": bulk_job_printable_rows(job=job, kind="badge").count(),
        "pin_slips": bulk_job_printable_rows(job=job, kind="pin_slip").count(),
    }
