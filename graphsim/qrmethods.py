"""QR code + PIN authentication methods (docs/graph-contract.md §1, §9).

Routes, relative to the version root (the app rewrites /me/... to /users/{caller}/...):
  PUT/GET/DELETE  /users/{user}/authentication/qrCodePinMethod
  PATCH/GET/DELETE /users/{user}/authentication/qrCodePinMethod/{standardQRCode|temporaryQRCode}
  PATCH           /users/{user}/authentication/qrCodePinMethod/pin             (admin PIN reset)
  PATCH           /users/{user}/authentication/qrCodePinMethod/pin/updatePin   (user's own change)

The domain rules (PIN, lifetimes, dates, the QR payload and its SVG) are plain functions at the top,
the HTTP handlers below them. Dates and small helpers here are shared with phone.py and reports.py.

Secrets are write-once (docs/graph-contract.md §9.1): the image and the PIN are returned only by the
request that created them. The simulator keeps the PIN (so updatePin can check `currentPin`), never
the QR secret.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import qrcode
import qrcode.constants

from graphsim import authz
from graphsim.errors import GraphError, bad_request, conflict, not_found
from graphsim.http import Router, SimRequest, SimResponse, json_response, no_content
from graphsim.model import (
    AUTHENTICATION_ADMINISTRATOR,
    GLOBAL_ADMINISTRATOR,
    GLOBAL_READER,
    PRIVILEGED_AUTHENTICATION_ADMINISTRATOR,
    QrCode,
    QrMethod,
    QrPin,
    QrPolicy,
    Tenant,
    User,
    new_id,
)

# --------------------------------------------------------------------------------------------
# Shared helpers (also used by phone.py and reports.py)
# --------------------------------------------------------------------------------------------

NEVER_USED = "0001-01-01T00:00:00Z"

# Roles that let a delegated caller act on another user's methods (docs/graph-contract.md §1.9, §3).
# Global Administrator is added because it holds every Entra permission; the contract's tables name
# only the least-privileged roles.
WRITE_ROLES = frozenset(
    {AUTHENTICATION_ADMINISTRATOR, PRIVILEGED_AUTHENTICATION_ADMINISTRATOR, GLOBAL_ADMINISTRATOR}
)
READ_ROLES = WRITE_ROLES | {GLOBAL_READER}


def format_datetime(value: datetime | None) -> str:
    """ISO 8601 in UTC with `Z`, seven fractional digits when there are any (as Graph writes)."""
    if value is None:
        return NEVER_USED
    value = value.astimezone(UTC)
    if value.microsecond:
        return value.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


_ISO_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?(Z|[+-]\d{2}:\d{2})$", re.IGNORECASE
)


def parse_datetime(value: Any, name: str) -> datetime:
    """An Edm.DateTimeOffset from JSON, or a 400.

    OData's DateTimeOffset needs an offset (`Z` or `±hh:mm`); a value without one is rejected as
    malformed. Up to seven fractional digits are accepted (Graph writes seven).
    """
    if not isinstance(value, str) or not _ISO_RE.match(value):
        raise bad_request(f"Invalid value for '{name}': expected an ISO 8601 date with an offset.")
    text = value.upper().replace("Z", "+00:00")
    # Python's parser takes at most six fractional digits: drop the seventh (100 ns).
    text = re.sub(r"(\.\d{6})\d", r"\1", text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise bad_request(f"Invalid value for '{name}': {value!r} is not a date.") from exc
    return parsed.astimezone(UTC)


def target_user(req: SimRequest) -> User:
    """The `{user}` of the path (object id or UPN), or Graph's directory 404."""
    key = req.params["user"]
    user = req.tenant.user_by_id_or_upn(key)
    if user is None:
        raise not_found(
            f"Resource '{key}' does not exist or one of its queried reference-property objects "
            "are not present.",
            code="Request_ResourceNotFound",
        )
    return user


def authorize_on_user(
    req: SimRequest,
    *,
    application: Iterable[str],
    delegated_others: Iterable[str],
    delegated_self: Iterable[str] = (),
    roles: Iterable[str],
) -> User:
    """Scope check (403), then the target user (404), then the admin role over them (403).

    Graph checks the token's permissions before it looks the user up, so a token without the scope
    gets 403 even for a user that does not exist.
    """
    delegated = set(delegated_others) | set(delegated_self)
    authz.require_permission(req, application=application, delegated=delegated)
    user = target_user(req)
    if req.principal.kind == "delegated" and req.principal.user_id != user.id:
        # The self-only scopes (`UserAuthenticationMethod.Read`, ...) do not reach other users.
        authz.require_permission(req, application=application, delegated=delegated_others)
    authz.require_role_over_user(req, user, roles)
    return user


