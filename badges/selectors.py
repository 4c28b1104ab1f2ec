"""Reads of print jobs and kiosks, always through someone's scope: a manager's stores, or a
kiosk's own stores (docs/architecture.md §5). Another store's sheet or kiosk is a 404."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db.models import Count, Q, QuerySet
from django.http import Http404
from django.utils import timezone

from badges.models import Kiosk, PrintJob
from provisioning.models import AdministrativeUnit, DirectoryUser, VaultSecret
from provisioning.selectors import (
    administrative_unit_list_for_manager,
    get_administrative_unit_for_manager,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractUser


def qr_payloads_viewable(*, reader: AbstractUser) -> QuerySet[VaultSecret]:
    """The live QR payloads a manager may draw: ones `reader` created, within
    QR_PAYLOAD_VIEW_MINUTES of creating them (docs/architecture.md §5, "QR payloads")."""
    since = timezone.now() - timedelta(minutes=settings.QR_PAYLOAD_VIEW_MINUTES)
    return VaultSecret.objects.filter(
        kind=VaultSecret.Kind.QR_PAYLOAD,
        created_by=reader,
        created_at__gte=since,
        destroyed_at__isnull=True,
        expires_at__gt=timezone.now(),
    )


def qr_payloads_latest(
    *, worker_ids: Iterable[str], reader: AbstractUser | None = None
) -> dict[str, VaultSecret]:
    """The newest QR payload still in the vault of each of these workers, by worker id (one
    query; a worker with none is missing: replace the QR code). With `reader`, only payloads that
    manager may draw (qr_payloads_viewable)."""
    owner_ids = {worker_id.lower(): worker_id for worker_id in worker_ids}
    if not owner_ids:
        return {}
    newest: dict[str, VaultSecret] = {}
    secrets = (
        qr_payloads_viewable(reader=reader)
        if reader is not None
        else VaultSecret.objects.filter(
            kind=VaultSecret.Kind.QR_PAYLOAD,
            destroyed_at__isnull=True,
            expires_at__gt=timezone.now(),
        )
    )
    for secret in secrets.filter(owner_id__in=list(owner_ids)).order_by("-created_at", "-id"):
        newest.setdefault(owner_ids[secret.owner_id], secret)
    return newest


def pin_secret_latest(
    *, worker_id: str, created_by: AbstractUser | None = None
) -> VaultSecret | None:
    """The newest PIN of the worker still in the vault, optionally only one `created_by` set."""
    pins = VaultSecret.objects.filter(
        kind=VaultSecret.Kind.PIN,
        owner_id=worker_id.lower(),
        destroyed_at__isnull=True,
        expires_at__gt=timezone.now(),
    )
    if created_by is not None:
        pins = pins.filter(created_by=created_by)
    return pins.order_by("-created_at", "-id").first()


# -- managers ----------------------------------------------------------------------------------


def worker_list_printable_for_store(
    *, unit: AdministrativeUnit, reader: AbstractUser
) -> QuerySet[DirectoryUser]:
    """The store's workers whose badge `reader` can print: a QR payload they created is still in
    the vault and within its viewing window (qr_payloads_viewable)."""
    live = qr_payloads_viewable(reader=reader).values("owner_id")
    return DirectoryUser.objects.filter(
        memberships__administrative_unit=unit, id__in=live
    ).order_by("display_name", "id")


def print_job_list_for_store(*, unit: AdministrativeUnit) -> QuerySet[PrintJob]:
    return (
        PrintJob.objects.filter(store=unit)
        .select_related("kiosk", "created_by")
        .annotate(badge_count=Count("items"))
    )


def get_print_job_for_manager(*, user: AbstractUser, au_id: str, job_id: int) -> PrintJob:
    """Sheet `job_id` of store `au_id` if `user` manages that store; otherwise 404."""
    unit = get_administrative_unit_for_manager(user=user, au_id=au_id)
    job = (
        PrintJob.objects.filter(id=job_id)
        .filter(store=unit)
        .select_related("store", "kiosk")
        .first()
    )
    if job is None:
        raise Http404("No such badge sheet.")
    return job


def kiosk_store_choices_for_user(*, user: AbstractUser) -> QuerySet[AdministrativeUnit]:
    """Stores `user` may register a kiosk for: an IT admin any, a manager their own."""
    if user.is_it_admin:
        return AdministrativeUnit.objects.all()
    return administrative_unit_list_for_manager(user=user)


def kiosk_list_for_user(*, user: AbstractUser) -> QuerySet[Kiosk]:
    """Kiosks all of whose stores `user` manages (an IT admin: every kiosk), with their pending
    sheets. A kiosk that also serves another manager's store is not theirs to see or revoke."""
    kiosks = Kiosk.objects.all()
    if not user.is_it_admin:
        stores = administrative_unit_list_for_manager(user=user)
        others = AdministrativeUnit.objects.exclude(id__in=stores.values("id"))
        kiosks = kiosks.filter(stores__in=stores).exclude(stores__in=others)
    return (
        kiosks.distinct()
        .prefetch_related("stores")
        .annotate(
            pending_count=Count(
                "stores__print_jobs",
                filter=Q(stores__print_jobs__status__in=PrintJob.OPEN_STATUSES),
                distinct=True,
            )
        )
        .order_by("revoked_at", "name", "id")
    )


def get_kiosk_for_user(*, user: AbstractUser, kiosk_id: int) -> Kiosk:
    kiosk = kiosk_list_for_user(user=user).filter(id=kiosk_id).first()
    if kiosk is None:
        raise Http404("No such kiosk.")
    return kiosk


# -- kiosks ------------------------------------------------------------------------------------


def print_job_list_for_kiosk(*, kiosk: Kiosk) -> QuerySet[PrintJob]:
    """The open sheets of the kiosk's own stores, oldest first (its print queue); none while the
    kiosk is suspended."""
    if kiosk.suspended_at is not None:
        return PrintJob.objects.none()
    return (
        PrintJob.objects.filter(store__in=kiosk.stores.all())
        .filter(status__in=PrintJob.OPEN_STATUSES)
        .filter(expires_at__gt=timezone.now())
        .select_related("store")
        .prefetch_related("items")
        .order_by("created_at", "id")
    )


def get_print_job_for_kiosk(*, kiosk: Kiosk, job_id: int) -> PrintJob:
    """An open sheet of one of the kiosk's stores; anything else is a 404."""
    job = print_job_list_for_kiosk(kiosk=kiosk).filter(id=job_id).first()
    if job is None:
        raise Http404("No such badge sheet.")
    return job
