"""Per-endpoint permission tables, built from Microsoft's permission map (docs/graph-contract.md
§11, §12; the map is [P] in "How to read the sources").

Every Graph request graphsim serves is checked here before its handler runs: the token must carry
one of the permissions Microsoft lists as granting that method and path for the token's kind
(application → `roles`, delegated → `scp`). The tables come from
`graphsim/data/permissions-map.json` (an extract of the map, with its source) plus `SUPPLEMENT`,
the endpoints graphsim serves that the map lacks, each with the page it was taken from. A request
to an endpoint with no entry in either is refused, so a product call to an endpoint nobody has
looked up fails in the test suite instead of at a customer.

Self-only permissions (`User.Read`, `UserAuthenticationMethod.ReadWrite`,
`UserAuthMethod-QR.ReadWrite` …, the `User*` permissions without `.All`) reach only the signed-in
user's own objects: they count for `/me/...` and for `/users/{the caller}/...`, never for another
user (docs/graph-contract.md "How to read the sources").
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from graphsim.errors import GraphError

if TYPE_CHECKING:
    from graphsim.http import Principal
    from graphsim.model import Tenant

MAP_FILE = Path(__file__).parent / "data" / "permissions-map.json"


@dataclass(frozen=True)
class EndpointPermissions:
    """The permissions that grant one method + path, per token kind (least and "also" together)."""

    delegated: frozenset[str]
    application: frozenset[str]


def _entry(delegated: tuple[str, ...], application: tuple[str, ...]) -> dict[str, dict]:
    """A SUPPLEMENT entry in the map's own shape."""
    return {
        "delegated": {"least": list(delegated), "also": []},
        "application": {"least": list(application), "also": []},
    }


_AU_READ = ("AdministrativeUnit.Read.All", "AdministrativeUnit.ReadWrite.All", "Directory.Read.All",
            "Directory.ReadWrite.All")  # fmt: skip
_ROLE_READ = ("RoleManagement.Read.Directory", "RoleManagement.ReadWrite.Directory",
              "Directory.Read.All", "Directory.ReadWrite.All")  # fmt: skip

