"""Vault rows: encrypted secrets (provisioning/vault.py is the only code that opens them)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class VaultSecret(models.Model):
    """A PIN or QR payload, encrypted, bound to its owner, expiring (provisioning/vault.py)."""

    class Kind(models.TextChoices):
        PIN = "pin"
        QR_PAYLOAD = "qr_payload"
        # The rows of an uploaded bulk CSV (they may hold custom PINs) until its preview task
        # has read them; owner "bulkjob:<id>" (provisioning/bulk/previewing.py).
        UPLOAD = "bulk_upload"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    owner_id = models.CharField(max_length=36, db_index=True)  # the worker's Entra object id
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    ciphertext = models.BinaryField()  # Fernet token; emptied when destroyed
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)
    destroyed_at = models.DateTimeField(null=True, blank=True)
    destroyed_reason = models.CharField(max_length=32, blank=True)

    def __str__(self) -> str:  # never the secret
        return f"{self.kind} for {self.owner_id} ({'destroyed' if self.destroyed_at else 'held'})"
