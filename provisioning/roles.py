"""Entra directory role template ids Lanyard cares about (docs/graph-contract.md §4.4)."""

from __future__ import annotations

AUTHENTICATION_ADMINISTRATOR = "c4e39bd9-1100-46d3-8c65-fb160da0071f"
PRIVILEGED_AUTHENTICATION_ADMINISTRATOR = "7be44c8a-adaf-4e2a-84d6-ab2649e08a13"

# An AU-scoped holder of one of these roles manages that AU's workers in Lanyard
# (docs/architecture.md §5).
MANAGER_ROLE_TEMPLATES = frozenset(
    {AUTHENTICATION_ADMINISTRATOR, PRIVILEGED_AUTHENTICATION_ADMINISTRATOR}
)
