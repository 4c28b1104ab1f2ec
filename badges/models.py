"""Print jobs (badge sheets waiting for a printer) and the store kiosks that print them.

No secret is stored here: a print job item refers to its QR payload by vault row id only, and a
kiosk keeps only a hash of its device token (badges/kiosks.py issues and checks credentials).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from badges.layouts import LAYOUT_NAMES

LAYOUT_CHOICES = [(name, name) for name in LAYOUT_NAMES]


class Kiosk(models.Model):
    """A browser in a store, next to a printer, paired with a device credential."""

    name = models.CharField(max_length=100)
    stores = models.ManyToManyField("provisioning.AdministrativeUnit", related_name="kiosks")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # sha256 of the device token inside the signed cookie; empty when no credential is valid.
    credential_hash = models.CharField(max_length=64, blank=True)
    # Part of the signing salt: bumping it invalidates every credential issued before.
    credential_version = models.PositiveIntegerField(default=0)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Who answers for the kiosk: its registrar, later whoever confirmed it. When they no longer
    # manage every store of the kiosk (nor are an IT admin) the kiosk is suspended — it gets no
    # sheets — until a current manager of all its stores or an IT admin confirms it
    # (badges/kiosks.py `kiosk_standing_check`).
    vouched_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    suspended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class KioskPairing(models.Model):
    """A short code a manager reads off the portal and types on the kiosk's browser, once."""

    code_hash = models.CharField(max_length=64, unique=True)  # HMAC of the normalised code
    name = models.CharField(max_length=100)
    stores = models.ManyToManyField("provisioning.AdministrativeUnit", related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    kiosk = models.ForeignKey(
        Kiosk, null=True, blank=True, on_delete=models.SET_NULL, related_name="pairings"
    )

    def __str__(self) -> str:  # never the code
        return f"Pairing for {self.name} ({'used' if self.used_at else 'open'})"


class PrintJob(models.Model):
    """A badge sheet for one store: queued for its kiosks, or downloaded by a manager."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        PRINTING = "printing"  # a kiosk opened the PDF; not yet confirmed printed
        PRINTED = "printed"
        CANCELLED = "cancelled"
        EXPIRED = "expired"

    class Source(models.TextChoices):
        STORE = "store", "Store page"
        FORGOTTEN = "forgotten", "Forgotten badge"
        BULK = "bulk", "Bulk job"
        COMMAND = "command", "badge_sheet command"

    OPEN_STATUSES = (Status.QUEUED, Status.PRINTING)

    # Null only for a sheet of workers who belong to no store (badge_sheet --upn).
    store = models.ForeignKey(
        "provisioning.AdministrativeUnit",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="print_jobs",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.STORE)
    layout = models.CharField(max_length=16, choices=LAYOUT_CHOICES)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    # The kiosk that opened (and printed) the sheet.
    kiosk = models.ForeignKey(
        Kiosk, null=True, blank=True, on_delete=models.SET_NULL, related_name="print_jobs"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    expires_at = models.DateTimeField(db_index=True)  # when the payloads stop being printable
    opened_at = models.DateTimeField(null=True, blank=True)
    printed_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)  # printed, cancelled or expired

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["store", "status"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(
                    status__in=["queued", "printing", "printed", "cancelled", "expired"]
                ),
                name="print_job_status_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(layout__in=list(LAYOUT_NAMES)),
                name="print_job_layout_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"Badge sheet {self.pk} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES


class PrintJobItem(models.Model):
    """One badge of a sheet. The display fields are copied when the sheet is queued."""

    job = models.ForeignKey(PrintJob, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveIntegerField(default=0)
    worker_id = models.CharField(max_length=36, db_index=True)  # the worker's Entra object id
    user_principal_name = models.CharField(max_length=320, blank=True)
    display_name = models.CharField(max_length=256)
    employee_id = models.CharField(max_length=64, blank=True)
    store_name = models.CharField(max_length=256, blank=True)
    # The vault row of the QR payload (never the payload). Null while a forgotten-badge
    # temporary code is still being created by its Operation.
    payload_secret_id = models.BigIntegerField(null=True, blank=True)
    operation = models.ForeignKey(
        "provisioning.Operation",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    temporary = models.BooleanField(default=False)
    valid_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return f"Badge of {self.display_name} on sheet {self.job_id}"

    @property
    def is_ready(self) -> bool:
        return self.payload_secret_id is not None and self.valid_until is not None
