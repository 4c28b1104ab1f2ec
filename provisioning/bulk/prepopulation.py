"""Phone pre-population (docs/architecture.md §7, §11): the profile `mobilePhone` of users not
registered for MFA becomes their mobile authentication method, through an ordinary bulk phone job.

1. The registration report (`userRegistrationDetails`, `isMfaRegistered eq false`) names the users
   without MFA; it is read in pages of 999, so a run makes a few report requests (the report allows
   5 per 10 s per app and tenant; the client honours a 429's Retry-After).
2. Their profiles (everybody's, or the transitive members of a staging group found by its
   displayName) give the number and the country it is read in (`usageLocation`, else `country`,
   else LANYARD_DEFAULT_REGION: provisioning/phone_numbers.py, which never guesses).
3. Every such user becomes a row of a bulk phone job (`BulkJob.Source.PREPOPULATION`), checked
   like any bulk row: guests, disabled accounts, directory-role holders (tenant-wide or scoped,
   directly, through role-assignable groups or PIM), IT admins and users outside the synced stores
   are skipped with the reason; so are users without a profile number and numbers that cannot be
   read. ForcedUpdate is false unless the run is told to overwrite: an existing mobile method is
   kept.
4. The job is confirmed and worked by the engine (provisioning/bulk/engine.py): the same rate
   limiter, retries, crash safety and re-check of each user's roles before writing. A dry run stops
   after the preview.

Each run keeps its statistics in a `PrepopulationRun`: users without MFA, targeted, provisioned,
skipped, failed and the outcomes by reason. They are final when the job finishes
(`prepopulation_run_record`, called by the engine).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from datetime import timedelta

from django.contrib.auth.models import AbstractUser
from django.db import transaction
from django.utils import timezone

from provisioning import audit
from provisioning.bulk.jobs import JobRefused, bulk_job_cancel, bulk_job_confirm
from provisioning.bulk.preview import Person, RowInput, bulk_job_preview, preview_hash
from provisioning.graph import GraphClient, GraphError, get_app_client, operations
from provisioning.models import BulkJob, BulkJobRow, PrepopulationRun, PrepopulationSchedule

logger = logging.getLogger(__name__)

Row = BulkJobRow
SOURCE_LABEL = "Phone pre-population"

# Row warnings that name why a row is skipped at preview time, and the reason counted for each.
NO_NUMBER = "no profile number"
UNREADABLE = "number cannot be read"
OUTCOME_BY_WARNING = {
    NO_NUMBER: "no profile mobile number",
    UNREADABLE: "profile number cannot be read",
    "guest": "guest account",
    "disabled": "disabled account",
    "not a frontline worker": "not a frontline worker",
}


class PrepopulationFailed(RuntimeError):
    """The run could not start (the report or the group could not be read); says why."""


# -- statistics ----------------------------------------------------------------------------


def _outcome(row: BulkJobRow) -> str:
    """The reason a row is counted under (a short, stable phrase)."""
    if row.status == Row.Status.PENDING or row.status == Row.Status.RUNNING:
        return "mobile to be added" if row.action == Row.Action.UPDATE else row.status
    if row.warning in OUTCOME_BY_WARNING:
        return OUTCOME_BY_WARNING[row.warning]
    notes = " ".join((row.result or {}).get("changes") or [])
    if row.status == Row.Status.SUCCEEDED:
        return "mobile updated" if "mobile updated" in notes else "mobile added"
    if row.status == Row.Status.SKIPPED:
        if "mobile kept" in notes:
            return "existing mobile method kept"
        if "mobile already" in notes:
            return "mobile method already this number"
        if row.outcome.startswith("Not written:"):
            return "not a frontline worker"
        return "skipped"
    if row.status == Row.Status.CANCELLED:
        return "cancelled"
    first = (row.outcome or row.reason).split(". ")[0].strip().rstrip(".")
    return f"failed: {first[:120]}" if first else "failed"


def prepopulation_counts(rows: Iterable[BulkJobRow]) -> dict:
    """targeted / provisioned / skipped / failed and outcomes by reason, from a job's rows."""
    outcomes: Counter[str] = Counter()
    counts = {"targeted": 0, "provisioned": 0, "skipped": 0, "failed": 0}
    for row in rows:
        outcomes[_outcome(row)] += 1
        if row.action == Row.Action.UPDATE:
            counts["targeted"] += 1
        if row.status == Row.Status.SUCCEEDED:
            counts["provisioned"] += 1
        elif row.status in (Row.Status.SKIPPED, Row.Status.CANCELLED):
            counts["skipped"] += 1
        elif row.status == Row.Status.FAILED:
            counts["failed"] += 1
    return counts | {"outcomes": dict(sorted(outcomes.items()))}