def touch_registration(tenant: Tenant, user_id: str, now: datetime) -> None:
    """Remember when the user's registered methods changed (userRegistrationDetails)."""
    tenant.registration_updated[user_id] = now


# --------------------------------------------------------------------------------------------
# Domain rules
# --------------------------------------------------------------------------------------------

PIN_MIN_LENGTH = 8
PIN_MAX_LENGTH = 20
STANDARD_MAX_LIFETIME = timedelta(days=395)
TEMPORARY_MIN_LIFETIME = timedelta(hours=1)
TEMPORARY_MAX_LIFETIME = timedelta(hours=12)

# Payload of the QR symbol (docs/graph-contract.md §1.1 qrCodeImageDetails.rawContent).
QR_PAYLOAD_PREFIX = "ms-qrpin:v1"


class RuleViolation(ValueError):
    """A domain rule was broken; the handlers answer 400 badRequest with its message."""


def _has_repeated_group(pin: str) -> bool:
    """Whether the PIN repeats a 2- or 3-digit group back to back.

    The Entra doc says a PIN must not "repeat a 2-3 digit group" and gives 121212, 123123 and
    342342 (docs/graph-contract.md §1.2). All three examples are six digits: a 2-digit group three
    times in a row (12 12 12) or a 3-digit group twice in a row (123 123, 342 342). We read the rule
    exactly so: the PIN is rejected when any six consecutive digits have period 2 or period 3.
    Shorter repeats (1212, 4545) are allowed, since the doc's examples never show them. A run of one
    digit (111111) has both periods and is rejected too.
    """
    for start in range(len(pin) - 5):
        window = pin[start : start + 6]
        if window[0:2] * 3 == window or window[0:3] * 2 == window:
            return True
    return False


def pin_problem(pin: Any, min_length: int) -> str | None:
    """Why `pin` breaks the PIN rules of docs/graph-contract.md §1.2, or None when it is valid.

    Digits 0-9 only, 8-20 long and at least the policy's `pinLength`, no 0123456789 or 9876543210,
    no repeated 2-3 digit group.
    """
    if not isinstance(pin, str):
        return "The PIN must be a string of digits."
    # str.isdigit() accepts other scripts' digits ("٣"); the rule is ASCII 0-9 only.
    if not re.fullmatch(r"[0-9]+", pin):
        return "The PIN must contain only the digits 0-9."
    if not PIN_MIN_LENGTH <= len(pin) <= PIN_MAX_LENGTH:
        return f"The PIN must be {PIN_MIN_LENGTH} to {PIN_MAX_LENGTH} digits long."
    if len(pin) < min_length:
        return f"The PIN must be at least {min_length} digits long (tenant policy)."
    if "0123456789" in pin or "9876543210" in pin:
        return "The PIN must not contain the sequence 0123456789 or 9876543210."
    if _has_repeated_group(pin):
        return "The PIN must not repeat a group of 2 or 3 digits."
    return None


def validate_pin(pin: Any, min_length: int) -> str:
    """The PIN, or RuleViolation("Invalid PIN: ...")."""
    problem = pin_problem(pin, min_length)
    if problem:
        raise RuleViolation(f"Invalid PIN. {problem}")
    return pin


def generate_pin(length: int) -> str:
    """A random PIN of `length` digits that obeys the PIN rules."""
    while True:
        pin = "".join(secrets.choice("0123456789") for _ in range(length))
        if pin_problem(pin, length) is None:
            return pin


def check_standard_lifetime(start: datetime, expire: datetime) -> None:
    """A standard code lives after its start and at most 395 days (docs/graph-contract.md §1.1,
    §9.3)."""
    if expire <= start:
        raise RuleViolation("expireDateTime must be later than startDateTime.")
    if expire - start > STANDARD_MAX_LIFETIME:
        raise RuleViolation(
            "A standard QR code can be valid for at most 395 days after its startDateTime."
        )


