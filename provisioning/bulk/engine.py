"""The bulk job engine: rows worked by Celery tasks, through $batch, with an exactly-once effect.

Why the database, not the broker, carries the guarantees
--------------------------------------------------------
A killed worker's unacknowledged task comes back from Redis only after the transport's
visibility timeout (an hour), and a task may also run twice. So no row's fate depends on a broker
message. Tasks (`provisioning.bulk_job_work(job_id)`) are interchangeable helpers: each one claims
rows from the database, works them, and records the outcome; any number may run at once.

1. **Claim with a lease.** A conditional UPDATE (pending → running, with `FOR UPDATE SKIP LOCKED`
   on PostgreSQL) gives a chunk of ≤ 20 rows a fresh `claim_token` and `lease_until`. Only the
   holder of the token may record an outcome (every finishing UPDATE is conditional on it), so a
   row whose lease was taken over by another task cannot be finished twice; the loser's vault
   writes are rolled back in the same transaction.
2. **Intent before effect.** Before the first write for a row is sent, `write_sent_at` is set and
   committed. A row with `write_sent_at` may have been performed by Graph even if nothing was
   recorded (kill -9, lost response, 5xx, connection reset, a lease that ran out).
3. **Re-check before re-writing.** Such a row is never written blindly again. Its next attempt
   first GETs the QR method from Graph:
   - absent → create it (the earlier write never took effect);
   - present and ours (its standard code has exactly the start and expiry this row sends, or the
     row had already started re-issuing) → the create succeeded but its secrets were lost: re-issue
     them (`qr.qr_credentials_reissue`: replace the standard code, reset the PIN; every step may be
     repeated). `phase="reissue"` is committed first, so an interrupted re-issue is resumed, never
     mistaken for someone else's method;
   - present and not ours → the worker already had a method: skipped, with the reason.
   A method is therefore never created twice (Graph refuses a second PUT with 409 and Lanyard
   never deletes the method), and every method Lanyard created ends with its payload and PIN in the
   vault, referenced from the row, committed in the same transaction as the row's success.
   Phone rows are declarative ("mobile = X"), so a retry simply re-reads the phone methods and
   computes the remaining changes again.
4. **Sweeper.** `jobs_sweep()` (celery beat every 30 s, on job start and resume, and in
   `bulk_import --wait`) puts rows whose lease expired back to pending and, when a running job has
   made no progress for `BULK_STALL_SECONDS` (all its tasks died), enqueues new tasks for it.
5. **Retries.** Transient outcomes (429 after the client's own retries, 5xx, no answer) put the row
   back to pending with exponential backoff and jitter (`not_before`, honouring Retry-After);
   permanent ones fail the row with Graph's reason and request-id. A row nothing of which can have
   reached Graph fails after BULK_MAX_ATTEMPTS; a row whose write may have taken effect is never
   abandoned (not even by a cancel) until a re-check has resolved it, so no credential is orphaned.

Throughput: every write goes through `GraphClient.batch` (20 per $batch), which charges the shared
rate limiter once per write item, so all workers together stay within GRAPH_WRITES_PER_SECOND.
Secrets: only vault ids reach rows, task arguments and logs.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Min, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from provisioning import audit, qr, vault
from provisioning.graph import (
    BatchResult,
    GraphClient,
    GraphConflict,
    GraphError,
    GraphNotFound,
    GraphRequest,
    get_app_client,
    operations,
)
from provisioning.graph.models import PhoneMethod, QrMethod
from provisioning.models import AuditEvent, BulkJob, BulkJobRow, VaultSecret
from provisioning.phone_numbers import PhoneNumberInvalid, phone_number_normalise

logger = logging.getLogger(__name__)

Row = BulkJobRow
PENDING, RUNNING = Row.Status.PENDING, Row.Status.RUNNING
DEFAULT_METHOD_PHONE = {
    "sms": "mobile",
    "voiceMobile": "mobile",
    "voiceAlternateMobile": "alternateMobile",
    "voiceOffice": "office",
}
PHONE_ORDER = ("mobile", "alternateMobile", "office")
PHONE_LABELS = {"mobile": "mobile", "alternateMobile": "alternate mobile", "office": "office phone"}


class _ClaimLost(Exception):
    """Another task holds the row now: roll back what this one was about to record."""


def _token() -> str:
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:16]}"


def _lease() -> timedelta:
    return timedelta(seconds=settings.BULK_LEASE_SECONDS)


def _dt(value: str) -> datetime:
    parsed = parse_datetime(value)
    if parsed is None:
        raise ValueError("bad date in row params")
    return parsed


def _reason(exc: GraphError) -> str:
    text = str(exc)
    if exc.request_id and exc.request_id not in text:
        text = f"{text} (request-id {exc.request_id})"
    return text


def _backoff(attempts: int, retry_after: float | None) -> float:
    if retry_after:
        return retry_after + random.uniform(0, 1)  # noqa: S311 - jitter
    delay = min(settings.BULK_BACKOFF_MAX_SECONDS, 1.0 * 2 ** max(0, attempts - 1))
    return random.uniform(delay / 2, delay)  # noqa: S311


# -- claiming and recording ------------------------------------------------------------------


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


def _finish(row: Row, token: str, status: str, outcome: str, **fields: Any) -> bool:
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


def _requeue(row: Row, token: str, why: str, *, retry_after: float | None = None) -> None:
    """A transient outcome: try again later (after re-checking Graph if a write may have gone)."""
    if row.attempts >= settings.BULK_MAX_ATTEMPTS and row.write_sent_at is None:
        # Nothing of this row can have reached Graph: giving up leaves nothing behind. A row
        # whose write may have taken effect is never abandoned (that could orphan a credential):
        # it keeps being retried, with capped backoff, until Graph's state is known.
        _finish(row, token, Row.Status.FAILED, f"Gave up after {row.attempts} attempts: {why}")
        return
    Row.objects.filter(pk=row.pk, claim_token=token, status=RUNNING).update(
        status=PENDING,
        claim_token="",
        lease_until=None,
        not_before=timezone.now() + timedelta(seconds=_backoff(row.attempts, retry_after)),
        outcome=f"Retrying: {why}"[:2000],
    )


def _still_held(rows: list[Row], token: str) -> list[Row]:
    held = set(
        Row.objects.filter(
            pk__in=[r.pk for r in rows], claim_token=token, status=RUNNING
        ).values_list("pk", flat=True)
    )
    return [r for r in rows if r.pk in held]


def _mark_write_intent(rows: list[Row], token: str, *, phase: str = "") -> list[Row]:
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
    held = _still_held(rows, token)
    for row in held:
        row.write_sent_at = row.write_sent_at or now
        if phase:
            row.phase = phase
    return held


# -- QR rows ---------------------------------------------------------------------------------


def _method_url(user_id: str) -> str:
    return operations.qr_method_delete_request(user_id).url  # the method's own path


def _ours(method: QrMethod, row: Row) -> bool:
    """Is this the method an earlier attempt of this row created? (Same start and expiry.)"""
    code = method.standard_qr_code
    if code is None or code.start_date_time is None or code.expire_date_time is None:
        return False
    return (
        abs((code.start_date_time - _dt(row.params["start"])).total_seconds()) < 1
        and abs((code.expire_date_time - _dt(row.params["expire"])).total_seconds()) < 1
    )


def _record_credentials(
    row: Row, token: str, *, job: BulkJob, payload_id: int | None, pin_id: int | None,
    expires_at: datetime | None, reissued: bool, request_id: str,
) -> bool:  # fmt: skip
    result = {
        "expires_at": expires_at.isoformat() if expires_at else row.params.get("expire"),
        "reissued": reissued,
    }
    outcome = (
        "QR code + PIN re-issued (an earlier answer was lost)."
        if reissued
        else ("QR code + PIN created.")
    )
    if not _finish(
        row,
        token,
        Row.Status.SUCCEEDED,
        outcome,
        payload_secret_id=payload_id,
        pin_secret_id=pin_id,
        result=result,
        graph_request_id=request_id or "",
    ):
        raise _ClaimLost
    if row.input_secret_id:
        vault.secret_destroy(secret_id=row.input_secret_id, reason="used")
    return True


def _store_created(row: Row, token: str, job: BulkJob, item: BatchResult) -> None:
    method = QrMethod.from_graph(item.body if isinstance(item.body, dict) else {})
    if not method.has_secrets:
        _requeue(row, token, "Entra answered without the QR code or PIN; checking again.")
        return
    try:
        with transaction.atomic():
            payload = qr.payload_from_code(method.standard_qr_code)
            payload_id = vault.secret_store(
                kind=VaultSecret.Kind.QR_PAYLOAD, owner_id=row.user_id, value=payload,
                created_by=job.created_by,
            ).pk  # fmt: skip
            pin_id = vault.secret_store(
                kind=VaultSecret.Kind.PIN, owner_id=row.user_id,
                value=method.pin.secret_code.reveal(), created_by=job.created_by,
            ).pk  # fmt: skip
            code = method.standard_qr_code
            _record_credentials(
                row, token, job=job, payload_id=payload_id, pin_id=pin_id,
                expires_at=code.expire_date_time if code else None, reissued=False,
                request_id=item.request_id or "",
            )  # fmt: skip
    except _ClaimLost:
        logger.warning("Bulk row %s was taken over by another task; its result is dropped", row.pk)


def _explain_qr(exc: GraphError) -> str:
    if exc.status == 400:
        return (
            "Entra refused the QR code + PIN method: the PIN may break the tenant's PIN rules, "
            f"or the worker is not enabled for QR code sign-in (policy or licence). {_reason(exc)}"
        )
    if exc.status == 404:
        return f"The user no longer exists in Entra ID. {_reason(exc)}"
    if exc.status == 403:
        return f"Lanyard's app may not change this user's methods. {_reason(exc)}"
    return _reason(exc)


def _qr_chunk(job: BulkJob, rows: list[Row], token: str, client: GraphClient) -> None:
    creates: list[Row] = []
    reissues: list[Row] = []
    rechecked: set[int] = set()
    check = [r for r in rows if r.write_sent_at is not None]
    creates.extend(r for r in rows if r.write_sent_at is None)
    if check:
        gets = [GraphRequest("GET", _method_url(r.user_id)) for r in check]
        for row, item in zip(check, client.batch(gets), strict=True):
            rechecked.add(row.pk)
            empty = item.ok and not item.body
            if item.status == 404 or empty:
                creates.append(row)
            elif item.ok:
                method = QrMethod.from_graph(item.body)
                if row.phase == "reissue" or _ours(method, row):
                    reissues.append(row)
                else:
                    _finish(
                        row, token, Row.Status.SKIPPED,
                        "Already has a QR code + PIN method, created outside this job.",
                    )  # fmt: skip
            else:
                _requeue(row, token, f"Could not read the QR method: {item.error}",
                         retry_after=getattr(item.error, "retry_after", None))  # fmt: skip

    # First create (or a create after the re-check found nothing).
    ready: list[tuple[Row, GraphRequest]] = []
    for row in creates:
        pin = None
        if row.input_secret_id:
            try:
                pin = vault.secret_read(
                    secret_id=row.input_secret_id, kind=VaultSecret.Kind.PIN, owner_id=row.user_id
                )
            except vault.SecretUnavailable:
                _finish(
                    row,
                    token,
                    Row.Status.FAILED,
                    "The custom PIN expired in the vault before the job ran: preview again.",
                )
                continue  # fmt: skip
        request = operations.qr_method_create_request(
            row.user_id, start=_dt(row.params["start"]), expire=_dt(row.params["expire"]), pin=pin
        )
        ready.append((row, request))
    held = {r.pk for r in _mark_write_intent([r for r, _ in ready], token, phase="create")}
    ready = [(r, req) for r, req in ready if r.pk in held]
    if ready:
        results = client.batch([req for _, req in ready])
        for (row, _), item in zip(ready, results, strict=True):
            if item.ok:
                _store_created(row, token, job, item)
            elif isinstance(item.error, GraphConflict):
                if row.pk in rechecked or row.attempts > 1:
                    # Could be this row's own earlier create: find out with a re-check.
                    _requeue(row, token, "Entra reports a method already; checking whose.",
                             retry_after=0.01)  # fmt: skip
                else:
                    _finish(row, token, Row.Status.SKIPPED,
                            "Already has a QR code + PIN method (Entra allows one): delete it or "
                            "replace its QR code from the worker's page.",
                            graph_request_id=item.request_id or "")  # fmt: skip
            elif item.error is not None and item.error.permanent:
                _finish(row, token, Row.Status.FAILED, _explain_qr(item.error),
                        graph_request_id=item.request_id or "")  # fmt: skip
            else:
                why = str(item.error) if item.error else "no answer from Microsoft Graph."
                _requeue(row, token, why, retry_after=getattr(item.error, "retry_after", None))

    # Re-issue what a lost answer left without secrets (rare: one row at a time).
    for row in _mark_write_intent(reissues, token, phase="reissue"):
        _reissue(job, row, token, client)


def _reissue(job: BulkJob, row: Row, token: str, client: GraphClient) -> None:
    try:
        issued = qr.qr_credentials_reissue(
            client=client,
            user_id=row.user_id,
            start=_dt(row.params["start"]),
            expire=_dt(row.params["expire"]),
            created_by=job.created_by,
        )
    except GraphNotFound:
        # The method itself is gone (deleted meanwhile): start over with a re-check.
        Row.objects.filter(pk=row.pk, claim_token=token).update(phase="")
        _requeue(row, token, "The QR method disappeared while re-issuing; checking again.")
        return
    except GraphError as exc:
        if exc.permanent:
            _finish(row, token, Row.Status.FAILED, _explain_qr(exc),
                    graph_request_id=exc.request_id or "")  # fmt: skip
        else:
            _requeue(row, token, str(exc), retry_after=getattr(exc, "retry_after", None))
        return
    try:
        with transaction.atomic():
            _record_credentials(
                row, token, job=job, payload_id=issued.payload_secret_id,
                pin_id=issued.pin_secret_id, expires_at=issued.expires_at, reissued=True,
                request_id="",
            )  # fmt: skip
    except _ClaimLost:
        for secret_id in (issued.payload_secret_id, issued.pin_secret_id):
            if secret_id:
                vault.secret_destroy(secret_id=secret_id, reason="superseded")


# -- phone rows ------------------------------------------------------------------------------


@dataclass
class PhonePlan:
    ops: list[tuple[str, str, str]] = field(default_factory=list)  # (verb, phone type, number)
    notes: list[str] = field(default_factory=list)
    problem: str = ""
    deletes: list[str] = field(default_factory=list)


def _same(have: str, want: str, region: str) -> bool:
    try:
        return phone_number_normalise(have, region=region) == want
    except PhoneNumberInvalid:
        return have.replace(" ", "") == want.replace(" ", "")


def phone_plan(params: dict[str, Any], current: dict[str, PhoneMethod]) -> PhonePlan:
    """What to change for one row, from Graph's current phones (DESIGN.md §7 semantics)."""
    plan = PhonePlan()
    numbers: dict[str, str] = params.get("numbers") or {}
    forced_update = bool(params.get("forced_update"))
    forced_removal = bool(params.get("forced_removal"))
    region = params.get("region") or settings.LANYARD_DEFAULT_REGION
    writes: list[tuple[str, str, str]] = []
    for phone_type in PHONE_ORDER:
        want = numbers.get(phone_type)
        have = current.get(phone_type)
        label = PHONE_LABELS[phone_type]
        if want:
            if have is None:
                writes.append(("create", phone_type, want))
                plan.notes.append(f"{label} added")
            elif _same(have.phone_number or "", want, region):
                plan.notes.append(f"{label} already {want}")
            elif forced_update:
                writes.append(("update", phone_type, want))
                plan.notes.append(f"{label} updated")
            else:
                plan.notes.append(f"{label} kept (has a number; ForcedUpdate is false)")
        elif forced_removal and have is not None:
            plan.deletes.append(phone_type)
            plan.notes.append(f"{label} removed")
    mobile_after = "mobile" not in plan.deletes and ("mobile" in numbers or "mobile" in current)
    alternate_after = "alternateMobile" not in plan.deletes and (
        "alternateMobile" in numbers or "alternateMobile" in current
    )
    if alternate_after and not mobile_after:
        plan.problem = (
            "An alternate mobile needs a mobile number: add a Mobile, or remove the alternate too."
        )
        return plan
    # Deletes last, the alternate before the mobile (Entra refuses the other order).
    deletes = sorted(plan.deletes, key=lambda t: {"alternateMobile": 0, "office": 1}.get(t, 2))
    plan.ops = writes + [("delete", t, "") for t in deletes]
    return plan


