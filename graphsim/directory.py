"""Directory reads: users, administrative units, scoped roles, directory roles, groups
(docs/graph-contract.md §4).

All handlers are read-only. Permissions follow the contract's least-privileged lists plus the
broader permissions that include them (e.g. Directory.Read.All), for both application and
delegated tokens. Query options are handled by `graphsim.odata`, which enforces Graph's
advanced-query rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from graphsim import authz
from graphsim.errors import GraphError
from graphsim.http import Router, SimRequest, SimResponse, json_response
from graphsim.model import AdministrativeUnit, DirectoryRole, Group, Tenant, User
from graphsim.odata import (
    CollectionSpec,
    bad_query,
    consistency_eventual,
    context_url,
    parse_select,
    query_collection,
    unsupported,
)

DIRECTORY_READ = ("Directory.Read.All", "Directory.ReadWrite.All")
USER_READ_APP = ("User.Read.All", "User.ReadWrite.All", *DIRECTORY_READ)
USER_READ_DELEGATED = ("User.ReadBasic.All", "User.Read.All", "User.ReadWrite.All", *DIRECTORY_READ)
AU_READ = ("AdministrativeUnit.Read.All", "AdministrativeUnit.ReadWrite.All", *DIRECTORY_READ)
ROLE_READ = ("RoleManagement.Read.Directory", "RoleManagement.ReadWrite.Directory", *DIRECTORY_READ)
GROUP_MEMBER_READ = ("GroupMember.Read.All", "Group.Read.All", "Group.ReadWrite.All",
                     *DIRECTORY_READ)  # fmt: skip

# -- serialisers -----------------------------------------------------------------------------


def _iso(value: Any) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else None


USER_PROPERTIES: dict[str, Any] = {
    "id": lambda u: u.id,
    "businessPhones": lambda u: list(u.business_phones),
    "displayName": lambda u: u.display_name,
    "givenName": lambda u: u.given_name or None,
    "jobTitle": lambda u: u.job_title,
    "mail": lambda u: u.mail,
    "mobilePhone": lambda u: u.mobile_phone,
    "officeLocation": lambda u: u.office_location,
    "preferredLanguage": lambda u: u.preferred_language,
    "surname": lambda u: u.surname or None,
    "userPrincipalName": lambda u: u.user_principal_name,
    "accountEnabled": lambda u: u.account_enabled,
    "employeeId": lambda u: u.employee_id,
    "department": lambda u: u.department,
    "usageLocation": lambda u: u.usage_location,
    "country": lambda u: u.country,
    "userType": lambda u: u.user_type,
    "createdDateTime": lambda u: _iso(u.created_date_time),
    "deletedDateTime": lambda u: None,
}
# Graph's default property set for users (docs/graph-contract.md §4.1).
USER_DEFAULT = ("businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone",
                "officeLocation", "preferredLanguage", "surname", "userPrincipalName",
                "id")  # fmt: skip
USER_FILTERABLE = frozenset({"id", "userPrincipalName", "mail", "employeeId", "accountEnabled",
                             "userType", "displayName", "givenName", "surname", "jobTitle",
                             "department", "usageLocation", "country", "mobilePhone"})  # fmt: skip

GROUP_PROPERTIES: dict[str, Any] = {
    "id": lambda g: g.id,
    "deletedDateTime": lambda g: None,
    "description": lambda g: g.description,
    "displayName": lambda g: g.display_name,
    "groupTypes": lambda g: [],
    "isAssignableToRole": lambda g: g.is_assignable_to_role,
    "mail": lambda g: None,
    "mailEnabled": lambda g: False,
    "mailNickname": lambda g: "".join(ch for ch in g.display_name if ch.isalnum()) or "group",
    "securityEnabled": lambda g: True,
    "visibility": lambda g: None,
}
AU_PROPERTIES: dict[str, Any] = {
    "id": lambda a: a.id,
    "deletedDateTime": lambda a: None,
    "displayName": lambda a: a.display_name,
    "description": lambda a: a.description,
    "isMemberManagementRestricted": lambda a: False,
    "membershipRule": lambda a: None,
    "membershipRuleProcessingState": lambda a: None,
    "membershipType": lambda a: None,
    "visibility": lambda a: a.visibility,
}
ROLE_PROPERTIES: dict[str, Any] = {
    "id": lambda r: r.id,
    "deletedDateTime": lambda r: None,
    "description": lambda r: r.description,
    "displayName": lambda r: r.display_name,
    "roleTemplateId": lambda r: r.role_template_id,
}

ODATA_TYPES = {
    User: "#microsoft.graph.user",
    Group: "#microsoft.graph.group",
    AdministrativeUnit: "#microsoft.graph.administrativeUnit",
    DirectoryRole: "#microsoft.graph.directoryRole",
}
PROPERTIES = {
    User: USER_PROPERTIES,
    Group: GROUP_PROPERTIES,
    AdministrativeUnit: AU_PROPERTIES,
    DirectoryRole: ROLE_PROPERTIES,
}


def _get(obj: Any, name: str) -> Any:
    """Property getter for any directory object (None for a property its type lacks)."""
    table = PROPERTIES[type(obj)]
    getter = table.get(name)
    return getter(obj) if getter else None


def serialize(obj: Any, select: list[str] | None, *, typed: bool = False) -> dict[str, Any]:
    """An object in Graph's JSON: default or `$select`ed properties, `@odata.type` when typed."""
    table = PROPERTIES[type(obj)]
    if select is not None:
        names: Iterable[str] = select
    elif isinstance(obj, User):
        names = USER_DEFAULT
    else:
        names = table.keys()
    body: dict[str, Any] = {"@odata.type": ODATA_TYPES[type(obj)]} if typed else {}
    for name in names:
        getter = table.get(name)
        if getter is not None:
            body[name] = getter(obj)
    if "id" not in body and select is not None and typed:
        body["id"] = obj.id  # Graph always returns id for directoryObject collections
    return body


