"""One function per Graph operation Lanyard uses, each naming the doc page it implements.

Paths are relative to the version root ([G1] = microsoft-graph-docs-contrib api-reference/v1.0/,
[Gb] = …/beta/; see docs/graph-contract.md). Write operations come in two parts so the same
definition serves a single call and a $batch item: `<op>_request(...)` builds the GraphRequest and
`<op>(client, ...)` sends it and parses the answer. Parsers (`QrMethod.from_graph` …) work on a
$batch item's body as well.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from provisioning.graph.client import GraphClient, GraphRequest, GraphResponse
from provisioning.graph.errors import GraphNotFound
from provisioning.graph.models import (
    PHONE_METHOD_IDS,
    USER_SELECT,
    AdministrativeUnit,
    DirectoryObject,
    DirectoryRole,
    Group,
    PhoneMethod,
    QrCode,
    QrMethod,
    QrPin,
    QrPolicy,
    RoleAssignment,
    ScopedRoleMembership,
    SignInPreferences,
    User,
    UserRegistrationDetails,
    format_datetime,
)

EVENTUAL = {"ConsistencyLevel": "eventual"}  # advanced queries (docs/graph-contract.md §4.1, §9.10)
QR_KINDS = ("standardQRCode", "temporaryQRCode")


def _seg(value: str) -> str:
    """A user id, UPN or object id as one path segment (UPNs may hold '#', '/' …)."""
    return quote(value, safe="@")


def url(path: str, **params: Any) -> str:
    """`path` with OData options: url("/users", select="id", top=5) → /users?$select=id&$top=5."""
    query = {f"${k}": v for k, v in params.items() if v is not None}
    if not query:
        return path
    return f"{path}?{urlencode(query, quote_via=quote, safe="$,'():/@*")}"


# -- users ----------------------------------------------------------------------------------


def user_get(client: GraphClient, user: str, *, select: str = USER_SELECT) -> User:
    """Get a user by id or UPN — [G1] api/user-get.md."""
    return User.from_graph(client.get(url(f"/users/{_seg(user)}", select=select)))


def me_transitive_member_of(client: GraphClient) -> Iterator[DirectoryObject]:
    """Groups, roles and AUs of the signed-in user — [G1] api/user-list-transitivememberof.md
    (delegated `User.Read`). `isAssignableToRole` tells role-assignable groups apart."""
    req = GraphRequest(
        "GET", url("/me/transitiveMemberOf", select="id,displayName,isAssignableToRole")
    )
    return (DirectoryObject.from_graph(item) for item in client.iter_values(req))


# -- administrative units, roles, groups ----------------------------------------------------


def administrative_unit_list(client: GraphClient) -> Iterator[AdministrativeUnit]:
    """List AUs — [G1] api/directory-list-administrativeunits.md.

    The page names `$count, $select, $search, $filter, $expand` but not `$top`, so Lanyard takes
    Graph's default page size and follows `@odata.nextLink` (docs/graph-contract.md §4.2, §4.3).
    """
    req = GraphRequest(
        "GET", url("/directory/administrativeUnits", select="id,displayName,description,visibility")
    )
    return (AdministrativeUnit.from_graph(item) for item in client.iter_values(req))


def administrative_unit_get(client: GraphClient, unit_id: str) -> AdministrativeUnit:
    """Get an AU — [G1] api/administrativeunit-get.md."""
    return AdministrativeUnit.from_graph(
        client.get(
            url(
                f"/directory/administrativeUnits/{_seg(unit_id)}",
                select="id,displayName,description,visibility",
            )
        )
    )


def administrative_unit_users(
    client: GraphClient,
    unit_id: str,
    *,
    search: str | None = None,
    top: int | None = None,
    select: str = USER_SELECT,
) -> Iterator[User]:
    """The AU's user members (OData cast) — [G1] api/administrativeunit-list-members.md."""
    req = GraphRequest(
        "GET",
        url(
            f"/directory/administrativeUnits/{_seg(unit_id)}/members/microsoft.graph.user",
            select=select,
            search=f'"{search}"' if search else None,
            top=top,
            count="true",
        ),
        headers=EVENTUAL,
    )
    return (User.from_graph(item) for item in client.iter_values(req))


