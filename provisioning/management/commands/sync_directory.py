"""`manage.py sync_directory`: mirror AUs, members and scoped roles into the local cache."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from provisioning import directory, worker_state
from provisioning.graph import get_app_client
from provisioning.graph.errors import GraphError
from provisioning.models import AdministrativeUnit


class Command(BaseCommand):
    help = (
        "Mirror Entra administrative units, their user members and scoped admin roles into "
        "Lanyard's directory cache. Incremental and idempotent: safe to run at any time. After "
        "the first (full) run, Graph's delta queries bring only what changed."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--with-method-state",
            action="store_true",
            help="Also read every worker's QR code and phone methods now (the store pages' "
            "status columns); otherwise the hourly scheduled sync reads them in the background "
            "for the stores that need it (new workers, columns older than a day).",
        )
        parser.add_argument(
            "--full",
            action="store_true",
            help="Read every store even when saved delta links would allow a warm sync of only "
            "what changed (new delta links are saved afterwards).",
        )

    def _progress(self, done: int, total: int, members: int) -> None:
        # A line every 100 stores (and at the last one): enough to see a 2,000-store sync move.
        if done % 100 == 0 or done == total:
            self.stdout.write(f"stores {done}/{total}, members {members}")

    def handle(self, *args, **options) -> None:
        client = get_app_client()
        try:
            summary = directory.directory_sync_recorded(
                client=client,
                progress=self._progress,
                notice=self.stdout.write,
                full=options["full"],
            )
            if options["with_method_state"]:
                for unit in AdministrativeUnit.objects.all():
                    worker_state.worker_states_refresh_for_unit(client=client, unit=unit)
        except GraphError as exc:
            raise CommandError(f"Directory sync failed: {exc}") from exc
        parts = ", ".join(
            f"{key.replace('_', ' ')} {value}" for key, value in sorted(summary.items())
        )
        self.stdout.write(self.style.SUCCESS(f"Directory synced: {parts or 'no changes'}."))
        unreadable = directory.administrative_unit_list_unreadable()
        if unreadable:
            # docs/graph-contract.md §4.3: hidden membership needs Member.Read.Hidden.
            names = ", ".join(f"{unit.display_name} ({unit.id})" for unit in unreadable)
            self.stdout.write(
                self.style.WARNING(
                    f"Skipped the members of {len(unreadable)} store(s) whose membership Entra "
                    f"hides from Lanyard: {names}. Every other store was synced. Grant the app "
                    "the optional Member.Read.Hidden permission to read them."
                )
            )
