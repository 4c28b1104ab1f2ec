from __future__ import annotations

from django.urls import include, path

from portal import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("", include("portal.portal_urls")),
]
