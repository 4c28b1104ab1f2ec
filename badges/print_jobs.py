"""Badge sheets (print jobs): queue them, render them from the vault, print, cancel, expire
(docs/architecture.md §1 "Kiosk", §5 "Secrets", §8).

Secrets: a sheet's QR payloads stay in the vault until the sheet is printed or expires, and are
read only to render its PDF, which is never cached or stored. Every way of printing — a kiosk, a
manager's download, an IT admin's bulk job download, the badge_sheet command — ends in
`print_job_mark_printed`, which destroys the payloads. Nothing here logs or audits a secret.

Queueing, rendering and printing a sheet cost the same number of queries for one badge or a
hundred: the facts of all its badges are read together (tests/test_badge_sheets.py counts them).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from badges.layouts import LAYOUT_NAMES, SHEET_A4
from badges.models import Kiosk, PrintJob, PrintJobItem
from badges.render import BadgeData, render_badges
from badges.selectors import qr_payloads_latest, qr_payloads_viewable
from provisioning import actions, audit, vault
from provisioning.bulk.jobs import bulk_job_printable_rows
from provisioning.models import (
    AdministrativeUnit,
    AUMembership,
    BulkJob,
    BulkJobRow,
    DirectoryUser,
    Operation,
    VaultSecret,
    WorkerMethodState,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractUser

logger = logging.getLogger(__name__)


class BadgeError(Exception):
    """A request about badges that cannot be done, in words a manager can act on."""


class PrintJobUnavailable(BadgeError):
    """The sheet cannot be rendered (not ready, closed, or its payloads are gone)."""


# -- queueing sheets -------------------------------------------------------------------------


@dataclass(frozen=True)
class BadgeRequest:
    """One badge to print. Unset fields are looked up: the worker's newest QR payload in the
    vault, and its expiry and kind from the action that created it (or the worker's method state).
    A bulk job passes what its rows recorded."""

    user_id: str
    payload_secret_id: int | None = None
    valid_until: datetime | None = None
    temporary: bool | None = None


class UnprintableReason(models.TextChoices):
    """Why a badge or PIN slip cannot be printed: a stable code (what the pages decide on, e.g.
    to offer "Replace QR code") and the words a manager reads."""

    NO_PAYLOAD = "no_payload", "The QR code is no longer in Lanyard: replace the QR code to print."
    NOT_IN_STORE = "not_in_store", "Not a worker of this store."
    NO_EXPIRY = (
        "no_expiry",
        "Lanyard does not know when this QR code expires: refresh the worker, then retry.",
    )
    NO_PIN = "no_pin", "No PIN waiting in Lanyard (already shown, printed or expired)."


@dataclass(frozen=True)
class Unprintable:
    """A worker whose badge (or PIN slip) cannot be printed: `code` says why, `reason` in words.
    `user_principal_name` is empty for a worker Lanyard does not know."""

    user_id: str
    display_name: str
    code: UnprintableReason
    user_principal_name: str = ""

    @property
    def reason(self) -> str:
        return self.code.label


@dataclass
class QueueResult:
    jobs: list[PrintJob] = field(default_factory=list)
    unprintable: list[Unprintable] = field(default_factory=list)

    @property
    def job(self) -> PrintJob | None:
        return self.jobs[0] if self.jobs else None


def _check_layout(layout: str) -> None:
    if layout not in LAYOUT_NAMES:
        raise BadgeError(f"Unknown layout {layout!r}; choose one of {', '.join(LAYOUT_NAMES)}.")


def _unprintable(worker: DirectoryUser, code: UnprintableReason) -> Unprintable:
    return Unprintable(
        user_id=worker.id,
        display_name=worker.display_name,
        code=code,
        user_principal_name=worker.user_principal_name,
    )


def _payload_secrets(
    wanted: Sequence[tuple[BadgeRequest, DirectoryUser]],
    *,
    reader: AbstractUser | None = None,
) -> dict[str, VaultSecret]:
    """The live vault row of each worker's QR payload (by worker id): the one the request names,
    else the worker's newest. Two queries at most, whatever the number of workers. With `reader`
    (a manager's sheet), only payloads that manager may draw (badges.selectors.
    qr_payloads_viewable)."""
    found: dict[str, VaultSecret] = {}
    named = {r.payload_secret_id: w for r, w in wanted if r.payload_secret_id is not None}
    if named:
        live = (
            qr_payloads_viewable(reader=reader)
            if reader is not None
            else VaultSecret.objects.filter(
                kind=VaultSecret.Kind.QR_PAYLOAD,
                destroyed_at__isnull=True,
                expires_at__gt=timezone.now(),
            )
        )
        for secret in live.filter(id__in=list(named)):
            worker = named[secret.pk]
            if secret.owner_id == worker.id.lower():
                found[worker.id] = secret
    found.update(
        qr_payloads_latest(
            worker_ids=[w.id for r, w in wanted if r.payload_secret_id is None], reader=reader
        )
    )
    return found


def _code_facts(secrets: dict[str, VaultSecret]) -> dict[int, tuple[datetime | None, bool]]:
    """(valid until, temporary) of the code behind each payload (by vault row id), from what
    created it: the manager action, else the bulk job row, else the worker's method state."""
    worker_of = {secret.pk: worker_id for worker_id, secret in secrets.items()}
    facts: dict[int, tuple[datetime | None, bool]] = {}
    newest: dict[int, Operation] = {}
    for operation in Operation.objects.filter(payload_secret_id__in=list(worker_of)).order_by(
        "-created_at"
    ):
        if operation.worker_id == worker_of[operation.payload_secret_id]:
            newest.setdefault(operation.payload_secret_id, operation)
    for secret_id, operation in newest.items():
        if operation.result_expires_at is not None:
            facts[secret_id] = (operation.result_expires_at, operation.is_temporary_qr)
    rest = [secret_id for secret_id in worker_of if secret_id not in facts]
    if rest:
        for row in BulkJobRow.objects.filter(payload_secret_id__in=rest).order_by("line", "id"):
            expires = parse_datetime((row.result or {}).get("expires_at") or "")
            if expires is not None:
                facts.setdefault(row.payload_secret_id, (expires, False))
    rest = [secret_id for secret_id in rest if secret_id not in facts]
    if rest:
        states = WorkerMethodState.objects.in_bulk([worker_of[secret_id] for secret_id in rest])
        for secret_id in rest:
            state = states.get(worker_of[secret_id])
            if state is not None and state.standard_expires is not None:
                facts[secret_id] = (state.standard_expires, False)
    return facts


def _item_for(
    request: BadgeRequest,
    worker: DirectoryUser,
    secret: VaultSecret | None,
    facts: dict[int, tuple[datetime | None, bool]],
    store_name: str,
) -> PrintJobItem | Unprintable:
    if secret is None:
        return _unprintable(worker, UnprintableReason.NO_PAYLOAD)
    valid_until, temporary = facts.get(secret.pk, (None, False))
    valid_until = request.valid_until or valid_until
    if request.temporary is not None:
        temporary = request.temporary
    if valid_until is None:
        return _unprintable(worker, UnprintableReason.NO_EXPIRY)
    return PrintJobItem(
        worker_id=worker.id,
        user_principal_name=worker.user_principal_name,
        display_name=worker.display_name,
        employee_id=worker.employee_id,
        store_name=store_name,
        payload_secret_id=secret.pk,
        temporary=temporary,
        valid_until=valid_until,
    )


def _job_expiry(items: Iterable[PrintJobItem], payload_ends: Iterable[datetime]) -> datetime:
    """A sheet is printable while every payload is in the vault and no temporary code is over."""
    ends = [*payload_ends, *(item.valid_until for item in items if item.temporary)]
    default = timezone.now() + timedelta(days=settings.VAULT_QR_PAYLOAD_DAYS)
    return min([end for end in ends if end is not None] + [default])


def print_job_create_from_users(
    *,
    unit: AdministrativeUnit | None,
    created_by: AbstractUser | None,
    layout: str,
    user_ids: Sequence[str] = (),
    requests: Sequence[BadgeRequest] = (),
    source: str = PrintJob.Source.STORE,
    actor_label: str = "",
) -> QueueResult:
    """Queue one sheet of `unit` with the badges of these workers that can still be printed.

    The caller has checked that `created_by` may print for `unit` (a manager's store, an IT
    admin's bulk job); here each worker must still belong to `unit`. Workers whose payload is no
    longer in the vault come back in `unprintable`. With no printable worker, no sheet is queued.
    Give `user_ids` (newest payload of each) or `requests` (what a bulk job recorded), or both.
    A store-page sheet takes only payloads `created_by` created within QR_PAYLOAD_VIEW_MINUTES.
    `unit=None` is for workers of no store (the badge_sheet command only).
    """
    _check_layout(layout)
    wanted: list[BadgeRequest] = []
    seen: set[str] = set()
    for request in [*requests, *(BadgeRequest(user_id=uid) for uid in user_ids)]:
        if request.user_id not in seen:
            seen.add(request.user_id)
            wanted.append(request)
    ids = [request.user_id for request in wanted]
    workers = {w.id: w for w in DirectoryUser.objects.filter(id__in=ids)}
    members = set()
    if unit is not None:
        members = set(
            AUMembership.objects.filter(administrative_unit=unit, user_id__in=ids).values_list(
                "user_id", flat=True
            )
        )
    result = QueueResult()
    placeable: list[tuple[BadgeRequest, DirectoryUser]] = []
    for request in wanted:
        worker = workers.get(request.user_id)
        if worker is None:
            result.unprintable.append(
                Unprintable(request.user_id, request.user_id, UnprintableReason.NOT_IN_STORE)
            )
        elif unit is not None and worker.id not in members:
            result.unprintable.append(_unprintable(worker, UnprintableReason.NOT_IN_STORE))
        else:
            placeable.append((request, worker))
    # A manager's sheet (the store page, a new code's "send to kiosk") holds only payloads that
    # manager may draw; bulk jobs and the command are IT's, printed once (docs/architecture.md §5).
    reader = created_by if source == PrintJob.Source.STORE else None
    secrets = _payload_secrets(placeable, reader=reader)
    facts = _code_facts(secrets)
    items: list[PrintJobItem] = []
    for request, worker in placeable:
        secret = secrets.get(worker.id)
        item = _item_for(request, worker, secret, facts, unit.display_name if unit else "")
        if isinstance(item, Unprintable):
            result.unprintable.append(item)
        else:
            items.append(item)
    if not items:
        return result
    payload_ends = [secrets[item.worker_id].expires_at for item in items]
    with transaction.atomic():
        job = PrintJob.objects.create(
            store=unit,
            created_by=created_by,
            layout=layout,
            source=source,
            expires_at=_job_expiry(items, payload_ends),
        )
        for position, item in enumerate(items):
            item.job = job
            item.position = position
        PrintJobItem.objects.bulk_create(items)
        audit.record(
            actor=created_by,
            actor_label=actor_label,
            action="badge-sheet-queued",
            outcome="succeeded",
            administrative_unit_id=unit.id if unit else "",
            target_label=f"badge sheet {job.pk}",
            detail=f"{len(items)} badge(s), layout {layout}, from {job.get_source_display()}",
        )
    result.jobs.append(job)
    return result


def print_jobs_create_by_store(
    *,
    created_by: AbstractUser | None,
    layout: str,
    user_ids: Sequence[str] = (),
    requests: Sequence[BadgeRequest] = (),
    source: str = PrintJob.Source.BULK,
    actor_label: str = "",
) -> QueueResult:
    """One sheet per store for workers of several stores (a bulk job's results, badge_sheet).

    A worker goes on the sheet of the first of their stores by name; workers of no store on a
    sheet of no store, which only a download (not a kiosk) can print. The caller is an IT admin
    or the command line.
    """
    wanted = [*requests, *(BadgeRequest(user_id=uid) for uid in user_ids)]
    ids = [request.user_id for request in wanted]
    store_of: dict[str, str] = {}
    for user_id, au_id in (
        AUMembership.objects.filter(user_id__in=ids)
        .order_by("administrative_unit__display_name", "administrative_unit_id")
        .values_list("user_id", "administrative_unit_id")
    ):
        store_of.setdefault(user_id, au_id)
    groups: dict[str | None, list[BadgeRequest]] = {}
    for request in wanted:
        groups.setdefault(store_of.get(request.user_id), []).append(request)
    units = AdministrativeUnit.objects.in_bulk([au for au in groups if au])
    result = QueueResult()
    for au_id, group in groups.items():
        one = print_job_create_from_users(
            unit=units[au_id] if au_id else None,
            created_by=created_by,
            layout=layout,
            requests=group,
            source=source,
            actor_label=actor_label,
        )
        result.jobs += one.jobs
        result.unprintable += one.unprintable
    return result


def manager_job_sheet_queue(*, job: BulkJob, unit: AdministrativeUnit) -> QueueResult | None:
    """Queue, once, ONE sheet for `unit`'s kiosk with the QR codes a manager's job issued.

    Called when the job has finished (the store page's progress does it); None when the sheet
    was already queued. The sheet follows the store page's rule: it holds only payloads the job's
    manager created within QR_PAYLOAD_VIEW_MINUTES (docs/architecture.md §5), and each worker must
    still belong to `unit`.
    """
    with transaction.atomic():
        claimed = BulkJob.objects.filter(
            pk=job.pk, sheet_queued_at__isnull=True, status=BulkJob.Status.FINISHED
        ).update(sheet_queued_at=timezone.now())
        if not claimed:
            return None
        rows = list(bulk_job_printable_rows(job=job, kind="badge"))
        requests = [
            BadgeRequest(
                user_id=row.user_id,
                payload_secret_id=row.payload_secret_id,
                valid_until=parse_datetime((row.result or {}).get("expires_at") or ""),
            )
            for row in rows
        ]
        if not requests:
            return QueueResult()
        return print_job_create_from_users(
            unit=unit,
            created_by=job.requested_by,
            layout=SHEET_A4,
            requests=requests,
            source=PrintJob.Source.STORE,
        )


# -- forgotten badge ---------------------------------------------------------------------------


def forgotten_badge_send(
    *,
    worker: DirectoryUser,
    unit: AdministrativeUnit,
    requested_by: AbstractUser,
    hours: int,
    layout: str,
    start: datetime | None = None,
) -> tuple[Operation, PrintJob]:
    """Issue a temporary QR code and queue its badge for the store's kiosks, in one action.

    The code is created by the manager-action task (`actions.qr_temporary_add`); the sheet waits
    in the queue, shown as "waiting for the QR code", until that action has stored the payload
    (`print_job_items_resolve`). Raises `actions.ActionRefused` as the action would.
    """
    _check_layout(layout)
    with transaction.atomic():
        operation = actions.qr_temporary_add(
            worker=worker,
            unit=unit,
            requested_by=requested_by,
            start=start or timezone.now(),
            hours=hours,
        )
        job = PrintJob.objects.create(
            store=unit,
            created_by=requested_by,
            layout=layout,
            source=PrintJob.Source.FORGOTTEN,
            expires_at=timezone.now() + timedelta(hours=hours),
        )
        PrintJobItem.objects.create(
            job=job,
            worker_id=worker.id,
            user_principal_name=worker.user_principal_name,
            display_name=worker.display_name,
            employee_id=worker.employee_id,
            store_name=unit.display_name,
            operation=operation,
            temporary=True,
        )
        audit.record(
            actor=requested_by,
            action="badge-sheet-queued",
            outcome="succeeded",
            target_user_id=worker.id,
            target_label=worker.user_principal_name,
            administrative_unit_id=unit.id,
            detail=f"Forgotten badge: temporary QR code for {hours} h sent to the store's kiosk",
        )
    return operation, job


def print_job_items_resolve(*, jobs: Iterable[PrintJob]) -> None:
    """Attach the payloads of finished forgotten-badge actions to their waiting badges; cancel a
    sheet whose action failed."""
    waiting = PrintJobItem.objects.filter(
        job__in=[job for job in jobs if job.is_open],
        payload_secret_id__isnull=True,
        operation__isnull=False,
    ).select_related("operation", "job")
    for item in waiting:
        operation = item.operation
        if operation.status == Operation.Status.SUCCEEDED and operation.payload_secret_id:
            item.payload_secret_id = operation.payload_secret_id
            item.valid_until = operation.result_expires_at
            item.save(update_fields=["payload_secret_id", "valid_until"])
        elif operation.is_finished and _close(item.job, PrintJob.Status.CANCELLED):
            audit.record(
                actor=None,
                actor_label="Lanyard",
                action="badge-sheet-cancelled",
                outcome="failed",
                target_user_id=item.worker_id,
                target_label=item.user_principal_name,
                administrative_unit_id=item.job.store_id or "",
                detail="The temporary QR code could not be created; nothing to print.",
            )


def print_job_ready(job: PrintJob) -> bool:
    """Every badge of the sheet has its payload (uses prefetched items)."""
    return all(item.is_ready for item in job.items.all())


# -- rendering and printing --------------------------------------------------------------------


def print_job_badges(*, job: PrintJob) -> list[BadgeData]:
    """What the sheet's badges show, payloads read from the vault now (for rendering only)."""
    if not job.is_open:
        raise PrintJobUnavailable(f"This badge sheet was {job.status}; queue a new one.")
    if job.expires_at <= timezone.now():
        raise PrintJobUnavailable("This badge sheet has expired; queue a new one.")
    print_job_items_resolve(jobs=[job])
    items = list(job.items.all())
    if any(not item.is_ready for item in items):
        raise PrintJobUnavailable("The QR code is still being created; try again in a moment.")
    payloads = vault.secrets_read(
        kind=VaultSecret.Kind.QR_PAYLOAD,
        owners={item.payload_secret_id: item.worker_id for item in items},
    )
    badges = []
    for item in items:
        payload = payloads.get(item.payload_secret_id)
        if payload is None:
            raise PrintJobUnavailable(
                f"The QR code of {item.display_name} is no longer in Lanyard; "
                "replace the QR code and queue a new sheet."
            )
        badges.append(
            BadgeData(
                display_name=item.display_name,
                employee_id=item.employee_id,
                store_name=item.store_name,
                valid_until=timezone.localtime(item.valid_until),
                payload=payload.encode("utf-8", errors="surrogateescape"),
                temporary=item.temporary,
            )
        )
    return badges


def print_job_pdf(*, job: PrintJob) -> bytes:
    """The sheet's PDF, rendered now from the vault (never cached or stored)."""
    return render_badges(print_job_badges(job=job), job.layout)


def print_job_open(*, job: PrintJob, kiosk: Kiosk) -> bytes:
    """A kiosk opens the sheet to print it: the PDF, and the sheet is marked as printing."""
    pdf = print_job_pdf(job=job)
    now = timezone.now()
    PrintJob.objects.filter(pk=job.pk, status__in=PrintJob.OPEN_STATUSES).update(
        status=PrintJob.Status.PRINTING, kiosk=kiosk, opened_at=now
    )
    audit.record(
        actor=None,
        actor_label=f"kiosk {kiosk.name}",
        action="badge-sheet-opened",
        outcome="succeeded",
        administrative_unit_id=job.store_id or "",
        target_label=f"badge sheet {job.pk}",
    )
    return pdf


def _destroy_payloads(job: PrintJob, *, reason: str) -> None:
    vault.secrets_destroy(
        secret_ids=job.items.exclude(payload_secret_id__isnull=True).values_list(
            "payload_secret_id", flat=True
        ),
        reason=reason,
    )


def _close(job: PrintJob, status: str) -> bool:
    """Close an open sheet (conditional UPDATE, so two kiosks cannot both close it)."""
    now = timezone.now()
    fields = {"status": status, "closed_at": now}
    if status == PrintJob.Status.PRINTED:
        fields["printed_at"] = now
    closed = PrintJob.objects.filter(pk=job.pk, status__in=PrintJob.OPEN_STATUSES).update(**fields)
    if closed:
        for name, value in fields.items():
            setattr(job, name, value)
    return bool(closed)


def print_job_mark_printed(
    *,
    job: PrintJob,
    kiosk: Kiosk | None = None,
    actor: AbstractUser | None = None,
    actor_label: str = "",
) -> bool:
    """The sheet is printed: close it and destroy its payloads from the vault.

    Returns False if it was already closed (a second click, or another kiosk).
    """
    with transaction.atomic():
        if not _close(job, PrintJob.Status.PRINTED):
            return False
        if kiosk is not None:
            PrintJob.objects.filter(pk=job.pk).update(kiosk=kiosk)
            job.kiosk = kiosk
        _destroy_payloads(job, reason="printed")
        audit.record(
            actor=actor,
            actor_label=actor_label or (f"kiosk {kiosk.name}" if kiosk and actor is None else ""),
            action="badge-sheet-printed",
            outcome="succeeded",
            administrative_unit_id=job.store_id or "",
            target_label=f"badge sheet {job.pk}",
            detail=f"{job.items.count()} badge(s); QR payloads destroyed",
        )
    return True


def print_job_cancel(*, job: PrintJob, actor: AbstractUser | None, actor_label: str = "") -> bool:
    """Take the sheet off the queue. Its payloads stay in the vault (until they expire), so the
    badges can still be queued again."""
    with transaction.atomic():
        if not _close(job, PrintJob.Status.CANCELLED):
            return False
        audit.record(
            actor=actor,
            actor_label=actor_label,
            action="badge-sheet-cancelled",
            outcome="succeeded",
            administrative_unit_id=job.store_id or "",
            target_label=f"badge sheet {job.pk}",
        )
    return True


def print_jobs_expire() -> int:
    """Close every open sheet past its expiry and destroy its payloads (a beat task runs this)."""
    expired = 0
    for job in PrintJob.objects.filter(
        status__in=PrintJob.OPEN_STATUSES, expires_at__lte=timezone.now()
    ):
        with transaction.atomic():
            if not _close(job, PrintJob.Status.EXPIRED):
                continue
            _destroy_payloads(job, reason="expired")
            audit.record(
                actor=None,
                actor_label="Lanyard",
                action="badge-sheet-expired",
                outcome="succeeded",
                administrative_unit_id=job.store_id or "",
                target_label=f"badge sheet {job.pk}",
                detail="Not printed in time; QR payloads destroyed",
            )
        expired += 1
    if expired:
        logger.info("Badges: %d sheets expired", expired)
    return expired


# -- printing at once: a download that is its own printout -----------------------------------


@dataclass
class PrintedSheets:
    """Badges printed at once into one PDF, their only copy (the payloads are destroyed).
    `pdf` is None when nothing could be printed; then no sheet was queued."""

    pdf: bytes | None
    jobs: list[PrintJob] = field(default_factory=list)
    badge_count: int = 0
    unprintable: list[Unprintable] = field(default_factory=list)


def print_jobs_print_now(
    *,
    requests: Sequence[BadgeRequest],
    layout: str,
    printed_by: AbstractUser | None,
    source: str,
    actor_label: str = "",
) -> PrintedSheets:
    """Queue these badges (one sheet per store), render them into one PDF and mark the sheets
    printed: the PDF is then the only copy of the QR codes, as when a kiosk prints a sheet.

    For a download that is its own printout (the badge_sheet command, an IT admin's bulk job).
    All in one transaction: if rendering fails — or the caller's own transaction rolls back,
    say because the file cannot be written — nothing is queued and no payload is destroyed.
    """
    with transaction.atomic():
        queued = print_jobs_create_by_store(
            created_by=printed_by,
            layout=layout,
            requests=requests,
            source=source,
            actor_label=actor_label,
        )
        printed = PrintedSheets(pdf=None, jobs=queued.jobs, unprintable=queued.unprintable)
        if not queued.jobs:
            return printed
        badges = [badge for job in queued.jobs for badge in print_job_badges(job=job)]
        printed.pdf = render_badges(badges, layout)
        printed.badge_count = len(badges)
        for job in queued.jobs:
            print_job_mark_printed(job=job, actor=printed_by, actor_label=actor_label)
    return printed


def bulk_job_badges_pdf(
    *,
    job: BulkJob,
    layout: str,
    printed_by: AbstractUser | None,
    source: str = PrintJob.Source.BULK,
    actor_label: str = "",
) -> PrintedSheets:
    """The badges of a bulk job's new QR codes not printed yet, printed at once into one PDF
    (`print_jobs_print_now`: their payloads leave the vault); the job's rows are marked printed.

    Raises BadgeError when the job has no QR code left to print.
    """
    rows = list(bulk_job_printable_rows(job=job, kind="badge"))
    if not rows:
        raise BadgeError(
            "This job has no QR code left to print: its badges were printed, or the codes expired."
        )
    requests = [
        BadgeRequest(
            user_id=row.user_id,
            payload_secret_id=row.payload_secret_id,
            valid_until=parse_datetime(
                (row.result or {}).get("expires_at") or (row.params or {}).get("expire") or ""
            ),
        )
        for row in rows
    ]
    with transaction.atomic():
        printed = print_jobs_print_now(
            requests=requests,
            layout=layout,
            printed_by=printed_by,
            source=source,
            actor_label=actor_label,
        )
        if printed.jobs:
            job.rows.filter(
                payload_secret_id__in=PrintJobItem.objects.filter(job__in=printed.jobs).values(
                    "payload_secret_id"
                )
            ).update(badge_printed_at=timezone.now())
    return printed


# -- after a renewal ---------------------------------------------------------------------------

RENEWAL_LAYOUT = "sheet-a4"


def renewal_sheet_queue(*, job: BulkJob) -> QueueResult:
    """Queue one sheet with the new QR codes of a finished renewal job (the insights page's
    "Renew", one store per job) for that store's kiosks. Other jobs queue nothing.

    Called once, when the engine finishes the job (`bulk_job_finished`, badges/apps.py). The
    sheet follows the print-once rule of every bulk sheet (docs/architecture.md §5)."""
    if job.source != BulkJob.Source.RENEW or job.status != BulkJob.Status.FINISHED:
        return QueueResult()
    unit = AdministrativeUnit.objects.filter(pk=job.source_ref).first()
    if unit is None:
        logger.warning("Renewal job %s: its store is no longer in the directory cache", job.pk)
        return QueueResult()
    requests = [
        BadgeRequest(
            user_id=row.user_id,
            payload_secret_id=row.payload_secret_id,
            valid_until=parse_datetime((row.result or {}).get("expires_at") or ""),
        )
        for row in bulk_job_printable_rows(job=job, kind="badge")
    ]
    if not requests:
        return QueueResult()
    return print_job_create_from_users(
        unit=unit,
        created_by=job.created_by,
        layout=RENEWAL_LAYOUT,
        requests=requests,
        source=PrintJob.Source.BULK,
    )


def renewal_sheet_queue_on_finish(sender, *, job: BulkJob, **kwargs) -> None:
    """`bulk_job_finished` receiver (provisioning/bulk/engine.py)."""
    result = renewal_sheet_queue(job=job)
    if result.unprintable:
        logger.warning("Renewal job %s: %d badge(s) could not be queued", job.pk,
                       len(result.unprintable))  # fmt: skip
