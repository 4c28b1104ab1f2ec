"""`manage.py sync_directory`: mirror AUs, members and scoped roles into the local cache."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from provisioning import directory
from provisioning.graph import get_app_client
from provisioning.graph.errors import GraphError


class Command(BaseCommand):
    help = (
        "Mirror Entra administrative units, their user members and scoped admin roles into "
        "Lanyard's directory cache. Incremental and idempotent: safe to run at any time."
    )

    def handle(self, *args, **options) -> None:
        try:
            summary = directory.directory_sync_recorded(client=get_app_client())
        except GraphError as exc:
            raise CommandError(f"Directory sync failed: {exc}") from exc
        parts = ", ".join(
            f"{key.replace('_', ' ')} {value}" for key, value in sorted(summary.items())
        )
        self.stdout.write(self.style.SUCCESS(f"Directory synced: {parts or 'no changes'}."))