def check_temporary_lifetime(start: datetime, expire: datetime) -> None:
    """A temporary code lives 1 to 12 hours (docs/graph-contract.md §1.1, §1.6)."""
    if expire <= start:
        raise RuleViolation("expireDateTime must be later than startDateTime.")
    if expire - start < TEMPORARY_MIN_LIFETIME:
        raise RuleViolation("A temporary QR code must be valid for at least 1 hour.")
    if expire - start > TEMPORARY_MAX_LIFETIME:
        raise RuleViolation("A temporary QR code can be valid for at most 12 hours.")


def code_is_active(code: QrCode | None, now: datetime) -> bool:
    """A code counts as active until it expires — also before its startDateTime.

    A code scheduled for later still occupies its slot: Graph allows one standard and one
    temporary code at a time (docs/graph-contract.md §9.2), and a future code is not gone.
    """
    return code is not None and code.expire_date_time > now


def method_is_expired(method: QrMethod, now: datetime) -> bool:
    """Whether a new method may replace this one with PUT (docs/graph-contract.md §1.3).

    DOC-GAP (docs/graph-contract.md §1.3: "the existing method must be expired or deleted first"):
    we read "expired" as "it holds at least one QR code and every code it holds has expired". A
    method whose standard code was deleted and that has no temporary code is still an active method
    (the Entra concept doc lists "Deleted / Doesn't exist" among the states of an active method; the
    lost-badge flow PATCHes a new standard code onto it), so PUT answers 409 for it.
    """
    codes = [code for code in (method.standard, method.temporary) if code is not None]
    return bool(codes) and all(not code_is_active(code, now) for code in codes)


def qr_payload(upn: str, code_id: str, secret: str) -> str:
    """What the QR symbol encodes: `ms-qrpin:v1|{UPN}|{qrCodeId}|{opaque secret}`."""
    return f"{QR_PAYLOAD_PREFIX}|{upn}|{code_id}|{secret}"


SVG_MODULE_PX = 8
SVG_BORDER_MODULES = 4


def render_qr_svg(payload: str) -> tuple[str, int]:
    """An SVG document drawing the QR symbol of `payload` (error correction L), and its version.

    The SVG follows the shape of the doc's decoded example (`<svg version="1.1"
    baseProfile="full" shape-rendering="crispEdges" ...>`, a white background and one black
    path): one `M x y h w v 8 h -w z` rectangle per horizontal run of dark modules, 8 px per
    module, with the standard 4-module quiet zone.
    """
    symbol = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_L, border=SVG_BORDER_MODULES
    )
    symbol.add_data(payload.encode("utf-8"))
    symbol.make(fit=True)
    matrix = symbol.get_matrix()
    size = len(matrix) * SVG_MODULE_PX
    runs: list[str] = []
    for y, row in enumerate(matrix):
        x = 0
        while x < len(row):
            if not row[x]:
                x += 1
                continue
            start = x
            while x < len(row) and row[x]:
                x += 1
            width = (x - start) * SVG_MODULE_PX
            runs.append(
                f"M{start * SVG_MODULE_PX} {y * SVG_MODULE_PX}h{width}v{SVG_MODULE_PX}h-{width}z"
            )
    svg = (
        f'<svg version="1.1" baseProfile="full" shape-rendering="crispEdges" '
        f'width="{size}" height="{size}" viewBox="0 0 {size} {size}" '
        f'xmlns="http://www.w3.org/2000/svg">'
        f'<rect width="100%" height="100%" fill="#fff"/>'
        f'<path d="{"".join(runs)}"/></svg>'
    )
    return svg, symbol.version


def user_in_policy(tenant: Tenant, user: User, policy: QrPolicy) -> bool:
    """Whether the QR policy targets the user: included (all_users, a group or the user) and not
    excluded. Group membership is transitive through nested groups."""

    def member_of(group_id: str, seen: frozenset[str] = frozenset()) -> bool:
        if group_id == "all_users":
            return True
        group = tenant.groups.get(group_id)
        if group is None or group_id in seen:
            return False
        if user.id in group.member_ids:
            return True
        return any(
            member_of(member, seen | {group_id})
            for member in group.member_ids
            if member in tenant.groups
        )

    def matches(target: dict) -> bool:
        if target.get("targetType") == "user":
            return str(target.get("id", "")).lower() == user.id.lower()
        return member_of(str(target.get("id", "")))

    return any(matches(t) for t in policy.include_targets) and not any(
        matches(t) for t in policy.exclude_targets
    )


