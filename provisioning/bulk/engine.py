"""The bulk job engine: rows worked by Celery tasks, through $batch, with an exactly-once effect.

Why the database, not the broker, carries the guarantees
--------------------------------------------------------
A killed worker's unacknowledged task comes back from Redis only after the transport's
visibility timeout (an hour), and a task may also run twice. So no row's fate depends on a broker
message. Tasks (`provisioning.bulk_job_work(job_id)`) are interchangeable helpers: each one claims
rows from the database, works them, and records the outcome; any number may run at once.

1. **Claim with a lease, renewed while alive.** A conditional UPDATE (with `FOR UPDATE SKIP
   LOCKED` on PostgreSQL) gives a chunk of ≤ 20 due rows — pending, or running under a lease that
   ran out — a fresh `claim_token` and a short `lease_until` (BULK_LEASE_SECONDS). While the task
   runs, a heartbeat thread (`leases.LeaseKeeper`) renews the leases of the rows it holds and the
   job's liveness record (`BulkJob.alive_until`) every BULK_HEARTBEAT_SECONDS, so a lease runs out
   only when its holder is dead (or frozen). Only the holder of the token may record an outcome
   (every finishing UPDATE is conditional on it), so a row whose lease was taken over by another
   task cannot be finished twice; the loser's vault writes are rolled back in the same
   transaction. Before each Graph write for a row — each step of a re-issue too — the task renews
   the leases of the rows it still holds and drops the others (`rows_hold`): a task that lost a
   row sends nothing more for it, so it cannot replace the QR code whose payload the new holder
   recorded.
2. **Intent before effect.** Before the first write for a row is sent, `write_sent_at` is set and
   committed. A row with `write_sent_at` may have been performed by Graph even if nothing was
   recorded (kill -9, lost response, 5xx, connection reset, a lease that ran out).
3. **Re-check before re-writing.** Such a row is never written blindly again. Its next attempt
   first GETs the QR method from Graph (one $batch of GETs for the chunk):
   - absent → create it (the earlier write never took effect);
   - present and ours (its standard code has exactly the start and expiry this row sends, or the
     row had already started re-issuing) → the create succeeded but its secrets were lost: re-issue
     them (the steps of `qr.qr_credentials_reissue` — delete the standard code, set a new one,
     reset the PIN — each one $batch for the chunk; every step may be repeated).
     `phase="reissue"` is committed first, so an interrupted re-issue is resumed, never mistaken
     for someone else's method;
   - present and not ours → the worker already had a method: skipped, with the reason.
   A method is therefore never created twice (Graph refuses a second PUT with 409 and Lanyard
   never deletes the method), and every method Lanyard created ends with its payload and PIN in the
   vault, referenced from the row, committed in the same transaction as the row's success.
   Phone rows are declarative ("mobile = X"), so a retry simply re-reads the phone methods and
   computes the remaining changes again.
4. **Sweeper.** `jobs_sweep()` (celery beat every two BULK_HEARTBEAT_SECONDS, and in
   `bulk_import --wait` as it polls) puts rows whose lease expired back to pending and, when a job
   with due rows has no live task — its liveness record ran out: three heartbeats missed, because
   its tasks died or Redis lost their queued messages — enqueues new tasks for it. The record is
   pushed forward when tasks are queued (and by a hand-over's countdown); a job whose queued tasks
   do not start (workers busy with other jobs) is restarted with a growing grace, never a flood of
   messages. A broker that is down is tried again at the next sweep. A killed worker's rows are
   thus back within a lease, and its job has new tasks within seconds.
5. **Retries.** Transient outcomes (429 after the client's own retries, 5xx, no answer) put the row
   back to pending with exponential backoff and jitter (`not_before`, honouring Retry-After);
   permanent ones fail the row with Graph's reason and request-id. A row nothing of which can have
   reached Graph fails after BULK_MAX_ATTEMPTS; a row whose write may have taken effect is never
   abandoned (not even by a cancel) until a re-check has resolved it, so no credential is orphaned.

6. **A manager's job** (`identity="delegated"`, bulk/manager_jobs.py) acts with the requesting
   manager's delegated token (`delegated_client_for`), so Entra enforces the manager's store scope
   on every call; instead of the frontline re-check (which guards the app identity), each chunk
   re-checks that the manager still manages the store and each worker is still its member, and
   finishes the others as skipped. A claims challenge or an expired sign-in (`InteractionRequired`)
   ends the job's remaining rows as failed with "Sign in again"; a re-run after signing in resumes
   them, re-checking Graph first, so nothing is lost. "Renew" rows replace the standard QR code
   (the PIN stays): every step may be repeated (`qr.qr_credentials_reissue`).

Throughput: every write goes through `GraphClient.batch` (20 per $batch), which charges the shared
rate limiter one token per write item (a batch's in one reservation), so all workers together stay
within Graph's write window; the bucket's burst makes up a short gap (docs/architecture.md §6).
A worker that starts (`jobs_resume_on_worker_start`, Celery's worker_ready) releases the rows
leased by dead task processes of its own host and queues tasks for running jobs with due rows at
once, instead of waiting for their leases and liveness records to run out. A
limiter that cannot be reached (Redis restarting) puts the chunk back without counting the
attempt, and the task tries again shortly; an emptied limiter starts with a full bucket.
Sharing: a task hands over after each chunk once another job on its queue has rows due and no
progress for BULK_SHARE_SECONDS (`_another_job_waits`), so jobs started together take turns for
the worker processes instead of one waiting for the other's tasks to use up BULK_TASK_SECONDS.
Secrets: only vault ids reach rows, task arguments and logs.

Where each step lives: claims, intent, outcomes and backoff in bulk/leases.py; the QR and phone
rows in bulk/qr_rows.py and bulk/phone_rows.py; the work loop, the sweeper and starting tasks here;
progress counts in bulk/selectors.py.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Exists, Min, OuterRef, Q, Value
from django.db.models.functions import Coalesce
from django.dispatch import Signal
from django.utils import timezone
from redis.exceptions import RedisError

from provisioning import audit
from provisioning.bulk.leases import (
    HEARTBEATS_MISSED,
    PENDING,
    RUNNING,
    LeaseKeeper,
    Row,
    job_alive_note,
    row_finish,
    row_requeue,
    rows_claim,
    rows_release,
    rows_still_held,
)
from provisioning.bulk.phone_rows import phone_chunk
from provisioning.bulk.qr_rows import qr_chunk, renew_chunk
from provisioning.bulk.selectors import job_counts, summary_line
from provisioning.graph import GraphClient, GraphError, InteractionRequired, get_app_client
from provisioning.models import AuditEvent, BulkJob
from provisioning.privileged import bulk_targets_recheck
from provisioning.token_cache import delegated_client_for

# Seconds before rows put back because the rate limiter was unreachable are tried again.
LIMITER_RETRY_S = 2.0
# The longest a job waits for the tasks a sweep queued before it is given new ones.
RESTART_GRACE_MAX_S = 300.0

SIGN_IN_AGAIN = (
    "Sign in again: Entra asks you to sign in again before Lanyard may act for you. Nothing was "
    "lost: sign in, then re-run the failed rows."
)

logger = logging.getLogger(__name__)

# How often a task waiting for rows still being added (a streamed job) looks for them, and how
# often `job_follow` checks whether the job has ended.
ROWS_COMING_POLL_SECONDS = 0.2
FOLLOW_CHECK_SECONDS = 0.2
# A streamed job's rows stop arriving when its `bulk_import` died: a chunk of ≤ 500 rows is
# planned in seconds, so four minutes without progress (rows added or written) means it is gone.
ADDER_GONE_SECONDS = 240

# Sent once when a running job becomes finished (`job_finish_if_done`), with `job`: what follows a
# job lives with its owner, e.g. badges queues the sheets of a renewal (badges/apps.py), since
# provisioning never imports badges (docs/architecture.md §10).
bulk_job_finished = Signal()


def _token() -> str:
    """A claim token unique to this task run (host, process, random)."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:16]}"


