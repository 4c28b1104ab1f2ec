"""Bulk jobs (docs/architecture.md §7, ISSUE 5): a BulkJob per CSV, group or store; a BulkJobRow per
worker.

Neither model ever holds a secret. A custom PIN from a CSV goes into the vault at preview time and
the row keeps its vault id (`input_secret_id`); the QR payload and PIN Graph returns go into the
vault and the row keeps their ids. Row lease and write bookkeeping (`claim_token`, `lease_until`,
`write_sent_at`, `phase`) are what make the engine's effect exactly-once: see
provisioning/bulk/engine.py.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class BulkJob(models.Model):
    class Kind(models.TextChoices):
        QR = "qr", "QR code + PIN"
        PHONE = "phone", "Phone numbers"

    class Source(models.TextChoices):
        CSV = "csv", "CSV file"
        GROUP = "group", "Group"
        STORE = "store", "Store"
        PREPOPULATION = "prepop", "Phone pre-population"
        # A store manager's job from the store page: their selected workers, their own token.
        MANAGER = "manager", "Store page"
        # Renew the standard QR codes of a store's workers whose codes expire soon (the insights
        # page): the same engine, rows that replace the standard code and keep the PIN.
        RENEW = "renew", "Renewal of expiring QR codes"

    class Identity(models.TextChoices):
        APP = "app", "Lanyard's app identity"
        DELEGATED = "delegated", "the requesting manager's delegated token"

    class Action(models.TextChoices):
        """For a manager's QR job: add a method, or renew the standard QR code (PIN kept)."""

        CREATE = "create", "Add QR codes + PINs"
        RENEW = "renew", "Renew QR codes"

    class Status(models.TextChoices):
        # An upload (or a group/store) whose rows a task is checking against Entra; it becomes
        # a draft when the preview is ready (provisioning/bulk/previewing.py).
        PREVIEWING = "previewing", "checking the rows against Entra"
        DRAFT = "draft", "previewed, waiting for confirmation"
        RUNNING = "running"
        FINISHED = "finished"
        CANCELLED = "cancelled"

    kind = models.CharField(max_length=8, choices=Kind.choices)
    source = models.CharField(max_length=8, choices=Source.choices)
    source_ref = models.CharField(max_length=64, blank=True)  # group / AU object id
    source_label = models.CharField(max_length=300)  # file name, group or store name
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="bulk_jobs",
    )
    # A manager's job (source "manager"): who asked, over which store, and with whose token.
    # The engine acts with `requested_by`'s delegated token and re-checks the scope per row.
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="manager_bulk_jobs",
    )
    scope_au_id = models.CharField(max_length=64, blank=True, db_index=True)
    identity = models.CharField(max_length=10, choices=Identity.choices, default=Identity.APP)
    action = models.CharField(max_length=8, choices=Action.choices, default=Action.CREATE)
    # Set once, when the job's badge sheet was queued for the store's kiosk.
    sheet_queued_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Updated after every chunk.
    last_progress_at = models.DateTimeField(null=True, blank=True)
    # The job's liveness record: pushed forward by every live task's heartbeat (and when tasks
    # are queued); a running job with due rows past this time has no live task, so the sweeper
    # gives it new ones (provisioning/bulk/engine.py step 4).
    alive_until = models.DateTimeField(null=True, blank=True)
    # What the IT admin saw: a hash of the previewed rows and of the policy values used.
    preview_hash = models.CharField(max_length=64)
    policy = models.JSONField(default=dict, blank=True)  # pin_length, lifetime_days, region
    summary = models.JSONField(default=dict, blank=True)  # counts at preview time
    # While previewing: users looked up so far / to look up (the page's progress bar), the
    # uploaded rows, encrypted in the vault until the preview has vaulted their PINs, and why a
    # preview failed (the job then ends cancelled, with no rows).
    preview_done = models.PositiveIntegerField(default=0)
    preview_total = models.PositiveIntegerField(default=0)
    upload_secret_id = models.BigIntegerField(null=True, blank=True)
    preview_error = models.TextField(blank=True)
    # False while `bulk_import` (without --dry-run) is still previewing the file and adding rows
    # to the running job (bulk/streaming.py): the job is not finished before every row is in.
    rows_complete = models.BooleanField(default=True, db_default=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(
                    status__in=["previewing", "draft", "running", "finished", "cancelled"]
                ),
                name="bulkjob_status_valid",
            )
        ]

    def __str__(self) -> str:
        return f"Bulk job {self.pk} ({self.get_kind_display()}, {self.source_label})"


class BulkJobRow(models.Model):
    class Action(models.TextChoices):
        CREATE = "create"
        UPDATE = "update"
        SKIP = "skip"
        INVALID = "invalid"

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        SKIPPED = "skipped"
        CANCELLED = "cancelled"

    job = models.ForeignKey(BulkJob, on_delete=models.CASCADE, related_name="rows")
    line = models.PositiveIntegerField()  # line in the file (header = 1), or position
    upn = models.CharField(max_length=320)
    user_id = models.CharField(max_length=36, blank=True, db_index=True)  # Entra object id
    display_name = models.CharField(max_length=256, blank=True)
    # The plan shown in the preview, and why.
    action = models.CharField(max_length=8, choices=Action.choices)
    reason = models.TextField(blank=True)
    warning = models.CharField(max_length=300, blank=True)
    # Non-secret inputs: ISO dates, normalised phone numbers, flags, "pin": "custom"|"generated".
    params = models.JSONField(default=dict, blank=True)
    input_secret_id = models.BigIntegerField(null=True, blank=True)  # custom PIN, in the vault

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    claim_token = models.CharField(max_length=64, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    not_before = models.DateTimeField(null=True, blank=True)  # backoff after a transient error
    # Set (and committed) before the first write for this row is sent: from then on, every
    # attempt first re-reads Graph's state.
    write_sent_at = models.DateTimeField(null=True, blank=True)
    phase = models.CharField(max_length=8, blank=True)  # "" | "create" | "reissue" | "replace"
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True, db_index=True)

    outcome = models.TextField(blank=True)  # plain language, with the Graph request-id
    graph_request_id = models.CharField(max_length=64, blank=True)
    result = models.JSONField(default=dict, blank=True)  # expires_at, issued, phones, sms state
    payload_secret_id = models.BigIntegerField(null=True, blank=True)
    pin_secret_id = models.BigIntegerField(null=True, blank=True)
    badge_printed_at = models.DateTimeField(null=True, blank=True)
    pin_printed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["line", "id"]
        indexes = [models.Index(fields=["job", "status"])]
        constraints = [
            models.UniqueConstraint(fields=["job", "line"], name="bulkjobrow_unique_line"),
            models.CheckConstraint(
                condition=models.Q(
                    status__in=["pending", "running", "succeeded", "failed", "skipped", "cancelled"]
                ),
                name="bulkjobrow_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"Row {self.line} of job {self.job_id}: {self.upn} ({self.status})"
