"""`manage.py rotate_vault_keys`: re-encrypt vault secrets and token caches with the newest key.

Transactional and resumable (provisioning/vault.py `rows_rotate`): each batch is rewritten in its
own transaction and rows already under the newest key are skipped, so an interrupted run is
finished by running the command again.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from provisioning import vault
from provisioning.models import TokenCache


class Command(BaseCommand):
    help = (
        "Re-encrypt every held PIN, QR payload and token cache with the first key of VAULT_KEYS. "
        "Run it after putting a new key first, then remove the old key from VAULT_KEYS. "
        "Safe to interrupt and run again: it continues where it stopped."
    )

    def handle(self, *args, **options) -> None:
        secrets = vault.secrets_rotate()
        caches = vault.rows_rotate(TokenCache.objects.all())
        self.stdout.write(
            self.style.SUCCESS(
                f"Re-encrypted {secrets.rotated} vault secrets and {caches.rotated} token caches "
                f"({secrets.current + caches.current} already under the newest key)."
            )
        )
        unreadable = secrets.unreadable + caches.unreadable
        if unreadable:
            raise CommandError(
                f"{unreadable} row(s) could not be opened with any key of VAULT_KEYS and were left "
                "as they are: was a key removed before they were rotated? Put it back (after the "
                "newest) and run the command again."
            )
