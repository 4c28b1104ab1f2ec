"""Manager actions on one worker (Operation) and the last known state of a worker's methods.

Neither model ever holds a secret: PINs and QR payloads live in the vault and are referred to by
vault row ids only (docs/architecture.md §5). Phone numbers in WorkerMethodState are stored
masked, as Entra shows them to an AU-scoped Authentication Administrator, whoever read them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

EXPIRY_WARNING_DAYS = 30


class Operation(models.Model):
    """One manager action on one worker, run by a Celery task (`provisioning.operation_run`)."""

    class Kind(models.TextChoices):
        QR_CREATE = "qr_create", "Add QR code + PIN"
        QR_EXPIRY_SET = "qr_expiry_set", "Change QR code expiry"
        QR_REPLACE = "qr_replace", "Replace lost QR code"
        QR_TEMPORARY_CREATE = "qr_temporary_create", "Add temporary QR code"
        QR_TEMPORARY_DELETE = "qr_temporary_delete", "Delete temporary QR code"
        QR_PIN_RESET = "qr_pin_reset", "Reset PIN"
        QR_METHOD_DELETE = "qr_method_delete", "Delete QR code + PIN method"
        PHONE_SET = "phone_set", "Set phone number"
        PHONE_DELETE = "phone_delete", "Remove phone number"

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        NEEDS_SIGN_IN = "needs_sign_in", "needs sign-in"

    kind = models.CharField(max_length=32, choices=Kind.choices)
    worker_id = models.CharField(max_length=36, db_index=True)  # the worker's Entra object id
    worker_label = models.CharField(max_length=320, blank=True)  # display name, for lists
    administrative_unit = models.ForeignKey(
        "provisioning.AdministrativeUnit", on_delete=models.CASCADE, related_name="operations"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="operations"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    # Non-secret inputs: dates (ISO 8601), phone type and normalised number, "generated"/"custom".
    params = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Vault ids (never the secrets): a custom PIN typed by the manager, waiting for the task; the
    # QR payload for the badge; the new PIN to reveal once.
    input_secret_id = models.BigIntegerField(null=True, blank=True)
    payload_secret_id = models.BigIntegerField(null=True, blank=True)
    pin_secret_id = models.BigIntegerField(null=True, blank=True)
    pin_revealed_at = models.DateTimeField(null=True, blank=True)
    pin_handed_over_at = models.DateTimeField(null=True, blank=True)
    # Non-secret results (expiry of the new code, whether credentials were re-issued, …).
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)  # plain language, with the request-id
    graph_request_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["administrative_unit", "worker_id", "-created_at"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(
                    status__in=["pending", "running", "succeeded", "failed", "needs_sign_in"]
                ),
                name="operation_status_valid",
            )
        ]

    def __str__(self) -> str:
        return (
            f"{self.get_kind_display()} for {self.worker_label or self.worker_id} ({self.status})"
        )

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED, self.Status.NEEDS_SIGN_IN)

    @property
    def result_expires_at(self) -> datetime | None:
        value = (self.result or {}).get("expires_at")
        return datetime.fromisoformat(value) if value else None

    @property
    def number_masked(self) -> str:
        """The phone number of a phone operation as every manager of the store may see it."""
        from provisioning.phone_numbers import phone_number_mask

        return phone_number_mask((self.params or {}).get("number") or "")

    @property
    def is_temporary_qr(self) -> bool:
        return self.kind == self.Kind.QR_TEMPORARY_CREATE


class WorkerMethodState(models.Model):
    """What Lanyard last read from Graph about a worker's QR method and phones (list columns).

    Refreshed for one worker after each action, and for a whole store by a task. No secrets:
    GET never returns them, and phone numbers are kept masked (provisioning/worker_state.py).
    """

    user = models.OneToOneField(
        "provisioning.DirectoryUser",
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="method_state",
    )
    has_qr_method = models.BooleanField(default=False)
    qr_created_at = models.DateTimeField(null=True, blank=True)
    standard_start = models.DateTimeField(null=True, blank=True)
    standard_expires = models.DateTimeField(null=True, blank=True)
    standard_last_used = models.DateTimeField(null=True, blank=True)  # None: never used
    temporary_start = models.DateTimeField(null=True, blank=True)
    temporary_expires = models.DateTimeField(null=True, blank=True)
    temporary_last_used = models.DateTimeField(null=True, blank=True)
    pin_force_change = models.BooleanField(null=True, blank=True)
    mobile_phone = models.CharField(max_length=64, blank=True)
    alternate_mobile_phone = models.CharField(max_length=64, blank=True)
    office_phone = models.CharField(max_length=64, blank=True)
    sms_sign_in_state = models.CharField(max_length=32, blank=True)
    default_method = models.CharField(max_length=32, blank=True)  # signInPreferences (beta)
    refreshed_at = models.DateTimeField()
    refresh_error = models.CharField(max_length=500, blank=True)

    def __str__(self) -> str:
        return f"Methods of {self.user_id} at {self.refreshed_at:%Y-%m-%d %H:%M}"

    # -- what the list and the worker page show -----------------------------------------------

    def _active(self, start: datetime | None, expires: datetime | None, now: datetime) -> bool:
        return expires is not None and expires > now and (start is None or start <= now)

    def qr_status(self, now: datetime | None = None) -> tuple[str, str]:
        """(code, label): none / active / expiring / expired / scheduled / temporary."""
        now = now or timezone.now()
        if not self.has_qr_method:
            return "none", "No QR code"
        if self._active(self.temporary_start, self.temporary_expires, now):
            local = timezone.localtime(self.temporary_expires)
            return "temporary", f"Temporary, active until {local:%H:%M}"
        if self.standard_expires is None:
            if self.temporary_expires and self.temporary_expires > now:
                local = timezone.localtime(self.temporary_start)
                return "scheduled", f"Temporary from {local:%d %b %H:%M}"
            return "expired", "No active QR code"
        if self.standard_expires <= now:
            return "expired", "Expired"
        if self.standard_start and self.standard_start > now:
            local = timezone.localtime(self.standard_start)
            return "scheduled", f"Activates {local:%d %b %Y}"
        days = (self.standard_expires - now) // timedelta(days=1)
        if days < EXPIRY_WARNING_DAYS:
            return "expiring", f"Expires in {days} day{'s' if days != 1 else ''}"
        local = timezone.localtime(self.standard_expires)
        return "active", f"Active until {local:%d %b %Y}"

    @property
    def qr_never_used(self) -> bool:
        return self.has_qr_method and not self.standard_last_used and not self.temporary_last_used

    @property
    def expires_soon(self) -> bool:
        return self.qr_status()[0] == "expiring"

    def unusable_reasons(self, *, account_enabled: bool = True) -> list[str]:
        """Why the worker cannot sign in with the QR method now (empty: usable)."""
        if not self.has_qr_method:
            return []
        now = timezone.now()
        reasons = []
        if not account_enabled:
            reasons.append("The worker's account is disabled in Entra.")
        standard = self._active(self.standard_start, self.standard_expires, now)
        temporary = self._active(self.temporary_start, self.temporary_expires, now)
        if not standard and not temporary:
            if self.standard_expires is None:
                reasons.append(
                    "The method has no standard QR code (it was deleted): replace the lost QR code."
                )
            elif self.standard_expires <= now:
                reasons.append("The standard QR code has expired: renew or replace it.")
            elif self.standard_start and self.standard_start > now:
                local = timezone.localtime(self.standard_start)
                reasons.append(f"The QR code becomes usable on {local:%d %b %Y %H:%M}.")
        return reasons

    @property
    def phones(self) -> list[tuple[str, str, str]]:
        """(phoneType, label, number) for each phone type."""
        return [
            ("mobile", "Mobile", self.mobile_phone),
            ("alternateMobile", "Alternate mobile", self.alternate_mobile_phone),
            ("office", "Office", self.office_phone),
        ]
