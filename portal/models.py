"""People who sign in to Lanyard (their token caches live in provisioning.TokenCache)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """A person signed in through Entra. `username` is their Entra object id."""

    entra_object_id = models.CharField(max_length=36, unique=True, null=True, blank=True)
    user_principal_name = models.CharField(max_length=320, blank=True)
    display_name = models.CharField(max_length=256, blank=True)
    # Member of LANYARD_ADMIN_GROUP_ID at the last sign-in (or directory sync).
    is_it_admin = models.BooleanField(default=False)
    # Held Authentication Administrator or Privileged Authentication Administrator tenant-wide
    # (not scoped to an AU) at the last sign-in: the role covers every store, so Lanyard lets
    # them manage every store.
    manages_all_stores = models.BooleanField(default=False)
    roles_refreshed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.display_name or self.user_principal_name or self.username
