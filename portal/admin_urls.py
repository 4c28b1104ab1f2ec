"""The IT admin's pages: bulk jobs (upload or pick a source, preview, run, follow, results);
phone pre-population; insights; the QR code + PIN policy, the audit log and readiness
(portal/admin_tenant_views.py)."""

from __future__ import annotations

from django.urls import path

from portal import admin_tenant_views as tenant_views
from portal import admin_views as views
from portal import insights_views, prepopulation_views

app_name = "itadmin"

JOB = "bulk/<int:job_id>/"

urlpatterns = [
    path("", views.bulk_job_list, name="bulk-jobs"),
    path("bulk/new", views.bulk_upload, name="bulk-upload"),
    path("bulk/source", views.bulk_source, name="bulk-source"),
    path("bulk/template/<str:kind>.csv", views.bulk_template, name="bulk-template"),
    path(JOB, views.bulk_job_detail, name="bulk-job"),
    path(JOB + "confirm", views.bulk_job_confirm, name="bulk-confirm"),
    path(JOB + "progress", views.bulk_job_progress, name="bulk-progress"),
    path(JOB + "cancel", views.bulk_job_cancel, name="bulk-cancel"),
    path(JOB + "rerun", views.bulk_job_rerun, name="bulk-rerun"),
    path(JOB + "results.csv", views.bulk_job_results, name="bulk-results"),
    path(JOB + "badges.pdf", views.bulk_job_badges, name="bulk-badges"),
    path(JOB + "pin-slips.pdf", views.bulk_job_pin_slips, name="bulk-pin-slips"),
    path("prepopulation", prepopulation_views.prepopulation_page, name="prepopulation"),
    path("prepopulation/run", prepopulation_views.prepopulation_start, name="prepopulation-run"),
    path(
        "prepopulation/schedule",
        prepopulation_views.prepopulation_schedule,
        name="prepopulation-schedule",
    ),
    path("qr-policy/", tenant_views.qr_policy, name="qr-policy"),
    path("audit/", tenant_views.audit_log, name="audit-log"),
    path("audit/audit.csv", tenant_views.audit_log_csv, name="audit-log-csv"),
    path("readiness/", tenant_views.readiness_page, name="readiness"),
    path("insights/", insights_views.insights_page, name="insights"),
    path("insights/snapshot", insights_views.insights_snapshot, name="insights-snapshot"),
    path("insights/renew", insights_views.insights_renew, name="insights-renew"),
]
