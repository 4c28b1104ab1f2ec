"""Reads of the directory cache, always through the manager's scope (docs/architecture.md §5)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractUser
from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Lower
from django.http import Http404
from django.utils import timezone

from provisioning.models import (
    AdministrativeUnit,
    AuditEvent,
    AUMembership,
    BulkJob,
    DirectoryRoleHolder,
    DirectoryUser,
    Operation,
    ScopedRoleAssignment,
)
from provisioning.privileged import role_assignable_group_member_ids
from provisioning.roles import MANAGER_ROLE_TEMPLATES, PRIVILEGED_AUTHENTICATION_ADMINISTRATOR


def administrative_unit_list_for_manager(*, user: AbstractUser) -> QuerySet[AdministrativeUnit]:
    """The stores where `user` holds an authentication admin role: every store when the role is
    tenant-wide, else the AUs it is scoped to."""
    if not user.entra_object_id:
        return AdministrativeUnit.objects.none()
    if user.manages_all_stores:
        return AdministrativeUnit.objects.all()
    return AdministrativeUnit.objects.filter(
        scoped_roles__principal_id=user.entra_object_id,
        scoped_roles__role_template_id__in=MANAGER_ROLE_TEMPLATES,
    ).distinct()


def _managed(*, user: AbstractUser, au_id: str) -> QuerySet[AdministrativeUnit]:
    """Store `au_id` if `user` manages it, as a subquery (no query of its own)."""
    return administrative_unit_list_for_manager(user=user).filter(id=au_id).values("id")


def get_administrative_unit_for_manager(*, user: AbstractUser, au_id: str) -> AdministrativeUnit:
    """The store `au_id` if `user` manages it; otherwise 404, exactly as if it did not exist."""
    unit = administrative_unit_list_for_manager(user=user).filter(id=au_id).first()
    if unit is None:
        raise Http404("No such store.")
    return unit


def worker_list_for_administrative_unit(*, unit: AdministrativeUnit) -> QuerySet[DirectoryUser]:
    return DirectoryUser.objects.filter(memberships__administrative_unit=unit).order_by(
        "display_name", "id"
    )


def _role_assignable_group_name():
    """Subquery: the name of a recorded role-holding group the worker belongs to (or NULL)."""
    return Subquery(
        DirectoryRoleHolder.objects.filter(user_id=Lower(OuterRef("id")))
        .exclude(via_group_id="")
        .values("via_group_name")[:1]
    )


def get_worker_for_manager(*, user: AbstractUser, au_id: str, user_id: str) -> DirectoryUser:
    """Worker `user_id` of store `au_id` if `user` manages that store; otherwise 404.

    One query: the worker's membership of the store, and the store in the manager's scope.
    """
    worker = (
        DirectoryUser.objects.filter(id=user_id)
        .filter(memberships__administrative_unit__in=_managed(user=user, au_id=au_id))
        .select_related("method_state")
        .annotate(role_assignable_group=_role_assignable_group_name())
        .first()
    )
    if worker is None:
        raise Http404("No such worker.")
    return worker


def manager_manages_worker(*, user: AbstractUser, au_id: str, user_id: str) -> bool:
    """The check a task repeats before writing: does `user` still manage this worker's store?"""
    if not user.entra_object_id:
        return False
    manages_store = (
        user.manages_all_stores
        or ScopedRoleAssignment.objects.filter(
            administrative_unit_id=au_id,
            principal_id=user.entra_object_id,
            role_template_id__in=MANAGER_ROLE_TEMPLATES,
        ).exists()
    )
    return (
        manages_store
        and AUMembership.objects.filter(administrative_unit_id=au_id, user_id=user_id).exists()
    )


# The worker list's state filters (from the cached WorkerMethodState, as last read from Graph).
WORKER_STATE_FILTERS = {
    "no_qr": "No QR code",
    "expiring": "Expiring within N days",
    "never_used": "Never used",
    "unusable": "Not usable",
}