def _phone_request(user_id: str, op: tuple[str, str, str]) -> GraphRequest:
    verb, phone_type, number = op
    if verb == "create":
        return operations.phone_method_create_request(user_id, phone_type, number)
    if verb == "update":
        return operations.phone_method_update_request(user_id, phone_type, number)
    return operations.phone_method_delete_request(user_id, phone_type)


def _explain_phone(op: tuple[str, str, str], exc: GraphError) -> str:
    verb, phone_type, _ = op
    label = PHONE_LABELS[phone_type]
    if exc.status == 400 and verb == "delete":
        return (
            f"Entra refused to remove the {label}: a number that is the default sign-in method "
            f"cannot be removed, nor a mobile while an alternate exists. {_reason(exc)}"
        )
    if exc.status == 400:
        return f"Entra refused the {label} number. {_reason(exc)}"
    if exc.status == 404:
        return f"The user no longer exists in Entra ID. {_reason(exc)}"
    return _reason(exc)


def _phone_chunk(job: BulkJob, rows: list[Row], token: str, client: GraphClient) -> None:
    lists = client.batch(
        [GraphRequest("GET", operations.phone_method_create_request(r.user_id, "", "").url)
         for r in rows]
    )  # fmt: skip
    plans: dict[int, PhonePlan] = {}
    states: dict[int, str] = {}
    live: list[Row] = []
    for row, item in zip(rows, lists, strict=True):
        if not item.ok:
            if item.error is not None and item.error.permanent:
                _finish(row, token, Row.Status.FAILED, _reason(item.error))
            else:
                _requeue(row, token, f"Could not read the phone methods: {item.error}",
                         retry_after=getattr(item.error, "retry_after", None))  # fmt: skip
            continue
        current = {}
        for value in (item.body or {}).get("value") or []:
            method = PhoneMethod.from_graph(value)
            if method.phone_type:
                current[method.phone_type] = method
        if "mobile" in current:
            states[row.pk] = current["mobile"].sms_sign_in_state or ""
        plan = phone_plan(row.params, current)
        if plan.problem:
            _finish(row, token, Row.Status.FAILED, plan.problem)
            continue
        plans[row.pk] = plan
        live.append(row)

    # The default MFA method cannot be removed (signInPreferences, beta).
    deleting = [r for r in live if plans[r.pk].deletes]
    if deleting:
        path = "/users/{}/authentication/signInPreferences"
        prefs = client.batch(
            [GraphRequest("GET", path.format(r.user_id), api_version="beta") for r in deleting]
        )
        for row, item in zip(deleting, prefs, strict=True):
            default = (item.body or {}).get("userPreferredMethodForSecondaryAuthentication") if (
                item.ok and isinstance(item.body, dict)) else None  # fmt: skip
            phone_type = DEFAULT_METHOD_PHONE.get(default or "")
            if phone_type and phone_type in plans[row.pk].deletes:
                _finish(
                    row, token, Row.Status.FAILED,
                    f"The {PHONE_LABELS[phone_type]} number is the worker's default sign-in "
                    "method and cannot be removed; change the default method first.",
                )  # fmt: skip
                live.remove(row)

    live = _mark_write_intent([r for r in live if plans[r.pk].ops], token) + [
        r for r in live if not plans[r.pk].ops
    ]
    failed: set[int] = set()
    step = 0
    while True:
        batch_rows = [r for r in live if r.pk not in failed and step < len(plans[r.pk].ops)]
        if not batch_rows:
            break
        ops = [plans[r.pk].ops[step] for r in batch_rows]
        results = client.batch(
            [_phone_request(r.user_id, op) for r, op in zip(batch_rows, ops, strict=True)]
        )
        for row, op, item in zip(batch_rows, ops, results, strict=True):
            if item.ok:
                if op[0] == "create" and op[1] == "mobile" and isinstance(item.body, dict):
                    states[row.pk] = item.body.get("smsSignInState") or states.get(row.pk, "")
                continue
            failed.add(row.pk)
            if item.error is not None and item.error.permanent:
                _finish(row, token, Row.Status.FAILED, _explain_phone(op, item.error),
                        graph_request_id=item.request_id or "")  # fmt: skip
            else:
                why = str(item.error) if item.error else "no answer from Microsoft Graph."
                _requeue(row, token, why, retry_after=getattr(item.error, "retry_after", None))
        step += 1
    for row in live:
        if row.pk in failed:
            continue
        plan = plans[row.pk]
        result = {"changes": plan.notes, "sms_sign_in_state": states.get(row.pk, "")}
        changed = bool(plan.ops) or row.write_sent_at is not None and row.attempts > 1
        sms = f" SMS sign-in: {states[row.pk]}." if states.get(row.pk) else ""
        text = "; ".join(plan.notes)
        outcome = text[:1].upper() + text[1:] + "." + sms
        _finish(row, token, Row.Status.SUCCEEDED if changed else Row.Status.SKIPPED,
                outcome if changed else f"Nothing changed: {outcome}", result=result)  # fmt: skip


