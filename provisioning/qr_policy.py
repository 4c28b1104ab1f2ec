"""The tenant's QR code + PIN policy (PIN length, standard lifetime, targets), read and cached.

When the policy cannot be read (the grant `Policy.Read.AuthenticationMethod` is missing: 403;
Graph fails: 5xx; …) Lanyard does NOT fall back to the defaults (PIN length 8, 365 days): that
would let a custom PIN shorter than the tenant's minimum through, or give a bulk job a lifetime the
tenant does not use. `qr_policy_current` then answers a policy whose values are None, and
`qr_policy_unreadable` says so; every place that needs a value refuses what it cannot check
(docs/architecture.md §6, docs/graph-contract.md §2):
- a custom PIN (create, manager form or bulk row) is refused; a PIN Entra generates is allowed;
- a PIN reset sends a generated PIN of the maximum length, which satisfies any policy;
- a bulk QR row without expireDateTime is refused (its lifetime would be a guess).
"""

from __future__ import annotations

import logging

from django.core.cache import cache

from provisioning.graph import GraphError, get_app_client, operations
from provisioning.graph.models import QrPolicy

logger = logging.getLogger(__name__)

POLICY_CACHE_KEY = "lanyard:qr-policy"
POLICY_CACHE_SECONDS = 300
# An unreadable policy is remembered briefly, so that a page full of forms does not ask Graph
# again and again, and a fixed grant shows within a minute.
UNREADABLE_CACHE_SECONDS = 60

POLICY_UNREADABLE = (
    "Lanyard could not read the tenant's QR code + PIN policy, so the minimum PIN length and the "
    "standard QR lifetime are unknown. Custom PINs are refused until it can be read (generated "
    "PINs still work). Check that the app has Policy.Read.AuthenticationMethod."
)


def qr_policy_current() -> QrPolicy:
    """The tenant's QR policy, cached for a few minutes; values None when it cannot be read.

    Read with the app identity: a manager's delegated token has no Policy.Read.AuthenticationMethod.
    """
    cached = cache.get(POLICY_CACHE_KEY)
    if cached is not None:
        return QrPolicy(**cached)
    try:
        policy = operations.qr_policy_get(get_app_client())
    except GraphError as exc:
        logger.warning("QR policy unreadable; custom PINs are refused until it is: %s", exc)
        policy = QrPolicy(state=None, standard_qr_code_lifetime_in_days=None, pin_length=None)
        seconds = UNREADABLE_CACHE_SECONDS
    else:
        seconds = POLICY_CACHE_SECONDS
    cache.set(
        POLICY_CACHE_KEY,
        {
            "state": policy.state,
            "standard_qr_code_lifetime_in_days": policy.standard_qr_code_lifetime_in_days,
            "pin_length": policy.pin_length,
            "include_targets": policy.include_targets,
            "exclude_targets": policy.exclude_targets,
        },
        seconds,
    )
    return policy


def qr_policy_unreadable(policy: QrPolicy) -> bool:
    """Was the policy unreadable (so its PIN length and lifetime are unknown)?"""
    return policy.state is None
