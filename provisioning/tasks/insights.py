"""The daily MFA coverage snapshot (the IT admin's insights page)."""

from __future__ import annotations

from celery import shared_task

from provisioning import insights
from provisioning.graph.errors import GraphError


@shared_task(
    name="provisioning.mfa_coverage_snapshot",
    autoretry_for=(GraphError,),
    retry_backoff=300,
    retry_jitter=True,
    max_retries=3,
)
def mfa_coverage_snapshot() -> int:
    """Record today's MFA coverage from the registration report (daily by beat, and when an IT
    admin asks for one). Returns the snapshot's id."""
    return insights.mfa_coverage_snapshot_take().pk
