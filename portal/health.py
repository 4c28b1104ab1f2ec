"""Broker health for /healthz: can we open a connection to the Celery broker right now?"""

from __future__ import annotations

import logging
import os

from django.conf import settings

from portal.celery import app as celery_app

logger = logging.getLogger(__name__)


def broker_health() -> str:
    """ "ok" or "unavailable"."""
    if settings.BROKER_IS_FILESYSTEM:
        # The embedded broker is a folder: healthy when the folder is there and writable.
        folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]
        return "ok" if os.access(folder, os.W_OK) else "unavailable"
    try:
        with celery_app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:  # kombu raises several families; all mean "down"
        logger.warning("healthz: broker unavailable: %s", type(exc).__name__)
        return "unavailable"
    return "ok"