def _typed(obj: Any, select: list[str] | None) -> dict[str, Any]:
    return serialize(obj, select, typed=True)


def _plain(obj: Any, select: list[str] | None) -> dict[str, Any]:
    return serialize(obj, select)


ANY_SELECT = frozenset(USER_PROPERTIES) | frozenset(GROUP_PROPERTIES) | frozenset(AU_PROPERTIES)
ANY_SELECT |= frozenset(ROLE_PROPERTIES)

USER_SPEC = CollectionSpec(
    kind="microsoft.graph.user",
    getter=_get,
    filterable=USER_FILTERABLE,
    searchable=frozenset(
        {
            "displayName",
            "userPrincipalName",
            "mail",
            "givenName",
            "surname",
            "jobTitle",
            "employeeId",
        }
    ),  # fmt: skip
    orderable=frozenset({"displayName", "userPrincipalName"}),
)
OBJECT_SPEC = CollectionSpec(
    kind="microsoft.graph.directoryObject",
    getter=_get,
    filterable=USER_FILTERABLE | {"displayName"},
    searchable=USER_SPEC.searchable,
    orderable=frozenset({"displayName"}),
)

# -- lookups ---------------------------------------------------------------------------------


def _not_found(key: str) -> GraphError:
    return GraphError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{key}' does not exist or one of its queried reference-property objects are "
        "not present.",
    )


def find_user(tenant: Tenant, key: str) -> User:
    user = tenant.user_by_id_or_upn(key)
    if user is None:
        raise _not_found(key)
    return user


def _find(table: dict[str, Any], key: str) -> Any:
    found = table.get(key) or table.get(key.lower())
    if found is None:
        lowered = key.lower()
        found = next((v for k, v in table.items() if k.lower() == lowered), None)
    if found is None:
        raise _not_found(key)
    return found