def prepopulation_run_record(*, job_id: int) -> None:
    """Store the final statistics of the run(s) of a finished pre-population job."""
    runs = PrepopulationRun.objects.filter(job_id=job_id, dry_run=False)
    if not runs.exists():
        return
    counts = prepopulation_counts(Row.objects.filter(job_id=job_id).only(
        "status", "action", "warning", "result", "outcome", "reason"))  # fmt: skip
    runs.update(finished_at=timezone.now(), **counts)


# -- the run -------------------------------------------------------------------------------


def _fail(run: PrepopulationRun, message: str, actor: AbstractUser | None) -> PrepopulationFailed:
    run.error = message
    run.finished_at = timezone.now()
    run.save(update_fields=["error", "finished_at"])
    audit.record(actor=actor, action="prepopulation_run", outcome="failed",
                 target_label=SOURCE_LABEL, detail=f"Run {run.pk}: {message}"[:2000])  # fmt: skip
    return PrepopulationFailed(message)


def prepopulation_run(
    *,
    trigger: str,
    group_name: str = "",
    dry_run: bool = False,
    overwrite: bool = False,
    created_by: AbstractUser | None = None,
    client: GraphClient | None = None,
) -> PrepopulationRun:
    """Pre-populate mobile methods from profile numbers (see the module docstring).

    Returns the run; without `dry_run` its job is confirmed and handed to the engine's tasks (on
    commit), and the run's statistics are final when the job finishes. Raises PrepopulationFailed
    (after recording the run and an audit event) when the report or the group cannot be read.
    """
    group_name = group_name.strip()
    run = PrepopulationRun.objects.create(
        started_at=timezone.now(), dry_run=dry_run, trigger=trigger, group_name=group_name,
        overwrite=overwrite, created_by=created_by,
    )  # fmt: skip
    client = client or get_app_client()
    group_id = ""
    try:
        without_mfa = {
            item.id.lower()
            for item in operations.user_registration_details_list(
                client, filter="isMfaRegistered eq false"
            )
            if not item.is_mfa_registered
        }
        if group_name:
            groups = operations.group_list_by_name(client, group_name)
            if not groups:
                raise _fail(run, f"No group named “{group_name}” in Entra ID.", created_by)
            if len(groups) > 1:
                raise _fail(run, f"{len(groups)} groups are named “{group_name}”: give the staging "
                            "group a unique name.", created_by)  # fmt: skip
            group_id = groups[0].id
            users = operations.group_transitive_users(
                client, group_id, select=operations.PREPOPULATION_USER_SELECT
            )
        else:
            users = operations.user_list(client, select=operations.PREPOPULATION_USER_SELECT)
        in_scope = {}
        for user in users:
            if user.id.lower() in without_mfa and user.user_principal_name:
                in_scope.setdefault(user.id.lower(), user)
    except GraphError as exc:
        raise _fail(run, f"Microsoft Graph could not be read: {exc}", created_by) from exc

    chosen = sorted(in_scope.values(), key=lambda u: (u.user_principal_name or "").lower())
    forced = "true" if overwrite else "false"
    inputs = [
        RowInput(line=i, upn=u.user_principal_name or "",
                 values={"Mobile": (u.mobile_phone or "").strip(), "ForcedUpdate": forced})
        for i, u in enumerate(chosen, start=1)
    ]  # fmt: skip
    people = {(u.user_principal_name or "").lower(): Person.from_graph(u) for u in chosen}
    # Shown after the source's name ("Phone pre-population: Frontline Workers").
    label = group_name or "every user without MFA"
    try:
        job = bulk_job_preview(kind=BulkJob.Kind.PHONE, source=BulkJob.Source.PREPOPULATION,
                               source_label=label, source_ref=group_id, inputs=inputs,
                               created_by=created_by, people=people, client=client)  # fmt: skip
    except GraphError as exc:
        raise _fail(run, f"Microsoft Graph could not be read: {exc}", created_by) from exc
    with transaction.atomic():
        rows = list(job.rows.all())
        for row in rows:
            _explain_skip(row)
        Row.objects.bulk_update(rows, ["action", "status", "reason", "warning", "outcome"],
                                batch_size=1000)  # fmt: skip
        job.preview_hash = preview_hash(kind=job.kind, policy=job.policy, rows=rows)
        job.summary = _summary(rows)
        job.save(update_fields=["preview_hash", "summary"])
        counts = prepopulation_counts(rows)
        run.job = job
        run.users_without_mfa = len(chosen)
        run.targeted = counts["targeted"]
        run.skipped = counts["skipped"]
        run.failed = counts["failed"]
        run.outcomes = counts["outcomes"]
        run.save()
    kind = "dry run" if dry_run else "run"
    audit.record(
        actor=created_by,
        action="prepopulation_run",
        outcome="succeeded",
        target_label=f"{SOURCE_LABEL}: {label}",
        detail=f"Run {run.pk} ({kind}, job {job.pk}): {len(chosen)} users without MFA, "
        f"{run.targeted} targeted, overwrite {'on' if overwrite else 'off'}",
    )
    if dry_run:
        bulk_job_cancel(job=job, cancelled_by=created_by)
        run.finished_at = timezone.now()
        run.save(update_fields=["finished_at"])
        return run
    try:
        bulk_job_confirm(job=job, previewed_hash=job.preview_hash, confirmed_by=created_by)
    except JobRefused as exc:
        raise _fail(run, str(exc), created_by) from exc
    if not run.targeted:
        prepopulation_run_record(job_id=job.pk)
    run.refresh_from_db()
    return run


