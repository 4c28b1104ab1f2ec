"""The IT admin's insights (docs/architecture.md §1): MFA coverage over time, bulk outcomes by
source, QR codes about to expire per store, and their renewal as a bulk job.

Coverage comes from Entra's authentication methods registration report
(`GET /reports/authenticationMethods/userRegistrationDetails`, AuditLog.Read.All,
docs/graph-contract.md §5), read with the app identity once a day by beat
(`provisioning.mfa_coverage_snapshot`) or on demand; everything else from Lanyard's own database.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractUser
from django.db.models import Count, Q
from django.utils import timezone

from provisioning.bulk import preview
from provisioning.graph import GraphClient, get_app_client, operations
from provisioning.models import (
    AdministrativeUnit,
    AUMembership,
    BulkJob,
    BulkJobRow,
    DirectoryUser,
    MfaCoverageSnapshot,
    WorkerMethodState,
)

logger = logging.getLogger(__name__)

EXPIRY_WINDOWS = (30, 60, 90)  # days
OUTCOME_DAYS = 30
PHONE_METHODS = {"mobilePhone"}


# -- MFA coverage -----------------------------------------------------------------------------


def mfa_coverage_snapshot_take(*, client: GraphClient | None = None) -> MfaCoverageSnapshot:
    """Read the registration report (every page) and record how many member users are
    registered for MFA. Guests are not counted. Raises GraphError when Graph cannot answer."""
    users = registered = phones = 0
    for row in operations.user_registration_details_list(client or get_app_client()):
        if row.user_type.lower() != "member":
            continue
        users += 1
        registered += row.is_mfa_registered
        phones += bool(PHONE_METHODS & set(row.methods_registered))
    snapshot = MfaCoverageSnapshot.objects.create(
        taken_at=timezone.now(),
        users=users,
        mfa_registered=registered,
        without_mfa=users - registered,
        phone_methods=phones,
        qr_methods=WorkerMethodState.objects.filter(has_qr_method=True).count(),
    )
    logger.info("MFA coverage: %d of %d members registered", registered, users)
    return snapshot


def mfa_coverage_history(*, days: int = 365) -> list[MfaCoverageSnapshot]:
    """The snapshots of the last `days` days, oldest first."""
    since = timezone.now() - timedelta(days=days)
    return list(MfaCoverageSnapshot.objects.filter(taken_at__gte=since).order_by("taken_at", "id"))


# -- outcomes -----------------------------------------------------------------------------------

_REQUEST_ID = re.compile(r"\s*\(request-id [^)]*\)")


def _reason(text: str) -> str:
    """A row's outcome without what makes it unique (Graph's request-id), to count alike ones."""
    return _REQUEST_ID.sub("", text or "").strip() or "(no reason given)"


@dataclass
class SourceOutcomes:
    """Rows of the bulk jobs of one kind and source (CSV, group, store, renewal, and
    pre-population runs, which are phone jobs of their own source) over the last days."""

    kind: str
    kind_label: str
    source: str
    source_label: str
    jobs: int = 0
    counts: Counter = field(default_factory=Counter)  # status → rows
    reasons: list[tuple[str, str, int]] = field(default_factory=list)  # (status, reason, rows)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def bulk_outcomes_by_source(
    *, days: int = OUTCOME_DAYS, top_reasons: int = 5
) -> list[SourceOutcomes]:
    """Succeeded / failed / skipped rows per job kind and source, of the jobs confirmed in the
    last `days` days (previews never confirmed are left out), with the most frequent reasons of
    failed and skipped rows (Graph's request-ids removed, so alike reasons count together)."""
    since = timezone.now() - timedelta(days=days)
    rows = BulkJobRow.objects.filter(job__confirmed_at__gte=since)
    groups: dict[tuple[str, str], SourceOutcomes] = {}
    kinds = dict(BulkJob.Kind.choices)
    sources = dict(BulkJob.Source.choices)

    def group(kind: str, source: str) -> SourceOutcomes:
        key = (kind, source)
        if key not in groups:
            groups[key] = SourceOutcomes(
                kind=kind, kind_label=str(kinds.get(kind, kind)), source=source,
                source_label=str(sources.get(source, source.replace("_", " ").capitalize())),
            )  # fmt: skip
        return groups[key]

    for found in (
        rows.values("job__kind", "job__source", "status").annotate(n=Count("id")).order_by()
    ):
        group(found["job__kind"], found["job__source"]).counts[found["status"]] += found["n"]
    for found in (
        rows.values("job__kind", "job__source")
        .annotate(jobs=Count("job", distinct=True))
        .order_by()
    ):
        group(found["job__kind"], found["job__source"]).jobs = found["jobs"]
    reasons: dict[tuple[str, str], Counter] = {}
    unhappy = rows.filter(status__in=[BulkJobRow.Status.FAILED, BulkJobRow.Status.SKIPPED])
    for kind, source, status, outcome in unhappy.values_list(
        "job__kind", "job__source", "status", "outcome"
    ).iterator():
        reasons.setdefault((kind, source), Counter())[(status, _reason(outcome))] += 1
    for key, counter in reasons.items():
        groups[key].reasons = [(st, why, n) for (st, why), n in counter.most_common(top_reasons)]
    return sorted(groups.values(), key=lambda g: (g.kind_label, g.source_label))


# -- expiring QR codes --------------------------------------------------------------------------


@dataclass
class StoreExpiry:
    """How many of a store's workers have a standard QR code that expires within each window."""

    unit: AdministrativeUnit
    within: dict[int, int]  # days → workers


def _expiring(now: datetime, days: int) -> Q:
    return Q(
        user__method_state__has_qr_method=True,
        user__method_state__standard_expires__gt=now,
        user__method_state__standard_expires__lte=now + timedelta(days=days),
    )


def qr_expiring_by_store(
    *, windows: tuple[int, ...] = EXPIRY_WINDOWS, now: datetime | None = None
) -> list[StoreExpiry]:
    """Per store, the workers whose standard QR code expires in the next 30, 60 and 90 days (as
    of the directory cache's last refresh); stores with none in the longest window are left out.
    A worker of two stores counts in both."""
    now = now or timezone.now()
    counts = (
        AUMembership.objects.values("administrative_unit_id")
        .annotate(**{f"d{days}": Count("user", filter=_expiring(now, days)) for days in windows})
        .filter(**{f"d{max(windows)}__gt": 0})
        .order_by()
    )
    by_unit = {c["administrative_unit_id"]: c for c in counts}
    units = AdministrativeUnit.objects.filter(id__in=by_unit).order_by("display_name")
    return [
        StoreExpiry(unit=unit, within={days: by_unit[unit.id][f"d{days}"] for days in windows})
        for unit in units
    ]


def qr_expiring_workers(
    *, unit: AdministrativeUnit, days: int, now: datetime | None = None
) -> list[DirectoryUser]:
    """The store's workers whose standard QR code expires within `days` days, soonest first."""
    now = now or timezone.now()
    return list(
        DirectoryUser.objects.filter(
            memberships__administrative_unit=unit,
            method_state__has_qr_method=True,
            method_state__standard_expires__gt=now,
            method_state__standard_expires__lte=now + timedelta(days=days),
        ).order_by("method_state__standard_expires", "display_name")
    )


def qr_renewal_preview(
    *, unit: AdministrativeUnit, days: int, created_by: AbstractUser | None,
    client: GraphClient | None = None,
) -> BulkJob:  # fmt: skip
    """A draft bulk job that replaces the standard QR codes expiring within `days` days in this
    store (the PIN stays), checked like every bulk job (only frontline workers) and confirmed
    from its preview page. When it finishes, badges queues one sheet for the store's kiosks.

    Raises ValueError when no code of the store expires in that window."""
    if days not in EXPIRY_WINDOWS:
        raise ValueError(f"Renew codes expiring within {', '.join(map(str, EXPIRY_WINDOWS))} days.")
    workers = qr_expiring_workers(unit=unit, days=days)
    if not workers:
        raise ValueError(f"No QR code in {unit.display_name} expires within {days} days.")
    inputs = [
        preview.RowInput(line=n, upn=w.user_principal_name,
                         values={"userPrincipalName": w.user_principal_name})
        for n, w in enumerate(workers, start=1)
    ]  # fmt: skip
    people = {w.user_principal_name.lower(): preview.Person.from_directory(w) for w in workers}
    return preview.bulk_job_preview(
        kind=BulkJob.Kind.QR,
        source=BulkJob.Source.RENEW,
        source_ref=unit.id,
        source_label=f"{unit.display_name}: QR codes expiring within {days} days",
        inputs=inputs,
        people=people,
        created_by=created_by,
        client=client,
    )
