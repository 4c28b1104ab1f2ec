"""Badge sheets, PIN slips and kiosks (DESIGN.md §1 "Kiosk", §5 "Secrets", §8).

Secrets: a sheet's QR payloads stay in the vault until the sheet is printed or expires, and are
read only to render its PDF, which is never cached or stored. A PIN leaves the vault when its slip
is produced (`vault.secret_take`): a slip is printable once. Nothing here logs or audits a secret.

Kiosks: a manager starts a pairing, the kiosk's browser exchanges the short code for a device
credential — a value signed with `django.core.signing` whose salt carries the kiosk's id and
credential version, around a random token whose hash the kiosk row keeps. Revoking bumps the
version and forgets the hash, so every credential issued before stops working at once.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.apps import apps
from django.conf import settings
from django.core import signing
from django.db import models, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.dateparse import parse_datetime

from badges.layouts import LAYOUT_NAMES
from badges.models import Kiosk, KioskPairing, PrintJob, PrintJobItem
from badges.render import BadgeData, PinSlipData, render_badges, render_pin_slips
from badges.selectors import pin_secret_latest, qr_payload_latest
from portal.models import User
from provisioning import actions, audit, vault
from provisioning.models import (
    AdministrativeUnit,
    AUMembership,
    DirectoryUser,
    Operation,
    VaultSecret,
    WorkerMethodState,
)

logger = logging.getLogger(__name__)

PAIRING_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: typed by hand
PAIRING_CODE_LENGTH = 8
KIOSK_SIGNING_SALT = "lanyard.badges.kiosk"
LAST_SEEN_RESOLUTION = timedelta(seconds=60)


class BadgeError(Exception):
    """A request about badges that cannot be done, in words a manager can act on."""


class PrintJobUnavailable(BadgeError):
    """The sheet cannot be rendered (not ready, closed, or its payloads are gone)."""


class PairingFailed(BadgeError):
    """The pairing code is wrong, used or expired (one message for all three)."""


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
    """A worker whose badge cannot be printed: `code` says why, `reason` in words."""

    user_id: str
    display_name: str
    code: UnprintableReason
    store_id: str = ""

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


def _payload_facts(
    secret: VaultSecret, worker_id: str
) -> tuple[datetime | None, bool, Operation | None]:
    """(valid until, temporary) of the code whose payload is `secret`, from what created it."""
    operation = (
        Operation.objects.filter(payload_secret_id=secret.pk, worker_id=worker_id)
        .order_by("-created_at")
        .first()
    )
    if operation is not None and operation.result_expires_at is not None:
        return operation.result_expires_at, operation.is_temporary_qr, operation
    bulk_expiry = _bulk_row_expiry(secret.pk)
    if bulk_expiry is not None:
        return bulk_expiry, False, operation
    state = WorkerMethodState.objects.filter(user_id=worker_id).first()
    if state is not None and state.standard_expires is not None:
        return state.standard_expires, False, operation
    return None, False, operation


def _bulk_row_expiry(secret_id: int) -> datetime | None:
    """The expiry a bulk job recorded for the code whose payload is `secret_id`, if any."""
    try:
        rows = apps.get_model("provisioning", "BulkJobRow").objects
    except LookupError:  # bulk jobs not installed in this version
        return None
    row = rows.filter(payload_secret_id=secret_id).only("result").first()
    value = (row.result or {}).get("expires_at") if row is not None else None
    return parse_datetime(value) if value else None


def _item_for(
    request: BadgeRequest, worker: DirectoryUser, store_name: str
) -> PrintJobItem | Unprintable:
    if request.payload_secret_id is not None:
        secret = (
            VaultSecret.objects.filter(
                id=request.payload_secret_id,
                kind=VaultSecret.Kind.QR_PAYLOAD,
                owner_id=worker.id.lower(),
                destroyed_at__isnull=True,
                expires_at__gt=timezone.now(),
            )
            .order_by()
            .first()
        )
    else:
        secret = qr_payload_latest(worker_id=worker.id)
    if secret is None:
        return Unprintable(worker.id, worker.display_name, UnprintableReason.NO_PAYLOAD)
    valid_until, temporary, _ = _payload_facts(secret, worker.id)
    valid_until = request.valid_until or valid_until
    if request.temporary is not None:
        temporary = request.temporary
    if valid_until is None:
        return Unprintable(worker.id, worker.display_name, UnprintableReason.NO_EXPIRY)
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


def _job_expiry(items: Iterable[PrintJobItem]) -> datetime:
    """A sheet is printable while every payload is in the vault and no temporary code is over."""
    ids = [item.payload_secret_id for item in items if item.payload_secret_id]
    ends = list(VaultSecret.objects.filter(id__in=ids).values_list("expires_at", flat=True))
    ends += [item.valid_until for item in items if item.temporary and item.valid_until]
    default = timezone.now() + timedelta(days=settings.VAULT_QR_PAYLOAD_DAYS)
    return min([*ends, default])


def print_job_create_from_users(
    *,
    unit: AdministrativeUnit | None,
    created_by: User | None,
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
    `unit=None` is for workers of no store (the badge_sheet command only).
    """
    _check_layout(layout)
    wanted = [*requests, *(BadgeRequest(user_id=uid) for uid in user_ids)]
    ids = list(dict.fromkeys(request.user_id for request in wanted))
    workers = {w.id: w for w in DirectoryUser.objects.filter(id__in=ids)}
    members = set()
    if unit is not None:
        members = set(
            AUMembership.objects.filter(administrative_unit=unit, user_id__in=ids).values_list(
                "user_id", flat=True
            )
        )
    result = QueueResult()
    items: list[PrintJobItem] = []
    seen: set[str] = set()
    for request in wanted:
        if request.user_id in seen:
            continue
        seen.add(request.user_id)
        worker = workers.get(request.user_id)
        if worker is None or (unit is not None and worker.id not in members):
            label = worker.display_name if worker else request.user_id
            result.unprintable.append(
                Unprintable(request.user_id, label, UnprintableReason.NOT_IN_STORE)
            )
            continue
        item = _item_for(request, worker, unit.display_name if unit else "")
        if isinstance(item, Unprintable):
            result.unprintable.append(item)
        else:
            items.append(item)
    if not items:
        return result
    with transaction.atomic():
        job = PrintJob.objects.create(
            store=unit,
            created_by=created_by,
            layout=layout,
            source=source,
            expires_at=_job_expiry(items),
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
    created_by: User | None,
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


# -- forgotten badge ---------------------------------------------------------------------------


def forgotten_badge_send(
    *,
    worker: DirectoryUser,
    unit: AdministrativeUnit,
    requested_by: User,
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


# -- rendering and printing --------------------------------------------------------------------


def _payload(item: PrintJobItem) -> bytes:
    value = vault.secret_read(
        secret_id=item.payload_secret_id,
        kind=VaultSecret.Kind.QR_PAYLOAD,
        owner_id=item.worker_id,
    )
    return value.encode("utf-8", errors="surrogateescape")


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
    badges = []
    for item in items:
        try:
            payload = _payload(item)
        except vault.SecretUnavailable as exc:
            raise PrintJobUnavailable(
                f"The QR code of {item.display_name} is no longer in Lanyard; "
                "replace the QR code and queue a new sheet."
            ) from exc
        badges.append(
            BadgeData(
                display_name=item.display_name,
                employee_id=item.employee_id,
                store_name=item.store_name,
                valid_until=timezone.localtime(item.valid_until),
                payload=payload,
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
    for secret_id in job.items.exclude(payload_secret_id__isnull=True).values_list(
        "payload_secret_id", flat=True
    ):
        vault.secret_destroy(secret_id=secret_id, reason=reason)


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
    actor: User | None = None,
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


def print_job_cancel(*, job: PrintJob, actor: User | None, actor_label: str = "") -> bool:
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


# -- PIN slips --------------------------------------------------------------------------------


@dataclass
class PinSlipResult:
    pdf: bytes | None
    printed: list[str] = field(default_factory=list)  # worker ids
    unavailable: list[Unprintable] = field(default_factory=list)


def pin_slips_pdf(
    *,
    requester: User,
    unit: AdministrativeUnit | None = None,
    user_ids: Sequence[str] = (),
    pin_secret_ids: Sequence[int] = (),
    page: str = "a4",
) -> PinSlipResult:
    """PIN slips, one per worker; each PIN leaves the vault as its slip is produced.

    Either `user_ids` of `unit` (the newest PIN of each that `requester` set — the creator rule
    of DESIGN.md §5) or `pin_secret_ids` (a bulk job's rows: their creator, or any IT admin).
    A PIN that is gone is listed in `unavailable`; printing again gives nothing.
    """
    if page not in ("a4", "letter"):
        raise BadgeError("Choose A4 or Letter paper.")
    wanted: list[tuple[str, VaultSecret | None]] = []
    for user_id in user_ids:
        wanted.append((user_id, pin_secret_latest(worker_id=user_id, created_by=requester)))
    secrets_by_id = VaultSecret.objects.filter(
        id__in=list(pin_secret_ids), kind=VaultSecret.Kind.PIN
    ).in_bulk()
    for secret_id in pin_secret_ids:
        secret = secrets_by_id.get(secret_id)
        allowed = secret is not None and (
            secret.created_by_id == requester.pk or requester.is_it_admin
        )
        if not allowed:
            secret = None
        wanted.append((secret.owner_id if secret else "", secret))
    ids = [user_id for user_id, _ in wanted if user_id]
    workers = {w.id.lower(): w for w in DirectoryUser.objects.filter(id__in=ids)}
    stores: dict[str, str] = {}
    for user_id, name in (
        AUMembership.objects.filter(user_id__in=ids)
        .order_by("administrative_unit__display_name")
        .values_list("user_id", "administrative_unit__display_name")
    ):
        stores.setdefault(user_id.lower(), name)
    result = PinSlipResult(pdf=None)
    slips: list[PinSlipData] = []
    with transaction.atomic():
        for user_id, secret in wanted:
            worker = workers.get(user_id.lower())
            label = worker.display_name if worker else (user_id or "unknown")
            if secret is None or worker is None:
                result.unavailable.append(Unprintable(user_id, label, UnprintableReason.NO_PIN))
                continue
            try:
                pin = vault.secret_take(
                    secret_id=secret.pk,
                    kind=VaultSecret.Kind.PIN,
                    owner_id=worker.id,
                    reason="printed",
                )
            except vault.SecretUnavailable:
                result.unavailable.append(Unprintable(user_id, label, UnprintableReason.NO_PIN))
                continue
            slips.append(
                PinSlipData(
                    display_name=worker.display_name,
                    store_name=unit.display_name if unit else stores.get(worker.id.lower(), ""),
                    pin=pin,
                    employee_id=worker.employee_id,
                )
            )
            result.printed.append(worker.id)
        if slips:
            # Rendered inside the transaction: if it fails, the PINs stay in the vault.
            result.pdf = render_pin_slips(slips, page=page)
            audit.record(
                actor=requester,
                action="pin-slips-printed",
                outcome="succeeded",
                administrative_unit_id=unit.id if unit else "",
                detail=f"{len(slips)} PIN slip(s); the PINs were destroyed in the vault",
            )
    return result


# -- kiosks -----------------------------------------------------------------------------------


def _normalise_code(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def _code_hash(code: str) -> str:
    return salted_hmac(
        "lanyard.badges.kiosk-pairing", _normalise_code(code), algorithm="sha256"
    ).hexdigest()


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def kiosk_pairing_start(
    *, name: str, stores: Sequence[AdministrativeUnit], created_by: User
) -> tuple[KioskPairing, str]:
    """A pairing code (shown once to the manager) for a new kiosk of `stores`.

    The caller has checked that `created_by` may register kiosks for these stores.
    """
    if not stores:
        raise BadgeError("Choose at least one store.")
    raw = "".join(secrets.choice(PAIRING_ALPHABET) for _ in range(PAIRING_CODE_LENGTH))
    code = f"{raw[:4]}-{raw[4:]}"
    with transaction.atomic():
        pairing = KioskPairing.objects.create(
            code_hash=_code_hash(code),
            name=name.strip(),
            created_by=created_by,
            expires_at=timezone.now() + timedelta(minutes=settings.KIOSK_PAIRING_MINUTES),
        )
        pairing.stores.set(stores)
        for store in stores:
            audit.record(
                actor=created_by,
                action="kiosk-pairing-started",
                outcome="succeeded",
                administrative_unit_id=store.id,
                target_label=f"kiosk {pairing.name}",
            )
    return pairing, code


def _credential_salt(kiosk: Kiosk) -> str:
    return f"{KIOSK_SIGNING_SALT}:{kiosk.pk}:{kiosk.credential_version}"


def _issue_credential(kiosk: Kiosk) -> str:
    token = secrets.token_urlsafe(32)
    kiosk.credential_version += 1
    kiosk.credential_hash = _token_hash(token)
    kiosk.save(update_fields=["credential_version", "credential_hash"])
    signed = signing.dumps({"k": kiosk.pk, "t": token}, salt=_credential_salt(kiosk))
    return f"{kiosk.pk}.{signed}"


def kiosk_pair(*, code: str) -> tuple[Kiosk, str]:
    """Exchange a pairing code for a new kiosk and its device credential (the cookie value).

    A code works once and only until it expires; every failure is the same PairingFailed.
    """
    with transaction.atomic():
        pairing = (
            KioskPairing.objects.select_for_update()
            .filter(code_hash=_code_hash(code), used_at__isnull=True)
            .filter(expires_at__gt=timezone.now())
            .first()
        )
        if pairing is None:
            raise PairingFailed("This pairing code is wrong, used or expired. Ask for a new one.")
        kiosk = Kiosk.objects.create(name=pairing.name, created_by=pairing.created_by)
        kiosk.stores.set(pairing.stores.all())
        pairing.used_at = timezone.now()
        pairing.kiosk = kiosk
        pairing.save(update_fields=["used_at", "kiosk"])
        credential = _issue_credential(kiosk)
        for store in kiosk.stores.all():
            audit.record(
                actor=None,
                actor_label=f"kiosk {kiosk.name}",
                action="kiosk-paired",
                outcome="succeeded",
                administrative_unit_id=store.id,
                target_label=f"kiosk {kiosk.name}",
                detail=f"Paired with a code from {pairing.created_by or 'a deleted user'}",
            )
    return kiosk, credential


def kiosk_authenticate(*, credential: str) -> Kiosk | None:
    """The active kiosk this device credential belongs to, or None (forged, old, revoked)."""
    kiosk_id, _, signed = (credential or "").partition(".")
    if not kiosk_id.isdigit() or not signed:
        return None
    kiosk = Kiosk.objects.filter(pk=int(kiosk_id), revoked_at__isnull=True).first()
    if kiosk is None or not kiosk.credential_hash:
        return None
    try:
        data = signing.loads(
            signed,
            salt=_credential_salt(kiosk),
            max_age=timedelta(days=settings.KIOSK_CREDENTIAL_DAYS),
        )
    except signing.BadSignature:
        return None
    if not isinstance(data, dict):
        return None
    token = data.get("t")
    if (
        data.get("k") != kiosk.pk
        or not isinstance(token, str)
        or not hmac.compare_digest(_token_hash(token), kiosk.credential_hash)
    ):
        return None
    now = timezone.now()
    if kiosk.last_seen_at is None or kiosk.last_seen_at < now - LAST_SEEN_RESOLUTION:
        Kiosk.objects.filter(pk=kiosk.pk).update(last_seen_at=now)
        kiosk.last_seen_at = now
    return kiosk


def kiosk_revoke(*, kiosk: Kiosk, actor: User) -> bool:
    """Revoke the kiosk: its credential stops working at its next request."""
    with transaction.atomic():
        updated = Kiosk.objects.filter(pk=kiosk.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now(),
            revoked_by=actor,
            credential_hash="",
            credential_version=F("credential_version") + 1,
        )
        if not updated:
            return False
        kiosk.refresh_from_db()
        for store in kiosk.stores.all():
            audit.record(
                actor=actor,
                action="kiosk-revoked",
                outcome="succeeded",
                administrative_unit_id=store.id,
                target_label=f"kiosk {kiosk.name}",
            )
    return True


def kiosk_queue(*, kiosk: Kiosk) -> list[PrintJob]:
    """The kiosk's print queue: open sheets of its own stores, waiting badges resolved."""
    from badges.selectors import print_job_list_for_kiosk

    jobs = list(print_job_list_for_kiosk(kiosk=kiosk))
    if any(not item.is_ready for job in jobs for item in job.items.all()):
        print_job_items_resolve(jobs=jobs)
        jobs = list(print_job_list_for_kiosk(kiosk=kiosk))
    return jobs


def print_job_ready(job: PrintJob) -> bool:
    """Every badge of the sheet has its payload (uses prefetched items)."""
    return all(item.is_ready for item in job.items.all())


__all__ = [
    "BadgeError",
    "BadgeRequest",
    "PairingFailed",
    "PrintJobUnavailable",
    "QueueResult",
    "Unprintable",
    "UnprintableReason",
    "forgotten_badge_send",
    "kiosk_authenticate",
    "kiosk_pair",
    "kiosk_pairing_start",
    "kiosk_queue",
    "kiosk_revoke",
    "pin_slips_pdf",
    "print_job_cancel",
    "print_job_create_from_users",
    "print_job_mark_printed",
    "print_job_open",
    "print_job_badges",
    "print_job_pdf",
    "print_jobs_create_by_store",
    "print_jobs_expire",
]
