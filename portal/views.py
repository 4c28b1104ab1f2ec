"""The portal's pages. Views are thin: read the request, call one selector or service, render."""

from __future__ import annotations

import logging

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from portal.health import broker_health
from provisioning.selectors import administrative_unit_list_for_manager

logger = logging.getLogger(__name__)


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return render(request, "portal/welcome.html")
    stores = list(administrative_unit_list_for_manager(user=request.user))
    if not stores and not request.user.is_it_admin:
        return render(request, "portal/no_access.html", status=403)
    return render(request, "portal/home.html", {"stores": stores})


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Database and broker health, for load balancers and docker-compose health checks."""
    checks = {"database": "ok", "broker": broker_health()}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any database failure is "unhealthy", with its class for the log
        logger.warning("healthz: database unavailable: %s", type(exc).__name__)
        checks["database"] = "unavailable"
    healthy = all(value == "ok" for value in checks.values())
    return JsonResponse(checks, status=200 if healthy else 503)