def job_work(*, job_id: int, budget_s: float | None = None, client: GraphClient | None = None):
    """Work a job's due rows until `budget_s` runs out.

    Returns None when this task has nothing more to do for the job (done, or the rest is held by
    other tasks), else the seconds until rows are due again (0: right away).
    """
    budget_s = settings.BULK_TASK_SECONDS if budget_s is None else budget_s
    token = _token()
    with LeaseKeeper(job_id=job_id, token=token):
        return _work(job_id, token, time.monotonic() + budget_s, client)


def _work(job_id: int, token: str, deadline: float, client: GraphClient | None):
    while True:
        job = BulkJob.objects.filter(pk=job_id).select_related("created_by", "requested_by").first()
        if job is None or job.status not in (BulkJob.Status.RUNNING, BulkJob.Status.CANCELLED):
            return None
        rows = rows_claim(job_id=job_id, token=token, limit=settings.BULK_CHUNK_ROWS)
        if not rows:
            job_finish_if_done(job_id=job_id)
            wait = _next_due_in(job_id)
            if wait is None and not job.rows_complete:
                # `bulk_import` is still adding rows (bulk/streaming.py): wait for them here
                # rather than end the task and leave the next chunk to the sweeper.
                wait = ROWS_COMING_POLL_SECONDS
            if wait is None:
                return None
            if wait <= 2 and time.monotonic() + wait < deadline:
                time.sleep(wait)
                continue
            return wait
        delegated = job.identity == BulkJob.Identity.DELEGATED
        chunk_started = timezone.now()
        try:
            if delegated:
                if job.requested_by is None:
                    raise InteractionRequired("The manager who started this job is gone.")
                client = client or delegated_client_for(user=job.requested_by)
                rows = _scoped_rows(job, rows, token)
            else:
                client = client or get_app_client()
                rows = _frontline_rows(rows, token, client)
            if rows and job.kind == BulkJob.Kind.QR and job.action == BulkJob.Action.RENEW:
                renew_chunk(job, rows, token, client)
            elif rows and job.kind == BulkJob.Kind.QR:
                qr_chunk(job, rows, token, client)
            elif rows:
                phone_chunk(job, rows, token, client)
        except InteractionRequired:
            # Only a manager's job has a person to sign in; nothing more can run without them.
            _rows_sign_in_again(job_id, rows, token)
        except GraphError as exc:
            # Raised before anything was sent (a token problem, a malformed batch): retry later.
            for row in rows_still_held(rows, token):
                row_requeue(row, token, str(exc), retry_after=getattr(exc, "retry_after", None))
        except RedisError as exc:
            # The shared rate limiter is unreachable (Redis restarting): nothing more was sent.
            # Not the rows' fault, so the attempt is not counted; rows whose write may have
            # reached Graph are re-checked as always. Try again shortly.
            logger.warning("Bulk job %s: the rate limiter is unavailable: %r", job_id, exc)
            rows_release(rows, token, "the rate limiter is unavailable.", delay=LIMITER_RETRY_S)
            _audit_rows(job, [r.pk for r in rows], since=chunk_started)
            return LIMITER_RETRY_S
        _audit_rows(job, [r.pk for r in rows], since=chunk_started)
        if delegated:
            from provisioning.bulk.manager_jobs import manager_job_states_note

            manager_job_states_note(job=job, since=chunk_started)
        BulkJob.objects.filter(pk=job_id).update(last_progress_at=timezone.now())
        job_alive_note(job_id=job_id, beat=True)
        if time.monotonic() >= deadline or _another_job_waits(job):
            job_finish_if_done(job_id=job_id)
            return 0.0


