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
    GLOBAL_ADMINISTRATOR,
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
    # Roles held directly or through a role-assignable group (docs/graph-contract.md §4.4).
    principals = tenant.principal_ids_of(actor_id)
    for role in tenant.directory_roles.values():
        if principals & set(role.member_ids):
            templates.add(role.role_template_id)
    for membership in tenant.scoped_role_memberships.values():
        if membership.user_id not in principals:
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
    principals = req.tenant.principal_ids_of(req.principal.user_id or "")
    for role in req.tenant.directory_roles.values():
        if role.role_template_id in wanted and principals & set(role.member_ids):
            return
    raise _denied("The signed-in user does not hold a role that allows this operation.")


# Who may change the credentials of a member of a role-assignable group.
PROTECTED_TARGET_ROLES = frozenset({PRIVILEGED_AUTHENTICATION_ADMINISTRATOR, GLOBAL_ADMINISTRATOR})


def require_privileged_for_role_assignable_member(req: SimRequest, target: User) -> None:
    """Only a Privileged Authentication Administrator (or Global Administrator) may change the
    authentication methods of a member of a role-assignable group; an Authentication
    Administrator's write is refused ([E] …/role-based-access-control/groups-concept.md, "How are
    role-assignable groups protected?"; docs/graph-contract.md §4.4).

    DOC-GAP: the page names no status or code; graphsim answers Graph's usual
    403 Authorization_RequestDenied. Applies to delegated callers only: application permissions
    carry no role.
    """
    if req.principal.kind == "app" or req.principal.user_id == target.id:
        return
    protected = any(
        g.is_assignable_to_role and target.id in g.member_ids for g in req.tenant.groups.values()
    )
    if not protected:
        return
    held = user_role_templates_over(req.tenant, req.principal.user_id or "", target)
    if not held & PROTECTED_TARGET_ROLES:
        raise _denied(
            "Insufficient privileges to complete the operation: the target user is a member of a "
            "role-assignable group; only a Privileged Authentication Administrator can change "
            "their authentication methods."
        )