def _explain_skip(row: BulkJobRow) -> None:
    """Pre-population words for the rows the phone checks stop: an unreadable profile number is
    skipped (listed with why), not a failure of the run; so is a user without one."""
    if row.action == Row.Action.INVALID:
        row.action, row.status, row.warning = Row.Action.SKIP, Row.Status.SKIPPED, UNREADABLE
        row.reason = (
            f"The profile mobile number cannot be used: {row.reason.removeprefix('Mobile: ')}"
        )
        row.outcome = row.reason
    elif (
        row.action == Row.Action.SKIP and not row.warning and "every number is empty" in row.reason
    ):
        row.warning = NO_NUMBER
        row.reason = row.outcome = "No mobile number in the profile."


def _summary(rows: list[BulkJobRow]) -> dict[str, int]:
    counts = {"rows": 0, "create": 0, "update": 0, "skip": 0, "invalid": 0}
    for row in rows:
        counts["rows"] += 1
        counts[row.action] += 1
    return counts


# -- schedule ------------------------------------------------------------------------------


def prepopulation_schedule_get() -> PrepopulationSchedule:
    """The schedule (created off on first use)."""
    schedule, _ = PrepopulationSchedule.objects.get_or_create(pk=1)
    return schedule


def prepopulation_schedule_update(
    *, enabled: bool, group_name: str, overwrite: bool, hour: int, updated_by: AbstractUser | None
) -> PrepopulationSchedule:
    """Change the schedule; every change is audited (before → after)."""
    if not 0 <= hour <= 23:
        raise ValueError("The hour must be between 0 and 23.")
    with transaction.atomic():
        schedule = prepopulation_schedule_get()
        schedule = PrepopulationSchedule.objects.select_for_update().get(pk=schedule.pk)
        before = _schedule_text(schedule)
        schedule.enabled, schedule.group_name = enabled, group_name.strip()[:256]
        schedule.overwrite, schedule.hour, schedule.updated_by = overwrite, hour, updated_by
        schedule.save()
        after = _schedule_text(schedule)
        if before != after:
            audit.record(actor=updated_by, action="prepopulation_schedule_update",
                         outcome="succeeded", target_label=SOURCE_LABEL,
                         detail=f"{before} → {after}")  # fmt: skip
    return schedule


def _schedule_text(s: PrepopulationSchedule) -> str:
    state, overwrite = ("on" if s.enabled else "off"), ("on" if s.overwrite else "off")
    group = s.group_name or "everybody"
    return f"{state}, daily at {s.hour:02d}:00, group “{group}”, overwrite {overwrite}"


def prepopulation_scheduled_run(*, client: GraphClient | None = None) -> PrepopulationRun | None:
    """What the hourly beat entry does: run when the schedule is on, it is the chosen local hour,
    no scheduled run started in the last 23 hours, and no pre-population job is still running."""
    schedule = prepopulation_schedule_get()
    now = timezone.localtime()
    if not schedule.enabled or now.hour != schedule.hour:
        return None
    recent = PrepopulationRun.objects.filter(
        trigger=PrepopulationRun.Trigger.SCHEDULE,
        started_at__gt=now - timedelta(hours=23),
    )
    running = BulkJob.objects.filter(
        source=BulkJob.Source.PREPOPULATION, status=BulkJob.Status.RUNNING
    )
    if recent.exists() or running.exists():
        return None
    try:
        return prepopulation_run(trigger=PrepopulationRun.Trigger.SCHEDULE,
                                 group_name=schedule.group_name, overwrite=schedule.overwrite,
                                 client=client)  # fmt: skip
    except PrepopulationFailed as exc:
        logger.warning("Scheduled phone pre-population did not start: %s", exc)
        return None


def prepopulation_runs_recent(*, limit: int = 20):
    """The latest runs, newest first, with their jobs (admin page)."""
    return PrepopulationRun.objects.select_related("job", "created_by")[:limit]
