from __future__ import annotations

from django.apps import AppConfig


class BadgesConfig(AppConfig):
    name = "badges"
    verbose_name = "Badges"

    def ready(self) -> None:
        from badges import kiosks
        from provisioning.directory import directory_synced

        # A kiosk whose registrar lost a store is suspended at the next sync, even if it is off.
        directory_synced.connect(kiosks.kiosks_standing_check_on_sync, dispatch_uid="badges.kiosks")
