"""`manage.py prepopulate_phones [--group NAME] [--dry-run] [--wait] [--overwrite]`.

Phone pre-population (provisioning/bulk/prepopulation.py) from the command line: users not
registered for MFA get their profile mobile number as their mobile method. --dry-run previews
only; --wait follows the job (running the sweeper, as `bulk_import --wait` does) and prints the
summary line. Exit status: 0 when done, 1 when a row failed, 2 when the run could not start (the
registration report or the group could not be read).
"""

from __future__ import annotations

import sys

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from provisioning.bulk import engine, selectors
from provisioning.bulk.prepopulation import PrepopulationFailed, prepopulation_run
from provisioning.models import PrepopulationRun

START_ERROR_EXIT = 2


class Command(BaseCommand):
    help = "Add profile mobile numbers as mobile methods for users not registered for MFA."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--group", default="", metavar="NAME", help="only members of this staging group"
        )
        parser.add_argument("--dry-run", action="store_true", help="preview only; write nothing")
        parser.add_argument("--wait", action="store_true", help="follow the job until it ends")
        parser.add_argument(
            "--overwrite", action="store_true", help="replace an existing mobile number"
        )
        parser.add_argument(
            "--as", dest="actor", metavar="UPN", help="the IT admin recorded as the run's owner"
        )
        parser.add_argument("--poll", type=float, default=2.0, help=_hidden())

    def handle(self, *args, **options) -> None:
        actor = None
        if options["actor"]:
            actor = (
                get_user_model()
                .objects.filter(user_principal_name__iexact=options["actor"])
                .first()
            )
            if actor is None or not actor.is_it_admin:
                raise CommandError(f"{options['actor']} is not a Lanyard IT admin.")
        try:
            run = prepopulation_run(
                trigger=PrepopulationRun.Trigger.COMMAND, group_name=options["group"],
                dry_run=options["dry_run"], overwrite=options["overwrite"], created_by=actor,
            )  # fmt: skip
        except PrepopulationFailed as exc:
            self.stderr.write(f"Pre-population did not start: {exc}")
            sys.exit(START_ERROR_EXIT)
        job = run.job
        assert job is not None
        self.stdout.write(
            f"{'Dry run' if run.dry_run else 'Run'} {run.pk} (job {job.pk}): "
            f"{run.users_without_mfa} users without MFA, {run.targeted} to get a mobile method, "
            f"{run.skipped} skipped."
        )
        for reason, count in run.outcomes.items():
            self.stdout.write(f"  {count:6d}  {reason}")
        for row in job.rows.filter(status="skipped").exclude(warning="no profile number")[:50]:
            self.stdout.write(f"  line {row.line} {row.upn}: {row.reason}")
        if run.dry_run:
            self.stdout.write("Dry run: nothing was written.")
            return
        if not options["wait"]:
            self.stdout.write(f"Job {job.pk} started; follow it on the admin pages.")
            return
        counts = engine.job_follow(job=job, poll_seconds=options["poll"], report=self.stdout.write)
        run.refresh_from_db()
        for reason, count in run.outcomes.items():
            self.stdout.write(f"  {count:6d}  {reason}")
        self.stdout.write(selectors.summary_line(counts))
        if counts["failed"]:
            sys.exit(1)


def _hidden() -> str:
    import argparse

    return argparse.SUPPRESS