def directory_object(tenant: Tenant, object_id: str) -> Any | None:
    return tenant.users.get(object_id) or tenant.groups.get(object_id)


def transitive_members(tenant: Tenant, group: Group) -> list[Any]:
    """Users and groups reachable from `group` through nested groups, each once."""
    seen: set[str] = set()
    result: list[Any] = []
    queue = list(group.member_ids)
    while queue:
        member_id = queue.pop(0)
        if member_id in seen or member_id == group.id:
            continue
        seen.add(member_id)
        member = directory_object(tenant, member_id)
        if member is None:
            continue
        result.append(member)
        if isinstance(member, Group):
            queue.extend(member.member_ids)
    return result


def transitive_member_of(tenant: Tenant, user: User) -> list[Any]:
    """Groups (direct and through nesting), directory roles and AUs the user belongs to."""
    direct = [g for g in tenant.groups.values() if user.id in g.member_ids]
    groups: list[Group] = []
    seen: set[str] = set()
    queue = list(direct)
    while queue:
        group = queue.pop(0)
        if group.id in seen:
            continue
        seen.add(group.id)
        groups.append(group)
        queue.extend(g for g in tenant.groups.values() if group.id in g.member_ids)
    roles = [r for r in tenant.directory_roles.values() if user.id in r.member_ids]
    units = [a for a in tenant.administrative_units.values() if user.id in a.member_ids]
    return [*groups, *roles, *units]


# -- permission helpers ----------------------------------------------------------------------


def _require(req: SimRequest, permissions: Iterable[str], *, delegated_extra: Iterable[str] = ()):
    permissions = tuple(permissions)
    authz.require_permission(req, application=permissions,
                             delegated=(*permissions, *delegated_extra))  # fmt: skip


def _require_user_read(req: SimRequest, target: User | None = None) -> None:
    # Reading one's own profile needs only User.Read (delegated).
    self_extra = (
        ("User.Read", "User.ReadWrite")
        if (target is not None and req.principal.user_id == target.id)
        else ()
    )
    authz.require_permission(
        req, application=USER_READ_APP, delegated=(*USER_READ_DELEGATED, *self_extra)
    )


# -- users -----------------------------------------------------------------------------------


def list_users(req: SimRequest) -> SimResponse:
    _require_user_read(req)
    items = list(req.tenant.users.values())
    body = query_collection(req, items, USER_SPEC, context="users", serialize=_plain,
                            known_select=frozenset(USER_PROPERTIES))  # fmt: skip
    return json_response(body)


def count_users(req: SimRequest) -> SimResponse:
    """`/users/$count` → text/plain; needs ConsistencyLevel: eventual (docs/graph-contract.md
    §4.1)."""
    _require_user_read(req)
    if not consistency_eventual(req):
        raise unsupported(
            "Count is not currently supported. $count as a segment requires the header "
            "'ConsistencyLevel: eventual'."
        )
    users = list(req.tenant.users.values())
    if "$filter" in req.query:
        from graphsim.odata import parse_filter

        parsed = parse_filter(req.query["$filter"], _get, USER_FILTERABLE, USER_SPEC.kind)
        users = [u for u in users if parsed.predicate(u)]
    response = SimResponse(200, str(len(users)).encode())
    response.headers["Content-Type"] = "text/plain"
    return response


def get_user(req: SimRequest) -> SimResponse:
    user = find_user(req.tenant, req.params["user"])
    _require_user_read(req, user)
    select = parse_select(req, frozenset(USER_PROPERTIES), USER_SPEC.kind)
    suffix = f"({','.join(select)})" if select else ""
    body = {"@odata.context": context_url(req, f"users{suffix}/$entity")}
    body.update(serialize(user, select))
    return json_response(body)


