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


@signals.worker_ready.connect
def resume_bulk_jobs(**kwargs) -> None:
    """A worker that starts resumes the running bulk jobs at once (a restart is exactly when
    earlier tasks are gone), instead of waiting for their leases and liveness records to run out
    (provisioning/bulk/engine.py, `jobs_resume_on_worker_start`)."""
    import logging

    from provisioning.bulk.engine import jobs_resume_on_worker_start

    try:
        jobs_resume_on_worker_start()
    except Exception:  # noqa: BLE001 - never keep a worker from starting; the sweeper takes over
        logging.getLogger(__name__).exception("Could not resume bulk jobs at worker start")
