"""Bulk rows held by one task: claimed with a lease, intent recorded before a write, outcomes
recorded only by the holder (steps 1, 2 and 5 of the protocol in provisioning/bulk/engine.py).

Every finishing UPDATE is conditional on the row's `claim_token`, so a row whose lease another task
took over cannot be finished twice: `ClaimLost` tells the caller to roll back what it was about to
record.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from provisioning.graph import GraphError
from provisioning.models import BulkJob, BulkJobRow
from provisioning.rules import backoff_seconds

Row = BulkJobRow
PENDING, RUNNING = Row.Status.PENDING, Row.Status.RUNNING
# Retried rows wait 1 s, 2 s, 4 s … up to BULK_BACKOFF_MAX_SECONDS (or Graph's Retry-After).
BACKOFF_BASE_SECONDS = 1.0


class ClaimLost(Exception):
    """Another task holds the row now: roll back what this one was about to record."""


def _lease() -> timedelta:
    return timedelta(seconds=settings.BULK_LEASE_SECONDS)


def outcome_reason(exc: GraphError) -> str:
    """Graph's error as a row's outcome, always with the request-id."""
    text = str(exc)
    if exc.request_id and exc.request_id not in text:
        text = f"{text} (request-id {exc.request_id})"
    return text


def rows_claim(*, job_id: int, token: str, limit: int) -> list[Row]:
    """Claim up to `limit` due rows of a job for this task (conditional UPDATE with a lease)."""
    now = timezone.now()
    due = (
        Row.objects.filter(job_id=job_id, status=PENDING)
        .filter(Q(not_before__isnull=True) | Q(not_before__lte=now))
        # A cancelled job still resolves rows whose write may have reached Graph.
        .filter(
            Q(job__status=BulkJob.Status.RUNNING)
            | Q(job__status=BulkJob.Status.CANCELLED, write_sent_at__isnull=False)
        )
        .order_by("id")
    )
    with transaction.atomic():
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True, of=("self",))
        ids = list(due.values_list("id", flat=True)[:limit])
        if not ids:
            return []
        Row.objects.filter(id__in=ids, status=PENDING).update(
            status=RUNNING,
            claim_token=token,
            lease_until=now + _lease(),
            attempts=F("attempts") + 1,
            started_at=Coalesce(F("started_at"), Value(now)),
            not_before=None,
        )
    return list(Row.objects.filter(job_id=job_id, claim_token=token, status=RUNNING))


def row_finish(row: Row, token: str, status: str, outcome: str, **fields: Any) -> bool:
    """Record a final outcome if this task still holds the row."""
    done = Row.objects.filter(pk=row.pk, claim_token=token, status=RUNNING).update(
        status=status,
        outcome=outcome[:2000],
        finished_at=timezone.now(),
        claim_token="",
        lease_until=None,
        **fields,
    )
    return bool(done)


def row_requeue(row: Row, token: str, why: str, *, retry_after: float | None = None) -> None:
    """A transient outcome: try again later (after re-checking Graph if a write may have gone)."""
    if row.attempts >= settings.BULK_MAX_ATTEMPTS and row.write_sent_at is None:
        # Nothing of this row can have reached Graph: giving up leaves nothing behind. A row
        # whose write may have taken effect is never abandoned (that could orphan a credential):
        # it keeps being retried, with capped backoff, until Graph's state is known.
        row_finish(row, token, Row.Status.FAILED, f"Gave up after {row.attempts} attempts: {why}")
        return
    Row.objects.filter(pk=row.pk, claim_token=token, status=RUNNING).update(
        status=PENDING,
        claim_token="",
        lease_until=None,
        not_before=timezone.now() + timedelta(seconds=_backoff(row.attempts, retry_after)),
        outcome=f"Retrying: {why}"[:2000],
    )


def rows_still_held(rows: list[Row], token: str) -> list[Row]:
    """The rows this task (`token`) still holds; another task may have taken over the rest."""
    held = set(
        Row.objects.filter(
            pk__in=[r.pk for r in rows], claim_token=token, status=RUNNING
        ).values_list("pk", flat=True)
    )
    return [r for r in rows if r.pk in held]


def rows_mark_write_intent(rows: list[Row], token: str, *, phase: str = "") -> list[Row]:
    """Commit `write_sent_at` (and renew the lease) before sending; returns the rows still held."""
    if not rows:
        return []
    now = timezone.now()
    changes: dict[str, Any] = {
        "write_sent_at": Coalesce(F("write_sent_at"), Value(now)),
        "lease_until": now + _lease(),
    }
    if phase:
        changes["phase"] = phase
    Row.objects.filter(pk__in=[r.pk for r in rows], claim_token=token, status=RUNNING).update(
        **changes
    )
    held = rows_still_held(rows, token)
    for row in held:
        row.write_sent_at = row.write_sent_at or now
        if phase:
            row.phase = phase
    return held


def _backoff(attempts: int, retry_after: float | None) -> float:
    return backoff_seconds(
        attempt=attempts - 1,
        retry_after=retry_after,
        base=BACKOFF_BASE_SECONDS,
        cap=settings.BULK_BACKOFF_MAX_SECONDS,
    )