# -- the work loop ---------------------------------------------------------------------------


def job_work(*, job_id: int, budget_s: float | None = None, client: GraphClient | None = None):
    """Work a job's due rows until `budget_s` runs out.

    Returns None when this task has nothing more to do for the job (done, or the rest is held by
    other tasks), else the seconds until rows are due again (0: right away).
    """
    budget_s = settings.BULK_TASK_SECONDS if budget_s is None else budget_s
    deadline = time.monotonic() + budget_s
    token = _token()
    while True:
        job = BulkJob.objects.filter(pk=job_id).select_related("created_by").first()
        if job is None or job.status not in (BulkJob.Status.RUNNING, BulkJob.Status.CANCELLED):
            return None
        rows = rows_claim(job_id=job_id, token=token, limit=settings.BULK_CHUNK_ROWS)
        if not rows:
            job_finish_if_done(job_id=job_id)
            wait = _next_due_in(job_id)
            if wait is None:
                return None
            if wait <= 2 and time.monotonic() + wait < deadline:
                time.sleep(wait)
                continue
            return wait
        client = client or get_app_client()
        chunk_started = timezone.now()
        try:
            if job.kind == BulkJob.Kind.QR:
                _qr_chunk(job, rows, token, client)
            else:
                _phone_chunk(job, rows, token, client)
        except GraphError as exc:
            # Raised before anything was sent (a token problem, a malformed batch): retry later.
            for row in _still_held(rows, token):
                _requeue(row, token, str(exc), retry_after=getattr(exc, "retry_after", None))
        _audit_rows(job, [r.pk for r in rows], since=chunk_started)
        BulkJob.objects.filter(pk=job_id).update(last_progress_at=timezone.now())
        if time.monotonic() >= deadline:
            job_finish_if_done(job_id=job_id)
            return 0.0


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
    AuditEvent.objects.bulk_create(
        AuditEvent(
            actor=actor,
            actor_label=label,
            action=action,
            outcome=row.status,
            target_user_id=row.user_id,
            target_label=row.display_name or row.upn,
            graph_request_id=row.graph_request_id,
            detail=f"Bulk job {job.pk}, line {row.line}: {row.outcome}"[:2000],
        )
        for row in finished
    )