# Endpoints graphsim serves that the map does not hold, keyed like the map. Each says where its
# permissions come from; none is called by Lanyard except where noted.
SUPPLEMENT: dict[str, dict[str, dict]] = {
    # Called by Lanyard (#25, beta only, so absent from the v1.0 map). source: [Gb]
    # api/authentication-get.md "Permissions to read system-preferred MFA" →
    # includes/permissions/authentication-get-permissions.md, with the include
    # rbac-authentication-methods-apis-read-others. DOC-GAP: that table names only
    # `UserAuthenticationMethod.Read` (least) and `.ReadWrite`, for application too, where no such
    # application permissions exist; read as the `.All` forms for other users and for apps, as
    # every other authentication-method read page does. The method-specific
    # `UserAuthMethod-QR/Phone.*` permissions do not grant it.
    "GET /users/{id}/authentication/signinpreferences": _entry(
        (
            "UserAuthenticationMethod.Read",
            "UserAuthenticationMethod.ReadWrite",
            "UserAuthenticationMethod.Read.All",
            "UserAuthenticationMethod.ReadWrite.All",
        ),
        ("UserAuthenticationMethod.Read.All", "UserAuthenticationMethod.ReadWrite.All"),
    ),
    # source: [Gb] api/authentication-update.md (same family; writes need ReadWrite). Not called.
    "PATCH /users/{id}/authentication/signinpreferences": _entry(
        ("UserAuthenticationMethod.ReadWrite", "UserAuthenticationMethod.ReadWrite.All"),
        ("UserAuthenticationMethod.ReadWrite.All",),
    ),
    # source: [G1] includes/permissions/user-list-transitivememberof-permissions.md (the map holds
    # only the /me form). Delegated `User.Read` reaches only the caller's own memberships.
    "GET /users/{id}/transitivememberof": _entry(
        (
            "User.Read",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
            "Group.Read.All",
            "GroupMember.Read.All",
            "User.Read.All",
        ),
        (
            "User.Read.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
            "Group.Read.All",
            "GroupMember.Read.All",
        ),
    ),
    # source: [G1] includes/permissions/user-list-memberof-permissions.md (application: "Not
    # supported").
    "GET /users/{id}/memberof": _entry(
        ("User.Read", "Directory.Read.All", "Directory.ReadWrite.All", "GroupMember.Read.All"), ()
    ),
    # The worker's own PIN change (docs/graph-contract.md §1.8): delegated only. source: [G1]
    # api/qrpin-updatepin.md.
    "PATCH /users/{id}/authentication/qrcodepinmethod/pin/updatepin": _entry(
        ("Directory.AccessAsUser.All",), ()
    ),
    # source: [G1] api/group-list.md. DOC-GAP: read from the page, not the map. Called by phone
    # pre-population to find a staging group by its displayName, and by the policy page's group
    # lookup (docs/graph-contract.md §11.1).
    "GET /groups": _entry(
        (
            "GroupMember.Read.All",
            "Group.Read.All",
            "Group.ReadWrite.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
        ),
        (
            "GroupMember.Read.All",
            "Group.Read.All",
            "Group.ReadWrite.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
        ),
    ),
    # source: [G1] api/administrativeunit-delta.md (the map lacks it: its "not_in_map"). Delta
    # needs the permissions that read the collection ([G] concepts/delta-query-overview.md
    # "Prerequisites"); the page lists AdministrativeUnit.Read.All first (docs/graph-contract.md
    # §4.6). Called by Lanyard's directory sync.
    "GET /directory/administrativeunits/delta": _entry(
        (
            "AdministrativeUnit.Read.All",
            "AdministrativeUnit.ReadWrite.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
            "Directory.AccessAsUser.All",
        ),
        _AU_READ,
    ),  # fmt: skip
    # source: [G1] api/directoryrole-list-members.md; same reads as GET /directoryroles/{id}.
    "GET /directoryroles/{id}/members": _entry(_ROLE_READ, _ROLE_READ),
    # source: [G1] api/unifiedroleassignment-get.md; the same least-privileged read as the list
    # (RoleManagement.Read.Directory, delegated and application). Not called by Lanyard.
    "GET /rolemanagement/directory/roleassignments/{id}": _entry(_ROLE_READ, _ROLE_READ),
    # source: [G1] api/administrativeunit-get-scopedrolemembers.md; same as the list.
    "GET /directory/administrativeunits/{id}/scopedrolemembers/{id}": _entry(
        _ROLE_READ, _ROLE_READ
    ),
    # source: [G1] api/qrcodepinauthenticationmethodconfiguration-delete.md is absent; graphsim's
    # v1.0 DELETE resets the policy (docs/graph-contract.md §2). DOC-GAP: the write permission.
    "DELETE /policies/authenticationmethodspolicy/authenticationmethodconfigurations/{id}": _entry(
        ("Policy.ReadWrite.AuthenticationMethod",), ("Policy.ReadWrite.AuthenticationMethod",)
    ),
}

# Permissions Graph asks for *in addition* to an endpoint's table in some cases, so they appear in
# no table: permission → where and why.
ADDITIONAL_PERMISSIONS: dict[str, str] = {
    # source: [G1] api/administrativeunit-list-members.md (docs/graph-contract.md §4.3).
    "Member.Read.Hidden": "GET /directory/administrativeunits/{id}/members of an administrative "
    "unit with hidden membership",
}

# Path segments after which Graph expects a key (object id, UPN, phone method id, role id …).
_KEYED = frozenset({
    "users", "administrativeunits", "groups", "directoryroles", "phonemethods",
    "authenticationmethodconfigurations", "userregistrationdetails", "scopedrolemembers",
    "roleassignments", "transitiveroleassignments", "roledefinitions",
    "roleassignmentscheduleinstances", "temporaryaccesspassmethods",
})  # fmt: skip
# Trailing segments that select within one endpoint's answer and share its permissions: an OData
# cast (`microsoft.graph.user` …) on a directory-object collection, bare references, and `/$count`
# (docs/graph-contract.md §4). The handler decides whether the cast is supported.
_SAME_ENDPOINT = frozenset({"$ref", "$count"})
_ALTERNATE_KEY = re.compile(r"^([a-z]+)\(.*\)$")  # directoryRoles(roleTemplateId='…')
_SELF_ONLY = re.compile(r"^User(AuthenticationMethod|AuthMethod-[A-Za-z0-9]+)?\.(Read|ReadWrite)$")


