"""Bulk renewal rows: replace a worker's standard QR code and keep the PIN (the insights page's
"Renew", docs/architecture.md §11.2).

The Graph calls are the manager's "replace lost QR code" (`qr.qr_credentials_reissue` with
`reset_pin=False`: DELETE then PATCH standardQRCode). Every step may be repeated, so a row whose
answer was lost is simply replaced again on its next attempt: the worker ends with exactly one
standard code, the one whose payload the row holds, and the PIN they already know.
"""

from __future__ import annotations

import logging

from django.db import transaction

from provisioning import qr, vault
from provisioning.bulk.leases import (
    ClaimLost,
    Row,
    outcome_reason,
    row_finish,
    row_requeue,
    rows_mark_write_intent,
)
from provisioning.graph import GraphClient, GraphError, GraphNotFound
from provisioning.graph.models import parse_datetime
from provisioning.models import BulkJob

logger = logging.getLogger(__name__)

RENEWED = "Standard QR code replaced; the PIN is unchanged."
NO_METHOD = (
    "The worker no longer has a QR code + PIN method in Entra: nothing to renew (add one from "
    "the store page)."
)


def renew_chunk(job: BulkJob, rows: list[Row], token: str, client: GraphClient) -> None:
    """Replace the standard QR code of each claimed row's worker, one worker at a time."""
    for row in rows_mark_write_intent(rows, token, phase="reissue"):
        _renew(job, row, token, client)


def _renew(job: BulkJob, row: Row, token: str, client: GraphClient) -> None:
    try:
        issued = qr.qr_credentials_reissue(
            client=client,
            user_id=row.user_id,
            start=parse_datetime(row.params["start"]),
            expire=parse_datetime(row.params["expire"]),
            created_by=job.created_by,
            reset_pin=False,
        )
    except GraphNotFound as exc:
        row_finish(row, token, Row.Status.FAILED, f"{NO_METHOD} {outcome_reason(exc)}",
                   graph_request_id=exc.request_id or "")  # fmt: skip
        return
    except GraphError as exc:
        if exc.permanent:
            row_finish(row, token, Row.Status.FAILED, outcome_reason(exc),
                       graph_request_id=exc.request_id or "")  # fmt: skip
        else:
            row_requeue(row, token, str(exc), retry_after=getattr(exc, "retry_after", None))
        return
    result = {
        "expires_at": issued.expires_at.isoformat() if issued.expires_at else row.params["expire"],
        "issued": issued.issue.value,
    }
    try:
        with transaction.atomic():
            held = row_finish(
                row, token, Row.Status.SUCCEEDED, RENEWED,
                payload_secret_id=issued.payload_secret_id, result=result,
            )  # fmt: skip
            if not held:
                raise ClaimLost
    except ClaimLost:
        logger.warning("Bulk row %s was taken over by another task; its result is dropped", row.pk)
        if issued.payload_secret_id:
            vault.secret_destroy(secret_id=issued.payload_secret_id, reason="superseded")
