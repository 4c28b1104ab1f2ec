"""The IT admin's bulk pages: upload a CSV or pick a group or store, preview, confirm, follow the
job's progress (htmx polling), cancel, re-run failed rows, download results, badges and PIN slips.

Every view is for IT admins only (members of LANYARD_ADMIN_GROUP_ID, refreshed at sign-in); others
get a 403. A confirmation carries the preview's hash and is refused if the rows or the policy
changed (provisioning/bulk/jobs.py).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRefresh, HttpResponseStopPolling

from badges import pin_slips, print_jobs
from portal.admin_forms import ConfirmForm, GroupSourceForm, StoreSourceForm, UploadForm
from portal.http import (
    CappedUploadHandler,
    SignedInRequest,
    download,
    it_admin_required,
    partial,
    upload_body_too_large,
)
from provisioning.bulk import csvfile, jobs, previewing, selectors
from provisioning.directory import administrative_unit_list_unreadable
from provisioning.models import BulkJob
from provisioning.privileged import admin_group_warning
from provisioning.qr_policy import POLICY_UNREADABLE, qr_policy_current, qr_policy_unreadable

logger = logging.getLogger(__name__)

ROWS_PER_PAGE = 100
TEMPLATE = "portal/admin/bulk_job.html"


def _job(job_id: int) -> BulkJob:
    return get_object_or_404(BulkJob.objects.select_related("created_by"), pk=job_id)


def _list_context(**forms) -> dict:
    return {
        "jobs": jobs.bulk_job_list(),
        "upload_form": forms.get("upload_form") or UploadForm(),
        "group_form": forms.get("group_form") or GroupSourceForm(),
        "store_form": forms.get("store_form") or StoreSourceForm(),
        "max_rows": settings.BULK_MAX_ROWS,
        # Stores the directory sync had to skip (docs/graph-contract.md §4.3).
        "unreadable_stores": administrative_unit_list_unreadable(),
        "policy_unreadable": POLICY_UNREADABLE if qr_policy_unreadable(qr_policy_current()) else "",
        "qr_columns": csvfile.column_names("qr"),
        "phone_columns": csvfile.column_names("phone"),
        "time_zone": settings.TIME_ZONE,
        "admin_group_warning": admin_group_warning(),
    }


@require_GET
@it_admin_required
def bulk_job_list(request: SignedInRequest) -> HttpResponse:
    return render(request, "portal/admin/bulk_list.html", _list_context())


@csrf_exempt  # checked by _bulk_upload, after the upload handlers are in place
@require_http_methods(["GET", "POST"])
@it_admin_required
def bulk_upload(request: SignedInRequest) -> HttpResponse:
    """Upload a CSV. The body is capped before Django reads it (docs/architecture.md §7): a
    Content-Length over the limit is refused from the headers, and CappedUploadHandler stops
    reading a body that runs past it. (CSRF middleware would read the body first, so this view
    is exempt and _bulk_upload checks the token once the handlers are set.)"""
    if request.method == "GET":
        return redirect("itadmin:bulk-jobs")
    if upload_body_too_large(request, settings.BULK_MAX_UPLOAD_BYTES):
        return _upload_too_large(request)
    capped = CappedUploadHandler(settings.BULK_MAX_UPLOAD_BYTES, request)
    request.upload_handlers.insert(0, capped)
    return _bulk_upload(request, capped)


def _upload_too_large(request: SignedInRequest) -> HttpResponse:
    form = UploadForm(data={}, files={})
    form.is_valid()
    form.errors["file"] = form.error_class(
        [
            f"The file is larger than the limit of {settings.BULK_MAX_UPLOAD_BYTES // 1024:,} KB. "
            "Split it into smaller files."
        ]
    )
    return render(request, "portal/admin/bulk_list.html", _list_context(upload_form=form),
                  status=413)  # fmt: skip


@csrf_protect
@sensitive_post_parameters()
def _bulk_upload(request: SignedInRequest, capped: CappedUploadHandler) -> HttpResponse:
    form = UploadForm(request.POST, request.FILES)
    if capped.exceeded:
        return _upload_too_large(request)
    if form.is_valid():
        kind = form.cleaned_data["kind"]
        upload = form.cleaned_data["file"]
        try:
            rows = csvfile.read_rows(upload.read(), kind=kind)
        except csvfile.FileProblem as exc:
            form.add_error("file", str(exc))
        else:
            # Only the file's shape is checked here; the users are checked by a task, and the
            # job's page shows its progress (provisioning/bulk/previewing.py).
            job = previewing.bulk_preview_start_upload(
                kind=kind, rows=rows, source_label=upload.name or "upload.csv",
                created_by=request.user,
            )  # fmt: skip
            return redirect("itadmin:bulk-job", job_id=job.pk)
    return render(request, "portal/admin/bulk_list.html", _list_context(upload_form=form),
                  status=400)  # fmt: skip


@require_POST
@it_admin_required
def bulk_source(request: SignedInRequest) -> HttpResponse:
    which = request.POST.get("source")
    form = GroupSourceForm(request.POST) if which == "group" else StoreSourceForm(request.POST)
    if which in ("group", "store") and form.is_valid():
        # The members are read and checked by the preview task, as an upload's rows are.
        ref = form.cleaned_data["group_id" if which == "group" else "au_id"]
        job = previewing.bulk_preview_start_source(source=which, ref=ref, created_by=request.user)
        return redirect("itadmin:bulk-job", job_id=job.pk)
    key = "group_form" if which == "group" else "store_form"
    return render(request, "portal/admin/bulk_list.html", _list_context(**{key: form}), status=400)


@require_GET
@it_admin_required
def bulk_template(request: SignedInRequest, kind: str) -> HttpResponse:
    if kind not in csvfile.TEMPLATES:
        raise Http404
    return download(
        csvfile.csv_template(kind),
        content_type="text/csv; charset=utf-8",
        filename=f"lanyard-{kind}-template.csv",
    )


def _detail_context(request: SignedInRequest, job: BulkJob) -> dict:
    status = request.GET.get("status", "")
    page = Paginator(jobs.bulk_job_rows(job=job, status=status), ROWS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    return {
        "job": job,
        "counts": selectors.job_counts(job),
        "page": page,
        "status_filter": status,
        "confirm_form": ConfirmForm(initial={"preview_hash": job.preview_hash}),
        "printables": jobs.bulk_job_printables(job=job) if job.kind == "qr" else None,
        "admin_group_warning": admin_group_warning(),
        "active": job.status == BulkJob.Status.RUNNING
        or (job.status == BulkJob.Status.CANCELLED and job.finished_at is None),
    }


@require_GET
@it_admin_required
def bulk_job_detail(request: SignedInRequest, job_id: int) -> HttpResponse:
    job = _job(job_id)
    return render(request, partial(request, TEMPLATE, "rows"), _detail_context(request, job))


@require_GET
@it_admin_required
def bulk_job_progress(request: SignedInRequest, job_id: int) -> HttpResponse:
    """The progress fragment; polling stops once the job is over. While the rows are checked
    against Entra, the preview's progress; once the preview is ready (or failed), htmx reloads
    the page, which then shows it."""
    job = _job(job_id)
    if job.status == BulkJob.Status.PREVIEWING:
        return render(request, f"{TEMPLATE}#checking", {"job": job})
    if request.htmx and request.GET.get("stage") == "preview":
        return HttpResponseClientRefresh()
    context = _detail_context(request, job)
    response = render(request, f"{TEMPLATE}#progress", context)
    if request.htmx and not context["active"]:
        return HttpResponseStopPolling(response.content)
    return response


@require_POST
@it_admin_required
def bulk_job_confirm(request: SignedInRequest, job_id: int) -> HttpResponse:
    job = _job(job_id)
    form = ConfirmForm(request.POST)
    if form.is_valid():
        try:
            jobs.bulk_job_confirm(job=job, previewed_hash=form.cleaned_data["preview_hash"],
                                  confirmed_by=request.user)  # fmt: skip
        except jobs.JobRefused as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, "Job started.")
    else:
        messages.error(request, "The confirmation did not say which preview it confirms.")
    return redirect("itadmin:bulk-job", job_id=job.pk)


@require_POST
@it_admin_required
def bulk_job_cancel(request: SignedInRequest, job_id: int) -> HttpResponse:
    job = _job(job_id)
    try:
        count = jobs.bulk_job_cancel(job=job, cancelled_by=request.user)
    except jobs.JobRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Job cancelled: {count} rows will not run.")
    return redirect("itadmin:bulk-job", job_id=job.pk)


@require_POST
@it_admin_required
def bulk_job_rerun(request: SignedInRequest, job_id: int) -> HttpResponse:
    job = _job(job_id)
    try:
        count = jobs.bulk_job_rerun_failed(job=job, requested_by=request.user)
    except jobs.JobRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{count} failed rows will run again.")
    return redirect("itadmin:bulk-job", job_id=job.pk)


@require_GET
@it_admin_required
def bulk_job_results(request: SignedInRequest, job_id: int) -> HttpResponse:
    job = _job(job_id)
    return download(
        jobs.bulk_job_results_csv(job=job),
        content_type="text/csv",
        filename=f"lanyard-job-{job.pk}-results.csv",
    )


@never_cache
@require_POST
@it_admin_required
def bulk_job_badges(request: SignedInRequest, job_id: int) -> HttpResponse:
    """The badge sheet, once: the QR codes leave the vault in this response, as when printed."""
    job = _job(job_id)
    try:
        printed = print_jobs.bulk_job_badges_pdf(
            job=job, layout=request.POST.get("layout", "sheet-a4"), printed_by=request.user
        )
    except print_jobs.BadgeError as exc:
        messages.error(request, str(exc))
        return redirect("itadmin:bulk-job", job_id=job.pk)
    refused = "; ".join(f"{entry.display_name}: {entry.reason}" for entry in printed.unprintable)
    if printed.pdf is None:
        messages.error(request, f"No badge could be printed. {refused}")
        return redirect("itadmin:bulk-job", job_id=job.pk)
    if refused:
        messages.warning(request, f"{len(printed.unprintable)} badge(s) not printed. {refused}")
    return download(
        printed.pdf, content_type="application/pdf", filename=f"lanyard-job-{job.pk}-badges.pdf"
    )


@never_cache
@require_POST
@it_admin_required
def bulk_job_pin_slips(request: SignedInRequest, job_id: int) -> HttpResponse:
    """PIN slips, once: the PINs leave the vault in this response."""
    job = _job(job_id)
    try:
        result = pin_slips.bulk_job_pin_slips_pdf(job=job, requester=request.user)
    except print_jobs.BadgeError as exc:
        messages.error(request, str(exc))
        return redirect("itadmin:bulk-job", job_id=job.pk)
    return download(
        result.pdf, content_type="application/pdf", filename=f"lanyard-job-{job.pk}-pin-slips.pdf"
    )
