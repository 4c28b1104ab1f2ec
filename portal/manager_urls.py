"""The store manager's pages: workers, their QR code + PIN and phone methods, activity."""

from __future__ import annotations

from django.urls import path

from portal import manager_views as views

app_name = "manager"

WORKER = "<str:au_id>/workers/<str:user_id>/"
OPERATION = WORKER + "operations/<int:op_id>/"

urlpatterns = [
    path("", views.store_list, name="store-list"),
    path("<str:au_id>/", views.store_detail, name="store-detail"),
    path("<str:au_id>/refresh", views.store_refresh, name="store-refresh"),
    path("<str:au_id>/activity/", views.store_activity, name="store-activity"),
    path("<str:au_id>/jobs/", views.store_job_start, name="store-job-start"),
    path("<str:au_id>/jobs/<int:job_id>/", views.store_job, name="store-job"),
    path("<str:au_id>/jobs/<int:job_id>/rerun", views.store_job_rerun, name="store-job-rerun"),
    path(
        "<str:au_id>/jobs/<int:job_id>/pin-slips.pdf",
        views.store_job_pin_slips,
        name="store-job-pin-slips",
    ),
    path(WORKER, views.worker_detail, name="worker-detail"),
    path(WORKER + "methods", views.worker_methods, name="worker-methods"),
    path(WORKER + "refresh", views.worker_refresh, name="worker-refresh"),
    path(WORKER + "activity/", views.worker_activity, name="worker-activity"),
    path(WORKER + "qr/add", views.qr_add_page, name="qr-add-page"),
    path(WORKER + "qr/", views.qr_add, name="qr-add"),
    path(WORKER + "qr/expiry", views.qr_expiry, name="qr-expiry"),
    path(WORKER + "qr/replace", views.qr_replace, name="qr-replace"),
    path(WORKER + "qr/temporary", views.qr_temporary_add, name="qr-temporary-add"),
    path(WORKER + "qr/temporary/delete", views.qr_temporary_delete, name="qr-temporary-delete"),
    path(WORKER + "qr/pin-reset", views.qr_pin_reset, name="qr-pin-reset"),
    path(WORKER + "qr/delete", views.qr_delete, name="qr-delete"),
    path(WORKER + "phones/<str:phone_type>", views.phone_set, name="phone-set"),
    path(WORKER + "phones/<str:phone_type>/delete", views.phone_delete, name="phone-delete"),
    path(OPERATION, views.operation_status, name="operation-status"),
    path(OPERATION + "pin", views.operation_pin, name="operation-pin"),
    path(OPERATION + "handed-over", views.operation_handed_over, name="operation-handed-over"),
    path(OPERATION + "resume", views.operation_resume, name="operation-resume"),
    path(OPERATION + "qr.svg", views.operation_qr, name="operation-qr"),
    path(OPERATION + "badge.pdf", views.operation_badge, name="operation-badge"),
    path(OPERATION + "kiosk", views.operation_kiosk, name="operation-kiosk"),
]
