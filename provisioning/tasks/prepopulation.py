"""Phone pre-population tasks (provisioning/bulk/prepopulation.py). Arguments are plain settings
and a user id, never a number or a secret."""

from __future__ import annotations

import logging

from celery import shared_task
from django.contrib.auth import get_user_model

from provisioning.bulk.prepopulation import (
    PrepopulationFailed,
    prepopulation_run,
    prepopulation_scheduled_run,
)
from provisioning.models import PrepopulationRun

logger = logging.getLogger(__name__)


@shared_task(name="provisioning.prepopulation_scheduled", ignore_result=True, time_limit=900)
def prepopulation_scheduled() -> None:
    """Hourly (celery beat): runs when an IT admin turned the schedule on and its hour has come."""
    prepopulation_scheduled_run()


@shared_task(name="provisioning.prepopulation_run", ignore_result=True, time_limit=900)
def prepopulation_run_now(group_name: str, dry_run: bool, overwrite: bool, user_id: int) -> None:
    """A run an IT admin asked for on the admin page (the run records any failure to start)."""
    user = get_user_model().objects.filter(pk=user_id).first()
    try:
        prepopulation_run(trigger=PrepopulationRun.Trigger.ADMIN, group_name=group_name,
                          dry_run=dry_run, overwrite=overwrite, created_by=user)  # fmt: skip
    except PrepopulationFailed as exc:
        logger.warning("Phone pre-population did not start: %s", exc)