def user_scoped_role_member_of(req: SimRequest) -> SimResponse:
    user = find_user(req.tenant, req.params["user"])
    # [Gb] api/user-list-scopedrolememberof.md and [P]: Directory.Read.All (delegated and
    # application); RoleManagement.Read.Directory does not grant it (docs/graph-contract.md §4.4).
    _require(req, DIRECTORY_READ)
    memberships = [m for m in req.tenant.scoped_role_memberships.values() if m.user_id == user.id]
    body = {
        "@odata.context": context_url(req, f"users('{user.id}')/scopedRoleMemberOf"),
        "value": [_membership_json(req.tenant, m) for m in memberships],
    }
    return json_response(body)


def user_member_of(req: SimRequest, *, transitive: bool) -> SimResponse:
    user = find_user(req.tenant, req.params["user"])
    # DOC-GAP (docs/graph-contract.md §4 lists no permission for memberOf): Graph documents
    # GroupMember.Read.All / Directory.Read.All, and User.Read for the signed-in user's own.
    self_extra = ("User.Read",) if req.principal.user_id == user.id else ()
    _require(req, (*GROUP_MEMBER_READ, "User.Read.All"), delegated_extra=self_extra)
    if transitive:
        items = transitive_member_of(req.tenant, user)
    else:
        items = [g for g in req.tenant.groups.values() if user.id in g.member_ids]
        items += [r for r in req.tenant.directory_roles.values() if user.id in r.member_ids]
        items += [a for a in req.tenant.administrative_units.values() if user.id in a.member_ids]
    body = query_collection(req, items, OBJECT_SPEC, context="directoryObjects",
                            serialize=_typed, known_select=ANY_SELECT)  # fmt: skip
    return json_response(body)


# -- administrative units --------------------------------------------------------------------


def list_units(req: SimRequest) -> SimResponse:
    _require(req, AU_READ)
    spec = CollectionSpec(kind="microsoft.graph.administrativeUnit", getter=_get,
                          filterable=frozenset({"id", "displayName"}))  # fmt: skip
    context = (
        "administrativeUnits"
        if req.path.lower().startswith("/administrativeunits")
        else ("directory/administrativeUnits")
    )
    body = query_collection(req, list(req.tenant.administrative_units.values()), spec,
                            context=context, serialize=_plain,
                            known_select=frozenset(AU_PROPERTIES))  # fmt: skip
    return json_response(body)


def get_unit(req: SimRequest) -> SimResponse:
    _require(req, AU_READ)
    unit = _find(req.tenant.administrative_units, req.params["unit"])
    select = parse_select(req, frozenset(AU_PROPERTIES), "microsoft.graph.administrativeUnit")
    body = {"@odata.context": context_url(req, "directory/administrativeUnits/$entity")}
    body.update(serialize(unit, select))
    return json_response(body)


HIDDEN_MEMBERSHIP = "HiddenMembership"


def _require_members_visible(req: SimRequest, unit: AdministrativeUnit) -> None:
    """Listing the members of a hidden-membership AU needs Member.Read.Hidden, delegated or
    application; the AU's own members may list each other (docs/graph-contract.md §4.3).

    DOC-GAP: the pages name the permission but not the answer without it; graphsim answers Graph's
    usual 403 Authorization_RequestDenied (or the status `hidden_membership_status` names).
    """
    if (unit.visibility or "").lower() != HIDDEN_MEMBERSHIP.lower():
        return
    granted = req.principal.roles if req.principal.kind == "app" else req.principal.scopes
    if "Member.Read.Hidden" in granted:
        return
    if req.principal.kind == "delegated" and req.principal.user_id in unit.member_ids:
        return
    status = req.config.hidden_membership_status if req.config else 403
    if status == 404:
        raise _not_found(unit.id)
    code = "Authorization_RequestDenied" if status == 403 else "Request_BadRequest"
    raise GraphError(status, code, "Insufficient privileges to complete the operation.")


