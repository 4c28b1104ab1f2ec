"""The authentication methods registration report (docs/graph-contract.md §5).

  GET /reports/authenticationMethods/userRegistrationDetails        ($filter, $top, $skiptoken,
                                                                     $select, $orderby)
  GET /reports/authenticationMethods/userRegistrationDetails/{id}

Rows are computed from the live tenant, so a phone added a moment ago shows up at once (the real
report lags; the simulator does not, to keep tests deterministic).

The identity reports have their own throttle: 5 requests per 10 s per app and tenant
(docs/graph-contract.md §5). It is a sliding window on the simulator clock (`req.now`), so tests can
move time instead of sleeping, and is separate from the identity-and-access buckets in throttle.py.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from graphsim import authz
from graphsim.errors import GraphError, not_found
from graphsim.http import Router, SimRequest, SimResponse, json_response
from graphsim.model import GLOBAL_ADMINISTRATOR, GLOBAL_READER, SignInPreferences, Tenant, User
from graphsim.phone import registered_method_names
from graphsim.qrmethods import format_datetime

PATH = "/reports/authenticationMethods/userRegistrationDetails"

REPORT_LIMIT = 5
REPORT_WINDOW = timedelta(seconds=10)

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 999

_PERMISSIONS = ("AuditLog.Read.All",)
# DOC-GAP: the contract names only the permission. A delegated caller also needs a reports role;
# we accept Reports Reader, Security Reader, Security Administrator, Global Reader and Global
# Administrator (the roles Entra lets read the authentication methods activity report).
REPORTS_READER = "4a5d8f65-41da-4de4-8968-e035b65339cf"
SECURITY_READER = "5d6b6bb7-de71-4623-b4af-96380a352509"
SECURITY_ADMINISTRATOR = "194ae4cb-b126-40b2-bd5b-6091b380977d"
_ROLES = (
    REPORTS_READER,
    SECURITY_READER,
    SECURITY_ADMINISTRATOR,
    GLOBAL_READER,
    GLOBAL_ADMINISTRATOR,
)

# Methods that count as a second factor (isMfaRegistered). QR code + PIN is a single-factor method
# (Entra concept doc) and email only serves SSPR, so neither counts.
MFA_METHODS = {
    "mobilePhone",
    "alternateMobilePhone",
    "officePhone",
    "microsoftAuthenticatorPush",
    "microsoftAuthenticatorPasswordless",
    "softwareOneTimePasscode",
    "hardwareOneTimePasscode",
    "fido2",
    "windowsHelloForBusiness",
    "passKeyDeviceBound",
    "passKeyDeviceBoundAuthenticator",
    "passKeyDeviceBoundWindowsHello",
}
PASSWORDLESS_METHODS = {
    "microsoftAuthenticatorPasswordless",
    "fido2",
    "windowsHelloForBusiness",
    "passKeyDeviceBound",
    "passKeyDeviceBoundAuthenticator",
    "passKeyDeviceBoundWindowsHello",
}
BOOLEAN_FIELDS = (
    "isAdmin",
    "isSsprRegistered",
    "isSsprEnabled",
    "isSsprCapable",
    "isMfaRegistered",
    "isMfaCapable",
    "isPasswordlessCapable",
    "isSystemPreferredAuthenticationMethodEnabled",
)
STRING_FIELDS = ("userPrincipalName", "userDisplayName", "userType", "id")
COLLECTION_FIELDS = ("methodsRegistered", "systemPreferredAuthenticationMethods")


# --------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------


def system_preferred_methods(methods: list[str]) -> list[str]:
    """The strongest registered method in the system-preferred order (push > oath > sms > voice)."""
    order = [
        ("microsoftAuthenticatorPush", "push"),
        ("softwareOneTimePasscode", "oath"),
        ("hardwareOneTimePasscode", "oath"),
        ("mobilePhone", "sms"),
        ("alternateMobilePhone", "voiceAlternateMobile"),
        ("officePhone", "voiceOffice"),
    ]
    for registered, preferred in order:
        if registered in methods:
            return [preferred]
    return []


def is_admin(tenant: Tenant, user: User) -> bool:
    """Holds any directory role, tenant-wide or scoped to an administrative unit."""
    if any(user.id in role.member_ids for role in tenant.directory_roles.values()):
        return True
    return any(m.user_id == user.id for m in tenant.scoped_role_memberships.values())


def registration_row(tenant: Tenant, user: User) -> dict[str, Any]:
    """One userRegistrationDetails entity
    (docs/graph-examples/userregistrationdetails.response.json).

    methodsRegistered holds mobilePhone, alternateMobilePhone, officePhone and the tenant's other
    simulated methods. DOC-GAP: the contract's list of values (docs/graph-contract.md §5) has no QR
    code + PIN entry, so a QR method is not reported here. SSPR is not modelled: the tenant has no
    SSPR policy, so the three SSPR flags are false (as in the example, where a user with a mobile
    phone is not SSPR-registered). isMfaCapable equals isMfaRegistered (every method is allowed by
    policy).
    """
    methods = registered_method_names(tenant, user.id)
    prefs = tenant.sign_in_preferences.get(user.id) or SignInPreferences()
    mfa = bool(MFA_METHODS & set(methods))
    system_enabled = prefs.is_system_preferred_authentication_method_enabled
    updated = tenant.registration_updated.get(user.id) or user.created_date_time
    return {
        "id": user.id,
        "userPrincipalName": user.user_principal_name,
        "userDisplayName": user.display_name,
        "userType": "guest" if user.user_type.lower() == "guest" else "member",
        "isAdmin": is_admin(tenant, user),
        "isSsprRegistered": False,
        "isSsprEnabled": False,
        "isSsprCapable": False,
        "isMfaRegistered": mfa,
        "isMfaCapable": mfa,
        "isPasswordlessCapable": bool(PASSWORDLESS_METHODS & set(methods)),
        "lastUpdatedDateTime": format_datetime(updated) if updated else None,
        "methodsRegistered": methods,
        "isSystemPreferredAuthenticationMethodEnabled": system_enabled,
        "systemPreferredAuthenticationMethods": (
            system_preferred_methods(methods) if system_enabled else []
        ),
        "userPreferredMethodForSecondaryAuthentication": (
            prefs.user_preferred_method_for_secondary_authentication or "none"
        ),
    }


# --------------------------------------------------------------------------------------------
# $filter: a small parser for the documented forms, joined with `and`
# --------------------------------------------------------------------------------------------

Predicate = Callable[[dict[str, Any]], bool]


def _unsupported(message: str) -> GraphError:
    return GraphError(400, "BadRequest", f"Invalid filter clause: {message}")


def _string_literal(text: str) -> str:
    if not (len(text) >= 2 and text[0] == text[-1] == "'"):
        raise _unsupported(f"expected a quoted string, got {text!r}.")
    return text[1:-1].replace("''", "'")


_CLAUSE_EQ = re.compile(r"^(?P<field>[A-Za-z]+)\s+eq\s+(?P<value>.+)$")
_CLAUSE_STARTSWITH = re.compile(r"^startswith\(\s*(?P<field>[A-Za-z]+)\s*,\s*(?P<value>'.*')\s*\)$")
_CLAUSE_ANY = re.compile(
    r"^(?P<field>[A-Za-z]+)/any\(\s*(?P<var>[a-z]\w*)\s*:\s*(?P=var)\s+eq\s+(?P<value>'.*')\s*\)$"
)


def parse_clause(clause: str) -> Predicate:
    """One comparison of the documented kinds (docs/graph-contract.md §5), else 400."""
    clause = clause.strip()
    while clause.startswith("(") and clause.endswith(")"):
        clause = clause[1:-1].strip()
    if found := _CLAUSE_ANY.match(clause):
        field, value = found["field"], _string_literal(found["value"])
        if field not in COLLECTION_FIELDS:
            raise _unsupported(f"any() is not supported on '{field}'.")
        return lambda row: any(v.lower() == value.lower() for v in row[field])
    if found := _CLAUSE_STARTSWITH.match(clause):
        field, value = found["field"], _string_literal(found["value"])
        if field not in ("userPrincipalName", "userDisplayName"):
            raise _unsupported(f"startswith is not supported on '{field}'.")
        return lambda row: (row[field] or "").lower().startswith(value.lower())
    if found := _CLAUSE_EQ.match(clause):
        field, raw = found["field"], found["value"].strip()
        if field in BOOLEAN_FIELDS:
            if raw not in ("true", "false"):
                raise _unsupported(f"'{field}' compares with true or false.")
            wanted = raw == "true"
            return lambda row: row[field] is wanted
        if field in STRING_FIELDS or field == "userPreferredMethodForSecondaryAuthentication":
            value = _string_literal(raw)
            return lambda row: (row[field] or "").lower() == value.lower()
        if field in COLLECTION_FIELDS:
            # The older doc form: methodsRegistered eq 'email'.
            value = _string_literal(raw)
            return lambda row: any(v.lower() == value.lower() for v in row[field])
        raise _unsupported(f"filtering on '{field}' is not supported.")
    raise _unsupported(f"'{clause}' is not a supported expression.")


def parse_filter(text: str) -> Predicate:
    """Clauses joined with `and` (case-insensitive keyword, outside quotes)."""
    clauses: list[str] = []
    current = ""
    in_quote = False
    tokens = re.split(r"(\s+and\s+|')", text, flags=re.IGNORECASE)
    for token in tokens:
        if token == "'":
            in_quote = not in_quote
            current += token
        elif not in_quote and re.fullmatch(r"\s+and\s+", token, flags=re.IGNORECASE):
            clauses.append(current)
            current = ""
        else:
            current += token
    clauses.append(current)
    if any(re.search(r"\s(or|not)\s|^not\s", c, flags=re.IGNORECASE) for c in clauses):
        raise _unsupported("only 'and' is supported.")
    predicates = [parse_clause(c) for c in clauses]
    return lambda row: all(p(row) for p in predicates)


# --------------------------------------------------------------------------------------------
# Throttle
# --------------------------------------------------------------------------------------------


def report_retry_after(tenant: Tenant, app_id: str, now: datetime) -> int | None:
    """Record a report request, or return the whole seconds to wait when 5 are already in the
    last 10 s for this app (requests that get 429 are not counted)."""
    key = f"{tenant.id}:{app_id}"
    window_start = now - REPORT_WINDOW
    recent = [t for t in tenant.report_requests.get(key, []) if t > window_start]
    if len(recent) >= REPORT_LIMIT:
        tenant.report_requests[key] = recent
        wait = (recent[0] + REPORT_WINDOW - now).total_seconds()
        return max(1, math.ceil(wait))
    recent.append(now)
    tenant.report_requests[key] = recent
    return None


def _authorize(req: SimRequest) -> None:
    authz.require_permission(req, application=_PERMISSIONS, delegated=_PERMISSIONS)
    authz.require_tenant_role(req, _ROLES)
    with req.tenant.lock:
        wait = report_retry_after(req.tenant, req.principal.app_id, req.now)
    if wait is not None:
        raise GraphError(
            429,
            "TooManyRequests",
            "Please retry again later.",
            headers={"Retry-After": str(wait)},
            inner_code="429",
        )


# --------------------------------------------------------------------------------------------
# Handlers
# --------------------------------------------------------------------------------------------


def _select(row: dict[str, Any], select: str | None) -> dict[str, Any]:
    if not select:
        return row
    fields = [f.strip() for f in select.split(",") if f.strip()]
    for name in fields:
        if name not in row:
            raise GraphError(
                400,
                "BadRequest",
                f"Could not find a property named '{name}' on type "
                "'microsoft.graph.userRegistrationDetails'.",
            )
    return {name: row[name] for name in row if name in fields}


def _encode_skiptoken(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def _decode_skiptoken(token: str) -> int:
    try:
        padded = token + "=" * (-len(token) % 4)
        offset = json.loads(base64.urlsafe_b64decode(padded))["o"]
    except (ValueError, KeyError, TypeError) as exc:
        raise GraphError(400, "BadRequest", "The $skiptoken is invalid.") from exc
    if not isinstance(offset, int) or offset < 0:
        raise GraphError(400, "BadRequest", "The $skiptoken is invalid.")
    return offset


def _page_size(query: dict[str, str]) -> int:
    if "$top" not in query:
        return DEFAULT_PAGE_SIZE
    if not re.fullmatch(r"[0-9]+", query["$top"]) or not 1 <= int(query["$top"]) <= MAX_PAGE_SIZE:
        raise GraphError(400, "BadRequest", f"Invalid $top value; it must be 1-{MAX_PAGE_SIZE}.")
    return int(query["$top"])


def _order(rows: list[dict[str, Any]], orderby: str | None) -> list[dict[str, Any]]:
    """Default order: userPrincipalName. `$orderby` on userPrincipalName/userDisplayName."""
    field, descending = "userPrincipalName", False
    if orderby:
        parts = orderby.split()
        if parts[0] not in ("userPrincipalName", "userDisplayName") or len(parts) > 2:
            raise GraphError(400, "BadRequest", f"$orderby '{orderby}' is not supported.")
        if len(parts) == 2 and parts[1].lower() not in ("asc", "desc"):
            raise GraphError(400, "BadRequest", f"$orderby '{orderby}' is not supported.")
        field, descending = parts[0], len(parts) == 2 and parts[1].lower() == "desc"
    return sorted(rows, key=lambda r: ((r[field] or "").lower(), r["id"]), reverse=descending)


def list_registration_details(req: SimRequest) -> SimResponse:
    _authorize(req)
    query = req.query
    predicate = parse_filter(query["$filter"]) if query.get("$filter") else None
    top = _page_size(query)
    offset = _decode_skiptoken(query["$skiptoken"]) if "$skiptoken" in query else 0
    with req.tenant.lock:
        rows = [registration_row(req.tenant, u) for u in req.tenant.users.values()]
    if predicate is not None:
        rows = [r for r in rows if predicate(r)]
    rows = _order(rows, query.get("$orderby"))
    page = rows[offset : offset + top]
    body: dict[str, Any] = {
        "@odata.context": req.version_url(
            "/$metadata#reports/authenticationMethods/userRegistrationDetails"
        ),
        "value": [_select(r, query.get("$select")) for r in page],
    }
    if offset + top < len(rows):
        # The original options travel in the link; $skiptoken carries the position.
        params = {k: v for k, v in query.items() if k != "$skiptoken"}
        params["$top"] = str(top)
        params["$skiptoken"] = _encode_skiptoken(offset + top)
        query_string = urlencode(params, safe="$'(),:/", quote_via=quote)
        body["@odata.nextLink"] = req.version_url(PATH) + "?" + query_string
    return json_response(body)


def get_registration_details(req: SimRequest) -> SimResponse:
    _authorize(req)
    key = req.params["id"]
    user = req.tenant.users.get(key) or next(
        (u for u in req.tenant.users.values() if u.id.lower() == key.lower()), None
    )
    if user is None:
        raise not_found(f"userRegistrationDetails '{key}' was not found.", code="itemNotFound")
    with req.tenant.lock:
        row = registration_row(req.tenant, user)
    body = {
        "@odata.context": req.version_url(
            "/$metadata#reports/authenticationMethods/userRegistrationDetails/$entity"
        )
    }
    return json_response(body | _select(row, req.query.get("$select")))


def register(router: Router) -> None:
    """Add this module's Graph routes to the router."""
    router.add("GET", PATH, list_registration_details)
    router.add("GET", PATH + "/{id}", get_registration_details)
