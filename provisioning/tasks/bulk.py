"""Bulk job tasks: thin, interchangeable, safe to run twice (the guarantees live in the database;
see provisioning/bulk/engine.py). Arguments are job ids only."""

from __future__ import annotations

import time

from celery import shared_task

from provisioning.bulk import engine, previewing


@shared_task(
    name="provisioning.bulk_job_work",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    time_limit=600,
    soft_time_limit=540,
    bind=True,
)
def bulk_job_work(self, job_id: int) -> None:
    """Work the job's due rows for a while, then hand over to a fresh task if rows remain."""
    wait = engine.job_work(job_id=job_id)
    if wait is None:
        return
    if self.request.is_eager:
        # In-process runs (tests, demo scripts): loop here instead of recursing through delay().
        while wait is not None:
            if wait:
                time.sleep(min(wait, 5.0))
            wait = engine.job_work(job_id=job_id)
        return
    engine.job_hand_over(job_id, countdown=wait)


@shared_task(
    name="provisioning.bulk_job_preview",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    # 50,000 unknown users are 2,500 $batch reads at the read budget; still below the broker's
    # visibility timeout (portal/settings.py).
    time_limit=1800,
    soft_time_limit=1740,
)
def bulk_job_preview_run(job_id: int) -> None:
    """Check an uploaded file's (or a group's) rows against Entra: the job becomes a draft."""
    previewing.bulk_preview_run(job_id=job_id)


@shared_task(name="provisioning.bulk_jobs_sweep", ignore_result=True, time_limit=120)
def bulk_jobs_sweep() -> dict:
    """Release expired leases and restart jobs (and previews) whose tasks all died (celery
    beat)."""
    return {**engine.jobs_sweep(), "previews_restarted": previewing.previews_sweep()}
