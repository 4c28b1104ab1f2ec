"""The audit log (docs/architecture.md §5): every action, who, whom, when, outcome, Graph
request-id.

Callers pass plain-language facts only. PINs and QR payloads never reach this module: nothing
here accepts a credential, and `detail` is for outcomes and reasons ("PIN reset", "409 conflict").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.contrib.auth.models import AbstractUser
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from provisioning.csv_cells import csv_neutralised
from provisioning.models import AdministrativeUnit, AuditEvent


def record(
    *,
    actor: AbstractUser | None,
    action: str,
    outcome: str,
    target_user_id: str = "",
    target_label: str = "",
    administrative_unit_id: str = "",
    graph_request_id: str = "",
    detail: str = "",
    actor_label: str = "",
) -> AuditEvent:
    return AuditEvent.objects.create(
        actor=actor,
        actor_label=actor_label or (actor.user_principal_name or actor.username if actor else ""),
        action=action,
        outcome=outcome,
        target_user_id=target_user_id,
        target_label=target_label,
        administrative_unit_id=administrative_unit_id,
        graph_request_id=graph_request_id,
        detail=detail[:2000],
    )


# -- the IT admin's audit log page -----------------------------------------------------------


@dataclass(frozen=True)
class AuditFilter:
    """What the audit log page filters by; empty fields filter nothing. Dates are inclusive
    local dates (TIME_ZONE)."""

    actor: str = ""  # part of the actor's sign-in name
    action: str = ""  # exact action name
    store: str = ""  # an administrative unit id
    worker: str = ""  # part of the worker's name or sign-in name, or their object id
    since: date | None = None
    until: date | None = None


def audit_event_list(*, filters: AuditFilter) -> QuerySet[AuditEvent]:
    """Audit events matching `filters`, newest first, each with `store_name` (the store's display
    name, from the directory cache, in the same query)."""
    events = AuditEvent.objects.all()
    if filters.actor:
        events = events.filter(actor_label__icontains=filters.actor)
    if filters.action:
        events = events.filter(action=filters.action)
    if filters.store:
        events = events.filter(administrative_unit_id=filters.store)
    if filters.worker:
        events = events.filter(
            Q(target_label__icontains=filters.worker) | Q(target_user_id=filters.worker)
        )
    zone = timezone.get_current_timezone()
    if filters.since:
        events = events.filter(created_at__gte=datetime.combine(filters.since, time.min, zone))
    if filters.until:
        next_day = filters.until + timedelta(days=1)
        events = events.filter(created_at__lt=datetime.combine(next_day, time.min, zone))
    store_name = AdministrativeUnit.objects.filter(pk=OuterRef("administrative_unit_id"))
    return events.annotate(store_name=Subquery(store_name.values("display_name")[:1])).order_by(
        "-created_at", "-pk"
    )


def audit_action_names() -> list[str]:
    """Every action name in the log, for the filter's choices."""
    return list(AuditEvent.objects.order_by("action").values_list("action", flat=True).distinct())


AUDIT_CSV_COLUMNS = (
    "time", "actor", "action", "outcome", "worker", "workerId", "store", "storeId", "requestId",
    "detail",
)  # fmt: skip


def audit_events_csv(*, filters: AuditFilter) -> bytes:
    """The filtered audit log as CSV: every cell quoted and neutralised (a worker's name or a
    detail could start with `=`); no secrets, since the log holds none."""
    events = audit_event_list(filters=filters)
    rows = (
        (
            timezone.localtime(event.created_at).isoformat(),
            event.actor_label,
            event.action,
            event.outcome,
            event.target_label,
            event.target_user_id,
            event.store_name or "",
            event.administrative_unit_id,
            event.graph_request_id,
            event.detail,
        )
        for event in events.iterator(chunk_size=2000)
    )
    return csv_neutralised(AUDIT_CSV_COLUMNS, rows)