def policy_problem(tenant: Tenant, user: User) -> str | None:
    """Why the user may not be given a QR code or PIN now, or None.

    DOC-GAP (docs/graph-contract.md §2 says the method is disabled by default and every enabled user
    must be licensed, but not what Graph answers when that is not so): the simulator refuses to
    issue QR codes and PINs with 400 badRequest (the contract's convention for undocumented rule
    errors, §1.2) when the policy is disabled, does not target the user, or the user is not
    licensed. Reads and deletes still work, so an admin can clean up after the policy is switched
    off.
    """
    policy = tenant.qr_policy
    if policy.state != "enabled":
        return "The QR code authentication method is disabled by the authentication methods policy."
    if not user_in_policy(tenant, user, policy):
        return "The user is not enabled for the QR code authentication method by policy."
    if not user.licensed:
        return "The user does not have a license that allows the QR code authentication method."
    return None


# --------------------------------------------------------------------------------------------
# Shapes
# --------------------------------------------------------------------------------------------


def _image_json(image: dict[str, Any] | None) -> dict[str, Any] | None:
    if image is None:
        return None
    return {"@odata.type": "#microsoft.graph.qrCodeImageDetails", **image}


def qr_code_json(code: QrCode, image: dict[str, Any] | None = None) -> dict[str, Any]:
    """A qrCode as the create/update/get examples show it (`image` only on create)."""
    return {
        "@odata.type": "#microsoft.graph.qrCode",
        "id": code.id,
        "expireDateTime": format_datetime(code.expire_date_time),
        "startDateTime": format_datetime(code.start_date_time),
        "createdDateTime": format_datetime(code.created_date_time),
        "lastUsedDateTime": format_datetime(code.last_used_date_time),
        "image": _image_json(image),
    }


def _qr_code_inline_json(code: QrCode | None) -> dict[str, Any] | None:
    """A qrCode inside GET method (docs/graph-examples/qrcodepin-get.response.json: no
    @odata.type)."""
    if code is None:
        return None
    return {
        "id": code.id,
        "image": None,
        "startDateTime": format_datetime(code.start_date_time),
        "expireDateTime": format_datetime(code.expire_date_time),
        "createdDateTime": format_datetime(code.created_date_time),
        "lastUsedDateTime": format_datetime(code.last_used_date_time),
    }


def method_get_json(method: QrMethod, api_version: str) -> dict[str, Any]:
    """GET method: every image null, pin.code null on v1.0 and "" on beta (docs/graph-contract.md
    §1.1)."""
    body: dict[str, Any] = {
        "@odata.type": "#microsoft.graph.qrCodePinAuthenticationMethod",
        "id": method.id,
    }
    if api_version == "beta":
        body["lastUsedDateTime"] = format_datetime(method.last_used_date_time)
    else:
        body["createdDateTime"] = format_datetime(method.created_date_time)
    body["standardQRCode"] = _qr_code_inline_json(method.standard)
    body["temporaryQRCode"] = _qr_code_inline_json(method.temporary)
    body["pin"] = {
        "code": "" if api_version == "beta" else None,
        "forceChangePinNextSignIn": method.pin.force_change_pin_next_sign_in,
        "createdDateTime": format_datetime(method.pin.created_date_time),
        "updatedDateTime": format_datetime(method.pin.updated_date_time),
    }
    return body


def new_code_with_image(
    user: User, start: datetime, expire: datetime, now: datetime
) -> tuple[QrCode, dict[str, Any]]:
    """A new qrCode and its one-time image (the secret goes into the image and is forgotten)."""
    code = QrCode(
        id=new_id(), start_date_time=start, expire_date_time=expire, created_date_time=now
    )
    secret = secrets.token_urlsafe(32)  # 43 url-safe characters
    payload = qr_payload(user.user_principal_name, code.id, secret)
    svg, version = render_qr_svg(payload)
    image = {
        "binaryValue": base64.b64encode(svg.encode("utf-8")).decode("ascii"),
        "version": version,
        "errorCorrectionLevel": "l",
        "rawContent": base64.b64encode(payload.encode("utf-8")).decode("ascii"),
    }
    return code, image


# --------------------------------------------------------------------------------------------
# Permissions (docs/graph-contract.md §1.9: the simulator accepts any listed scope)
# --------------------------------------------------------------------------------------------