def _worker_state_filter(state: str, *, days: int, now: datetime) -> Q:
    """The condition on `method_state` for one of WORKER_STATE_FILTERS (mirrors
    WorkerMethodState.qr_status, qr_never_used and unusable_reasons)."""
    has = Q(method_state__has_qr_method=True)
    if state == "no_qr":
        return Q(method_state__has_qr_method=False)
    if state == "expiring":
        return has & Q(
            method_state__standard_expires__gt=now,
            method_state__standard_expires__lte=now + timedelta(days=days),
        )
    if state == "never_used":
        return has & Q(
            method_state__standard_last_used__isnull=True,
            method_state__temporary_last_used__isnull=True,
        )
    if state == "unusable":
        standard_active = Q(method_state__standard_expires__gt=now) & (
            Q(method_state__standard_start__isnull=True) | Q(method_state__standard_start__lte=now)
        )
        temporary_active = Q(method_state__temporary_expires__gt=now) & (
            Q(method_state__temporary_start__isnull=True)
            | Q(method_state__temporary_start__lte=now)
        )
        return has & ~standard_active & ~temporary_active
    return Q()


def worker_search_for_administrative_unit(
    *, unit: AdministrativeUnit, query: str = "", state: str = "", days: int = 30
) -> QuerySet[DirectoryUser]:
    """The store's workers matching `query` (name, UPN or employee ID) and, if given, in `state`
    (a key of WORKER_STATE_FILTERS; "expiring" within `days`), with their method state."""
    workers = worker_list_for_administrative_unit(unit=unit).select_related("method_state")
    if state in WORKER_STATE_FILTERS:
        workers = workers.filter(_worker_state_filter(state, days=days, now=timezone.now()))
    query = query.strip()
    if query:
        workers = workers.filter(
            Q(display_name__icontains=query)
            | Q(user_principal_name__icontains=query)
            | Q(employee_id__icontains=query)
        )
    return workers


def operation_list_for_worker(*, user: AbstractUser, unit: AdministrativeUnit, worker_id: str):
    """This manager's recent actions on the worker (the worker page's progress panel)."""
    return Operation.objects.filter(
        administrative_unit=unit, worker_id=worker_id, requested_by=user
    ).order_by("-created_at", "-id")


def get_operation_for_manager(
    *, user: AbstractUser, au_id: str, user_id: str, operation_id: int
) -> Operation:
    """An action the manager requested on a worker of a store they manage; otherwise 404.

    One query, with the store (`operation.administrative_unit`).
    """
    member = AUMembership.objects.filter(administrative_unit_id=au_id, user_id=user_id)
    operation = (
        Operation.objects.filter(
            id=operation_id,
            administrative_unit__in=_managed(user=user, au_id=au_id),
            worker_id=user_id,
            requested_by=user,
        )
        .filter(Exists(member))
        .select_related("administrative_unit")
        .first()
    )
    if operation is None:
        raise Http404("No such action.")
    return operation


def audit_event_list_for_worker(*, unit: AdministrativeUnit, worker_id: str):
    return AuditEvent.objects.filter(target_user_id=worker_id).filter(
        Q(administrative_unit_id=unit.id) | Q(administrative_unit_id="")
    )


def audit_event_list_for_administrative_unit(*, unit: AdministrativeUnit):
    return AuditEvent.objects.filter(administrative_unit_id=unit.id)


def worker_role_assignable_group(
    *, user: AbstractUser, unit: AdministrativeUnit, worker: DirectoryUser
) -> str:
    """The name of a role-assignable group `worker` belongs to (as last synced) when `user` cannot
    change that worker's methods because of it, else "".

    Only a Privileged Authentication Administrator (or Global Administrator) may change the
    authentication methods of such a member (docs/graph-contract.md §4.4). A manager holding
    Privileged Authentication Administrator over the store is told nothing; a tenant-wide manager
    role is not recorded by name, so such a manager is warned too.
    """
    if hasattr(worker, "role_assignable_group"):  # annotated by get_worker_for_manager
        group = worker.role_assignable_group or ""
    else:
        group = next(iter(role_assignable_group_member_ids([worker.id]).values()), "")
    if not group:
        return ""
    privileged = ScopedRoleAssignment.objects.filter(
        administrative_unit=unit,
        principal_id=(user.entra_object_id or "").lower(),
        role_template_id=PRIVILEGED_AUTHENTICATION_ADMINISTRATOR,
    ).exists()
    return "" if privileged else group


def get_bulk_job_for_manager(*, user: AbstractUser, au_id: str, job_id: int) -> BulkJob:
    """A job `user` started from the page of store `au_id`, which they still manage; otherwise
    404 (another manager's job, another store's, or an IT admin's bulk job)."""
    job = (
        BulkJob.objects.filter(
            id=job_id,
            source=BulkJob.Source.MANAGER,
            requested_by=user,
            scope_au_id__in=_managed(user=user, au_id=au_id),
        )
        .select_related("requested_by")
        .first()
    )
    if job is None:
        raise Http404("No such job.")
    return job
