from __future__ import annotations

from django.urls import include, path

from portal import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("", include("portal.portal_urls")),
    # Each area has its own URL module (and namespace): the store manager's pages, the IT admin's
    # pages, and badges, print queues and kiosks.
    path("stores/", include("portal.manager_urls")),
    path("admin/", include("portal.admin_urls")),
    path("badges/", include("portal.badge_urls")),
]