def _members_of(tenant: Tenant, member_ids: list[str]) -> list[Any]:
    return [m for mid in member_ids if (m := directory_object(tenant, mid)) is not None]


def unit_members(req: SimRequest) -> SimResponse:
    _require(req, AU_READ)
    unit = _find(req.tenant.administrative_units, req.params["unit"])
    _require_members_visible(req, unit)
    items = _members_of(req.tenant, unit.member_ids)
    body = query_collection(req, items, OBJECT_SPEC, context="directoryObjects",
                            serialize=_typed, known_select=ANY_SELECT)  # fmt: skip
    return json_response(body)


def unit_members_cast(req: SimRequest) -> SimResponse:
    """`/members/$ref` (references) or `/members/microsoft.graph.user|group` (OData cast)."""
    _require(req, AU_READ)
    unit = _find(req.tenant.administrative_units, req.params["unit"])
    _require_members_visible(req, unit)
    segment = req.params["cast"]
    items = _members_of(req.tenant, unit.member_ids)
    if segment == "$ref":
        return json_response(_references(req, items))
    cast_type = _cast_type(segment)
    items = [o for o in items if isinstance(o, cast_type)]
    # DOC-GAP (docs/graph-contract.md §4.3 vs §4.5): for group members the contract makes a cast
    # alone an advanced query; for AU members it does not, so here ConsistencyLevel is required only
    # by the options that always need it ($count, $search, advanced $filter) — as in the example
    # au-members-users.response.json, which sends it with $count.
    spec = USER_SPEC if cast_type is User else OBJECT_SPEC
    context = "users" if cast_type is User else "groups"
    body = query_collection(req, items, spec, context=context, serialize=_typed,
                            known_select=_select_for(cast_type))  # fmt: skip
    return json_response(body)


def _references(req: SimRequest, items: list[Any]) -> dict[str, Any]:
    spec = CollectionSpec(kind="microsoft.graph.directoryObject", getter=_get,
                          filterable=frozenset({"id"}))  # fmt: skip

    def ref(obj: Any, _select: list[str] | None) -> dict[str, Any]:
        return {"@odata.id": req.version_url(f"/directoryObjects/{obj.id}")}

    body = query_collection(req, items, spec, context="directoryObjects", serialize=ref,
                            known_select=frozenset({"id"}))  # fmt: skip
    return body


def _cast_type(segment: str) -> type:
    lowered = segment.lower()
    if lowered == "microsoft.graph.user":
        return User
    if lowered == "microsoft.graph.group":
        return Group
    raise unsupported(f"Unsupported Query. The OData cast '{segment}' is not supported here.")


def _select_for(cast_type: type) -> frozenset[str]:
    return frozenset(USER_PROPERTIES if cast_type is User else GROUP_PROPERTIES)


def _membership_json(tenant: Tenant, membership: Any) -> dict[str, Any]:
    # The principal is a user or a role-assignable group (docs/graph-contract.md §4.4).
    principal = directory_object(tenant, membership.user_id)
    return {
        "id": membership.id,
        "roleId": membership.role_id,
        "administrativeUnitId": membership.administrative_unit_id,
        "roleMemberInfo": {
            "id": membership.user_id,
            "displayName": principal.display_name if principal else None,
            "userPrincipalName": principal.user_principal_name
            if isinstance(principal, User)
            else None,
        },
    }


def unit_scoped_role_members(req: SimRequest) -> SimResponse:
    _require(req, ROLE_READ)
    unit = _find(req.tenant.administrative_units, req.params["unit"])
    memberships = [
        m for m in req.tenant.scoped_role_memberships.values()
        if m.administrative_unit_id == unit.id
    ]  # fmt: skip
    body = {
        "@odata.context": context_url(
            req, f"directory/administrativeUnits('{unit.id}')/scopedRoleMembers"
        ),
        "value": [_membership_json(req.tenant, m) for m in memberships],
    }
    return json_response(body)


