from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def lanyard(request: HttpRequest) -> dict:
    return {"demo_mode": settings.DEMO_MODE}
