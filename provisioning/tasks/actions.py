"""Manager actions and worker-state refreshes: thin tasks, ids as the only arguments.

`operation_run` claims its Operation with a conditional UPDATE (pending → running), re-checks that
the requesting manager still manages the worker's store, acts with the manager's delegated token,
and records the outcome on the row. Transient Graph errors are retried with exponential backoff and
jitter, honouring Retry-After; the service re-reads Graph's state before writing again.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db.models import F
from django.utils import timezone

from provisioning import audit, worker_state
from provisioning.graph import GraphError, InteractionRequired, get_app_client
from provisioning.models import AdministrativeUnit, Operation
from provisioning.operation_handlers import explain_error, operation_execute
from provisioning.rules import backoff_seconds
from provisioning.selectors import manager_manages_worker
from provisioning.token_cache import delegated_client_for

logger = logging.getLogger(__name__)

MAX_RETRIES = 6
BACKOFF_BASE_S = 2.0
BACKOFF_MAX_S = 120.0


def _claim(operation_id: int) -> bool:
    """pending → running, once; a row left running by a dead worker is claimed again later."""
    now = timezone.now()
    claimed = Operation.objects.filter(pk=operation_id, status=Operation.Status.PENDING).update(
        status=Operation.Status.RUNNING, attempts=F("attempts") + 1, started_at=now
    )
    if claimed:
        return True
    stale = now - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT)
    return bool(
        Operation.objects.filter(
            pk=operation_id, status=Operation.Status.RUNNING, started_at__lt=stale
        ).update(attempts=F("attempts") + 1, started_at=now)
    )


def _finish(operation: Operation, status: str, *, error: str = "", request_id: str = "") -> None:
    operation.status = status
    operation.error = error
    operation.graph_request_id = request_id
    operation.finished_at = timezone.now()
    operation.save(update_fields=["status", "error", "graph_request_id", "finished_at", "result"])
    audit.record(
        actor=operation.requested_by,
        action=operation.kind,
        outcome={"succeeded": "succeeded", "failed": "failed"}.get(status, "denied"),
        target_user_id=operation.worker_id,
        target_label=operation.worker_label,
        administrative_unit_id=operation.administrative_unit_id,
        graph_request_id=request_id,
        detail=error or f"{operation.get_kind_display()}: done",
    )


def _backoff(retries: int, retry_after: float | None) -> float:
    return backoff_seconds(
        attempt=retries, retry_after=retry_after, base=BACKOFF_BASE_S, cap=BACKOFF_MAX_S
    )


@shared_task(
    name="provisioning.operation_run",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=MAX_RETRIES,
    time_limit=300,
    soft_time_limit=270,
)
def operation_run(self, operation_id: int) -> str:
    """Carry out one manager action (an Operation id)."""
    if not _claim(operation_id):
        return "skipped"
    operation = Operation.objects.select_related("requested_by").get(pk=operation_id)
    manager = operation.requested_by
    if not manager_manages_worker(
        user=manager, au_id=operation.administrative_unit_id, user_id=operation.worker_id
    ):
        _finish(
            operation,
            Operation.Status.FAILED,
            error="Not done: you no longer manage this worker's store in Entra.",
        )
        return "denied"
    try:
        client = delegated_client_for(user=manager)
        operation.result = operation_execute(
            operation=operation, client=client, retrying=operation.attempts > 1
        )
    except InteractionRequired as exc:
        # The claims challenge (e.g. a fresh-MFA requirement) goes to the next sign-in, so Entra
        # asks for exactly what Graph wanted; it is a policy statement, not a secret.
        operation.result = {**(operation.result or {}), "claims": exc.claims or ""}
        _finish(
            operation,
            Operation.Status.NEEDS_SIGN_IN,
            error="Microsoft Entra needs you to sign in again before this can be done.",
            request_id=exc.request_id or "",
        )
        return "needs_sign_in"
    except GraphError as exc:
        if not exc.permanent and self.request.retries < MAX_RETRIES:
            Operation.objects.filter(pk=operation_id).update(
                status=Operation.Status.PENDING, error=f"Retrying: {exc}"
            )
            logger.info("Operation %s: transient %s, retrying", operation_id, type(exc).__name__)
            raise self.retry(
                countdown=_backoff(self.request.retries, getattr(exc, "retry_after", None)),
                exc=exc,
            ) from exc
        _finish(
            operation,
            Operation.Status.FAILED,
            error=explain_error(operation, exc),
            request_id=exc.request_id or "",
        )
        return "failed"
    except Exception:
        logger.exception("Operation %s failed unexpectedly", operation_id)
        _finish(
            operation,
            Operation.Status.FAILED,
            error="Lanyard hit an unexpected problem; nothing more was done. Try again.",
        )
        raise
    _finish(operation, Operation.Status.SUCCEEDED)
    try:
        worker_state.worker_state_refresh(client=client, user_id=operation.worker_id)
    except GraphError as exc:
        logger.info(
            "State of %s not refreshed after %s: %s", operation.worker_id, operation_id, exc
        )
    return "succeeded"


@shared_task(
    name="provisioning.worker_states_refresh",
    autoretry_for=(GraphError,),
    retry_backoff=30,
    retry_jitter=True,
    max_retries=3,
    acks_late=True,
    time_limit=3000,
    soft_time_limit=2900,
)
def worker_states_refresh(au_id: str) -> dict:
    """Refresh the QR/phone columns of every worker of one store (app identity)."""
    unit = AdministrativeUnit.objects.filter(pk=au_id).first()
    if unit is None:
        return {}
    try:
        return worker_state.worker_states_refresh_for_unit(client=get_app_client(), unit=unit)
    finally:
        # Queued through worker_states_refresh_claim: the next refresh of this store may go.
        worker_state.worker_states_refresh_release(unit_id=au_id)