def administrative_unit_scoped_role_members(
    client: GraphClient, unit_id: str
) -> Iterator[ScopedRoleMembership]:
    """Who holds a role over the AU — [G1] api/administrativeunit-list-scopedrolemembers.md."""
    req = GraphRequest("GET", f"/directory/administrativeUnits/{_seg(unit_id)}/scopedRoleMembers")
    return (ScopedRoleMembership.from_graph(item) for item in client.iter_values(req))


def role_assignments_list(
    client: GraphClient, *, filter: str, expand_principal: bool = False
) -> Iterator[RoleAssignment]:
    """Active directory role assignments matching `filter` (on principalId, roleDefinitionId or
    directoryScopeId; `eq` or `in`) — [G1] api/rbacapplication-list-roleassignments.md,
    `RoleManagement.Read.Directory` delegated and application (docs/graph-contract.md §4.4).
    PIM-eligible assignments are not listed until activated."""
    req = GraphRequest(
        "GET",
        url(
            "/roleManagement/directory/roleAssignments",
            filter=filter,
            expand="principal" if expand_principal else None,
        ),
    )
    return (RoleAssignment.from_graph(item) for item in client.iter_values(req))


def role_assignments_in_scope_request(scope: str) -> GraphRequest:
    """The active role assignments over one directory scope (`/` or an administrative unit),
    principals expanded, as a $batch item (its first page; follow `@odata.nextLink`) —
    [G1] api/rbacapplication-list-roleassignments.md."""
    return GraphRequest(
        "GET",
        url(
            "/roleManagement/directory/roleAssignments",
            filter=f"directoryScopeId eq '{scope}'",
            expand="principal",
        ),
    )


def role_assignments_list_request(principal_ids: list[str]) -> GraphRequest:
    """The active roles of up to 15 users or groups, as a $batch item (`principalId in (…)`;
    DOC-GAP: the page names no limit for `in`, Lanyard sends at most 15 values, the limit Graph
    documents for directory objects)."""
    values = ",".join(f"'{principal_id}'" for principal_id in principal_ids)
    return GraphRequest(
        "GET", url("/roleManagement/directory/roleAssignments", filter=f"principalId in ({values})")
    )


def group_transitive_user_ids_request(group_id: str) -> GraphRequest:
    """The ids of a group's users, nested groups included, as a $batch item (one page of up to
    999) — [G1] api/group-list-transitivemembers.md; a cast needs ConsistencyLevel and $count
    (docs/graph-contract.md §4.5)."""
    return GraphRequest(
        "GET",
        url(
            f"/groups/{_seg(group_id)}/transitiveMembers/microsoft.graph.user",
            select="id",
            top=999,
            count="true",
        ),
        headers=EVENTUAL,
    )


def role_assignments_for_principal(
    client: GraphClient, principal_id: str
) -> Iterator[RoleAssignment]:
    """The roles assigned directly to one user or group (documented example 2 of the page)."""
    return role_assignments_list(client, filter=f"principalId eq '{principal_id}'")


def directory_role_get(client: GraphClient, role_id: str) -> DirectoryRole:
    """A directory role by object id — [G1] api/directoryrole-get.md."""
    return DirectoryRole.from_graph(client.get(f"/directoryRoles/{_seg(role_id)}"))


def group_get(client: GraphClient, group_id: str) -> Group:
    """Get a group — [G1] api/group-get.md."""
    return Group.from_graph(
        client.get(
            url(f"/groups/{_seg(group_id)}", select="id,displayName,description,isAssignableToRole")
        )
    )


def group_find_by_name(client: GraphClient, name: str) -> list[Group]:
    """Groups whose display name is exactly `name` (display names are not unique) — [G1]
    api/group-list.md, `$filter=displayName eq '…'`, which needs no advanced query headers."""
    escaped = name.replace("'", "''")
    req = GraphRequest(
        "GET",
        url("/groups", filter=f"displayName eq '{escaped}'", select="id,displayName", top=10),
    )
    return [Group.from_graph(item) for item in client.iter_values(req)]


