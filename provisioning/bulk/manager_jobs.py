"""A store manager's job: "Add QR codes + PINs" or "Renew" for several workers of one store at
once (docs/architecture.md §11.2, "A manager's job").

It is a BulkJob worked by the same engine as an IT admin's (claims with a lease, intent before
effect, re-check before re-writing, the rate limiter, the sweeper), with three differences:
- it acts with the manager's own delegated token (`identity="delegated"`, `requested_by`), so Entra
  still enforces the manager's store scope on every call;
- every row re-checks, just before its write, that the manager still manages the store and the
  worker is still one of its members (`manager_job_rows_in_scope`);
- its tasks go to their own Celery queue (MANAGER_JOBS_QUEUE), so a long IT admin job does not
  make a manager wait behind it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta

from django.contrib.auth.models import AbstractUser
from django.db import transaction
from django.utils import timezone

from provisioning import audit
from provisioning.bulk import engine
from provisioning.bulk.jobs import JobRefused
from provisioning.bulk.preview import current_policy
from provisioning.graph.models import format_datetime
from provisioning.models import (
    AdministrativeUnit,
    AUMembership,
    BulkJob,
    BulkJobRow,
    DirectoryUser,
    ScopedRoleAssignment,
)
from provisioning.roles import MANAGER_ROLE_TEMPLATES

SIGN_IN_AGAIN = engine.SIGN_IN_AGAIN

# The most workers one job may take from the store page (a page of the list is 50).
MANAGER_JOB_MAX_WORKERS = 200


def manager_job_start(
    *, user: AbstractUser, unit: AdministrativeUnit, user_ids: Sequence[str], action: str
) -> BulkJob:
    """Start one job for the selected workers of `unit`, run with `user`'s delegated token.

    The caller resolved `unit` through `get_administrative_unit_for_manager`. Every id must be a
    worker of `unit`: one that is not refuses the whole request (JobRefused), nothing is started.
    """
    if action not in BulkJob.Action.values:
        raise JobRefused("Choose “Add QR codes + PINs” or “Renew”.")
    ids = list(dict.fromkeys(uid.strip().lower() for uid in user_ids if uid.strip()))
    if not ids:
        raise JobRefused("Select at least one worker.")
    if len(ids) > MANAGER_JOB_MAX_WORKERS:
        raise JobRefused(f"Select at most {MANAGER_JOB_MAX_WORKERS} workers for one job.")
    workers = list(
        DirectoryUser.objects.filter(id__in=ids, memberships__administrative_unit=unit)
        .distinct()
        .order_by("display_name", "id")
    )
    if len(workers) != len(ids):
        raise JobRefused(
            f"{len(ids) - len(workers)} of the selected workers are not workers of this store."
        )
    policy = current_policy()
    lifetime = policy.as_dict().get("lifetime_days")
    if not lifetime:
        raise JobRefused(
            "The tenant's QR lifetime is unknown (its QR policy could not be read): try again "
            "later."
        )
    now = timezone.now().replace(microsecond=0)
    start, expire = format_datetime(now), format_datetime(now + timedelta(days=lifetime))
    label = BulkJob.Action(action).label
    with transaction.atomic():
        job = BulkJob.objects.create(
            kind=BulkJob.Kind.QR,
            source=BulkJob.Source.MANAGER,
            source_ref=unit.id,
            source_label=f"{unit.display_name}: {label}"[:300],
            status=BulkJob.Status.RUNNING,
            created_by=user,
            requested_by=user,
            scope_au_id=unit.id,
            identity=BulkJob.Identity.DELEGATED,
            action=action,
            confirmed_at=now,
            preview_hash="",
            policy=policy.as_dict(),
            summary={"workers": len(workers)},
        )
        row_action = (
            BulkJobRow.Action.CREATE
            if action == BulkJob.Action.CREATE
            else BulkJobRow.Action.UPDATE
        )
        BulkJobRow.objects.bulk_create(
            BulkJobRow(
                job=job,
                line=position,
                upn=worker.user_principal_name,
                user_id=worker.id,
                display_name=worker.display_name,
                action=row_action,
                params={"start": start, "expire": expire, "pin": "generated"},
            )
            for position, worker in enumerate(workers, start=1)
        )
        audit.record(
            actor=user,
            action="manager_job_start",
            outcome="succeeded",
            administrative_unit_id=unit.id,
            target_label=unit.display_name,
            detail=f"Job {job.pk}: {label} for {len(workers)} worker(s)",
        )
        transaction.on_commit(lambda: engine.job_start_tasks(job.pk))
    return job


def manager_job_rows_in_scope(*, job: BulkJob, user_ids: Iterable[str]) -> set[str]:
    """The ids (of `user_ids`) the job's manager may still write to now: the manager still
    manages the job's store (as last synced) and the worker is still one of its members. Two
    queries, whatever the number of rows (the check every row repeats before its write)."""
    manager = job.requested_by
    if manager is None or not manager.entra_object_id or not job.scope_au_id:
        return set()
    manages = (
        manager.manages_all_stores
        or ScopedRoleAssignment.objects.filter(
            administrative_unit_id=job.scope_au_id,
            principal_id=manager.entra_object_id,
            role_template_id__in=MANAGER_ROLE_TEMPLATES,
        ).exists()
    )
    if not manages:
        return set()
    return set(
        AUMembership.objects.filter(
            administrative_unit_id=job.scope_au_id, user_id__in=list(user_ids)
        ).values_list("user_id", flat=True)
    )


def manager_job_states_note(*, job: BulkJob, since) -> int:
    """Record in the worker list's cached state what the job's rows finished since `since` did
    (a new method, or a new standard code: active, never used), so the store page shows it at
    once without reading Graph again. The next refresh from Graph overwrites it."""
    from django.utils.dateparse import parse_datetime

    from provisioning.models import WorkerMethodState

    now = timezone.now()
    noted = 0
    for row in job.rows.filter(status=BulkJobRow.Status.SUCCEEDED, finished_at__gte=since):
        start = parse_datetime(row.params.get("start") or "")
        expires = parse_datetime((row.result or {}).get("expires_at") or "") or parse_datetime(
            row.params.get("expire") or ""
        )
        values = {
            "has_qr_method": True,
            "standard_start": start,
            "standard_expires": expires,
            "standard_last_used": None,
            "refreshed_at": now,
            "refresh_error": "",
        }
        if job.action == BulkJob.Action.CREATE:
            values.update(qr_created_at=now, temporary_start=None, temporary_expires=None,
                          temporary_last_used=None, pin_force_change=None)  # fmt: skip
        WorkerMethodState.objects.update_or_create(user_id=row.user_id, defaults=values)
        noted += 1
    return noted
