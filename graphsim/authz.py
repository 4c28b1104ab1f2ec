"""Permission and role checks, as Entra enforces them (docs/graph-contract.md §1.9, §2, §3, §4).

App tokens carry application permissions in `roles`; delegated tokens carry scopes in `scp`, and a
delegated call on another user also needs the signed-in user to hold an admin role, either
tenant-wide or scoped to an administrative unit that contains the target user.

Which permissions grant an endpoint is decided first, for every request, by the tables built from
Microsoft's permission map (`graphsim/permissions.py`, docs/graph-contract.md §11). The handlers'
own `require_permission` lists below only keep their older, coarser checks; they must never refuse
what those tables allow for a call Lanyard makes.
"""

from __future__ import annotations

from collections.abc import Iterable

from graphsim.errors import GraphError
from graphsim.http import SimRequest
from graphsim.model import (
    AUTHENTICATION_ADMINISTRATOR,
    PRIVILEGED_AUTHENTICATION_ADMINISTRATOR,
    Tenant,
    User,
)

AUTH_ADMIN_ROLES = frozenset(
    {AUTHENTICATION_ADMINISTRATOR, PRIVILEGED_AUTHENTICATION_ADMINISTRATOR}
)


def _denied(message: str) -> GraphError:
    return GraphError(403, "Authorization_RequestDenied", message)


def require_permission(
    req: SimRequest, *, application: Iterable[str], delegated: Iterable[str]
) -> None:
    """The token must carry one of the listed permissions for its kind."""
    granted = req.principal.roles if req.principal.kind == "app" else req.principal.scopes
    allowed = set(application) if req.principal.kind == "app" else set(delegated)
    if not granted & allowed:
        raise _denied("Insufficient privileges to complete the operation.")


def user_role_templates_over(tenant: Tenant, actor_id: str, target: User) -> set[str]:
    """Role templates the actor holds over `target`: tenant-wide, or scoped to an AU holding it."""
    templates: set[str] = set()
    for role in tenant.directory_roles.values():
        if actor_id in role.member_ids:
            templates.add(role.role_template_id)
    for membership in tenant.scoped_role_memberships.values():
        if membership.user_id != actor_id:
            continue
        unit = tenant.administrative_units.get(membership.administrative_unit_id)
        role = tenant.directory_roles.get(membership.role_id)
        if unit is not None and role is not None and target.id in unit.member_ids:
            templates.add(role.role_template_id)
    return templates


def require_role_over_user(
    req: SimRequest, target: User, role_templates: Iterable[str] = AUTH_ADMIN_ROLES
) -> None:
    """A delegated caller acting on another user must hold one of the roles over that user."""
    if req.principal.kind == "app" or req.principal.user_id == target.id:
        return
    held = user_role_templates_over(req.tenant, req.principal.user_id or "", target)
    if not held & set(role_templates):
        raise _denied(
            "The signed-in user does not hold a role that allows this operation on the target user."
        )


def require_tenant_role(req: SimRequest, role_templates: Iterable[str]) -> None:
    """A delegated caller must hold one of the roles tenant-wide (e.g. policy administration)."""
    if req.principal.kind == "app":
        return
    wanted = set(role_templates)
    for role in req.tenant.directory_roles.values():
        if role.role_template_id in wanted and req.principal.user_id in role.member_ids:
            return
    raise _denied("The signed-in user does not hold a role that allows this operation.")
