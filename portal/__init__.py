"""Lanyard's Django project: settings, URLs, the Celery app, sign-in, and the web UI (manager,
admin, badge and kiosk pages; their shared request handling is portal/http.py)."""

from portal.celery import app as celery_app

__all__ = ("celery_app",)