def group_search_by_prefix(client: GraphClient, prefix: str, *, top: int = 5) -> list[Group]:
    """Up to `top` groups whose display name starts with `prefix` — [G1] api/group-list.md,
    `$filter=startswith(displayName,'…')` (a basic filter: no advanced query headers)."""
    escaped = prefix.replace("'", "''")
    req = GraphRequest(
        "GET",
        url("/groups", filter=f"startswith(displayName,'{escaped}')", select="id,displayName",
            top=top),
    )  # fmt: skip
    first_page = next(client.iter_pages(req), {})  # the first `top` are enough for a hint
    return [Group.from_graph(item) for item in first_page.get("value") or []][:top]


def group_transitive_users(
    client: GraphClient, group_id: str, *, select: str = USER_SELECT
) -> Iterator[User]:
    """Users in a group, nested groups included — [G1] api/group-list-transitivemembers.md."""
    req = GraphRequest(
        "GET",
        url(
            f"/groups/{_seg(group_id)}/transitiveMembers/microsoft.graph.user",
            select=select,
            count="true",
        ),
        headers=EVENTUAL,
    )
    return (User.from_graph(item) for item in client.iter_values(req))


def group_list_by_name(client: GraphClient, display_name: str) -> list[Group]:
    """Groups whose displayName is exactly `display_name` (several may share it) —
    [G1] api/group-list.md, `$filter=displayName eq '…'` (a default filter, no ConsistencyLevel)."""
    literal = display_name.replace("'", "''")
    req = GraphRequest(
        "GET",
        url(
            "/groups",
            filter=f"displayName eq '{literal}'",
            select="id,displayName,description,isAssignableToRole",
        ),
    )
    return [Group.from_graph(item) for item in client.iter_values(req)]


# -- users for phone pre-population (docs/graph-contract.md §5)
# ------------------------------------------------------------

# The profile fields pre-population reads (the number, the country it is read in, who is left out).
PREPOPULATION_USER_SELECT = (
    "id,userPrincipalName,displayName,mobilePhone,usageLocation,country,accountEnabled,userType"
)


def user_list(client: GraphClient, *, select: str = USER_SELECT) -> Iterator[User]:
    """Every user of the tenant, 999 a page — [G1] api/user-list.md."""
    req = GraphRequest("GET", url("/users", select=select, top=999))
    return (User.from_graph(item) for item in client.iter_values(req))


# -- QR code + PIN method (docs/graph-contract.md §1)
# --------------------------------------------------


def _qr_path(user: str) -> str:
    return f"/users/{_seg(user)}/authentication/qrCodePinMethod"


def qr_method_get_request(user: str) -> GraphRequest:
    """GET the method — [G1] api/qrcodepinauthenticationmethod-get.md."""
    return GraphRequest("GET", _qr_path(user))


def qr_method_get(client: GraphClient, user: str) -> QrMethod | None:
    """A user's QR method, or None — [G1] api/qrcodepinauthenticationmethod-get.md."""
    try:
        body = client.request(qr_method_get_request(user)).body
    except GraphNotFound:
        return None
    return QrMethod.from_graph(body) if body else None


def qr_method_create_request(
    user: str, *, start: datetime, expire: datetime, pin: str | None = None
) -> GraphRequest:
    """PUT the method (no pin: generated) — [G1] api/authentication-put-qrcodepinmethod.md."""
    body: dict[str, Any] = {
        "@odata.type": "#microsoft.graph.qrCodePinAuthenticationMethod",
        "standardQRCode": {
            "startDateTime": format_datetime(start),
            "expireDateTime": format_datetime(expire),
        },
    }
    if pin is not None:
        body["pin"] = {"code": pin}
    return GraphRequest("PUT", _qr_path(user), body=body)


def qr_method_create(
    client: GraphClient, user: str, *, start: datetime, expire: datetime, pin: str | None = None
) -> QrMethod:
    """Create a QR method (with payload, PIN) — [G1] api/authentication-put-qrcodepinmethod.md."""
    req = qr_method_create_request(user, start=start, expire=expire, pin=pin)
    return QrMethod.from_graph(client.request(req).body)


def qr_method_delete_request(user: str) -> GraphRequest:
    """DELETE the method — [G1] api/qrcodepinauthenticationmethod-delete.md."""
    return GraphRequest("DELETE", _qr_path(user))


def qr_method_delete(client: GraphClient, user: str) -> None:
    """Delete a QR method, codes and PIN — [G1] api/qrcodepinauthenticationmethod-delete.md."""
    client.request(qr_method_delete_request(user))


