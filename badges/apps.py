from __future__ import annotations

from django.apps import AppConfig


class BadgesConfig(AppConfig):
    name = "badges"
    verbose_name = "Badges"

    def ready(self) -> None:
        from badges import kiosks, print_jobs
        from provisioning.bulk.engine import bulk_job_finished
        from provisioning.directory import directory_synced

        # A kiosk whose registrar lost a store is suspended at the next sync, even if it is off.
        directory_synced.connect(kiosks.kiosks_standing_check_on_sync, dispatch_uid="badges.kiosks")
        # A finished renewal of expiring QR codes queues its store's badge sheet (insights page).
        bulk_job_finished.connect(
            print_jobs.renewal_sheet_queue_on_finish, dispatch_uid="badges.renewal_sheet"
        )
