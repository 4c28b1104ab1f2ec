"""The kiosk's own pages (mounted at /badges/kiosk/, URL namespace `badges`): pairing, the print
queue, a sheet's PDF, "printed".

This area is authenticated by the kiosk's device credential cookie alone: it never looks at
`request.user`, and its cookie is scoped to this path, so it is not even sent to the rest of the
portal. PDFs are rendered per request from the vault and never cached.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from badges import kiosks, print_jobs
from badges.selectors import get_print_job_for_kiosk
from portal.badge_forms import KioskPairForm
from portal.http import (
    KIOSK_PAIR_FAILURES,
    KIOSK_PAIR_FAILURES_GLOBAL,
    KioskRequest,
    client_address,
    download,
    kiosk_required,
    partial,
)

logger = logging.getLogger(__name__)


@require_http_methods(["GET", "POST"])
@never_cache
def kiosk_pair(request: KioskRequest) -> HttpResponse:
    """The kiosk's browser types the pairing code; it gets its device credential cookie."""
    form = KioskPairForm(request.POST or None)
    context = {"form": form, "revoked": request.GET.get("reason") == "revoked"}
    if request.method == "GET":
        return render(request, "badges/kiosk_pair.html", context)
    address = client_address(request)
    if KIOSK_PAIR_FAILURES.exceeded(address) or KIOSK_PAIR_FAILURES_GLOBAL.exceeded("all"):
        context["error"] = "Too many attempts. Wait ten minutes, then try again."
        return render(request, "badges/kiosk_pair.html", context, status=429)
    if not form.is_valid():
        return render(request, "badges/kiosk_pair.html", context, status=422)
    try:
        kiosk, credential = kiosks.kiosk_pair(code=form.cleaned_data["code"])
    except kiosks.PairingFailed as exc:
        KIOSK_PAIR_FAILURES.count(address)
        KIOSK_PAIR_FAILURES_GLOBAL.count("all")
        context["error"] = str(exc)
        return render(request, "badges/kiosk_pair.html", context, status=422)
    response = redirect("badges:kiosk-home")
    response.set_cookie(
        settings.KIOSK_COOKIE_NAME,
        credential,
        max_age=int(timedelta(days=settings.KIOSK_CREDENTIAL_DAYS).total_seconds()),
        path=reverse("badges:kiosk-home"),
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Strict",
    )
    logger.info("Kiosk %s paired", kiosk.pk)
    return response


def _queue_context(request: KioskRequest, **extra) -> dict:
    jobs = kiosks.kiosk_queue(kiosk=request.kiosk)
    return {
        "kiosk": request.kiosk,
        "stores": list(request.kiosk.stores.all()),
        "jobs": [(job, print_jobs.print_job_ready(job)) for job in jobs],
        "now": timezone.now(),
        **extra,
    }


@require_GET
@never_cache
@kiosk_required
def kiosk_home(request: KioskRequest) -> HttpResponse:
    """The print queue; its list refreshes itself (htmx polling)."""
    template = partial(request, "badges/kiosk.html", "queue")
    return render(request, template, _queue_context(request))


@require_GET
@never_cache
@kiosk_required
def kiosk_sheet_pdf(request: KioskRequest, job_id: int) -> HttpResponse:
    job = get_print_job_for_kiosk(kiosk=request.kiosk, job_id=job_id)
    try:
        pdf = print_jobs.print_job_open(job=job, kiosk=request.kiosk)
    except print_jobs.PrintJobUnavailable as exc:
        context = _queue_context(request, error=str(exc))
        return render(request, "badges/kiosk.html", context, status=409)
    return download(
        pdf, content_type="application/pdf", filename=f"badges-{job.pk}.pdf", inline=True
    )


@require_POST
@kiosk_required
def kiosk_sheet_printed(request: KioskRequest, job_id: int) -> HttpResponse:
    try:
        job = get_print_job_for_kiosk(kiosk=request.kiosk, job_id=job_id)
    except Http404:
        if request.htmx:  # printed meanwhile by another kiosk: just refresh the queue
            return render(request, "badges/kiosk.html#queue", _queue_context(request))
        raise
    print_jobs.print_job_mark_printed(job=job, kiosk=request.kiosk)
    if request.htmx:
        return render(request, "badges/kiosk.html#queue", _queue_context(request))
    return redirect("badges:kiosk-home")