def _another_job_waits(job: BulkJob) -> bool:
    """True when another job on this job's Celery queue has rows due but has made no progress for
    BULK_SHARE_SECONDS: its tasks are waiting for a worker process that this job's tasks hold.
    This task then hands over (its successor queues behind the waiting job's tasks), so two jobs
    started together both progress, taking turns every few seconds (docs/architecture.md §11.2)."""
    now = timezone.now()
    manager = job.source == BulkJob.Source.MANAGER
    others = BulkJob.objects.filter(
        status=BulkJob.Status.RUNNING,
        last_progress_at__lt=now - timedelta(seconds=settings.BULK_SHARE_SECONDS),
    ).exclude(pk=job.pk)
    others = (
        others.filter(source=BulkJob.Source.MANAGER)
        if manager
        else others.exclude(source=BulkJob.Source.MANAGER)
    )
    due = Row.objects.filter(job_id=OuterRef("pk"), status=PENDING).filter(
        Q(not_before__isnull=True) | Q(not_before__lte=now)
    )
    return others.filter(Exists(due)).exists()


def _frontline_rows(rows: list[Row], token: str, client: GraphClient) -> list[Row]:
    """Ask Entra again whether each row's user is still a frontline worker (a role or the IT
    admin group may have been gained since the preview); finish the rows that are not, with why,
    and put back those Graph could not answer for. Returns the rows to write.

    Not cached within the job, unlike the QR policy and the record of privileged accounts the
    preview reads once: this is the live answer that stops a write to someone who gained a role
    after the preview (docs/architecture.md §5). It costs one $batch of reads per chunk of
    BULK_CHUNK_ROWS rows and no write budget, and it overlaps other tasks' writes."""
    verdicts = bulk_targets_recheck(client=client, user_ids=[r.user_id for r in rows])
    keep = []
    for row in rows:
        verdict = verdicts.get(row.user_id)
        if verdict is None:
            row_requeue(row, token, "Could not check with Entra whether the user holds a role.")
        elif verdict:
            note = (
                " An earlier attempt may have reached Entra: check the user's methods."
                if row.write_sent_at is not None
                else ""
            )
            row_finish(row, token, Row.Status.SKIPPED, f"Not written: {verdict}{note}")
        else:
            keep.append(row)
    return keep