_READ_APP = (
    "UserAuthMethod-QR.Read.All",
    "UserAuthenticationMethod.Read.All",
    "UserAuthMethod-QR.ReadWrite.All",
    "UserAuthenticationMethod.ReadWrite.All",
)
_READ_DELEGATED_SELF = (
    "UserAuthenticationMethod.Read",
    "UserAuthMethod-QR.Read",
    "UserAuthenticationMethod.ReadWrite",
    "UserAuthMethod-QR.ReadWrite",
)
_WRITE_APP = ("UserAuthenticationMethod.ReadWrite.All", "UserAuthMethod-QR.ReadWrite.All")
_WRITE_DELEGATED_SELF = ("UserAuthenticationMethod.ReadWrite", "UserAuthMethod-QR.ReadWrite")


def _authorize_read(req: SimRequest) -> User:
    return authorize_on_user(
        req,
        application=_READ_APP,
        delegated_others=_READ_APP,
        delegated_self=_READ_DELEGATED_SELF,
        roles=READ_ROLES,
    )


def _authorize_write(req: SimRequest) -> User:
    user = authorize_on_user(
        req,
        application=_WRITE_APP,
        delegated_others=_WRITE_APP,
        delegated_self=_WRITE_DELEGATED_SELF,
        roles=WRITE_ROLES,
    )
    authz.require_privileged_for_role_assignable_member(req, user)
    return user


# --------------------------------------------------------------------------------------------
# Request bodies
# --------------------------------------------------------------------------------------------


def _check_keys(body: dict[str, Any], allowed: set[str], odata_type: str, where: str) -> None:
    """Reject unknown or read-only properties, and a wrong @odata.type."""
    unknown = sorted(set(body) - allowed - {"@odata.type"})
    if unknown:
        raise bad_request(f"Property '{unknown[0]}' is not allowed in {where}.")
    if "@odata.type" in body and body["@odata.type"] != odata_type:
        raise bad_request(f"Invalid @odata.type in {where}: expected '{odata_type}'.")


def _rule[T](func: Callable[..., T], *args: Any) -> T:
    """Run a domain rule; its RuleViolation becomes 400 badRequest."""
    try:
        return func(*args)
    except RuleViolation as exc:
        raise bad_request(str(exc)) from exc


def _denied(message: str) -> GraphError:
    return GraphError(403, "Authorization_RequestDenied", message)


def _no_method(user: User) -> GraphError:
    return not_found(
        f"The user '{user.id}' has no QR code + PIN authentication method.", code="itemNotFound"
    )


def _undocumented_refusal(req: SimRequest, message: str, *, default: int = 409) -> GraphError:
    """An "it already exists" refusal whose status Graph does not document (§1.3, §1.6).

    The config switch `undocumented_conflict_status` picks the status: 409 (the default) keeps each
    case's own default (409 for the method, 400 for the temporary code, as before); 400 answers
    every such case with 400 badRequest, so the product must classify from Graph's state.
    """
    status = getattr(req.config, "undocumented_conflict_status", 409)
    if status == 400 or default == 400:
        return bad_request(message)
    return conflict(message)


def _kind(req: SimRequest) -> str:
    """`standardQRCode` | `temporaryQRCode` (path segments match case-insensitively)."""
    kind = req.params["kind"].lower()
    if kind == "standardqrcode":
        return "standard"
    if kind == "temporaryqrcode":
        return "temporary"
    raise GraphError(
        400, "BadRequest", f"Resource not found for the segment '{req.params['kind']}'."
    )


# --------------------------------------------------------------------------------------------
# Handlers: the method
# --------------------------------------------------------------------------------------------


