"""Bulk QR rows: create each worker's QR code + PIN method exactly once (step 3 of the protocol in
provisioning/bulk/engine.py: a row whose write may have reached Graph is re-checked, then created,
re-issued or skipped — never written blindly again).
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction

from provisioning import qr, vault
from provisioning.bulk.leases import (
    ClaimLost,
    Row,
    outcome_reason,
    row_finish,
    row_requeue,
    rows_hold,
    rows_mark_write_intent,
)
from provisioning.graph import (
    BULK,
    RECOVERY,
    BatchResult,
    GraphClient,
    GraphError,
    GraphRequest,
    InteractionRequired,
    is_undocumented_refusal,
    operations,
)
from provisioning.graph.models import QrCode, QrMethod, QrPin, parse_datetime
from provisioning.models import BulkJob, VaultSecret

logger = logging.getLogger(__name__)


def _ours(method: QrMethod, row: Row) -> bool:
    """Is this the method an earlier attempt of this row created? (Same start and expiry.)"""
    code = method.standard_qr_code
    if code is None or code.start_date_time is None or code.expire_date_time is None:
        return False
    return (
        abs((code.start_date_time - parse_datetime(row.params["start"])).total_seconds()) < 1
        and abs((code.expire_date_time - parse_datetime(row.params["expire"])).total_seconds()) < 1
    )


def _record_credentials(
    row: Row, token: str, *, payload_id: int | None, pin_id: int | None,
    expires_at: datetime | None, issue: qr.Issue, request_id: str,
) -> None:  # fmt: skip
    """Finish the row with its vault ids; raises ClaimLost when another task holds it now."""
    result = {
        "expires_at": expires_at.isoformat() if expires_at else row.params.get("expire"),
        "issued": issue.value,
    }
    outcome = {
        qr.Issue.RECOVERED: "QR code + PIN re-issued (an earlier answer was lost).",
        qr.Issue.REPLACED: "QR code renewed; the PIN did not change.",
    }.get(issue, "QR code + PIN created.")
    if not row_finish(
        row,
        token,
        Row.Status.SUCCEEDED,
        outcome,
        payload_secret_id=payload_id,
        pin_secret_id=pin_id,
        result=result,
        graph_request_id=request_id or "",
    ):
        raise ClaimLost
    if row.input_secret_id:
        vault.secret_destroy(secret_id=row.input_secret_id, reason="used")


def _store_created(row: Row, token: str, job: BulkJob, item: BatchResult) -> None:
    method = QrMethod.from_graph(item.body if isinstance(item.body, dict) else {})
    if not method.has_secrets:
        row_requeue(row, token, "Entra answered without the QR code or PIN; checking again.")
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
                row, token, payload_id=payload_id, pin_id=pin_id,
                expires_at=code.expire_date_time if code else None, issue=qr.Issue.CREATED,
                request_id=item.request_id or "",
            )  # fmt: skip
    except ClaimLost:
        logger.warning("Bulk row %s was taken over by another task; its result is dropped", row.pk)


ALREADY_HAS_METHOD = (
    "Already has a QR code + PIN method (Entra allows one): delete it or replace its QR code from "
    "the worker's page."
)


def _explain_qr(exc: GraphError) -> str:
    if is_undocumented_refusal(exc):
        # Only reached when a re-read found no method (_classify_refused): the refusal is about
        # the create itself, whatever status Graph used for it.
        return (
            "Entra refused the QR code + PIN method: the PIN may break the tenant's PIN rules, "
            "or the worker is not enabled for QR code sign-in (policy or licence). "
            f"{outcome_reason(exc)}"
        )
    if exc.status == 404:
        return f"The user no longer exists in Entra ID. {outcome_reason(exc)}"
    if exc.status == 403:
        return f"Lanyard's app may not change this user's methods. {outcome_reason(exc)}"
    return outcome_reason(exc)


def qr_chunk(job: BulkJob, rows: list[Row], token: str, client: GraphClient) -> None:
    """Work a chunk of claimed QR rows: re-check, create through $batch, re-issue what was lost."""
    creates: list[Row] = []
    reissues: list[Row] = []
    rechecked: set[int] = set()
    check = [r for r in rows if r.write_sent_at is not None]
    creates.extend(r for r in rows if r.write_sent_at is None)
    if check:
        gets = [operations.qr_method_get_request(r.user_id) for r in check]
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
                    row_finish(
                        row, token, Row.Status.SKIPPED,
                        "Already has a QR code + PIN method, created outside this job.",
                    )  # fmt: skip
            else:
                row_requeue(row, token, f"Could not read the QR method: {item.error}",
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
                row_finish(
                    row,
                    token,
                    Row.Status.FAILED,
                    "The custom PIN expired in the vault before the job ran: preview again.",
                )
                continue  # fmt: skip
        request = operations.qr_method_create_request(
            row.user_id,
            start=parse_datetime(row.params["start"]),
            expire=parse_datetime(row.params["expire"]),
            pin=pin,
        )
        ready.append((row, request))
    held = {r.pk for r in rows_mark_write_intent([r for r, _ in ready], token, phase="create")}
    ready = [(r, req) for r, req in ready if r.pk in held]
    if ready:
        results = client.batch([req for _, req in ready])
        refused: list[tuple[Row, BatchResult]] = []
        for (row, _), item in zip(ready, results, strict=True):
            if item.ok:
                _store_created(row, token, job, item)
            elif item.error is not None and is_undocumented_refusal(item.error):
                refused.append((row, item))
            elif item.error is not None and item.error.permanent:
                row_finish(row, token, Row.Status.FAILED, _explain_qr(item.error),
                           graph_request_id=item.request_id or "")  # fmt: skip
            else:
                why = str(item.error) if item.error else "no answer from Microsoft Graph."
                row_requeue(row, token, why, retry_after=getattr(item.error, "retry_after", None))

        if refused:
            reissues.extend(_classify_refused(refused, token, client, rechecked))

    # Re-issue what a lost answer left without secrets (after a killed worker: many rows).
    _reissue_rows(job, reissues, token, client, phase="reissue")


def _classify_refused(
    refused: list[tuple[Row, BatchResult]], token: str, client: GraphClient, rechecked: set[int]
) -> list[Row]:
    """Decide what a refused create means from Graph's state; returns the rows to re-issue.

    Graph documents no status for "already has a method", "invalid PIN" or "the policy does not
    target this user" (docs/graph-contract.md §1.3): a tenant may answer 409 or 400 for any of
    them. So the method is read again (one $batch) and the row is classified by what is there:
    - no method: Graph refused the create itself (PIN rules, policy, licence) → failed;
    - a method this row may have created (an earlier attempt's answer was lost, same dates) →
      re-issued;
    - anyone else's method → skipped.
    """
    gets = [operations.qr_method_get_request(row.user_id) for row, _ in refused]
    reissue: list[Row] = []
    for (row, created), item in zip(refused, client.batch(gets), strict=True):
        request_id = created.request_id or ""
        if item.status == 404 or (item.ok and not item.body):
            row_finish(row, token, Row.Status.FAILED, _explain_qr(created.error),
                       graph_request_id=request_id)  # fmt: skip
        elif item.ok:
            method = QrMethod.from_graph(item.body)
            maybe_ours = row.pk in rechecked or row.attempts > 1
            if maybe_ours and _ours(method, row):
                reissue.append(row)
            else:
                row_finish(row, token, Row.Status.SKIPPED, ALREADY_HAS_METHOD,
                           graph_request_id=request_id)  # fmt: skip
        else:
            row_requeue(row, token, f"Could not read the QR method: {item.error}",
                        retry_after=getattr(item.error, "retry_after", None))  # fmt: skip
    return reissue


def _reissue_rows(
    job: BulkJob, rows: list[Row], token: str, client: GraphClient, *, phase: str
) -> None:
    """Replace the standard QR code of each row's method, and for a recovered create reset its
    PIN too (`qr.qr_credentials_reissue`, one $batch per step for the whole chunk instead of
    three requests per row), then record the new secrets.

    `phase` is "reissue" (a create whose answer was lost: new code and PIN) or "replace" (a
    renewal: the PIN stays). Every step may be repeated, so a row stopped anywhere is simply
    re-issued again by its next attempt. Before each step the rows' leases are renewed and the
    rows another task took over are dropped (`rows_hold`): a task that lost a row sends no more
    writes for it, so it cannot replace the code whose payload the new holder recorded. The
    vault writes and the row's success are one transaction, rolled back if the row was lost.
    """
    reset_pin = phase == "reissue"
    # A lost answer's re-issue redoes what a crash lost: it keeps to bulk work's share of Graph's
    # window without being paced again (ratelimit.RECOVERY); a renewal is ordinary bulk work, and a
    # manager's job keeps its interactive priority.
    priority = RECOVERY if reset_pin and client.priority == BULK else None
    rows = rows_mark_write_intent(rows, token, phase=phase)
    # 1. Delete the standard code; already gone is fine (an earlier attempt deleted it).
    deletes = [operations.qr_code_delete_request(r.user_id, qr.STANDARD) for r in rows]
    deleted = client.batch(deletes, priority=priority)
    rows = _step_survivors(rows, deleted, token, phase=phase, missing_ok=True)
    # 2. Create a new standard code: its answer carries the payload.
    rows = rows_hold(rows, token)
    start_expire = {
        r.pk: (parse_datetime(r.params["start"]), parse_datetime(r.params["expire"])) for r in rows
    }
    created = client.batch([
        operations.qr_code_set_request(
            r.user_id, qr.STANDARD, start=start_expire[r.pk][0], expire=start_expire[r.pk][1]
        )
        for r in rows
    ], priority=priority)  # fmt: skip
    codes = {r.pk: QrCode.from_graph(item.body) for r, item in zip(rows, created, strict=True)}
    rows = _step_survivors(rows, created, token, phase=phase)
    # 3. Reset the PIN (a recovered create only): its answer carries the PIN in force.
    pins: dict[int, QrPin | None] = {}
    if reset_pin:
        rows = rows_hold(rows, token)
        resets = client.batch(
            [qr.qr_pin_reset_request(user_id=r.user_id) for r in rows], priority=priority
        )
        pins = {r.pk: QrPin.from_graph(item.body) for r, item in zip(rows, resets, strict=True)}
        rows = _step_survivors(rows, resets, token, phase=phase)
    for row in rows:
        payload = qr.payload_from_code(codes.get(row.pk))
        pin = pins.get(row.pk)
        if payload is None or (reset_pin and (pin is None or pin.secret_code is None)):
            row_requeue(row, token, "Entra answered without the QR code or PIN; re-issuing again.")
            continue
        code = codes[row.pk]
        try:
            with transaction.atomic():
                payload_id = vault.secret_store(
                    kind=VaultSecret.Kind.QR_PAYLOAD, owner_id=row.user_id, value=payload,
                    created_by=job.created_by,
                ).pk  # fmt: skip
                pin_id = None
                if reset_pin:
                    pin_id = vault.secret_store(
                        kind=VaultSecret.Kind.PIN, owner_id=row.user_id,
                        value=pin.secret_code.reveal(), created_by=job.created_by,
                    ).pk  # fmt: skip
                _record_credentials(
                    row, token, payload_id=payload_id, pin_id=pin_id,
                    expires_at=(code.expire_date_time if code else None) or start_expire[row.pk][1],
                    issue=qr.Issue.RECOVERED if reset_pin else qr.Issue.REPLACED, request_id="",
                )  # fmt: skip
        except ClaimLost:
            logger.warning("Bulk row %s was taken over by another task; result dropped", row.pk)


def _step_survivors(
    rows: list[Row], results: list[BatchResult], token: str, *, phase: str,
    missing_ok: bool = False,
) -> list[Row]:  # fmt: skip
    """The rows whose step succeeded; the others are finished or put back by what Graph said."""
    keep = []
    for row, item in zip(rows, results, strict=True):
        if item.ok or (missing_ok and item.status == 404):
            keep.append(row)
            continue
        error = item.error or GraphError("No answer from Microsoft Graph.")
        if isinstance(error, InteractionRequired):
            raise error  # the engine ends the job's remaining rows with "sign in again"
        if item.status == 404 and phase == "replace":
            why = f"{NO_METHOD_TO_RENEW} {outcome_reason(error)}"
            row_finish(row, token, Row.Status.FAILED, why, graph_request_id=item.request_id or "")
        elif item.status == 404:
            # The method itself is gone (deleted meanwhile): start over with a re-check.
            Row.objects.filter(pk=row.pk, claim_token=token).update(phase="")
            row_requeue(row, token, "The QR method disappeared while re-issuing; checking again.")
        else:
            _row_graph_error(row, token, error)
    return keep


NO_METHOD_TO_RENEW = "No QR code + PIN method to renew: add one instead."


def renew_chunk(job: BulkJob, rows: list[Row], token: str, client: GraphClient) -> None:
    """Work a chunk of "Renew" rows (a manager's job): replace each worker's standard QR code with
    one valid from the row's start to its expiry; the PIN stays. Every step may be repeated, so a
    row whose answer was lost is simply renewed again; the payload kept is the last one Graph
    returned. One $batch per step for the chunk (`_reissue_rows`)."""
    _reissue_rows(job, rows, token, client, phase="replace")


def _row_graph_error(row: Row, token: str, exc: GraphError) -> None:
    """A re-issue or renewal Graph refused: a permanent error fails the row with the reason, a
    transient one puts it back for a later attempt (after Retry-After when Graph gave one)."""
    if exc.permanent:
        row_finish(row, token, Row.Status.FAILED, _explain_qr(exc),
                   graph_request_id=exc.request_id or "")  # fmt: skip
    else:
        row_requeue(row, token, str(exc), retry_after=getattr(exc, "retry_after", None))