def _scoped_rows(job: BulkJob, rows: list[Row], token: str) -> list[Row]:
    """A manager's job: finish the rows the manager may no longer write to (they no longer
    manage the store, or the worker left it) as skipped; returns the rows to write."""
    from provisioning.bulk.manager_jobs import manager_job_rows_in_scope

    allowed = manager_job_rows_in_scope(job=job, user_ids=[r.user_id for r in rows])
    allowed = {user_id.lower() for user_id in allowed}
    keep = []
    for row in rows:
        if row.user_id.lower() in allowed:
            keep.append(row)
        else:
            row_finish(row, token, Row.Status.SKIPPED,
                       "Not written: you no longer manage this worker's store.")  # fmt: skip
    return keep


def _rows_sign_in_again(job_id: int, rows: list[Row], token: str) -> None:
    """End this chunk's rows and every pending row of the job as "sign in again"."""
    for row in rows_still_held(rows, token):
        row_finish(row, token, Row.Status.FAILED, SIGN_IN_AGAIN)
    Row.objects.filter(job_id=job_id, status=PENDING).update(
        status=Row.Status.FAILED, outcome=SIGN_IN_AGAIN, finished_at=timezone.now()
    )


def _audit_rows(job: BulkJob, ids: list[int], *, since: datetime) -> None:
    """One audit event per row this chunk finished (one INSERT for the chunk; never a secret)."""
    finished = Row.objects.filter(
        pk__in=ids,
        finished_at__gte=since,
        status__in=[Row.Status.SUCCEEDED, Row.Status.FAILED],
    )
    actor = job.created_by
    label = (actor.user_principal_name or actor.username) if actor else "command line"
    action = "bulk_qr_create" if job.kind == BulkJob.Kind.QR else "bulk_phone_set"
    if job.kind == BulkJob.Kind.QR and job.action == BulkJob.Action.RENEW:
        action = "bulk_qr_renew"
    AuditEvent.objects.bulk_create(
        AuditEvent(
            actor=actor,
            actor_label=label,
            action=action,
            outcome=row.status,
            target_user_id=row.user_id,
            target_label=row.display_name or row.upn,
            graph_request_id=row.graph_request_id,
            administrative_unit_id=job.scope_au_id,
            detail=f"Bulk job {job.pk}, line {row.line}: {row.outcome}"[:2000],
        )
        for row in finished
    )


