"""WorkerMethodState: the worker list's QR and phone columns, read from Graph.

The worker list of a 5,000-worker store must come from the database with a constant number of
queries, so the state Graph reports is copied here: for one worker after each manager action (with
the manager's own token), and for a whole store by a task (app identity) that the store page's
"Refresh" and, for the stores that need it, the hourly directory sync queue.
Nothing here is a secret: GET never returns PINs or QR images. Phone numbers are stored masked
as Entra masks them for an Authentication Administrator, whichever identity read them: the app
identity (and a privileged manager) reads full numbers, and every manager of the store sees this
row (issue 10, finding 2; docs/architecture.md §5). IT-admin flows that compare full numbers (the
bulk phone job) read Graph at run time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from provisioning.graph import (
    BatchResult,
    GraphClient,
    GraphError,
    InteractionRequired,
    operations,
)
from provisioning.graph.models import PhoneMethod, QrCode, QrMethod
from provisioning.models import (
    AdministrativeUnit,
    AUMembership,
    BulkJobRow,
    DirectoryUser,
    WorkerMethodState,
)
from provisioning.phone_numbers import phone_number_mask

logger = logging.getLogger(__name__)


def _last_used(code: QrCode | None) -> datetime | None:
    """lastUsedDateTime, with Graph's never-used value (0001-01-01, or absent) as None."""
    if code is None or code.last_used_date_time is None:
        return None
    if code.last_used_date_time.year <= 1:
        return None
    return code.last_used_date_time


def _masked(phones: dict, phone_type: str) -> str:
    phone = phones.get(phone_type)
    return phone_number_mask(phone.phone_number or "") if phone else ""


def worker_state_refresh(
    *, client: GraphClient, user_id: str, with_preferences: bool = True
) -> WorkerMethodState:
    """Read the worker's QR method and phones from Graph and store what the list shows."""
    method = operations.qr_method_get(client, user_id)
    phones = {phone.phone_type: phone for phone in operations.phone_method_list(client, user_id)}
    default_method = ""
    if with_preferences and phones:
        # Beta only (docs/graph-contract.md §3.1); used to explain why a phone cannot be removed.
        try:
            prefs = operations.sign_in_preferences_get(client, user_id)
            default_method = prefs.user_preferred_method_for_secondary_authentication or ""
        except InteractionRequired:
            raise
        except GraphError as exc:
            logger.info("signInPreferences of %s unreadable: %s", user_id, exc)
    return _state_store(user_id, method, phones, default_method)


def _state_store(
    user_id: str, method: QrMethod | None, phones: dict, default_method: str
) -> WorkerMethodState:
    standard = method.standard_qr_code if method else None
    temporary = method.temporary_qr_code if method else None
    mobile = phones.get("mobile")
    values = {
        "has_qr_method": method is not None,
        "qr_created_at": method.created_date_time if method else None,
        "standard_start": standard.start_date_time if standard else None,
        "standard_expires": standard.expire_date_time if standard else None,
        "standard_last_used": _last_used(standard),
        "temporary_start": temporary.start_date_time if temporary else None,
        "temporary_expires": temporary.expire_date_time if temporary else None,
        "temporary_last_used": _last_used(temporary),
        "pin_force_change": (
            method.pin.force_change_pin_next_sign_in if method and method.pin else None
        ),
        "mobile_phone": _masked(phones, "mobile"),
        "alternate_mobile_phone": _masked(phones, "alternateMobile"),
        "office_phone": _masked(phones, "office"),
        "sms_sign_in_state": (mobile.sms_sign_in_state or "") if mobile else "",
        "default_method": default_method,
        "refreshed_at": timezone.now(),
        "refresh_error": "",
    }
    state, _ = WorkerMethodState.objects.update_or_create(user_id=user_id, defaults=values)
    return state


# Workers read per round of $batch calls: two reads each, so 10 workers fill one $batch of 20
# (docs/graph-contract.md §6); a round of 100 keeps memory bounded in a store of any size.
REFRESH_ROUND = 100


def _batch_failure(item: BatchResult) -> GraphError:
    return item.error or GraphError(f"Microsoft Graph answered {item.status}")


def _worker_state_from_batch(user_id: str, qr: BatchResult, phone_list: BatchResult) -> None:
    """Store one worker's columns from its two $batch answers; raise what a single GET would."""
    if qr.ok:
        method = QrMethod.from_graph(qr.body) if qr.body else None
    elif qr.status == 404:
        method = None  # no QR method, as qr_method_get reads a 404
    else:
        raise _batch_failure(qr)
    if not phone_list.ok:
        raise _batch_failure(phone_list)
    phones = {}
    for value in (phone_list.body or {}).get("value") or []:
        phone = PhoneMethod.from_graph(value)
        phones[phone.phone_type] = phone
    _state_store(user_id, method, phones, "")