def _next_due_in(job_id: int) -> float | None:
    """Seconds until a pending row of the job is due; None if none is pending."""
    first = Row.objects.filter(job_id=job_id, status=PENDING).aggregate(
        at=Min(Coalesce("not_before", Value(timezone.now())))
    )["at"]
    if first is None:
        return None
    return max(0.0, (first - timezone.now()).total_seconds())


def job_finish_if_done(*, job_id: int) -> bool:
    """Mark the job finished once no row is pending or running."""
    if Row.objects.filter(job_id=job_id, status__in=[PENDING, RUNNING]).exists():
        return False
    now = timezone.now()
    finished = BulkJob.objects.filter(pk=job_id, status=BulkJob.Status.RUNNING).update(
        status=BulkJob.Status.FINISHED, finished_at=now
    )
    BulkJob.objects.filter(
        pk=job_id, status=BulkJob.Status.CANCELLED, finished_at__isnull=True
    ).update(finished_at=now)
    if finished:
        job = BulkJob.objects.get(pk=job_id)
        counts = job_counts(job)
        audit.record(
            actor=job.created_by,
            action="bulk_job_finished",
            outcome="succeeded" if not counts["failed"] else "failed",
            target_label=job.source_label,
            detail=summary_line(counts),
        )
    return bool(finished)