def _next_due_in(job_id: int, *, now: datetime | None = None) -> float | None:
    """Seconds until a pending row of the job is due; None if none is pending."""
    now = now or timezone.now()
    first = Row.objects.filter(job_id=job_id, status=PENDING).aggregate(
        at=Min(Coalesce("not_before", Value(now)))
    )["at"]
    if first is None:
        return None
    return max(0.0, (first - now).total_seconds())


def job_finish_if_done(*, job_id: int) -> bool:
    """Mark the job finished once every row is in (`rows_complete`) and none is pending or
    running."""
    if Row.objects.filter(job_id=job_id, status__in=[PENDING, RUNNING]).exists():
        return False
    now = timezone.now()
    finished = BulkJob.objects.filter(
        pk=job_id, status=BulkJob.Status.RUNNING, rows_complete=True
    ).update(status=BulkJob.Status.FINISHED, finished_at=now)
    cancelled = BulkJob.objects.filter(
        pk=job_id, status=BulkJob.Status.CANCELLED, rows_complete=True, finished_at__isnull=True
    ).update(finished_at=now)
    if finished or cancelled:
        job = BulkJob.objects.get(pk=job_id)
        if job.source == BulkJob.Source.PREPOPULATION:
            # Imported here: pre-population builds on this engine (jobs → engine).
            from provisioning.bulk.prepopulation import prepopulation_run_record

            prepopulation_run_record(job_id=job_id)
    if finished:
        counts = job_counts(job)
        audit.record(
            actor=job.created_by,
            action="bulk_job_finished",
            outcome="succeeded" if not counts["failed"] else "failed",
            target_label=job.source_label,
            detail=summary_line(counts),
        )
        for receiver, error in bulk_job_finished.send_robust(sender=BulkJob, job=job):
            if isinstance(error, Exception):
                logger.error("After bulk job %s finished, %s failed: %r", job.pk,
                             getattr(receiver, "__name__", receiver), error)  # fmt: skip
    return bool(finished)


