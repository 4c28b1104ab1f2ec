"""Badge sheets, PIN slips, kiosk registration — and the kiosk's own pages.

Managers reach sheets only through `get_print_job_for_manager` (another store's sheet is a 404).
The kiosk area (/badges/kiosk/) is authenticated by the kiosk's device credential cookie alone:
it never looks at `request.user`, and its cookie is scoped to that path, so it is not even sent
to the rest of the portal. PDFs are rendered per request from the vault and never cached.
"""

from __future__ import annotations

import functools
import logging
from datetime import timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.cache import cache
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, trigger_client_event
from django_htmx.middleware import HtmxDetails

from badges import kiosks, print_jobs
from badges.forms import (
    ForgottenBadgeForm,
    KioskPairForm,
    KioskRegisterForm,
    PinSlipForm,
    WorkerSelectionForm,
)
from badges.models import Kiosk, PrintJob
from badges.pin_slips import pin_slips_pdf
from badges.selectors import (
    get_kiosk_for_user,
    get_print_job_for_kiosk,
    get_print_job_for_manager,
    kiosk_list_for_user,
    kiosk_store_choices_for_user,
    print_job_list_for_store,
    worker_list_printable_for_store,
)
from portal.models import User
from provisioning.actions import ActionRefused
from provisioning.rules import STANDARD_MAX_DAYS
from provisioning.selectors import get_administrative_unit_for_manager, get_worker_for_manager

logger = logging.getLogger(__name__)

# The manager portal's "replace lost QR code" action (POST; a QrReplaceForm with prefix
# "replace"): the one-click fix for a worker whose payload is no longer in the vault.
WORKER_QR_REPLACE_URL = "manager:qr-replace"
REPLACE_DEFAULT_DAYS = 365
PRINTABLE_LIST_LIMIT = 500
PAIR_ATTEMPTS_PER_WINDOW = 10
PAIR_WINDOW_SECONDS = 600


class ManagerRequest(HttpRequest):
    user: User
    htmx: HtmxDetails


class KioskRequest(HttpRequest):
    kiosk: Kiosk
    htmx: HtmxDetails


def manager_required(view):
    """Signed in, or back to sign-in (for htmx, a full-page redirect)."""

    @functools.wraps(view)
    def wrapper(request: ManagerRequest, *args, **kwargs):
        if request.user.is_authenticated:
            return view(request, *args, **kwargs)
        if request.htmx:
            query = urlencode({"next": request.htmx.current_url_abs_path or request.path})
            return HttpResponseClientRedirect(f"{reverse('portal:sign-in')}?{query}")
        return redirect_to_login(request.get_full_path())

    return wrapper


def _partial(request: HttpRequest, template: str, fragment: str) -> str:
    return f"{template}#{fragment}" if request.htmx else template


def _pdf(pdf: bytes, filename: str, *, inline: bool = False) -> HttpResponse:
    response = HttpResponse(pdf, content_type="application/pdf")
    disposition = "inline" if inline else "attachment"
    response["Content-Disposition"] = f'{disposition}; filename="{filename}"'
    return response


def _replace_expiry() -> str:
    day = timezone.localdate() + timedelta(days=min(REPLACE_DEFAULT_DAYS, STANDARD_MAX_DAYS))
    return day.isoformat()


# -- a manager's sheets ------------------------------------------------------------------------


@require_GET
@manager_required
def sheet_list(request: ManagerRequest, au_id: str) -> HttpResponse:
    store = get_administrative_unit_for_manager(user=request.user, au_id=au_id)
    jobs = print_job_list_for_store(unit=store)
    context = {
        "store": store,
        "open_jobs": list(jobs.filter(status__in=PrintJob.OPEN_STATUSES)),
        "recent_jobs": list(jobs.exclude(status__in=PrintJob.OPEN_STATUSES)[:20]),
        "kiosks": list(store.kiosks.filter(revoked_at__isnull=True)),
        "printable": list(worker_list_printable_for_store(unit=store)[:PRINTABLE_LIST_LIMIT]),
        "form": WorkerSelectionForm(),
    }
    return render(request, _partial(request, "badges/sheet_list.html", "sheets"), context)


