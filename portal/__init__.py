"""Lanyard's Django project: settings, URLs, the Celery app, sign-in, manager and admin UI."""

from portal.celery import app as celery_app

__all__ = ("celery_app",)
