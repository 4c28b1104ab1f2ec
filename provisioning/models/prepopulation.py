"""Phone pre-population (docs/architecture.md §7): its schedule, set by an IT admin, and the
statistics of every run, kept as history (the insights page reads them).

A run writes through an ordinary bulk phone job (`job`), so the engine's guarantees hold; the
run keeps the counts the job's rows do not: how many users the report named as not registered
for MFA, and the outcomes grouped by reason.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class PrepopulationSchedule(models.Model):
    """The one scheduled pre-population (a singleton, pk 1): off until an IT admin turns it on."""

    enabled = models.BooleanField(default=False)
    group_name = models.CharField(max_length=256, blank=True)  # staging group; "" = everybody
    overwrite = models.BooleanField(default=False)  # replace an existing mobile number
    hour = models.PositiveSmallIntegerField(default=2)  # local hour (TIME_ZONE) of the daily run
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(hour__gte=0, hour__lte=23), name="prepop_schedule_hour_valid"
            )
        ]

    def __str__(self) -> str:
        return f"Phone pre-population schedule ({'on' if self.enabled else 'off'})"


class PrepopulationRun(models.Model):
    """One pre-population run (or dry run) and its statistics."""

    class Trigger(models.TextChoices):
        COMMAND = "command", "Command line"
        ADMIN = "admin", "Admin page"
        SCHEDULE = "schedule", "Schedule"

    started_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    dry_run = models.BooleanField(default=False)
    trigger = models.CharField(max_length=8, choices=Trigger.choices)
    group_name = models.CharField(max_length=256, blank=True)
    overwrite = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Users the registration report named as not registered for MFA (in the staging group, if
    # any); of those, the ones a mobile method is written for; and what became of them.
    users_without_mfa = models.PositiveIntegerField(default=0)
    targeted = models.PositiveIntegerField(default=0)
    provisioned = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    outcomes = models.JSONField(default=dict, blank=True)  # reason → count
    error = models.TextField(blank=True)  # why the run could not start (e.g. report unreadable)
    job = models.ForeignKey(
        "provisioning.BulkJob",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="prepopulation_runs",
    )

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        kind = "Dry run" if self.dry_run else "Run"
        return f"{kind} {self.pk} of phone pre-population"
