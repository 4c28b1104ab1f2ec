"""PIN slips: one per worker, printable once (docs/architecture.md §5 "Secrets").

A PIN leaves the vault when its slip is produced (`vault.secret_take`), in the transaction that
renders the PDF: a slip is printable once, and a failed rendering keeps the PINs. Nothing here
logs or audits a PIN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from badges.print_jobs import BadgeError, Unprintable, UnprintableReason
from badges.render import PinSlipData, render_pin_slips
from badges.selectors import pin_secret_latest
from provisioning import audit, vault
from provisioning.bulk.jobs import bulk_job_printable_rows
from provisioning.models import (
    AdministrativeUnit,
    AUMembership,
    BulkJob,
    DirectoryUser,
    VaultSecret,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractUser


@dataclass
class PinSlipResult:
    pdf: bytes | None
    printed: list[str] = field(default_factory=list)  # worker ids
    unavailable: list[Unprintable] = field(default_factory=list)
    printed_secret_ids: list[int] = field(default_factory=list)  # the PINs taken from the vault


BULK_NO_PIN = "The PIN slips of this job were already printed, or have expired."


def pin_slips_pdf(
    *,
    requester: AbstractUser,
    unit: AdministrativeUnit | None = None,
    user_ids: Sequence[str] = (),
    pin_secret_ids: Sequence[int] = (),
    page: str = "a4",
) -> PinSlipResult:
    """PIN slips, one per worker; each PIN leaves the vault as its slip is produced.

    Either `user_ids` of `unit` (the newest PIN of each that `requester` set — the creator rule
    of docs/architecture.md §5) or `pin_secret_ids` (a bulk job's rows: their creator, or any IT
    admin). A PIN that is gone is listed in `unavailable`; printing again gives nothing.
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
            upn = worker.user_principal_name if worker else ""
            unavailable = Unprintable(
                user_id, label, UnprintableReason.NO_PIN, user_principal_name=upn
            )
            if secret is None or worker is None:
                result.unavailable.append(unavailable)
                continue
            try:
                pin = vault.secret_take(
                    secret_id=secret.pk,
                    kind=VaultSecret.Kind.PIN,
                    owner_id=worker.id,
                    reason="printed",
                )
            except vault.SecretUnavailable:
                result.unavailable.append(unavailable)
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
            result.printed_secret_ids.append(secret.pk)
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


def bulk_job_pin_slips_pdf(
    *, job: BulkJob, requester: AbstractUser, page: str = "a4"
) -> PinSlipResult:
    """PIN slips of a bulk job's new PINs not printed yet, printable once (`pin_slips_pdf`: the
    job's creator or an IT admin); the rows of the PINs taken are marked printed.

    Raises BadgeError when no PIN of the job is left to print.
    """
    with transaction.atomic():
        rows = list(bulk_job_printable_rows(job=job, kind="pin_slip").select_for_update())
        result = pin_slips_pdf(
            requester=requester, pin_secret_ids=[row.pin_secret_id for row in rows], page=page
        )
        if result.pdf is None:
            raise BadgeError(BULK_NO_PIN)
        job.rows.filter(pin_secret_id__in=result.printed_secret_ids).update(
            pin_printed_at=timezone.now()
        )
    return result