@require_POST
@manager_required
def sheet_create(request: ManagerRequest, au_id: str) -> HttpResponse:
    """Queue a sheet of the selected workers (the store page's checkboxes post here)."""
    store = get_administrative_unit_for_manager(user=request.user, au_id=au_id)
    form = WorkerSelectionForm(request.POST)
    if not form.is_valid():
        template = _partial(request, "badges/sheet_result.html", "result")
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
    template = _partial(request, "badges/sheet_result.html", "result")
    response = render(request, template, context, status=200 if job else 422)
    return trigger_client_event(response, "badge-sheet-queued") if job else response


@require_GET
@manager_required
def sheet_detail(request: ManagerRequest, au_id: str, job_id: int) -> HttpResponse:
    job = get_print_job_for_manager(user=request.user, au_id=au_id, job_id=job_id)
    print_jobs.print_job_items_resolve(jobs=[job])
    context = {"store": job.store, "job": job, "items": list(job.items.all())}
    return render(request, _partial(request, "badges/sheet_detail.html", "status"), context)


@require_GET
@never_cache
@manager_required
def sheet_pdf(request: ManagerRequest, au_id: str, job_id: int) -> HttpResponse:
    job = get_print_job_for_manager(user=request.user, au_id=au_id, job_id=job_id)
    try:
        pdf = print_jobs.print_job_pdf(job=job)
    except print_jobs.PrintJobUnavailable as exc:
        context = {"store": job.store, "job": job, "items": list(job.items.all())}
        context["error"] = str(exc)
        return render(request, "badges/sheet_detail.html", context, status=409)
    return _pdf(pdf, f"badges-{job.store_id[:8]}-{job.pk}.pdf")


@require_POST
@manager_required
def sheet_printed(request: ManagerRequest, au_id: str, job_id: int) -> HttpResponse:
    job = get_print_job_for_manager(user=request.user, au_id=au_id, job_id=job_id)
    print_jobs.print_job_mark_printed(job=job, actor=request.user)
    if request.htmx:
        context = {"store": job.store, "job": job, "items": list(job.items.all())}
        return render(request, "badges/sheet_detail.html#status", context)
    return redirect("badges:sheet-detail", au_id=au_id, job_id=job.pk)


@require_POST
@manager_required
def sheet_cancel(request: ManagerRequest, au_id: str, job_id: int) -> HttpResponse:
    job = get_print_job_for_manager(user=request.user, au_id=au_id, job_id=job_id)
    print_jobs.print_job_cancel(job=job, actor=request.user)
    if request.htmx:
        context = {"store": job.store, "job": job, "items": list(job.items.all())}
        return render(request, "badges/sheet_detail.html#status", context)
    return redirect("badges:sheet-detail", au_id=au_id, job_id=job.pk)


@require_POST
@never_cache
@manager_required
def pin_slips(request: ManagerRequest, au_id: str) -> HttpResponse:
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
    return _pdf(result.pdf, f"pin-slips-{store.id[:8]}.pdf")


@require_POST
@manager_required
def forgotten_badge(request: ManagerRequest, au_id: str, user_id: str) -> HttpResponse:
    """A temporary QR code for a worker who forgot their badge, sent to the store's kiosk."""
    store = get_administrative_unit_for_manager(user=request.user, au_id=au_id)
    worker = get_worker_for_manager(user=request.user, au_id=au_id, user_id=user_id)
    form = ForgottenBadgeForm(request.POST)
    context = {"store": store, "worker": worker, "form": form}
    if not form.is_valid():
        template = _partial(request, "badges/forgotten.html", "result")
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
        template = _partial(request, "badges/forgotten.html", "result")
        return render(request, template, context, status=422)
    context.update(
        operation=operation,
        job=job,
        has_kiosk=store.kiosks.filter(revoked_at__isnull=True).exists(),
    )
    response = render(request, _partial(request, "badges/forgotten.html", "result"), context)
    return trigger_client_event(response, "badge-sheet-queued")


# -- kiosk registration and status -------------------------------------------------------------


