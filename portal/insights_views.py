"""The IT admin's insights page: MFA coverage over time (an SVG chart and its table), bulk job
outcomes by source, and QR codes expiring per store with a batch renewal (docs/architecture.md §1).

IT admins only (`it_admin_required`). A renewal is previewed as a bulk job and confirmed from
the bulk job page like any other; nothing is written to Entra from here.
"""

from __future__ import annotations

from django.contrib import messages
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from portal.coverage_chart import coverage_chart
from portal.http import SignedInRequest, it_admin_required
from provisioning import insights
from provisioning.graph import GraphError
from provisioning.models import AdministrativeUnit
from provisioning.tasks import mfa_coverage_snapshot


@require_GET
@it_admin_required
def insights_page(request: SignedInRequest) -> HttpResponse:
    snapshots = insights.mfa_coverage_history()
    return render(
        request,
        "portal/admin/insights.html",
        {
            "snapshots": snapshots,
            "latest": snapshots[-1] if snapshots else None,
            "chart": coverage_chart(snapshots),
            "outcomes": insights.bulk_outcomes_by_source(),
            "outcome_days": insights.OUTCOME_DAYS,
            "expiring": insights.qr_expiring_by_store(),
            "windows": insights.EXPIRY_WINDOWS,
        },
    )


@require_POST
@it_admin_required
def insights_snapshot(request: SignedInRequest) -> HttpResponse:
    """Take an MFA coverage snapshot now, in the background (the report is paged and throttled)."""
    transaction.on_commit(lambda: mfa_coverage_snapshot.delay())
    messages.success(request, "Snapshot requested: it appears here once Entra's report is read.")
    return redirect("itadmin:insights")


@require_POST
@it_admin_required
def insights_renew(request: SignedInRequest) -> HttpResponse:
    """Preview the renewal of a store's QR codes expiring within 30, 60 or 90 days."""
    unit = get_object_or_404(AdministrativeUnit, pk=request.POST.get("au_id", ""))
    days = request.POST.get("days", "")
    if not days.isdigit() or int(days) not in insights.EXPIRY_WINDOWS:
        messages.error(request, "Choose 30, 60 or 90 days.")
        return redirect("itadmin:insights")
    try:
        job = insights.qr_renewal_preview(unit=unit, days=int(days), created_by=request.user)
    except ValueError as exc:  # nothing expires in that window (any more)
        messages.error(request, str(exc))
        return redirect("itadmin:insights")
    except GraphError as exc:
        messages.error(request, f"Lanyard could not check the workers in Entra: {exc} Try again.")
        return redirect("itadmin:insights")
    messages.info(request, "Check the preview, then confirm to replace these QR codes.")
    return redirect("itadmin:bulk-job", job_id=job.pk)
