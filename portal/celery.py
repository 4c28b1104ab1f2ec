"""The Celery application (`celery -A portal worker|beat`).

Configuration comes from Django settings (CELERY_* names). Tasks are thin and idempotent: they take
row ids only, are acknowledged late and re-queued if a worker dies (docs/conventions.md "Celery
tasks").
"""

from __future__ import annotations

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_init.connect
@signals.beat_init.connect
def run_system_checks(**kwargs) -> None:
    """Refuse to start a misconfigured worker or scheduler, with the checks' plain messages."""
    from django.core.management import call_command

    call_command("check", fail_level="ERROR")