def jobs_sweep(*, enqueue=None, now: datetime | None = None) -> dict[str, int]:
    """Return expired leases to pending; give new tasks to jobs with due rows and no live task
    (their tasks died, or their queued messages were lost with Redis); finish done jobs."""
    now = now or timezone.now()
    released = Row.objects.filter(status=RUNNING, lease_until__lt=now).update(
        status=PENDING, claim_token="", lease_until=None, outcome="Retrying: the worker was lost."
    )
    restarted = 0
    active = BulkJob.objects.filter(
        Q(status=BulkJob.Status.RUNNING) | Q(status=BulkJob.Status.CANCELLED, finished_at=None)
    )
    for job in active:
        # The `bulk_import` adding this job's rows has been gone for ADDER_GONE_SECONDS (it
        # touches last_progress_at with every chunk, as the tasks do with theirs): the job is
        # what it holds.
        adder_gone = not job.rows_complete and (
            job.last_progress_at is None
            or job.last_progress_at < now - timedelta(seconds=ADDER_GONE_SECONDS)
        )
        if adder_gone and BulkJob.objects.filter(pk=job.pk, rows_complete=False).update(
            rows_complete=True
        ):
            logger.warning("Bulk job %s: rows stopped arriving; finishing with those in", job.pk)
        if job_finish_if_done(job_id=job.pk):
            continue
        if job.alive_until is not None and job.alive_until >= now:
            continue  # a task is alive (or queued moments ago)
        if _next_due_in(job.pk, now=now) != 0.0:
            continue  # nothing due yet: a handed-over task will start when it is
        # Conditional on the record read above, so two sweeps restart a job once. The new tasks
        # get three heartbeats to start and report, or as long as the job has been stalled (up
        # to RESTART_GRACE_MAX_S): when the workers are merely busy with other jobs, restarts
        # back off instead of flooding the queue.
        stalled = (now - (job.last_progress_at or now)).total_seconds()
        grace = now + timedelta(seconds=max(_liveness_s(), min(stalled, RESTART_GRACE_MAX_S)))
        touched = BulkJob.objects.filter(pk=job.pk, alive_until=job.alive_until)
        if not touched.update(alive_until=grace):
            continue
        try:
            (enqueue or _enqueue)(job.pk)
        except Exception as exc:  # noqa: BLE001 - the broker is down: the next sweep tries again
            logger.warning("Bulk sweep: could not queue tasks for job %s: %r", job.pk, exc)
            BulkJob.objects.filter(pk=job.pk, alive_until=grace).update(alive_until=job.alive_until)
            continue
        restarted += 1
    if released or restarted:
        logger.info("Bulk sweep: %d rows released, %d jobs restarted", released, restarted)
    return {"released": released, "restarted": restarted}


def _holder_alive(token: str, host: str) -> bool:
    """Whether the task process that made claim `token` (`_token()`) may still be running: True
    unless it was made on `host` (this machine) by a process that no longer exists."""
    parts = token.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
        return True  # another machine's, or not ours to judge
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, someone else's (EPERM)
    return True


def jobs_resume_on_worker_start(*, enqueue=None, now: datetime | None = None) -> dict[str, int]:
    """A worker has just started (Celery's worker_ready): resume the bulk work at once.

    A worker starting is exactly when earlier tasks may be gone (killed with their worker, or lost
    with Redis), so this does not wait for their leases (BULK_LEASE_SECONDS) or the jobs' liveness
    records (three heartbeats) to run out:
    - rows held by a task process of this host that no longer exists go back to pending (a
      process id reused since then only keeps its rows leased, as before). Should a live holder's
      rows be released all the same, the claim token still guards them: it records nothing and
      sends nothing more for a row it lost (`rows_hold`), exactly as after its lease ran out;
    - every running job (or cancelled one still resolving rows) with rows due now gets tasks on
      its own queue. Extra tasks are harmless: each claims due rows under a lease, or ends when
      none is due (docs/architecture.md §11.2).
    """
    now = now or timezone.now()
    host = socket.gethostname()[:30]
    held = Row.objects.filter(status=RUNNING, claim_token__startswith=f"{host}:")
    dead = {t for t in held.values_list("claim_token", flat=True) if not _holder_alive(t, host)}
    released = 0
    if dead:
        released = Row.objects.filter(status=RUNNING, claim_token__in=dead).update(
            status=PENDING,
            claim_token="",
            lease_until=None,
            outcome="Retrying: the worker was lost.",
        )
    resumed = 0
    active = BulkJob.objects.filter(
        Q(status=BulkJob.Status.RUNNING) | Q(status=BulkJob.Status.CANCELLED, finished_at=None)
    )
    for job in active:
        if _next_due_in(job.pk, now=now) != 0.0:
            continue  # nothing due now: its live or handed-over tasks have it in hand
        try:
            (enqueue or _enqueue)(job.pk)
        except Exception as exc:  # noqa: BLE001 - the broker is down: the sweeper takes over
            logger.warning("Worker start: could not queue tasks for job %s: %r", job.pk, exc)
            continue
        job_alive_note(job_id=job.pk, now=now)  # the new tasks have three heartbeats to start
        resumed += 1
    if released or resumed:
        logger.info("Worker start: %d rows released, %d jobs resumed", released, resumed)
    return {"released": released, "resumed": resumed}


