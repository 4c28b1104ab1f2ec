"""A bulk job previewed and confirmed in one pass, its rows added while the workers already write:
`bulk_import FILE` without --dry-run (docs/architecture.md §7).

On the command line nobody reviews the preview between preview and confirm, so waiting for the
whole file to be resolved and planned before the first write only adds time: a cold directory
cache means a $batch read for every 20 unknown UPNs. `bulk_job_stream` instead

1. creates the job already running, with `rows_complete=False` (no task and no sweep finishes it
   while rows are still being added, engine.job_finish_if_done), and starts its Celery tasks at
   once: they wait for rows while the next steps run;
2. reads the tenant's QR policy once and refreshes the record of privileged accounts if stale,
   both beside the look-up of the first chunk's users (all three are Graph reads);
3. plans the file in chunks (`STREAM_FIRST_CHUNK_ROWS`, growing fivefold up to
   `STREAM_CHUNK_ROWS`), exactly as the preview plans a whole file (preview.plans_check). All
   rows of one UPN go into one chunk, so duplicates are merged or refused as in a full preview,
   and a row that is written is never later found to conflict with a row further down the file.
   The QR policy and the members of its targeted groups are read once for the job, not once per
   chunk;
4. inserts each chunk's rows as the confirmation would leave them (missing dates made real,
   `jobs.rows_dates_fix`): the waiting tasks claim them at once;
5. at the end records the preview hash and summary over the rows as planned, the confirmation's
   audit event, and `rows_complete=True`, so the job's record, audit and results CSV are those of
   the preview → confirm flow.

If planning fails part-way (Graph cannot answer a read), the rows not yet started are cancelled
(`jobs.bulk_job_cancel`; rows whose write may have reached Graph are still resolved) and the error
is raised. If the process dies, the sweeper sets `rows_complete` once the job has made no progress
for ADDER_GONE_SECONDS (engine.py), and the job finishes with the rows it holds.
"""

from __future__ import annotations

import copy
import itertools
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from celery import current_app
from django.contrib.auth.models import AbstractUser
from django.db import transaction
from django.utils import timezone

from provisioning.bulk import engine, jobs, preview
from provisioning.graph import GraphClient, get_app_client
from provisioning.models import BulkJob, BulkJobRow
from provisioning.privileged import (
    privileged_accounts_read,
    privileged_accounts_stale,
    privileged_accounts_store,
)
from provisioning.qr_policy import qr_policy_current

logger = logging.getLogger(__name__)

Row = BulkJobRow
# The first chunk is small so that writing starts after one round of $batch reads; later chunks
# are resolved (≈ 25 reads, 4 at a time) well before the workers have written the previous one.
STREAM_FIRST_CHUNK_ROWS = 40
STREAM_CHUNK_ROWS = 500


def input_chunks(
    inputs: list[preview.RowInput], *, first: int, size: int
) -> Iterator[list[preview.RowInput]]:
    """`inputs` in chunks of about `first` rows, growing fivefold up to `size`, in file order of
    each UPN's first row; every row of one UPN (case and spaces aside) is in the same chunk."""
    groups: dict[str, list[preview.RowInput]] = {}
    for index, row in enumerate(inputs):
        key = (row.upn or "").strip().lower() or f"\0{index}"  # no UPN: a group of its own
        groups.setdefault(key, []).append(row)
    chunk: list[preview.RowInput] = []
    limit = first
    for group in groups.values():
        chunk.extend(group)
        if len(chunk) >= limit:
            yield chunk
            # Growing (40, 200, 500 …): the next chunk is read while the workers write this one.
            chunk, limit = [], min(size, limit * 5)
    if chunk:
        yield chunk