def worker_states_refresh_for_unit(*, client: GraphClient, unit: AdministrativeUnit) -> dict:
    """Refresh every worker of a store (app identity) through $batch; returns counts.

    Each worker costs two reads (its QR method and its phone methods), sent 20 to a $batch, so a
    store of N workers takes ceil(2N / 20) requests instead of 2N. Items Graph throttles are
    resent by `GraphClient.batch` after their Retry-After.
    """
    refreshed = failed = 0
    user_ids = DirectoryUser.objects.filter(memberships__administrative_unit=unit).values_list(
        "id", flat=True
    )
    for round_ids in _rounds(user_ids.iterator(), REFRESH_ROUND):
        reads = []
        for user_id in round_ids:
            reads.append(operations.qr_method_get_request(user_id))
            reads.append(operations.phone_method_list_request(user_id))
        results = client.batch(reads)
        for index, user_id in enumerate(round_ids):
            try:
                _worker_state_from_batch(user_id, results[2 * index], results[2 * index + 1])
                refreshed += 1
            except GraphError as exc:
                if not exc.permanent:
                    raise  # throttled or unavailable: the task retries the whole (idempotent) pass
                failed += 1
                WorkerMethodState.objects.filter(user_id=user_id).update(
                    refresh_error=str(exc)[:500]
                )
    logger.info("Method states of store %s: %d refreshed, %d failed", unit.pk, refreshed, failed)
    return {"refreshed": refreshed, "failed": failed}


def _rounds(ids: Iterator[str], size: int) -> Iterator[list[str]]:
    round_ids: list[str] = []
    for user_id in ids:
        round_ids.append(user_id)
        if len(round_ids) == size:
            yield round_ids
            round_ids = []
    if round_ids:
        yield round_ids


# A queued refresh that has not finished after this long was lost (a worker died): another may be
# queued. Longer than the task's time limit (provisioning/tasks/actions.py).
STATES_REFRESH_STALE = timedelta(hours=1)


def _refresh_claimable(now: datetime) -> Q:
    """Stores with no refresh pending, or whose pending one is stale (lost)."""
    return Q(states_refresh_queued_at__isnull=True) | Q(
        states_refresh_queued_at__lt=now - STATES_REFRESH_STALE
    )


def worker_states_refresh_claim(*, unit_id: str) -> bool:
    """Mark a refresh of store `unit_id` as queued; False when one is already pending.

    A conditional update on the store's row, so two requests (two managers, two web processes)
    cannot both queue one: each refresh pass costs Graph calls for every worker of the store.
    """
    now = timezone.now()
    return bool(
        AdministrativeUnit.objects.filter(pk=unit_id)
        .filter(_refresh_claimable(now))
        .update(states_refresh_queued_at=now)
    )


# A worker's QR and phone columns are re-read from Graph at least this often, so what changes
# outside Lanyard (the Entra admin center, My Staff, the worker's own security info page, a
# code's last use) shows within a day. What Lanyard itself changes is written to the columns as
# it finishes, and a manager's "Refresh" re-reads a store at once (docs/architecture.md §9).
STATES_STALE_AFTER = timedelta(days=1)


def worker_states_refresh_claim_due(*, now: datetime | None = None) -> list[str]:
    """Claim a refresh for every store whose QR/phone columns need one; return the store ids.

    Run after each hourly directory sync, instead of re-reading every store (two Graph reads per
    worker: ~200,000 an hour for 100,000 workers). A store needs a refresh when one of its members
    - has no columns yet: a worker who joined in this sync (or one a lost or failed pass never
      read), and every member of a store never refreshed; or
    - has columns read more than STATES_STALE_AFTER ago; or
    - was written to by a bulk job row that finished after the columns were read: IT admin jobs
      and pre-population (app identity) do not note their results in the columns, a manager's
      job and a manager's action do (provisioning/bulk/manager_jobs.py, tasks/actions.py).
    A store with a refresh pending (`states_refresh_queued_at`, as `worker_states_refresh_claim`)
    is left alone. At most two statements whatever the number of stores: one SELECT (the
    conditions are subqueries over the memberships, only store ids come back) that locks the rows
    it returns (skipping rows a manager's claim holds), and one UPDATE that claims them.
    """
    now = now or timezone.now()
    cutoff = now - STATES_STALE_AFTER
    # Rows older than the cutoff need not be looked at: a member's columns read before such a
    # row finished are older than the cutoff too.
    written_since_read = BulkJobRow.objects.filter(
        user_id=OuterRef("user_id"),
        write_sent_at__isnull=False,
        finished_at__gte=cutoff,
        finished_at__gt=OuterRef("user__method_state__refreshed_at"),
    )
    needing = AUMembership.objects.filter(
        Q(user__method_state__isnull=True)
        | Q(user__method_state__refreshed_at__lt=cutoff)
        | Exists(written_since_read)
    ).values("administrative_unit_id")
    with transaction.atomic():
        due = list(
            AdministrativeUnit.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(_refresh_claimable(now), id__in=needing)
            .order_by("pk")
            .values_list("id", flat=True)
        )
        if due:
            AdministrativeUnit.objects.filter(id__in=due).update(states_refresh_queued_at=now)
    return due


def worker_states_refresh_release(*, unit_id: str) -> None:
    """The pending refresh of store `unit_id` has finished (or failed): another may be queued."""
    AdministrativeUnit.objects.filter(pk=unit_id).update(states_refresh_queued_at=None)