def unit_scoped_role_member(req: SimRequest) -> SimResponse:
    _require(req, ROLE_READ)
    unit = _find(req.tenant.administrative_units, req.params["unit"])
    membership = req.tenant.scoped_role_memberships.get(req.params["membership"])
    if membership is None or membership.administrative_unit_id != unit.id:
        raise _not_found(req.params["membership"])
    body = {
        "@odata.context": context_url(
            req, f"directory/administrativeUnits('{unit.id}')/scopedRoleMembers/$entity"
        )
    }
    body.update(_membership_json(req.tenant, membership))
    return json_response(body)


# -- directory roles -------------------------------------------------------------------------


def list_roles(req: SimRequest) -> SimResponse:
    """All activated roles; directoryRoles do not page (docs/graph-contract.md §4.2)."""
    _require(req, ROLE_READ)
    if "$top" in req.query or "$skiptoken" in req.query:
        raise bad_query("Query option '$top' is not supported for directoryRoles.")
    spec = CollectionSpec(kind="microsoft.graph.directoryRole", getter=_get,
                          filterable=frozenset({"roleTemplateId", "displayName", "id"}),
                          pageable=False)  # fmt: skip
    body = query_collection(req, list(req.tenant.directory_roles.values()), spec,
                            context="directoryRoles", serialize=_plain,
                            known_select=frozenset(ROLE_PROPERTIES))  # fmt: skip
    return json_response(body)


# DOC-GAP (docs/graph-examples/INDEX.md): the scopedRoleMembership `id` format is undocumented; the
# tenant generator issues opaque base64url strings like the example's.


def _role_body(req: SimRequest, role: DirectoryRole) -> SimResponse:
    select = parse_select(req, frozenset(ROLE_PROPERTIES), "microsoft.graph.directoryRole")
    body = {"@odata.context": context_url(req, "directoryRoles/$entity")}
    body.update(serialize(role, select))
    return json_response(body)


def get_role(req: SimRequest) -> SimResponse:
    _require(req, ROLE_READ)
    return _role_body(req, _find(req.tenant.directory_roles, req.params["role"]))


def get_role_by_template(req: SimRequest) -> SimResponse:
    _require(req, ROLE_READ)
    template = req.params["template"]
    role = req.tenant.directory_role_by_template(template)
    if role is None:
        raise _not_found(template)
    return _role_body(req, role)


def role_members(req: SimRequest) -> SimResponse:
    _require(req, ROLE_READ)
    role = _find(req.tenant.directory_roles, req.params["role"])
    items = _members_of(req.tenant, role.member_ids)
    body = query_collection(req, items, OBJECT_SPEC, context="directoryObjects",
                            serialize=_typed, known_select=ANY_SELECT)  # fmt: skip
    return json_response(body)


# -- groups ----------------------------------------------------------------------------------

GROUP_SPEC = CollectionSpec(kind="microsoft.graph.group", getter=_get,
                            filterable=frozenset({"id", "displayName"}))  # fmt: skip


def list_groups(req: SimRequest) -> SimResponse:
    _require(req, ("Group.Read.All", "Group.ReadWrite.All", "GroupMember.Read.All",
                   *DIRECTORY_READ))  # fmt: skip
    body = query_collection(req, list(req.tenant.groups.values()), GROUP_SPEC, context="groups",
                            serialize=_plain, known_select=frozenset(GROUP_PROPERTIES))  # fmt: skip
    return json_response(body)


def get_group(req: SimRequest) -> SimResponse:
    _require(req, ("Group.Read.All", "Group.ReadWrite.All", "GroupMember.Read.All",
                   *DIRECTORY_READ))  # fmt: skip
    group = _find(req.tenant.groups, req.params["group"])
    select = parse_select(req, frozenset(GROUP_PROPERTIES), "microsoft.graph.group")
    body = {"@odata.context": context_url(req, "groups/$entity")}
    body.update(serialize(group, select))
    return json_response(body)


