"""Directory and vault housekeeping tasks: thin, idempotent, ids as the only arguments."""

from __future__ import annotations

import logging

from celery import shared_task

from provisioning import directory, vault, worker_state
from provisioning.graph import get_app_client, operations
from provisioning.graph.errors import GraphError
from provisioning.tasks.actions import worker_states_refresh

logger = logging.getLogger(__name__)


@shared_task(
    name="provisioning.sync_directory",
    autoretry_for=(GraphError,),
    retry_backoff=60,
    retry_jitter=True,
    max_retries=3,
)
def sync_directory() -> dict[str, int]:
    """Mirror Entra's AUs, members and scoped roles into the cache (hourly, and on demand)."""
    summary = directory.directory_sync_recorded(client=get_app_client())
    # Then the QR and phone columns of the stores that need them, one task per store: those with
    # a worker never read (so a new worker's status is known within the hour without anyone
    # pressing "refresh"), read more than a day ago, or written by a bulk job since it was read.
    # Re-reading every store every hour would cost two Graph reads per worker.
    for au_id in worker_state.worker_states_refresh_claim_due():
        worker_states_refresh.delay(au_id)
    return dict(summary)


@shared_task(
    name="provisioning.sync_administrative_unit",
    autoretry_for=(GraphError,),
    retry_backoff=30,
    retry_jitter=True,
    max_retries=3,
)
def sync_administrative_unit(au_id: str) -> dict[str, int]:
    """Mirror one AU (a store a manager was just given) into the cache."""
    client = get_app_client()
    unit = operations.administrative_unit_get(client, au_id)
    summary = directory.administrative_unit_sync(client=client, unit=unit)
    if worker_state.worker_states_refresh_claim(unit_id=au_id):
        worker_states_refresh.delay(au_id)
    return dict(summary)


@shared_task(name="provisioning.vault_purge_expired")
def vault_purge_expired() -> int:
    """Destroy PINs and QR payloads past their expiry (every 10 minutes)."""
    return vault.secrets_purge_expired()
