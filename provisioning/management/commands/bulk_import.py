"""`manage.py bulk_import PATH --kind qr|phone [--dry-run] [--wait] [--results OUT.csv]`.

The same engine as the upload page. With --dry-run the file is previewed and nothing is written.
Without it the preview is confirmed as it goes (bulk/streaming.py): the Celery workers start on
the first checked rows while the rest of the file is checked, and the job records the same
preview hash, summary and audit as a preview confirmed from the upload page. With --wait the
command follows the job, printing progress, and runs the sweeper itself so a job whose workers
died is restarted. Exit status: 0 when done, 1 when a row failed, 2 on a file-level error.
"""

from __future__ import annotations

import sys
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from provisioning.bulk import csvfile, engine, jobs, preview, selectors, streaming
from provisioning.models import BulkJob

FILE_ERROR_EXIT = 2


class Command(BaseCommand):
    help = "Provision QR code + PIN methods or phone numbers from a CSV file (IT admins)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="the CSV file (UTF-8 or UTF-16, comma or semicolon)")
        parser.add_argument("--kind", choices=["qr", "phone"], required=True)
        parser.add_argument("--dry-run", action="store_true", help="preview only; write nothing")
        parser.add_argument("--wait", action="store_true", help="follow the job until it ends")
        parser.add_argument("--results", metavar="OUT.csv", help="write per-row results here")
        parser.add_argument(
            "--as",
            dest="actor",
            metavar="UPN",
            help="the IT admin recorded as the job's owner (default: none, 'command line')",
        )
        parser.add_argument("--poll", type=float, default=2.0, help=argparse_hidden())

    def handle(self, *args, **options) -> None:
        path = Path(options["path"])
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
            data = path.read_bytes()
        except OSError as exc:
            self._file_error(f"Cannot read {path}: {exc.strerror}.")
        try:
            rows = csvfile.read_rows(data, kind=options["kind"])
        except csvfile.FileProblem as exc:
            self._file_error(str(exc))
        key = "userPrincipalName" if options["kind"] == "qr" else "UPN"
        inputs = [preview.RowInput(r.line, r.values[key], r.values) for r in rows]
        if options["dry_run"]:
            job = preview.bulk_job_preview(
                kind=options["kind"], source=BulkJob.Source.CSV, source_label=path.name,
                inputs=inputs, created_by=actor,
            )  # fmt: skip
            self._preview_report(job, path.name)
            jobs.bulk_job_cancel(job=job, cancelled_by=actor)
            self._results(job, options["results"])
            self.stdout.write("Dry run: nothing was written.")
            return
        # Nobody reviews a preview between preview and confirm here: the job starts writing
        # after the first chunk of rows is checked, while the rest of the file is checked.
        try:
            job = streaming.bulk_job_stream(
                kind=options["kind"], source_label=path.name, inputs=inputs, created_by=actor
            )
        except jobs.JobRefused as exc:
            raise CommandError(str(exc)) from exc
        self._preview_report(job, path.name)
        if not options["wait"]:
            self.stdout.write(f"Job {job.pk} started; follow it on the admin pages.")
            self._results(job, options["results"])
            return
        counts = engine.job_follow(job=job, poll_seconds=options["poll"], report=self.stdout.write)
        self._results(job, options["results"])
        self.stdout.write(selectors.summary_line(counts))
        if counts["failed"]:
            sys.exit(1)

    def _preview_report(self, job: BulkJob, name: str) -> None:
        summary = job.summary
        self.stdout.write(
            f"Preview of {name} (job {job.pk}): {summary['rows']} rows — "
            f"{summary['create']} to create, {summary['update']} to update, "
            f"{summary['skip']} to skip, {summary['invalid']} invalid."
        )
        for row in job.rows.filter(action__in=["invalid", "skip"]).order_by("line")[:50]:
            self.stdout.write(f"  line {row.line} {row.upn}: {row.action} — {row.reason}")

    def _results(self, job: BulkJob, out: str | None) -> None:
        if out:
            Path(out).write_bytes(jobs.bulk_job_results_csv(job=job))
            self.stdout.write(f"Results written to {out}.")

    def _file_error(self, message: str) -> None:
        self.stderr.write(f"File not accepted: {message}")
        sys.exit(FILE_ERROR_EXIT)


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS
