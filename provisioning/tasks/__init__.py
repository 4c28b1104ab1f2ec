"""Celery tasks, one module per domain (Celery's autodiscovery imports this package)."""

from provisioning.tasks.directory import sync_administrative_unit, sync_directory, vault_purge_expired

__all__ = ["sync_administrative_unit", "sync_directory", "vault_purge_expired"]