@require_GET
@manager_required
def kiosk_list(request: ManagerRequest) -> HttpResponse:
    stores = kiosk_store_choices_for_user(user=request.user)
    if not request.user.is_it_admin and not stores.exists():
        return render(request, "portal/no_access.html", status=403)
    context = {"kiosks": list(kiosk_list_for_user(user=request.user)), "now": timezone.now()}
    return render(request, _partial(request, "badges/kiosk_list.html", "kiosks"), context)


@require_http_methods(["GET", "POST"])
@never_cache
@manager_required
def kiosk_register(request: ManagerRequest) -> HttpResponse:
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
def kiosk_revoke(request: ManagerRequest, kiosk_id: int) -> HttpResponse:
    kiosk = get_kiosk_for_user(user=request.user, kiosk_id=kiosk_id)
    kiosks.kiosk_revoke(kiosk=kiosk, actor=request.user)
    if request.htmx:
        context = {"kiosks": list(kiosk_list_for_user(user=request.user)), "now": timezone.now()}
        return render(request, "badges/kiosk_list.html#kiosks", context)
    return redirect("badges:kiosk-list")


# -- the kiosk's own pages (device credential only) ------------------------------------------


def _kiosk_cookie_delete(response: HttpResponse) -> HttpResponse:
    response.delete_cookie(
        settings.KIOSK_COOKIE_NAME, path=reverse("badges:kiosk-home"), samesite="Strict"
    )
    return response


def kiosk_required(view):
    """The request carries a valid device credential; `request.kiosk` is its kiosk.

    Deliberately ignores any user session: a kiosk is not a person, and a person's session is
    not a kiosk.
    """

    @functools.wraps(view)
    def wrapper(request: KioskRequest, *args, **kwargs):
        credential = request.COOKIES.get(settings.KIOSK_COOKIE_NAME, "")
        kiosk = kiosks.kiosk_authenticate(credential=credential)
        if kiosk is None:
            pair_url = reverse("badges:kiosk-pair")
            if credential:
                pair_url += "?" + urlencode({"reason": "revoked"})
            if request.htmx:
                response = HttpResponseClientRedirect(pair_url)
            elif request.method == "GET":
                response = redirect(pair_url)
            else:
                response = HttpResponse("This kiosk is not paired.", status=403)
            return _kiosk_cookie_delete(response) if credential else response
        request.kiosk = kiosk
        return view(request, *args, **kwargs)

    return wrapper


def pair_throttle_key(remote_addr: str) -> str:
    return f"badges:kiosk-pair-failures:{remote_addr}"


def _pair_throttled(request: HttpRequest) -> bool:
    """Too many wrong codes from this address lately (a code has ~40 bits and lives minutes)."""
    key = pair_throttle_key(request.META.get("REMOTE_ADDR", ""))
    return cache.get(key, 0) >= PAIR_ATTEMPTS_PER_WINDOW


def _pair_failed(request: HttpRequest) -> None:
    key = pair_throttle_key(request.META.get("REMOTE_ADDR", ""))
    cache.add(key, 0, PAIR_WINDOW_SECONDS)
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, PAIR_WINDOW_SECONDS)


@require_http_methods(["GET", "POST"])
@never_cache
def kiosk_pair(request: KioskRequest) -> HttpResponse:
    """The kiosk's browser types the pairing code; it gets its device credential cookie."""
    form = KioskPairForm(request.POST or None)
    context = {"form": form, "revoked": request.GET.get("reason") == "revoked"}
    if request.method == "GET":
        return render(request, "badges/kiosk_pair.html", context)
    if _pair_throttled(request):
        context["error"] = "Too many attempts. Wait ten minutes, then try again."
        return render(request, "badges/kiosk_pair.html", context, status=429)
    if not form.is_valid():
        return render(request, "badges/kiosk_pair.html", context, status=422)
    try:
        kiosk, credential = kiosks.kiosk_pair(code=form.cleaned_data["code"])
    except kiosks.PairingFailed as exc:
        _pair_failed(request)
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
    template = _partial(request, "badges/kiosk.html", "queue")
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
    return _pdf(pdf, f"badges-{job.pk}.pdf", inline=True)


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