def jobs_sweep(*, enqueue=None) -> dict[str, int]:
    """Return expired leases to pending; restart jobs whose tasks all died; finish done jobs."""
    now = timezone.now()
    released = Row.objects.filter(status=RUNNING, lease_until__lt=now).update(
        status=PENDING, claim_token="", lease_until=None, outcome="Retrying: the worker was lost."
    )
    stall = now - timedelta(seconds=settings.BULK_STALL_SECONDS)
    restarted = 0
    active = BulkJob.objects.filter(
        Q(status=BulkJob.Status.RUNNING) | Q(status=BulkJob.Status.CANCELLED, finished_at=None)
    )
    for job in active:
        if job_finish_if_done(job_id=job.pk):
            continue
        if job.last_progress_at is None or job.last_progress_at < stall:
            touched = BulkJob.objects.filter(pk=job.pk, last_progress_at=job.last_progress_at)
            if touched.update(last_progress_at=now):
                (enqueue or _enqueue)(job.pk)
                restarted += 1
    if released or restarted:
        logger.info("Bulk sweep: %d rows released, %d jobs restarted", released, restarted)
    return {"released": released, "restarted": restarted}


def _enqueue(job_id: int) -> None:
    from provisioning.tasks.bulk import bulk_job_work

    for _ in range(settings.BULK_PARALLEL_TASKS):
        bulk_job_work.delay(job_id)