def qr_code_set_request(
    user: str, kind: str, *, start: datetime | None = None, expire: datetime
) -> GraphRequest:
    """PATCH a code: create it, or change a standard expiry — [G1] api/qrcode-update.md."""
    if kind not in QR_KINDS:
        raise ValueError(f"kind must be one of {QR_KINDS}")
    body: dict[str, Any] = {"@odata.type": "#microsoft.graph.qrCode"}
    if start is not None:
        body["startDateTime"] = format_datetime(start)
    body["expireDateTime"] = format_datetime(expire)
    return GraphRequest("PATCH", f"{_qr_path(user)}/{kind}", body=body)


def qr_code_set(
    client: GraphClient, user: str, kind: str, *, start: datetime | None = None, expire: datetime
) -> QrCode:
    """Create (201, with image) or update (200) a QR code — [G1] api/qrcode-update.md."""
    response = client.request(qr_code_set_request(user, kind, start=start, expire=expire))
    code = QrCode.from_graph(response.body)
    if code is None:  # an update may answer without a body
        code = QrCode(id=None, start_date_time=start, expire_date_time=expire)
    return code


def qr_code_get(client: GraphClient, user: str, kind: str) -> QrCode | None:
    """A standard/temporary code (bare or {"value": …}), or None — [G1] api/qrcode-get.md."""
    try:
        body = client.get(f"{_qr_path(user)}/{kind}")
    except GraphNotFound:
        return None
    return QrCode.from_graph(body)


def qr_code_delete_request(user: str, kind: str) -> GraphRequest:
    """DELETE a standard/temporary code — [G1] api/qrcode-delete.md."""
    return GraphRequest("DELETE", f"{_qr_path(user)}/{kind}")


def qr_code_delete(client: GraphClient, user: str, kind: str) -> None:
    """Delete a standard/temporary code; the PIN stays — [G1] api/qrcode-delete.md."""
    client.request(qr_code_delete_request(user, kind))


def qr_pin_reset_request(user: str, *, pin: str) -> GraphRequest:
    """PATCH the PIN with the documented qrPin body and its `code` — [G1] api/qrpin-update.md.

    The pages describe the new PIN as generated by Entra, so the PIN in force is the one the
    ANSWER carries (docs/graph-contract.md §1.7), whether Graph kept `pin` or generated another.
    """
    return GraphRequest(
        "PATCH",
        f"{_qr_path(user)}/pin",
        body={"@odata.type": "#microsoft.graph.qrPin", "code": pin},
    )


def qr_pin_reset(client: GraphClient, user: str, *, pin: str) -> QrPin:
    """Reset a user's PIN; the result holds the PIN now in force — [G1] api/qrpin-update.md."""
    answer = QrPin.from_graph(client.request(qr_pin_reset_request(user, pin=pin)).body)
    if answer is None:
        raise ValueError("Microsoft Graph answered a PIN reset without the new PIN")
    return answer


# -- QR policy (docs/graph-contract.md §2)
# -------------------------------------------------------------

QR_POLICY_PATH = (
    "/policies/authenticationMethodsPolicy/authenticationMethodConfigurations/qrCodePin"
)


def qr_policy_get(client: GraphClient) -> QrPolicy:
    """The tenant's QR policy — [G1] api/qrcodepinauthenticationmethodconfiguration-get.md."""
    return QrPolicy.from_graph(client.get(QR_POLICY_PATH))


def qr_policy_update(client: GraphClient, **changes: Any) -> GraphResponse:
    """PATCH the QR policy (Graph names, e.g. pinLength=10) — [G1]
    api/qrcodepinauthenticationmethodconfiguration-update.md. v1.0 answers 200 with the object,
    beta and Entra's how-to 204 (docs/graph-contract.md §2): the caller reads the policy again
    rather than trusting either body (v1.0's example leaves includeTargets out)."""
    body = {"@odata.type": "#microsoft.graph.qrCodePinAuthenticationMethodConfiguration", **changes}
    return client.request(GraphRequest("PATCH", QR_POLICY_PATH, body=body))


# -- phone methods (docs/graph-contract.md §3)
# ---------------------------------------------------------


