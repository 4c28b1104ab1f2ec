"""Celery tasks, one module per domain (Celery's autodiscovery imports this package)."""

from provisioning.tasks.actions import operation_run, worker_states_refresh
from provisioning.tasks.directory import (
    sync_administrative_unit,
    sync_directory,
    vault_purge_expired,
)

__all__ = [
    "operation_run",
    "sync_administrative_unit",
    "sync_directory",
    "vault_purge_expired",
    "worker_states_refresh",
]
