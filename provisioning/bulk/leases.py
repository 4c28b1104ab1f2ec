"""Bulk rows held by one task: claimed with a lease, the lease renewed while the task lives, intent
recorded before a write, outcomes recorded only by the holder (steps 1, 2 and 5 of the protocol in
provisioning/bulk/engine.py).

Every finishing UPDATE is conditional on the row's `claim_token`, so a row whose lease another task
took over cannot be finished twice: `ClaimLost` tells the caller to roll back what it was about to
record. Every Graph write for a row is preceded by `rows_hold` (or `rows_mark_write_intent`), which
renews the lease only for the rows the task still holds: a task that lost a row sends nothing more
for it.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from provisioning.graph import GraphError
from provisioning.models import BulkJob, BulkJobRow
from provisioning.rules import backoff_seconds

Row = BulkJobRow
PENDING, RUNNING = Row.Status.PENDING, Row.Status.RUNNING
# Retried rows wait 1 s, 2 s, 4 s … up to BULK_BACKOFF_MAX_SECONDS (or Graph's Retry-After).
BACKOFF_BASE_SECONDS = 1.0
# A job whose tasks have not reported for this many heartbeats has no live task (engine.jobs_sweep).
HEARTBEATS_MISSED = 3

logger = logging.getLogger(__name__)


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


def _claimable(now: datetime) -> Q:
    """Due pending rows, and rows whose holder's lease ran out (a live holder renews its lease, so
    an expired one means a dead holder): running tasks take those over without waiting for a
    sweep."""
    return Q(status=PENDING) & (Q(not_before__isnull=True) | Q(not_before__lte=now)) | Q(
        status=RUNNING, lease_until__lt=now
    )


def rows_claim(*, job_id: int, token: str, limit: int, now: datetime | None = None) -> list[Row]:
    """Claim up to `limit` due rows of a job for this task (conditional UPDATE with a lease)."""
    now = now or timezone.now()
    due = (
        Row.objects.filter(job_id=job_id)
        .filter(_claimable(now))
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
        Row.objects.filter(_claimable(now), id__in=ids).update(
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


def rows_release(rows: list[Row], token: str, why: str, *, delay: float) -> None:
    """Put rows back without counting the attempt (the cause was not the rows': the rate limiter
    was unreachable); they are due again in `delay` seconds."""
    Row.objects.filter(
        pk__in=[r.pk for r in rows], claim_token=token, status=RUNNING, attempts__gt=0
    ).update(
        status=PENDING,
        claim_token="",
        lease_until=None,
        attempts=F("attempts") - 1,
        not_before=timezone.now() + timedelta(seconds=delay),
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


def rows_hold(rows: list[Row], token: str) -> list[Row]:
    """Renew the lease of `rows` and return those this task still holds: called right before a
    Graph write, so a task that lost a row (its lease ran out and another task took it) sends
    nothing more for it."""
    if not rows:
        return []
    Row.objects.filter(pk__in=[r.pk for r in rows], claim_token=token, status=RUNNING).update(
        lease_until=timezone.now() + _lease()
    )
    return rows_still_held(rows, token)


def rows_lease_renew(*, token: str, now: datetime | None = None) -> int:
    """Renew the lease of every row this task run holds (the heartbeat); returns how many.

    Conditional on the claim token: a row another task took over is not renewed (and this task
    records nothing for it: every finishing UPDATE checks the token too). A lease that ran out but
    was not taken over yet is still this task's and is renewed.
    """
    now = now or timezone.now()
    return Row.objects.filter(claim_token=token, status=RUNNING).update(lease_until=now + _lease())


def heartbeat_seconds() -> float:
    return float(settings.BULK_HEARTBEAT_SECONDS)


def job_alive_note(
    *, job_id: int, seconds: float | None = None, now: datetime | None = None, beat: bool = False
) -> None:
    """Record that a task of the job is alive (or that one will start within `seconds`): the
    sweeper gives a job new tasks only when this record has run out (engine.jobs_sweep).

    A running task's heartbeat (`beat`) sets the record to three heartbeats from now, replacing
    any longer grace given to queued tasks, so that its own death is noticed in seconds; a note
    for queued tasks only ever extends the record.
    """
    now = now or timezone.now()
    seconds = heartbeat_seconds() * HEARTBEATS_MISSED if seconds is None else seconds
    until = now + timedelta(seconds=seconds)
    value = Value(until)
    if not beat:
        value = Greatest(Coalesce(F("alive_until"), Value(until)), Value(until))
    BulkJob.objects.filter(pk=job_id).update(alive_until=value)


class LeaseKeeper:
    """A task run's heartbeat: a thread that renews the leases of the rows the run holds and
    notes the job alive every BULK_HEARTBEAT_SECONDS, so leases can be short (a killed worker's
    rows come back within BULK_LEASE_SECONDS) without a long Graph call losing them.

    The thread uses its own database connection, so it runs only when the caller's connection is
    in autocommit mode (a worker; not inside a test's transaction, whose rows another connection
    cannot see: there the renewals before each write, `rows_hold`, suffice).
    """

    def __init__(self, *, job_id: int, token: str) -> None:
        self.job_id = job_id
        self.token = token
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> LeaseKeeper:
        job_alive_note(job_id=self.job_id, beat=True)
        if not connection.in_atomic_block:
            self._thread = threading.Thread(
                target=self._run, name=f"lease-keeper-{self.job_id}", daemon=True
            )
            self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        from django.db import connections

        try:
            while not self._stop.wait(heartbeat_seconds()):
                try:
                    rows_lease_renew(token=self.token)
                    job_alive_note(job_id=self.job_id, beat=True)
                except DatabaseError as exc:
                    # The next beat tries again; a lease that runs out meanwhile is taken over
                    # and this task's records for it are refused (ClaimLost).
                    logger.warning("Bulk job %s: lease renewal failed: %r", self.job_id, exc)
        finally:
            connections.close_all()


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