def put_method(req: SimRequest) -> SimResponse:
    """PUT /users/{user}/authentication/qrCodePinMethod — create (docs/graph-contract.md §1.3)."""
    user = _authorize_write(req)
    body = req.json()
    _check_keys(
        body,
        {"standardQRCode", "pin"},
        "#microsoft.graph.qrCodePinAuthenticationMethod",
        "a qrCodePinAuthenticationMethod",
    )
    standard = body.get("standardQRCode")
    if not isinstance(standard, dict):
        raise bad_request("standardQRCode with startDateTime and expireDateTime is required.")
    _check_keys(
        standard, {"startDateTime", "expireDateTime"}, "#microsoft.graph.qrCode", "standardQRCode"
    )
    # v1.0 and current beta: both dates are required (docs/graph-contract.md §1.3, §10).
    for name in ("startDateTime", "expireDateTime"):
        if standard.get(name) is None:
            raise bad_request(f"standardQRCode.{name} is required.")
    start = parse_datetime(standard["startDateTime"], "standardQRCode.startDateTime")
    expire = parse_datetime(standard["expireDateTime"], "standardQRCode.expireDateTime")
    _rule(check_standard_lifetime, start, expire)

    pin_body = body.get("pin")
    if pin_body is not None and not isinstance(pin_body, dict):
        raise bad_request("pin must be a qrPin object.")
    pin_body = pin_body or {}
    _check_keys(pin_body, {"code"}, "#microsoft.graph.qrPin", "pin")

    with req.tenant.lock:
        policy = req.tenant.qr_policy
        # A supplied PIN is validated as given: only an omitted (or null) code is generated
        # (docs/graph-contract.md §1.3 "omit → generated"); "" is not a PIN and gets 400.
        code = pin_body.get("code")
        pin = generate_pin(policy.pin_length) if code is None else code
        _rule(validate_pin, pin, policy.pin_length)
        problem = policy_problem(req.tenant, user)
        if problem:
            raise bad_request(problem)
        existing = req.tenant.qr_methods.get(user.id)
        if existing is not None and not method_is_expired(existing, req.now):
            # DOC-GAP (docs/graph-contract.md §1.3): the error is undocumented; the contract
            # recommends 409, the config switch `undocumented_conflict_status` turns it into 400.
            raise _undocumented_refusal(
                req,
                "The user already has an active QR code + PIN authentication method. Delete it, "
                "or let it expire, before creating a new one.",
            )
        standard_code, image = new_code_with_image(user, start, expire, req.now)
        qr_pin = QrPin(
            id=new_id(),
            code=pin,
            force_change_pin_next_sign_in=True,
            created_date_time=req.now,
            updated_date_time=req.now,
        )
        method = QrMethod(
            id=new_id(),
            created_date_time=req.now,
            standard=standard_code,
            temporary=None,
            pin=qr_pin,
        )
        req.tenant.qr_methods[user.id] = method
        creations = req.tenant.qr_method_creations
        creations[user.id] = creations.get(user.id, 0) + 1
        touch_registration(req.tenant, user.id, req.now)

    body_out = {
        "@odata.type": "#microsoft.graph.qrCodePinAuthenticationMethod",
        "id": method.id,
        "isUsable": False,
        "methodUsabilityReason": None,
        "standardQRCode": qr_code_json(standard_code, image),
        "temporaryQRCode": None,
        "pin": {
            "@odata.type": "#microsoft.graph.qrPin",
            "id": qr_pin.id,
            "code": qr_pin.code,
            "forceChangePinNextSignIn": True,
            "createdDateTime": format_datetime(qr_pin.created_date_time),
            "updatedDateTime": format_datetime(qr_pin.updated_date_time),
        },
    }
    return json_response(body_out, 201, is_write=True)


def get_method(req: SimRequest) -> SimResponse:
    """GET …/qrCodePinMethod (docs/graph-contract.md §1.4).

    Beta answers 404 when the user has none; v1.0 does not say. DOC-GAP: 404 on both.
    """
    user = _authorize_read(req)
    method = req.tenant.qr_methods.get(user.id)
    if method is None:
        raise _no_method(user)
    return json_response(method_get_json(method, req.api_version))


def delete_method(req: SimRequest) -> SimResponse:
    """DELETE …/qrCodePinMethod: both codes and the PIN go (docs/graph-contract.md §1.5).

    The beta doc file is named authentication-delete-qrcodepinmethod.md but its HTTP path is the
    same as v1.0's, so one route serves both versions.
    """
    user = _authorize_write(req)
    with req.tenant.lock:
        if req.tenant.qr_methods.pop(user.id, None) is None:
            raise _no_method(user)
        touch_registration(req.tenant, user.id, req.now)
    return no_content()


# --------------------------------------------------------------------------------------------
# Handlers: standard and temporary codes (docs/graph-contract.md §1.6)
# --------------------------------------------------------------------------------------------