def _group_members(req: SimRequest, *, transitive: bool) -> list[Any]:
    _require(req, GROUP_MEMBER_READ)
    group = _find(req.tenant.groups, req.params["group"])
    if transitive:
        return transitive_members(req.tenant, group)
    return _members_of(req.tenant, group.member_ids)


def group_members(req: SimRequest) -> SimResponse:
    items = _group_members(
        req, transitive=req.path.rstrip("/").lower().endswith("transitivemembers")
    )
    body = query_collection(req, items, OBJECT_SPEC, context="directoryObjects",
                            serialize=_typed, known_select=ANY_SELECT)  # fmt: skip
    return json_response(body)


def group_members_cast(req: SimRequest) -> SimResponse:
    """OData cast on group members: ConsistencyLevel + $count required (docs/graph-contract.md
    §4.5)."""
    transitive = "/transitivemembers/" in req.path.lower()
    items = _group_members(req, transitive=transitive)
    segment = req.params["cast"]
    if segment == "$ref" and not transitive:
        return json_response(_references(req, items))
    cast_type = _cast_type(segment)
    items = [o for o in items if isinstance(o, cast_type)]
    spec = USER_SPEC if cast_type is User else GROUP_SPEC
    strict = CollectionSpec(kind=spec.kind, getter=spec.getter, filterable=spec.filterable,
                            searchable=spec.searchable, orderable=spec.orderable,
                            always_advanced=True)  # fmt: skip
    context = "users" if cast_type is User else "groups"
    body = query_collection(req, items, strict, context=context, serialize=_typed,
                            known_select=_select_for(cast_type))  # fmt: skip
    return json_response(body)


def register(router: Router) -> None:
    """Add the directory routes (literal `$count` before `{user}` so it wins)."""
    router.add("GET", "/users", list_users)
    router.add("GET", "/users/$count", count_users)
    router.add("GET", "/users/{user}", get_user)
    # scopedRoleMemberOf is documented on beta only; SDKs expose it on v1.0 too
    # (docs/graph-contract.md §4.4).
    router.add("GET", "/users/{user}/scopedRoleMemberOf", user_scoped_role_member_of)
    router.add("GET", "/users/{user}/memberOf", lambda r: user_member_of(r, transitive=False))
    router.add(
        "GET", "/users/{user}/transitiveMemberOf", lambda r: user_member_of(r, transitive=True)
    )
    for prefix, versions in (
        ("/directory/administrativeUnits", ("v1.0", "beta")),
        ("/administrativeUnits", ("beta",)),
    ):
        router.add("GET", prefix, list_units, versions=versions)
        router.add("GET", prefix + "/{unit}", get_unit, versions=versions)
        router.add("GET", prefix + "/{unit}/members", unit_members, versions=versions)
        router.add("GET", prefix + "/{unit}/members/{cast}", unit_members_cast, versions=versions)
        router.add(
            "GET", prefix + "/{unit}/scopedRoleMembers", unit_scoped_role_members, versions=versions
        )
        router.add(
            "GET",
            prefix + "/{unit}/scopedRoleMembers/{membership}",
            unit_scoped_role_member,
            versions=versions,
        )
    router.add("GET", "/directoryRoles", list_roles)
    router.add("GET", "/directoryRoles(roleTemplateId='{template}')", get_role_by_template)
    router.add("GET", "/directoryRoles/{role}", get_role)
    router.add("GET", "/directoryRoles/{role}/members", role_members)
    router.add("GET", "/groups", list_groups)
    router.add("GET", "/groups/{group}", get_group)
    router.add("GET", "/groups/{group}/members", group_members)
    router.add("GET", "/groups/{group}/transitiveMembers", group_members)
    router.add("GET", "/groups/{group}/members/{cast}", group_members_cast)
    router.add("GET", "/groups/{group}/transitiveMembers/{cast}", group_members_cast)