def job_queue_options(job_id: int) -> dict[str, str]:
    """Where a job's tasks go: managers' jobs have their own Celery queue, so an IT admin's long
    job does not make a manager wait (docs/architecture.md §11.3); others the default queue."""
    manager = BulkJob.objects.filter(pk=job_id, source=BulkJob.Source.MANAGER).exists()
    return {"queue": settings.MANAGER_JOBS_QUEUE} if manager else {}


def _enqueue(job_id: int) -> None:
    from provisioning.tasks.bulk import bulk_job_work

    options = job_queue_options(job_id)
    for _ in range(settings.BULK_PARALLEL_TASKS):
        bulk_job_work.apply_async((job_id,), **options)


def job_start_tasks(job_id: int) -> None:
    """Start the job's tasks (called on commit of a confirmation or a re-run)."""
    now = timezone.now()
    BulkJob.objects.filter(pk=job_id).update(last_progress_at=now)
    job_alive_note(job_id=job_id, now=now)  # its tasks have three heartbeats to start
    _enqueue(job_id)


def _liveness_s() -> float:
    return settings.BULK_HEARTBEAT_SECONDS * HEARTBEATS_MISSED


def job_hand_over(job_id: int, *, countdown: float) -> None:
    """Queue the task that continues this one in `countdown` seconds; the job counts as alive
    until then (and three heartbeats more), so the sweeper does not start others meanwhile."""
    from provisioning.tasks.bulk import bulk_job_work

    job_alive_note(job_id=job_id, seconds=countdown + _liveness_s())
    bulk_job_work.apply_async((job_id,), countdown=countdown, **job_queue_options(job_id))


def job_follow(
    *,
    job: BulkJob,
    poll_seconds: float,
    report,
    check_seconds: float | None = None,
    sleep=time.sleep,
    clock=time.monotonic,
) -> dict:
    """Wait until `job` has ended, sweeping as beat would (a killed worker's rows get new tasks),
    and call `report(line)` when its progress line changes, at most every `poll_seconds` (and
    once at the end). Returns its final counts.

    What `bulk_import --wait` and `prepopulate_phones --wait` print while they wait. The end is
    noticed within `check_seconds` (FOLLOW_CHECK_SECONDS): counting a job's rows is one indexed
    query, so checking often costs little, and a command that printed its summary line 2 s after
    the last row would add 2 s to every job. Sweeps stay at `poll_seconds`, like printing.
    """
    check = min(poll_seconds, FOLLOW_CHECK_SECONDS if check_seconds is None else check_seconds)
    last_line = ""
    last_report = last_sweep = None
    while True:
        now = clock()
        if last_sweep is None or now - last_sweep >= poll_seconds:
            jobs_sweep()
            last_sweep = now
        job.refresh_from_db()
        counts = job_counts(job)
        last_row_ended = not (counts["pending"] or counts["running"])
        # The last row just ended: finish now rather than at the next task or sweep.
        if (
            job.status == BulkJob.Status.RUNNING
            and last_row_ended
            and job_finish_if_done(job_id=job.pk)
        ):
            job.refresh_from_db()
        ended = job.status in (BulkJob.Status.FINISHED, BulkJob.Status.CANCELLED) and not (
            counts["pending"] or counts["running"]
        )
        line = (
            f"{counts['percent']:3d}% {counts['done']}/{counts['total']} — "
            f"{counts['succeeded']} succeeded, {counts['failed']} failed, "
            f"{counts['skipped'] + counts['cancelled']} skipped; {counts['rate']}/s"
        )
        due = last_report is None or now - last_report >= poll_seconds
        if line != last_line and (due or ended):
            report(line)
            last_line, last_report = line, now
        if ended:
            return counts
        sleep(check)
