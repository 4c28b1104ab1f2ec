"""`manage.py badge_sheet (--job ID | --upn UPN ... | --au NAME) --layout NAME --output OUT.pdf`.

Writes one PDF with the badges of the chosen workers whose QR payload is still in the vault, the
same sheets the web UI queues (badges/services.py). The file is then the only copy: the sheets are
marked printed and the payloads destroyed, as when a kiosk prints them. Workers who cannot be
printed are listed on stderr ("replace the QR code to print"); nothing printable exits non-zero.
"""

from __future__ import annotations

from pathlib import Path

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q
from django.utils.dateparse import parse_datetime

from badges import services
from badges.layouts import LAYOUT_NAMES
from badges.models import PrintJob
from badges.render import render_badges
from provisioning.models import AdministrativeUnit, DirectoryUser

ACTOR = "badge_sheet command"


class Command(BaseCommand):
    help = (
        "Write the badge sheet of a bulk job's workers, of some workers, or of a whole store as "
        "one PDF. Only workers whose QR code is still in Lanyard's vault can be printed; their "
        "QR codes are destroyed in the vault once the file is written."
    )

    def add_arguments(self, parser) -> None:
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--job", type=int, help="a bulk job's id: its succeeded rows")
        source.add_argument("--upn", nargs="+", metavar="UPN", help="workers' sign-in names")
        source.add_argument("--au", metavar="NAME", help="a store (AU) by name or object id")
        parser.add_argument("--layout", required=True, choices=LAYOUT_NAMES)
        parser.add_argument("--output", required=True, type=Path, metavar="OUT.pdf")

    def handle(self, *args, **options) -> None:
        requests = self._requests(options)
        result = services.print_jobs_create_by_store(
            created_by=None,
            layout=options["layout"],
            requests=requests,
            source=PrintJob.Source.COMMAND,
            actor_label=ACTOR,
        )
        for entry in result.unprintable:
            self.stderr.write(f"{entry.display_name}: {entry.reason}")
        if not result.jobs:
            raise CommandError("No badge could be printed.")
        badges = []
        for job in result.jobs:
            badges += _badge_data(job)
        output: Path = options["output"]
        try:
            output.write_bytes(render_badges(badges, options["layout"]))
        except OSError as exc:
            for job in result.jobs:
                services.print_job_cancel(job=job, actor=None, actor_label=ACTOR)
            raise CommandError(f"Cannot write {output}: {exc.strerror}") from exc
        for job in result.jobs:
            services.print_job_mark_printed(job=job, actor_label=ACTOR)
        if options["job"] is not None:
            _bulk_rows_mark_printed(options["job"], [job.pk for job in result.jobs])
        self.stdout.write(
            self.style.SUCCESS(
                f"{len(badges)} badge(s) written to {output}; "
                f"{len(result.unprintable)} could not be printed."
            )
        )

    def _requests(self, options) -> list[services.BadgeRequest]:
        if options["job"] is not None:
            return _bulk_job_requests(options["job"])
        if options["upn"]:
            upns = [upn.strip().lower() for upn in options["upn"]]
            found = {
                u.user_principal_name.lower(): u.id
                for u in DirectoryUser.objects.filter(user_principal_name__iregex=_any_of(upns))
            }
            missing = [upn for upn in upns if upn not in found]
            for upn in missing:
                self.stderr.write(f"{upn}: not in the directory cache (run sync_directory?)")
            return [services.BadgeRequest(user_id=found[upn]) for upn in upns if upn in found]
        name = options["au"]
        unit = AdministrativeUnit.objects.filter(Q(id=name) | Q(display_name__iexact=name)).first()
        if unit is None:
            raise CommandError(f"No store named {name!r} (run sync_directory?).")
        members = unit.memberships.values_list("user_id", flat=True)
        return [services.BadgeRequest(user_id=uid) for uid in members]


def _any_of(values: list[str]) -> str:
    import re

    return "^(" + "|".join(re.escape(value) for value in values) + ")$"


def _bulk_row_model():
    try:
        return apps.get_model("provisioning", "BulkJobRow")
    except LookupError as exc:
        raise CommandError("Bulk jobs are not available in this version.") from exc


def _bulk_job_requests(job_id: int) -> list[services.BadgeRequest]:
    rows = _bulk_row_model().objects.filter(
        job_id=job_id, status="succeeded", payload_secret_id__isnull=False
    )
    if not rows.exists():
        raise CommandError(f"Bulk job {job_id} has no row with a QR code to print.")
    requests = []
    for row in rows.order_by("line"):
        expires = parse_datetime((row.result or {}).get("expires_at") or "")
        requests.append(
            services.BadgeRequest(
                user_id=row.user_id, payload_secret_id=row.payload_secret_id, valid_until=expires
            )
        )
    return requests


def _bulk_rows_mark_printed(job_id: int, print_job_ids: list[int]) -> None:
    from django.utils import timezone

    from badges.models import PrintJobItem

    printed = PrintJobItem.objects.filter(job_id__in=print_job_ids).values_list(
        "payload_secret_id", flat=True
    )
    _bulk_row_model().objects.filter(job_id=job_id, payload_secret_id__in=list(printed)).update(
        badge_printed_at=timezone.now()
    )


def _badge_data(job: PrintJob):
    """The job's badges, as print_job_pdf renders them (one file for several stores' sheets)."""
    return services.print_job_badges(job=job)
