"""The unified RBAC API for directory roles: `GET /roleManagement/directory/roleAssignments`
(docs/graph-contract.md §4.4).

Assignments are a view over the same tenant model `scopedRoleMembers` and `directoryRoles` use:
each principal in `DirectoryRole.member_ids` holds the role tenant-wide (`directoryScopeId` "/"),
each `ScopedRoleMembership` holds it over one administrative unit
("/administrativeUnits/{id}"). A principal is a user or a role-assignable group. PIM-eligible
assignments (`Tenant.role_eligibilities`) are not roles until activated and are never listed.
`roleDefinitionId` of a built-in role is its template id.

Source: [G1] api/rbacapplication-list-roleassignments.md; [G1] resources/unifiedroleassignment.md.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from typing import Any

from graphsim import authz
from graphsim.directory import DIRECTORY_READ, directory_object, serialize
from graphsim.errors import GraphError
from graphsim.http import Router, SimRequest, SimResponse, json_response
from graphsim.model import Tenant
from graphsim.odata import CollectionSpec, bad_query, query_collection

# [P] GET /rolemanagement/directory/roleassignments (delegated and application).
ROLE_ASSIGNMENT_READ = ("RoleManagement.Read.Directory", "RoleManagement.ReadWrite.Directory",
                        "RoleManagement.Read.All", *DIRECTORY_READ)  # fmt: skip


@dataclass(frozen=True)
class RoleAssignment:
    id: str
    role_definition_id: str
    principal_id: str
    directory_scope_id: str


def _b64(guid: str) -> str:
    try:
        raw = uuid.UUID(guid).bytes_le
    except ValueError:
        raw = guid.encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def role_assignments(tenant: Tenant) -> list[RoleAssignment]:
    """Every active assignment in the tenant. Ids of tenant-wide ones follow the documented
    examples (role definition and principal, base64url, "-1"); AU-scoped ones reuse the opaque
    membership id with a suffix (DOC-GAP: their format is undocumented)."""
    result: list[RoleAssignment] = []
    for role in tenant.directory_roles.values():
        for principal_id in role.member_ids:
            result.append(
                RoleAssignment(
                    id=f"{_b64(role.role_template_id)}{_b64(principal_id)}-1",
                    role_definition_id=role.role_template_id,
                    principal_id=principal_id,
                    directory_scope_id="/",
                )
            )
    for membership in tenant.scoped_role_memberships.values():
        role = tenant.directory_roles.get(membership.role_id)
        if role is None:
            continue
        result.append(
            RoleAssignment(
                id=f"{membership.id}-ra",
                role_definition_id=role.role_template_id,
                principal_id=membership.principal_id,
                directory_scope_id=f"/administrativeUnits/{membership.administrative_unit_id}",
            )
        )
    return result


_PROPERTIES: dict[str, Any] = {
    "id": lambda a: a.id,
    "principalId": lambda a: a.principal_id,
    "roleDefinitionId": lambda a: a.role_definition_id,
    "directoryScopeId": lambda a: a.directory_scope_id,
    "appScopeId": lambda a: None,
}


def _get(assignment: RoleAssignment, name: str) -> Any:
    getter = _PROPERTIES.get(name)
    return getter(assignment) if getter else None


SPEC = CollectionSpec(
    kind="microsoft.graph.unifiedRoleAssignment",
    getter=_get,
    filterable=frozenset({"principalId", "roleDefinitionId", "directoryScopeId", "appScopeId"}),
    orderable=frozenset(),
)


def list_role_assignments(req: SimRequest) -> SimResponse:
    authz.require_permission(req, application=ROLE_ASSIGNMENT_READ, delegated=ROLE_ASSIGNMENT_READ)
    if "$filter" not in req.query:
        # DOC-GAP (docs/graph-contract.md §4.4): the v1.0 page lists $filter as optional, but the
        # directory provider long answered 400 without one (the beta page said it is required).
        # graphsim takes the stricter reading, so Lanyard always filters.
        raise bad_query(
            "A $filter on principalId, roleDefinitionId or directoryScopeId is required."
        )
    expand = (req.query.get("$expand") or "").strip().lower()
    if expand not in ("", "principal"):
        raise bad_query(f"Unsupported $expand '{req.query['$expand']}'.")
    tenant = req.tenant

    def serialize_assignment(assignment: RoleAssignment, select: list[str] | None):
        names = select or ["id", "principalId", "directoryScopeId", "roleDefinitionId"]
        body = {name: _get(assignment, name) for name in names}
        if "id" not in body:
            body["id"] = assignment.id
        if expand == "principal":
            principal = directory_object(tenant, assignment.principal_id)
            body["principal"] = serialize(principal, None, typed=True) if principal else None
        return body

    body = query_collection(req, role_assignments(tenant), SPEC,
                            context="roleManagement/directory/roleAssignments",
                            serialize=serialize_assignment,
                            known_select=frozenset(_PROPERTIES))  # fmt: skip
    return json_response(body)


def get_role_assignment(req: SimRequest) -> SimResponse:
    authz.require_permission(req, application=ROLE_ASSIGNMENT_READ, delegated=ROLE_ASSIGNMENT_READ)
    wanted = req.params["assignment"]
    for assignment in role_assignments(req.tenant):
        if assignment.id == wanted:
            body = {name: _get(assignment, name) for name in _PROPERTIES}
            return json_response(body)
    raise GraphError(404, "Request_ResourceNotFound", f"Resource '{wanted}' does not exist.")


def register(router: Router) -> None:
    router.add("GET", "/roleManagement/directory/roleAssignments", list_role_assignments)
    router.add("GET", "/roleManagement/directory/roleAssignments/{assignment}", get_role_assignment)