def bulk_job_stream(
    *,
    kind: str,
    source_label: str,
    inputs: list[preview.RowInput],
    created_by: AbstractUser | None,
    client: GraphClient | None = None,
    first_chunk_rows: int = STREAM_FIRST_CHUNK_ROWS,
    chunk_rows: int = STREAM_CHUNK_ROWS,
    start_tasks: Callable[[int], None] = engine.job_start_tasks,
    on_chunk: Callable[[BulkJob, list[BulkJobRow]], None] | None = None,
) -> BulkJob:
    """Preview and confirm a CSV job, starting its tasks while the rest of the file is planned.

    `start_tasks(job_id)` is called once, as soon as the job exists (its tasks wait for rows),
    or at the end when Celery runs tasks eagerly; `on_chunk(job, rows)` after every chunk (tests
    use it to look at the job while rows are still being added). Returns the job with its
    preview hash and summary recorded."""
    if kind not in BulkJob.Kind.values:
        raise ValueError(f"unknown kind {kind!r}")
    now = datetime.now(UTC).replace(microsecond=0)
    confirmed_at = timezone.now().replace(microsecond=0)
    job = BulkJob.objects.create(
        kind=kind,
        source=BulkJob.Source.CSV,
        action=BulkJob.Action.CREATE,
        source_label=source_label[:300],
        created_by=created_by,
        policy={},  # recorded below, before the first row
        preview_hash="",
        status=BulkJob.Status.RUNNING,
        rows_complete=False,
        confirmed_at=confirmed_at,
        last_progress_at=timezone.now(),
    )
    planned: list[BulkJobRow] = []  # the rows as previewed, before their dates were made real
    members: dict[str, set[str] | None] = {}  # the policy's groups, read once for the job
    pending = 0
    started = False
    # Eager tasks (tests, demo scripts) would run in this thread and wait there for the rows this
    # thread has yet to add: they start once every row is in, as after a confirmation.
    inline = bool(current_app.conf.task_always_eager)
    if not inline:
        # The tasks wait for rows (rows_complete=False): sending them now lets their dispatch
        # and start-up overlap the reads below instead of following them.
        start_tasks(job.pk)
        started = True
    chunks = input_chunks(inputs, first=first_chunk_rows, size=chunk_rows)
    try:
        first = next(chunks, [])
        # One read of the policy for the whole job (the cache of qr_policy.py may expire during
        # a long file; the values every chunk is planned with must not change, and they are what
        # the job records, as a preview does), and one refresh of the record of privileged
        # accounts when it is stale (only frontline workers, docs/architecture.md §5). Both are
        # Graph reads only: they run beside the look-up of the first chunk's users.
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="stream") as pool:
            policy_read = pool.submit(qr_policy_current)
            accounts_read = None
            if privileged_accounts_stale():
                accounts_read = pool.submit(
                    privileged_accounts_read, client=client or get_app_client()
                )
            first_people = preview.people_lookup([row.upn for row in first], client=client)
            qr_policy = policy_read.result()
            if accounts_read is not None:
                privileged_accounts_store(accounts_read.result())
        policy = preview.current_policy(qr_policy)
        job.policy = policy.as_dict()
        BulkJob.objects.filter(pk=job.pk).update(policy=job.policy)
        for index, chunk in enumerate(itertools.chain([first], chunks)):
            if index == 0:
                people = first_people
            else:
                people = preview.people_lookup([row.upn for row in chunk], client=client)
            plans = preview.plans_check(
                kind=kind, source=BulkJob.Source.CSV, inputs=chunk, people=people, policy=policy,
                now=now, client=client, qr_policy=qr_policy, policy_members=members,
            )  # fmt: skip
            with transaction.atomic():
                # Locked as a cancel locks it: rows never go into a job cancelled meanwhile.
                status = BulkJob.objects.select_for_update().values_list("status", flat=True)
                if status.get(pk=job.pk) != BulkJob.Status.RUNNING:
                    break
                rows = preview.rows_from_plans(job=job, plans=plans, created_by=created_by)
                for row in rows:
                    as_planned = copy.copy(row)
                    as_planned.params = copy.deepcopy(row.params)
                    planned.append(as_planned)
                todo = [row for row in rows if row.status == Row.Status.PENDING]
                if kind == BulkJob.Kind.QR:
                    jobs.rows_dates_fix(job=job, rows=todo, now=confirmed_at)
                Row.objects.bulk_create(rows, batch_size=1000)
                BulkJob.objects.filter(pk=job.pk).update(last_progress_at=timezone.now())
            pending += len(todo)
            if on_chunk is not None:
                on_chunk(job, rows)
    except BaseException:
        BulkJob.objects.filter(pk=job.pk).update(rows_complete=True)
        job.refresh_from_db()
        if job.status == BulkJob.Status.RUNNING:
            jobs.bulk_job_cancel(job=job, cancelled_by=created_by)
        logger.warning("Bulk job %s stopped while its file was planned; rows not started were "
                       "cancelled", job.pk)  # fmt: skip
        raise
    with transaction.atomic():
        job = BulkJob.objects.select_for_update().get(pk=job.pk)  # cancelled meanwhile?
        job.preview_hash = preview.preview_hash(kind=kind, policy=job.policy, rows=planned)
        job.summary = preview.preview_counts(planned)
        job.rows_complete = True
        fields = ["preview_hash", "summary", "rows_complete"]
        running = job.status == BulkJob.Status.RUNNING
        if not pending and running:  # as a confirmation of a job with nothing to do
            job.status, job.finished_at = BulkJob.Status.FINISHED, confirmed_at
            fields += ["status", "finished_at"]
        job.save(update_fields=fields)
        jobs.bulk_job_confirm_audit(job=job, confirmed_by=created_by, pending=pending)
    logger.info("Bulk job %s previewed: %s", job.pk, job.summary)
    if pending and running and not started:
        start_tasks(job.pk)
    elif pending:
        # The workers may have written every row already, and stopped at rows_complete=False.
        engine.job_finish_if_done(job_id=job.pk)
    job.refresh_from_db()
    return job
