"""Managers' MSAL token caches, encrypted (provisioning/token_cache.py reads and writes them)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class TokenCache(models.Model):
    """A user's MSAL token cache, encrypted with VAULT_KEYS (docs/architecture.md §5 "Two
    identities").

    Workers load it to call Graph with the manager's delegated token (acquire_token_silent).
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="token_cache"
    )
    home_account_id = models.CharField(max_length=200, blank=True)
    ciphertext = models.BinaryField()
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:  # never the tokens
        return f"Token cache of user {self.user_id}"