def _phone_path(user: str, method_id: str | None = None) -> str:
    path = f"/users/{_seg(user)}/authentication/phoneMethods"
    return f"{path}/{method_id}" if method_id else path


def phone_method_list_request(user: str) -> GraphRequest:
    """GET a user's phone methods — [G1] api/authentication-list-phonemethods.md."""
    return GraphRequest("GET", _phone_path(user))


def phone_method_list(client: GraphClient, user: str) -> list[PhoneMethod]:
    """A user's phone methods (≤3) — [G1] api/authentication-list-phonemethods.md."""
    return [
        PhoneMethod.from_graph(item) for item in client.iter_values(phone_method_list_request(user))
    ]


def phone_method_create_request(user: str, phone_type: str, phone_number: str) -> GraphRequest:
    """POST a phone method — [G1] api/authentication-post-phonemethods.md."""
    body = {"phoneNumber": phone_number, "phoneType": phone_type}
    return GraphRequest("POST", _phone_path(user), body=body)


def phone_method_create(
    client: GraphClient, user: str, phone_type: str, phone_number: str
) -> PhoneMethod:
    """Add a phone ('+CC NUMBER[xEXT]') — [G1] api/authentication-post-phonemethods.md."""
    body = client.request(phone_method_create_request(user, phone_type, phone_number)).body
    return PhoneMethod.from_graph(body)


def phone_method_update_request(user: str, phone_type: str, phone_number: str) -> GraphRequest:
    """PATCH a phone method's number — [G1] api/phoneauthenticationmethod-update.md."""
    body = {"phoneNumber": phone_number, "phoneType": phone_type}
    return GraphRequest("PATCH", _phone_path(user, PHONE_METHOD_IDS[phone_type]), body=body)


def phone_method_update(client: GraphClient, user: str, phone_type: str, phone_number: str) -> None:
    """Change a phone number (204) — [G1] api/phoneauthenticationmethod-update.md."""
    client.request(phone_method_update_request(user, phone_type, phone_number))


def phone_method_delete_request(user: str, phone_type: str) -> GraphRequest:
    """DELETE a phone method — [G1] api/phoneauthenticationmethod-delete.md."""
    return GraphRequest("DELETE", _phone_path(user, PHONE_METHOD_IDS[phone_type]))


def phone_method_delete(client: GraphClient, user: str, phone_type: str) -> None:
    """Remove a phone method — [G1] api/phoneauthenticationmethod-delete.md."""
    client.request(phone_method_delete_request(user, phone_type))


# -- sign-in preferences (the default MFA method) ---------------------------------------------


def sign_in_preferences_get_request(user: str) -> GraphRequest:
    """GET the default MFA method (beta only) — [Gb] api/authentication-get-signinpreferences.md."""
    path = f"/users/{_seg(user)}/authentication/signInPreferences"
    return GraphRequest("GET", path, api_version="beta")


def sign_in_preferences_get(client: GraphClient, user: str) -> SignInPreferences:
    """Default MFA method (beta only) — [Gb] api/authentication-get-signinpreferences.md."""
    return SignInPreferences.from_graph(client.request(sign_in_preferences_get_request(user)).body)


# -- reports ------------------------------------------------------------------------------------

REGISTRATION_DETAILS_PATH = "/reports/authenticationMethods/userRegistrationDetails"
REGISTRATION_DETAILS_SELECT = (
    "id,userPrincipalName,userType,isAdmin,isMfaRegistered,methodsRegistered"
)


def user_registration_details_list(
    client: GraphClient, *, filter: str | None = None, top: int = 999
) -> Iterator[UserRegistrationDetails]:
    """Every row of the registration report, paged — [G1]
    api/authenticationmethodsroot-list-userregistrationdetails.md (AuditLog.Read.All).

    The report has its own throttle, 5 requests per 10 s per app and tenant
    (docs/graph-contract.md §5): pages of 999 (the most Graph gives) keep the number of requests
    low, and the client waits out a 429's Retry-After before reading the page again.
    """
    req = GraphRequest(
        "GET", url(REGISTRATION_DETAILS_PATH, select=REGISTRATION_DETAILS_SELECT, filter=filter,
                   top=top)
    )  # fmt: skip
    return (UserRegistrationDetails.from_graph(item) for item in client.iter_values(req))