def job_start_tasks(job_id: int) -> None:
    """Start the job's tasks (called on commit of a confirmation or a re-run)."""
    BulkJob.objects.filter(pk=job_id).update(last_progress_at=timezone.now())
    _enqueue(job_id)


# -- progress ----------------------------------------------------------------------------------


def job_counts(job: BulkJob) -> dict[str, Any]:
    """Counts by status, rate over the last minute and time left (for the progress bar)."""
    by_status = dict(
        Row.objects.filter(job=job).values_list("status").annotate(n=Count("id")).order_by()
    )
    counts: dict[str, Any] = {s: by_status.get(s, 0) for s in Row.Status.values}
    counts["total"] = sum(by_status.values())
    counts["done"] = counts["total"] - counts["pending"] - counts["running"]
    window = 60
    recent = Row.objects.filter(
        job=job, finished_at__gte=timezone.now() - timedelta(seconds=window)
    ).count()
    if job.confirmed_at:
        elapsed = max(1.0, (timezone.now() - job.confirmed_at).total_seconds())
        window = min(window, elapsed)
    rate = recent / window if window else 0.0
    left = counts["pending"] + counts["running"]
    counts["rate"] = round(rate, 1)
    counts["seconds_left"] = round(left / rate) if rate and left else None
    counts["percent"] = round(100 * counts["done"] / counts["total"]) if counts["total"] else 100
    return counts


def summary_line(counts: dict[str, Any]) -> str:
    skipped = counts["skipped"] + counts["cancelled"]
    return (
        f"{counts['total']} rows: {counts['succeeded']} succeeded, {counts['failed']} failed, "
        f"{skipped} skipped"
    )
