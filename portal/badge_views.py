"""A manager's badge sheets, PIN slips and forgotten badges, and kiosk registration (mounted at
/badges/, URL namespace `badges`; the kiosk's own pages are portal/kiosk_views.py).

Managers reach sheets only through `get_print_job_for_manager` (another store's sheet is a 404).
PDFs are rendered per request from the vault and never cached.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import trigger_client_event

from badges import kiosks, print_jobs
from badges.models import PrintJob
from badges.pin_slips import pin_slips_pdf
from badges.selectors import (
    get_kiosk_for_user,
    get_print_job_for_manager,
    kiosk_list_for_user,
    kiosk_store_choices_for_user,
    print_job_list_for_store,
    worker_list_printable_for_store,
)
from portal.badge_forms import (
    ForgottenBadgeForm,
    KioskRegisterForm,
    PinSlipForm,
    WorkerSelectionForm,
)
from portal.http import SignedInRequest, download, manager_required, partial
from provisioning.actions import ActionRefused
from provisioning.rules import STANDARD_MAX_DAYS
from provisioning.selectors import get_administrative_unit_for_manager, get_worker_for_manager

logger = logging.getLogger(__name__)

# The manager portal's "replace lost QR code" action (POST; a QrReplaceForm with prefix
# "replace"): the one-click fix for a worker whose payload is no longer in the vault.
WORKER_QR_REPLACE_URL = "manager:qr-replace"
REPLACE_DEFAULT_DAYS = 365
PRINTABLE_LIST_LIMIT = 500


def _replace_expiry() -> str:
    day = timezone.localdate() + timedelta(days=min(REPLACE_DEFAULT_DAYS, STANDARD_MAX_DAYS))
    return day.isoformat()


# -- a manager's sheets ------------------------------------------------------------------------


@require_GET
@manager_required
def sheet_list(request: SignedInRequest, au_id: str) -> HttpResponse:
    store = get_administrative_unit_for_manager(user=request.user, au_id=au_id)
    jobs = print_job_list_for_store(unit=store)
    context = {
        "store": store,
        "open_jobs": list(jobs.filter(status__in=PrintJob.OPEN_STATUSES)),
        "recent_jobs": list(jobs.exclude(status__in=PrintJob.OPEN_STATUSES)[:20]),
        "kiosks": list(store.kiosks.filter(revoked_at__isnull=True)),
        "printable": list(
            worker_list_printable_for_store(unit=store, reader=request.user)[:PRINTABLE_LIST_LIMIT]
        ),
        "form": WorkerSelectionForm(),
    }
    return render(request, partial(request, "badges/sheet_list.html", "sheets"), context)


@require_POST
@manager_required
def sheet_create(request: SignedInRequest, au_id: str) -> HttpResponse:
    """Queue a sheet of the selected workers (the store page's checkboxes post here)."""
    store = get_administrative_unit_for_manager(user=request.user, au_id=au_id)
    form = WorkerSelectionForm(request.POST)
    if not form.is_valid():
        template = partial(request, "badges/sheet_result.html", "result")
        return render(request, template, {"store": store, "form": form}, status=422)
    result = print_jobs.print_job_create_from_users(
        unit=store,
        created_by=request.user,
        layout=form.cleaned_data["layout"],
        user_ids=form.cleaned_data["user_id"],
    )
    job = result.job
    if job and form.cleaned_data.get("destination") == "download" and not result.unprintable:
        return redirect("badges:sheet-detail", au_id=store.id, job_id=job.pk)
    context = {
        "store": store,
        "job": job,
        "unprintable": result.unprintable,
        "replace_url_name": WORKER_QR_REPLACE_URL,
        "replace_expiry": _replace_expiry(),
        "has_kiosk": store.kiosks.filter(revoked_at__isnull=True).exists(),
    }
    template = partial(request, "badges/sheet_result.html", "result")
    response = render(request, template, context, status=200 if job else 422)
    return trigger_client_event(response, "badge-sheet-queued") if job else response


@require_GET
@manager_required
def sheet_detail(request: SignedInRequest, au_id: str, job_id: int) -> HttpResponse:
    job = get_print_job_for_manager(user=request.user, au_id=au_id, job_id=job_id)
    print_jobs.print_job_items_resolve(jobs=[job])
    context = {"store": job.store, "job": job, "items": list(job.items.all())}
    return render(request, partial(request, "badges/sheet_detail.html", "status"), context)


@require_GET
@never_cache
@manager_required
def sheet_pdf(request: SignedInRequest, au_id: str, job_id: int) -> HttpResponse:
    job = get_print_job_for_manager(user=request.user, au_id=au_id, job_id=job_id)
    if job.created_by_id != request.user.pk:
        # QR payloads are drawn only for the manager who queued them (docs/architecture.md §5).
        raise Http404("No such badge sheet.")
    try:
        pdf = print_jobs.print_job_pdf(job=job)
    except print_jobs.PrintJobUnavailable as exc:
        context = {"store": job.store, "job": job, "items": list(job.items.all())}
        context["error"] = str(exc)
        return render(request, "badges/sheet_detail.html", context, status=409)
    return download(
        pdf, content_type="application/pdf", filename=f"badges-{job.store_id[:8]}-{job.pk}.pdf"
    )


@require_POST
@manager_required
def sheet_printed(request: SignedInRequest, au_id: str, job_id: int) -> HttpResponse:
    job = get_print_job_for_manager(user=request.user, au_id=au_id, job_id=job_id)
    print_jobs.print_job_mark_printed(job=job, actor=request.user)
    if request.htmx:
        context = {"store": job.store, "job": job, "items": list(job.items.all())}
        return render(request, "badges/sheet_detail.html#status", context)
    return redirect("badges:sheet-detail", au_id=au_id, job_id=job.pk)


@require_POST
@manager_required
def sheet_cancel(request: SignedInRequest, au_id: str, job_id: int) -> HttpResponse:
    job = get_print_job_for_manager(user=request.user, au_id=au_id, job_id=job_id)
    print_jobs.print_job_cancel(job=job, actor=request.user)
    if request.htmx:
        context = {"store": job.store, "job": job, "items": list(job.items.all())}
        return render(request, "badges/sheet_detail.html#status", context)
    return redirect("badges:sheet-detail", au_id=au_id, job_id=job.pk)


@require_POST
@never_cache
@manager_required
def pin_slips(request: SignedInRequest, au_id: str) -> HttpResponse:
    """PIN slips of the selected workers (the PINs this manager set): printable once."""
    store = get_administrative_unit_for_manager(user=request.user, au_id=au_id)
    form = PinSlipForm(request.POST)
    if not form.is_valid():
        return render(request, "badges/pin_slips.html", {"store": store, "form": form}, status=422)
    members = set(
        store.memberships.filter(user_id__in=form.cleaned_data["user_id"]).values_list(
            "user_id", flat=True
        )
    )
    user_ids = [uid for uid in form.cleaned_data["user_id"] if uid in members]
    result = pin_slips_pdf(
        requester=request.user, unit=store, user_ids=user_ids, page=form.cleaned_data["page"]
    )
    if result.pdf is None:
        context = {"store": store, "unavailable": result.unavailable}
        return render(request, "badges/pin_slips.html", context, status=410)
    return download(
        result.pdf, content_type="application/pdf", filename=f"pin-slips-{store.id[:8]}.pdf"
    )


@require_POST
@manager_required
def forgotten_badge(request: SignedInRequest, au_id: str, user_id: str) -> HttpResponse:
    """A temporary QR code for a worker who forgot their badge, sent to the store's kiosk."""
    store = get_administrative_unit_for_manager(user=request.user, au_id=au_id)
    worker = get_worker_for_manager(user=request.user, au_id=au_id, user_id=user_id)
    form = ForgottenBadgeForm(request.POST)
    context = {"store": store, "worker": worker, "form": form}
    if not form.is_valid():
        template = partial(request, "badges/forgotten.html", "result")
        return render(request, template, context, status=422)
    try:
        operation, job = print_jobs.forgotten_badge_send(
            worker=worker,
            unit=store,
            requested_by=request.user,
            hours=form.cleaned_data["hours"],
            layout=form.cleaned_data["layout"],
        )
    except ActionRefused as exc:
        context["refused"] = str(exc)
        template = partial(request, "badges/forgotten.html", "result")
        return render(request, template, context, status=422)
    context.update(
        operation=operation,
        job=job,
        has_kiosk=store.kiosks.filter(revoked_at__isnull=True).exists(),
    )
    response = render(request, partial(request, "badges/forgotten.html", "result"), context)
    return trigger_client_event(response, "badge-sheet-queued")


# -- kiosk registration and status -------------------------------------------------------------


@require_GET
@manager_required
def kiosk_list(request: SignedInRequest) -> HttpResponse:
    stores = kiosk_store_choices_for_user(user=request.user)
    if not request.user.is_it_admin and not stores.exists():
        return render(request, "portal/no_access.html", status=403)
    context = {"kiosks": list(kiosk_list_for_user(user=request.user)), "now": timezone.now()}
    return render(request, partial(request, "badges/kiosk_list.html", "kiosks"), context)


@require_http_methods(["GET", "POST"])
@never_cache
@manager_required
def kiosk_register(request: SignedInRequest) -> HttpResponse:
    """Start pairing a kiosk: the code is shown once, on this response only."""
    stores = kiosk_store_choices_for_user(user=request.user)
    if not request.user.is_it_admin and not stores.exists():
        return render(request, "portal/no_access.html", status=403)
    form = KioskRegisterForm(request.POST or None, stores=stores)
    if request.method == "POST" and form.is_valid():
        pairing, code = kiosks.kiosk_pairing_start(
            name=form.cleaned_data["name"],
            stores=list(form.cleaned_data["stores"]),
            created_by=request.user,
        )
        context = {
            "pairing": pairing,
            "code": code,
            "pair_url": request.build_absolute_uri(reverse("badges:kiosk-pair")),
        }
        return render(request, "badges/kiosk_register.html", context)
    status = 422 if request.method == "POST" else 200
    return render(request, "badges/kiosk_register.html", {"form": form}, status=status)


@require_POST
@manager_required
def kiosk_revoke(request: SignedInRequest, kiosk_id: int) -> HttpResponse:
    kiosk = get_kiosk_for_user(user=request.user, kiosk_id=kiosk_id)
    kiosks.kiosk_revoke(kiosk=kiosk, actor=request.user)
    if request.htmx:
        context = {"kiosks": list(kiosk_list_for_user(user=request.user)), "now": timezone.now()}
        return render(request, "badges/kiosk_list.html#kiosks", context)
    return redirect("badges:kiosk-list")


@require_POST
@manager_required
def kiosk_confirm(request: SignedInRequest, kiosk_id: int) -> HttpResponse:
    """A manager of every store of a suspended kiosk (or an IT admin) answers for it now."""
    kiosk = get_kiosk_for_user(user=request.user, kiosk_id=kiosk_id)
    kiosks.kiosk_confirm(kiosk=kiosk, actor=request.user)
    if request.htmx:
        context = {"kiosks": list(kiosk_list_for_user(user=request.user)), "now": timezone.now()}
        return render(request, "badges/kiosk_list.html#kiosks", context)
    return redirect("badges:kiosk-list")