def endpoint_key(method: str, path: str) -> str:
    """`GET /users/{id}/authentication/phonemethods`: the map's key for a request path.

    `path` is relative to the version root. The beta alias `/administrativeUnits` is read as
    `/directory/administrativeUnits` (same resource, docs/graph-contract.md §4.3).
    """
    segments: list[str] = []
    previous = ""
    raws = path.strip("/").split("/")
    for position, raw in enumerate(raws):
        segment = raw.lower()
        if not segment or segment in _SAME_ENDPOINT or segment.startswith("microsoft.graph."):
            continue
        alternate = _ALTERNATE_KEY.match(segment)
        if alternate:
            segments += [alternate.group(1), "{id}"]
            previous = "{id}"
            continue
        # `/users/delta`, `/directory/administrativeUnits/delta`: the delta function, not a key.
        is_delta = segment == "delta" and position == len(raws) - 1
        keyed = previous in _KEYED and not is_delta
        segments.append("{id}" if keyed else segment)
        previous = segments[-1]
    if segments[:1] == ["administrativeunits"]:
        segments.insert(0, "directory")
    return f"{method.upper()} /" + "/".join(segments)


def _merge(raw: dict[str, dict[str, dict]]) -> dict[str, EndpointPermissions]:
    table: dict[str, EndpointPermissions] = {}
    for key, kinds in raw.items():
        table[key] = EndpointPermissions(
            delegated=frozenset(kinds["delegated"]["least"] + kinds["delegated"]["also"]),
            application=frozenset(kinds["application"]["least"] + kinds["application"]["also"]),
        )
    return table


@functools.cache
def permission_table() -> dict[str, EndpointPermissions]:
    """Microsoft's map plus SUPPLEMENT, keyed by `endpoint_key` (the map wins on a duplicate)."""
    with MAP_FILE.open(encoding="utf-8") as handle:
        calls = json.load(handle)["calls"]
    return {**_merge(SUPPLEMENT), **_merge(calls)}


def is_self_only(permission: str) -> bool:
    """A delegated permission that reaches only the signed-in user's own objects."""
    return bool(_SELF_ONLY.match(permission))


def _acts_on_self(path: str, principal: Principal, tenant: Tenant) -> bool:
    segments = path.strip("/").split("/")
    if segments[0].lower() == "me":
        return True
    if segments[0].lower() == "users" and len(segments) > 1 and principal.user_id:
        user = tenant.user_by_id_or_upn(segments[1])
        return user is not None and user.id == principal.user_id
    return False


def lookup(method: str, path: str) -> EndpointPermissions | None:
    """The table entry for a request (`/me/...` falls back to `/users/{id}/...`), or None."""
    table = permission_table()
    entry = table.get(endpoint_key(method, path))
    lowered = path.lstrip("/").lower()
    if entry is None and (lowered == "me" or lowered.startswith("me/")):
        entry = table.get(endpoint_key(method, "/users/me" + path.lstrip("/")[2:]))
    return entry


def require_endpoint_permission(
    *, method: str, path: str, principal: Principal, tenant: Tenant
) -> None:
    """403 unless the token carries a permission Microsoft lists for this method and path.

    `path` is the request path relative to the version root, before `/me` is rewritten.
    """
    entry = lookup(method, path)
    if entry is None:
        # Not in Microsoft's map nor in SUPPLEMENT: nobody has checked what Graph asks for here.
        raise GraphError(
            403,
            "Authorization_RequestDenied",
            f"graphsim has no permission table entry for {endpoint_key(method, path)}; add it "
            "from Microsoft's permission map (graphsim/permissions.py).",
        )
    if principal.kind == "app":
        granted, allowed = principal.roles, entry.application
    else:
        granted, allowed = principal.scopes, entry.delegated
        if not _acts_on_self(path, principal, tenant):
            allowed = frozenset(p for p in allowed if not is_self_only(p))
    if not granted & allowed:
        raise GraphError(
            403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
        )
