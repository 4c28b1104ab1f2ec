"""The audit log."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    """Who did what to whom, when, with what outcome (docs/architecture.md §5 "Audit"). Never a
    secret."""

    class Outcome(models.TextChoices):
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        DENIED = "denied"
        PENDING = "pending"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    actor_label = models.CharField(max_length=320)  # kept when the user row is gone
    action = models.CharField(max_length=64, db_index=True)
    target_user_id = models.CharField(max_length=36, blank=True, db_index=True)
    target_label = models.CharField(max_length=320, blank=True)
    administrative_unit_id = models.CharField(max_length=36, blank=True, db_index=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    graph_request_id = models.CharField(max_length=64, blank=True)
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.actor_label} {self.action} {self.target_label} ({self.outcome})"
