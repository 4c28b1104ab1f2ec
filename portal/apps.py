from __future__ import annotations

from pathlib import Path

from django.apps import AppConfig
from django.conf import settings


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Lanyard portal"

    def ready(self) -> None:
        from portal import (
            checks,  # noqa: F401  (registers the system checks)
            middleware,  # noqa: F401  (records when each session signed in)
        )

        if settings.BROKER_IS_FILESYSTEM:
            # kombu's filesystem transport expects its folders to exist; web, worker and beat all
            # pass through here, so whichever starts first creates them.
            for key in ("data_folder_in", "control_folder"):
                Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS[key]).mkdir(
                    parents=True, exist_ok=True
                )
