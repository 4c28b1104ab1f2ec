"""Celery tasks, one module per domain (Celery's autodiscovery imports this package)."""

from provisioning.tasks.actions import operation_run, worker_states_refresh
from provisioning.tasks.bulk import bulk_job_preview_run, bulk_job_work, bulk_jobs_sweep
from provisioning.tasks.directory import (
    sync_administrative_unit,
    sync_directory,
    vault_purge_expired,
)
from provisioning.tasks.insights import mfa_coverage_snapshot
from provisioning.tasks.prepopulation import prepopulation_run_now, prepopulation_scheduled

__all__ = [
    "bulk_job_preview_run",
    "bulk_job_work",
    "bulk_jobs_sweep",
    "mfa_coverage_snapshot",
    "operation_run",
    "prepopulation_run_now",
    "prepopulation_scheduled",
    "sync_administrative_unit",
    "sync_directory",
    "vault_purge_expired",
    "worker_states_refresh",
]
