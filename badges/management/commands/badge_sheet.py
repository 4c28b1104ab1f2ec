"""`manage.py badge_sheet (--job ID | --upn UPN ... | --au NAME) --layout NAME --output OUT.pdf`.

Writes one PDF with the badges of the chosen workers whose QR payload is still in the vault, the
same sheets the web UI queues (badges/print_jobs.py). The file is then the only copy: the sheets
are marked printed and the payloads destroyed, as when a kiosk prints them (a file that cannot be
written destroys nothing). `--upn` takes several names, after one flag or by repeating it.

Nobody is left out silently: every worker who cannot be printed — an unknown UPN, a QR code no
longer in the vault — is named on stderr with the reason, and counted on the last line.
Exit status: 0 when the file was written (even if some workers could not be printed: read
stderr); 1 when nothing was written (nothing printable, unknown store or job, unwritable file).
"""

from __future__ import annotations

import re
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import Q

from badges import print_jobs
from badges.layouts import LAYOUT_NAMES
from badges.models import PrintJob
from provisioning.models import AdministrativeUnit, BulkJob, DirectoryUser

ACTOR = "badge_sheet command"


class Command(BaseCommand):
    help = (
        "Write the badge sheet of a bulk job's workers, of some workers, or of a whole store as "
        "one PDF. Only workers whose QR code is still in Lanyard's vault can be printed; their "
        "QR codes are destroyed in the vault once the file is written. Workers who cannot be "
        "printed are named on stderr. Exit status 0: the file was written; 1: nothing written."
    )

    def add_arguments(self, parser) -> None:
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--job", type=int, help="a bulk job's id: its QR codes not printed")
        source.add_argument(
            "--upn",
            action="extend",
            nargs="+",
            metavar="UPN",
            help="workers' sign-in names: --upn a b, or --upn a --upn b",
        )
        source.add_argument("--au", metavar="NAME", help="a store (AU) by name or object id")
        parser.add_argument("--layout", required=True, choices=LAYOUT_NAMES)
        parser.add_argument("--output", required=True, type=Path, metavar="OUT.pdf")

    def handle(self, *args, **options) -> None:
        output: Path = options["output"]
        unknown: list[str] = []
        try:
            # The file is written inside the transaction: if writing fails, nothing is printed.
            with transaction.atomic():
                printed = self._print(options, unknown)
                for upn in unknown:
                    self.stderr.write(f"{upn}: not in the directory cache (run sync_directory?)")
                for entry in printed.unprintable:
                    self.stderr.write(f"{_label(entry)}: {entry.reason}")
                if printed.pdf is None:
                    raise CommandError("No badge could be printed.")
                output.write_bytes(printed.pdf)
        except OSError as exc:
            raise CommandError(f"Cannot write {output}: {exc.strerror}") from exc
        refused = len(unknown) + len(printed.unprintable)
        summary = (
            f"{printed.badge_count} badge(s) written to {output}; {refused} could not be printed"
        )
        if refused:
            self.stdout.write(self.style.WARNING(f"{summary} (named above)."))
        else:
            self.stdout.write(self.style.SUCCESS(f"{summary}."))

    def _print(self, options, unknown: list[str]) -> print_jobs.PrintedSheets:
        layout = options["layout"]
        if options["job"] is not None:
            job = BulkJob.objects.filter(pk=options["job"]).first()
            if job is None:
                raise CommandError(f"No bulk job {options['job']}.")
            try:
                return print_jobs.bulk_job_badges_pdf(
                    job=job,
                    layout=layout,
                    printed_by=None,
                    source=PrintJob.Source.COMMAND,
                    actor_label=ACTOR,
                )
            except print_jobs.BadgeError as exc:
                raise CommandError(f"No badge could be printed. {exc}") from exc
        if options["upn"]:
            user_ids = self._workers_by_upn(options["upn"], unknown)
        else:
            user_ids = self._store_members(options["au"])
        return print_jobs.print_jobs_print_now(
            requests=[print_jobs.BadgeRequest(user_id=user_id) for user_id in user_ids],
            layout=layout,
            printed_by=None,
            source=PrintJob.Source.COMMAND,
            actor_label=ACTOR,
        )

    def _workers_by_upn(self, upns: list[str], unknown: list[str]) -> list[str]:
        """The workers' ids in the order given (each once); UPNs not in the directory cache go
        to `unknown`."""
        wanted = list(dict.fromkeys(upn.strip().lower() for upn in upns if upn.strip()))
        if not wanted:
            return []
        pattern = "^(" + "|".join(re.escape(upn) for upn in wanted) + ")$"
        found = {
            worker.user_principal_name.lower(): worker.id
            for worker in DirectoryUser.objects.filter(user_principal_name__iregex=pattern)
        }
        unknown += [upn for upn in wanted if upn not in found]
        return [found[upn] for upn in wanted if upn in found]

    def _store_members(self, name: str) -> list[str]:
        unit = AdministrativeUnit.objects.filter(Q(id=name) | Q(display_name__iexact=name)).first()
        if unit is None:
            raise CommandError(f"No store named {name!r} (run sync_directory?).")
        return list(unit.memberships.values_list("user_id", flat=True))


def _label(entry: print_jobs.Unprintable) -> str:
    if entry.user_principal_name and entry.user_principal_name != entry.display_name:
        return f"{entry.user_principal_name} ({entry.display_name})"
    return entry.display_name
