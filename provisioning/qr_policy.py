"""The tenant's QR code + PIN policy (PIN length, standard lifetime), read and cached."""

from __future__ import annotations

import logging

from django.core.cache import cache

from provisioning.graph import GraphError, get_app_client, operations
from provisioning.graph.models import QrPolicy

logger = logging.getLogger(__name__)

POLICY_CACHE_KEY = "lanyard:qr-policy"
POLICY_CACHE_SECONDS = 300


def qr_policy_current() -> QrPolicy:
    """The tenant's QR policy (PIN length, standard lifetime), cached for a few minutes.

    Read with the app identity: a manager's delegated token has no Policy.Read.AuthenticationMethod.
    """
    cached = cache.get(POLICY_CACHE_KEY)
    if cached is not None:
        return QrPolicy(**cached)
    try:
        policy = operations.qr_policy_get(get_app_client())
    except GraphError as exc:
        logger.warning("QR policy unreadable, using defaults: %s", exc)
        return QrPolicy(state=None, standard_qr_code_lifetime_in_days=365, pin_length=8)
    cache.set(
        POLICY_CACHE_KEY,
        {
            "state": policy.state,
            "standard_qr_code_lifetime_in_days": policy.standard_qr_code_lifetime_in_days,
            "pin_length": policy.pin_length,
        },
        POLICY_CACHE_SECONDS,
    )
    return policy
