"""A manager's delegated Graph client, from their encrypted MSAL token cache.

Sign-in (portal/signin.py) stores the cache; the manager-action task loads it to act with the
manager's delegated token (`acquire_token_silent`). The cache is disposable: one that is missing or
encrypted with a retired key only means the manager signs in again.
"""

from __future__ import annotations

import logging

from django.contrib.auth.models import AbstractBaseUser

from provisioning import crypto
from provisioning.graph import GraphClient, delegated_client, delegated_token_provider
from provisioning.models import TokenCache

logger = logging.getLogger(__name__)


def token_cache_save(*, user: AbstractBaseUser, home_account_id: str, serialized: str) -> None:
    """Store `user`'s serialized MSAL cache, encrypted."""
    TokenCache.objects.update_or_create(
        user=user,
        defaults={
            "home_account_id": home_account_id,
            "ciphertext": crypto.encrypt(serialized.encode()),
        },
    )


def token_cache_load(*, user: AbstractBaseUser) -> str | None:
    """`user`'s serialized MSAL cache, or None when there is none that can be read."""
    row = TokenCache.objects.filter(user=user).first()
    if row is None:
        return None
    try:
        return crypto.decrypt(row.ciphertext).decode()
    except crypto.InvalidToken:
        # Encrypted with a retired key: the manager simply signs in again.
        logger.warning("Token cache of user %s cannot be decrypted", user.pk)
        return None


def delegated_client_for(*, user: AbstractBaseUser) -> GraphClient:
    """A Graph client that acts as `user`, with their delegated token (the worker uses it too)."""
    row = TokenCache.objects.filter(user=user).only("home_account_id").first()
    home_account_id = row.home_account_id if row else ""
    provider = delegated_token_provider(
        home_account_id=home_account_id,
        load=lambda: token_cache_load(user=user),
        save=lambda serialized: token_cache_save(
            user=user, home_account_id=home_account_id, serialized=serialized
        ),
    )
    return delegated_client(provider)
