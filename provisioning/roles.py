"""Entra directory role template ids Lanyard cares about (docs/graph-contract.md §4.4)."""

from __future__ import annotations

AUTHENTICATION_ADMINISTRATOR = "c4e39bd9-1100-46d3-8c65-fb160da0071f"
PRIVILEGED_AUTHENTICATION_ADMINISTRATOR = "7be44c8a-adaf-4e2a-84d6-ab2649e08a13"
AUTHENTICATION_POLICY_ADMINISTRATOR = "0526716b-113d-4c15-b2c8-68e3c22b9f80"
GLOBAL_READER = "f2ef992c-3afb-46b9-b7cf-a126ee74c451"
GLOBAL_ADMINISTRATOR = "62e90394-69f5-4237-9190-012177145e10"

# An AU-scoped holder of one of these roles manages that AU's workers in Lanyard
# (docs/architecture.md §5).
MANAGER_ROLE_TEMPLATES = frozenset(
    {AUTHENTICATION_ADMINISTRATOR, PRIVILEGED_AUTHENTICATION_ADMINISTRATOR}
)

# Names for messages; any other role is named by its id.
ROLE_NAMES = {
    AUTHENTICATION_ADMINISTRATOR: "Authentication Administrator",
    PRIVILEGED_AUTHENTICATION_ADMINISTRATOR: "Privileged Authentication Administrator",
    AUTHENTICATION_POLICY_ADMINISTRATOR: "Authentication Policy Administrator",
    GLOBAL_READER: "Global Reader",
    GLOBAL_ADMINISTRATOR: "Global Administrator",
}


def role_name(role_definition_id: str) -> str:
    return ROLE_NAMES.get(role_definition_id.lower(), f"directory role {role_definition_id}")