def patch_code(req: SimRequest) -> SimResponse:
    """PATCH …/{standardQRCode|temporaryQRCode}: create (201 + image) or update standard (200)."""
    kind = _kind(req)
    user = _authorize_write(req)
    body = req.json()
    _check_keys(body, {"startDateTime", "expireDateTime"}, "#microsoft.graph.qrCode", "a qrCode")
    with req.tenant.lock:
        method = req.tenant.qr_methods.get(user.id)
        if method is None:
            raise _no_method(user)
        current = method.standard if kind == "standard" else method.temporary
        if code_is_active(current, req.now):
            if kind == "temporary":
                # DOC-GAP (docs/graph-contract.md §1.6): Entra's how-to says this errors; the code
                # is undocumented. We answer 400 badRequest
                # (docs/graph-examples/error-docgap-qrcode-exists) whatever the config switch
                # `undocumented_conflict_status` says.
                raise _undocumented_refusal(
                    req,
                    "An active temporary QR code already exists for this user. Delete it before "
                    "creating a new one.",
                    default=400,
                )
            return _update_standard(req, method, body)
        return _create_code(req, user, method, kind, body)


def _update_standard(req: SimRequest, method: QrMethod, body: dict[str, Any]) -> SimResponse:
    """Only expireDateTime may change, within 395 days of the code's start (200, image null)."""
    code = method.standard
    assert code is not None
    if "startDateTime" in body:
        start = parse_datetime(body["startDateTime"], "startDateTime")
        if start != code.start_date_time:
            raise bad_request("startDateTime of an existing QR code cannot be changed.")
    if body.get("expireDateTime") is None:
        raise bad_request("expireDateTime is required to update a standard QR code.")
    expire = parse_datetime(body["expireDateTime"], "expireDateTime")
    _rule(check_standard_lifetime, code.start_date_time, expire)
    code.expire_date_time = expire
    return json_response(qr_code_json(code), 200, is_write=True)


def _create_code(
    req: SimRequest, user: User, method: QrMethod, kind: str, body: dict[str, Any]
) -> SimResponse:
    # DOC-GAP: creating a code through PATCH needs both dates, as PUT does in v1.0
    # (docs/graph-contract.md §1.3).
    for name in ("startDateTime", "expireDateTime"):
        if body.get(name) is None:
            raise bad_request(f"{name} is required to create a QR code.")
    start = parse_datetime(body["startDateTime"], "startDateTime")
    expire = parse_datetime(body["expireDateTime"], "expireDateTime")
    if kind == "standard":
        _rule(check_standard_lifetime, start, expire)
    else:
        _rule(check_temporary_lifetime, start, expire)
    problem = policy_problem(req.tenant, user)
    if problem:
        raise bad_request(problem)
    code, image = new_code_with_image(user, start, expire, req.now)
    if kind == "standard":
        method.standard = code
    else:
        method.temporary = code
    touch_registration(req.tenant, user.id, req.now)
    return json_response(qr_code_json(code, image), 201, is_write=True)


def get_code(req: SimRequest) -> SimResponse:
    """GET …/{kind}: the bare qrCode, or `{"value": {...}}` when the tenant's switch says so.

    DOC-GAP (docs/graph-contract.md §1.6): the API pages wrap it in "value", the Entra how-to shows
    the bare entity. Default bare; set `tenant.qr_code_get_wrapped = True` for the doc-wrapped form.
    """
    kind = _kind(req)
    user = _authorize_read(req)
    method = req.tenant.qr_methods.get(user.id)
    if method is None:
        raise _no_method(user)
    code = method.standard if kind == "standard" else method.temporary
    if code is None:
        raise not_found(f"The user has no {req.params['kind']}.", code="itemNotFound")
    entity = qr_code_json(code)
    return json_response({"value": entity} if req.tenant.qr_code_get_wrapped else entity)


def delete_code(req: SimRequest) -> SimResponse:
    """DELETE …/{kind}: 204; the method and PIN stay (lost-badge flow, docs/graph-contract.md
    §1.6)."""
    kind = _kind(req)
    user = _authorize_write(req)
    with req.tenant.lock:
        method = req.tenant.qr_methods.get(user.id)
        if method is None:
            raise _no_method(user)
        if (method.standard if kind == "standard" else method.temporary) is None:
            raise not_found(f"The user has no {req.params['kind']}.", code="itemNotFound")
        if kind == "standard":
            method.standard = None
        else:
            method.temporary = None
        touch_registration(req.tenant, user.id, req.now)
    return no_content()


# --------------------------------------------------------------------------------------------
# Handlers: PIN (docs/graph-contract.md §1.7, §1.8)
# --------------------------------------------------------------------------------------------


