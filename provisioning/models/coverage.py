"""MFA coverage over time (docs/architecture.md §1, IT admin "Insights"): one row per snapshot of
Entra's authentication methods registration report (docs/graph-contract.md §5).

Counts only, never a name or a method detail: the insights page draws them as a chart and a table.
"""

from __future__ import annotations

from django.db import models


class MfaCoverageSnapshot(models.Model):
    """How many member users were registered for MFA at `taken_at` (guests are not counted)."""

    taken_at = models.DateTimeField(db_index=True)
    users = models.PositiveIntegerField()  # member users in the report
    mfa_registered = models.PositiveIntegerField()  # isMfaRegistered
    without_mfa = models.PositiveIntegerField()  # users - mfa_registered
    phone_methods = models.PositiveIntegerField()  # members with a mobile phone method
    # Workers with a QR code + PIN method in the directory cache (WorkerMethodState): the report
    # does not list the QR method (docs/graph-contract.md §5).
    qr_methods = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["taken_at", "id"]
        get_latest_by = "taken_at"

    def __str__(self) -> str:
        return f"MFA coverage at {self.taken_at:%Y-%m-%d %H:%M}: {self.mfa_registered}/{self.users}"

    @property
    def percent(self) -> float:
        return 100.0 * self.mfa_registered / self.users if self.users else 0.0
