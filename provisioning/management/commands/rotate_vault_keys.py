"""`manage.py rotate_vault_keys`: re-encrypt vault secrets and token caches with the newest key."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from provisioning import crypto, vault
from provisioning.models import TokenCache


class Command(BaseCommand):
    help = (
        "Re-encrypt every held PIN, QR payload and token cache with the first key of VAULT_KEYS. "
        "Run it after putting a new key first, then remove the old key from VAULT_KEYS."
    )

    def handle(self, *args, **options) -> None:
        secrets = vault.secrets_rotate()
        caches = 0
        for row in TokenCache.objects.iterator():
            row.ciphertext = crypto.rotate(row.ciphertext)
            row.save(update_fields=["ciphertext"])
            caches += 1
        self.stdout.write(
            self.style.SUCCESS(f"Re-encrypted {secrets} vault secrets and {caches} token caches.")
        )