def reset_pin(req: SimRequest) -> SimResponse:
    """PATCH …/qrCodePinMethod/pin: a new temporary PIN (201) — docs/graph-contract.md §1.7.

    The documented request is a qrPin with `code`; the pages describe the new PIN as generated.
    By default the simulator generates it and ignores the `code` sent; config switches make a body
    without `code` a 400 (`pin_reset_requires_code`) and make the sent `code` the new PIN after the
    PIN rules (`pin_reset_uses_code`). The answer always carries the PIN now in force.
    """
    user = _authorize_write(req)
    body = req.json()
    _check_keys(body, {"code"}, "#microsoft.graph.qrPin", "a qrPin")
    sent = body.get("code")
    if sent is not None and not isinstance(sent, str):
        raise bad_request("code must be a string.")
    if getattr(req.config, "pin_reset_requires_code", False) and not sent:
        raise bad_request("code is required to reset the PIN.")
    with req.tenant.lock:
        method = req.tenant.qr_methods.get(user.id)
        if method is None:
            raise _no_method(user)
        problem = policy_problem(req.tenant, user)
        if problem:
            raise bad_request(problem)
        min_length = req.tenant.qr_policy.pin_length
        if getattr(req.config, "pin_reset_uses_code", False) and sent:
            new_code = _rule(validate_pin, sent, min_length)
        else:
            new_code = generate_pin(min_length)
        method.pin = QrPin(
            id=new_id(),
            code=new_code,
            force_change_pin_next_sign_in=True,
            created_date_time=req.now,
            updated_date_time=req.now,
        )
        pin = method.pin
    return json_response(
        {
            "@odata.type": "#microsoft.graph.qrPin",
            "code": pin.code,
            "forceChangePinNextSignIn": True,
            "createdDateTime": format_datetime(pin.created_date_time),
            "updatedDateTime": format_datetime(pin.updated_date_time),
        },
        201,
        is_write=True,
    )


def update_own_pin(req: SimRequest) -> SimResponse:
    """PATCH …/qrCodePinMethod/pin/updatePin: the signed-in user changes their own PIN (204).

    Delegated `Directory.AccessAsUser.All` only, on the caller's own method (docs/graph-contract.md
    §1.8): an app token, or a delegated call on another user, is 403 whatever roles it holds.
    """
    if req.principal.kind != "delegated":
        raise _denied("updatePin is a delegated, self-service operation; app tokens cannot.")
    authz.require_permission(req, application=(), delegated=("Directory.AccessAsUser.All",))
    user = target_user(req)
    if user.id != req.principal.user_id:
        raise _denied("A user can change only their own PIN.")
    body = req.json()
    _check_keys(body, {"currentPin", "newPin"}, "", "updatePin")
    for name in ("currentPin", "newPin"):
        if not isinstance(body.get(name), str) or not body[name]:
            raise bad_request(f"{name} is required.")
    with req.tenant.lock:
        method = req.tenant.qr_methods.get(user.id)
        if method is None:
            raise _no_method(user)
        if not secrets.compare_digest(body["currentPin"], method.pin.code):
            raise bad_request("currentPin does not match the user's PIN.")
        new_pin = _rule(validate_pin, body["newPin"], req.tenant.qr_policy.pin_length)
        if new_pin == method.pin.code:
            # DOC-GAP: not documented; a change to the same PIN is refused like a weak PIN.
            raise bad_request("Invalid PIN. The new PIN must differ from the current PIN.")
        method.pin.code = new_pin
        method.pin.force_change_pin_next_sign_in = False
        method.pin.updated_date_time = req.now
    return no_content()


def register(router: Router) -> None:
    """Add this module's Graph routes to the router."""
    base = "/users/{user}/authentication/qrCodePinMethod"
    router.add("PUT", base, put_method)
    router.add("GET", base, get_method)
    router.add("DELETE", base, delete_method)
    # /pin routes before /{kind}: the router takes the first match, and {kind} would match "pin".
    router.add("PATCH", f"{base}/pin", reset_pin)
    router.add("PATCH", f"{base}/pin/updatePin", update_own_pin)
    kind = "/{kind:standardQRCode|temporaryQRCode}"
    router.add("PATCH", base + kind, patch_code)
    router.add("GET", base + kind, get_code)
    router.add("DELETE", base + kind, delete_code)
