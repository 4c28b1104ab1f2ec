"""Phone authentication methods, the list of all methods, and sign-in preferences
(docs/graph-contract.md §3).

Routes, relative to the version root:
  GET/POST          /users/{user}/authentication/phoneMethods
  GET/PATCH/DELETE  /users/{user}/authentication/phoneMethods/{methodId}
  POST              /users/{user}/authentication/phoneMethods/{methodId}/enableSmsSignIn
  POST              /users/{user}/authentication/phoneMethods/{methodId}/disableSmsSignIn
  GET               /users/{user}/authentication/methods
  GET/PATCH (beta)  /users/{user}/authentication/signInPreferences

Rule violations have undocumented error codes; the contract recommends 400 badRequest with a clear
message (DOC-GAP, docs/graph-contract.md §3), which is what every rule here answers.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from graphsim import authz
from graphsim.errors import bad_request, not_found
from graphsim.http import Router, SimRequest, SimResponse, json_response, no_content
from graphsim.model import (
    GLOBAL_ADMINISTRATOR,
    PHONE_METHOD_IDS,
    PRIVILEGED_AUTHENTICATION_ADMINISTRATOR,
    PhoneMethod,
    SignInPreferences,
    Tenant,
    User,
)
from graphsim.qrmethods import (
    READ_ROLES,
    WRITE_ROLES,
    authorize_on_user,
    format_datetime,
    touch_registration,
)

# --------------------------------------------------------------------------------------------
# Domain rules
# --------------------------------------------------------------------------------------------

PHONE_TYPES = ("mobile", "alternateMobile", "office")

# `+{country code} {number}x{extension}`, with the space, extension optional (docs/graph-contract.md
# §3). Country codes are 1-3 digits and never start with 0; the number is digits only. E.164 caps
# the country code plus number at 15 digits. Anything else (no space, dashes, brackets, a leading
# 00, letters) is rejected — Graph says non-matching numbers are rejected on create and update.
_PHONE_RE = re.compile(
    r"^\+(?P<cc>[1-9][0-9]{0,2}) (?P<number>[0-9]{4,14})(x(?P<ext>[0-9]{1,10}))?$"
)

# signInPreferences.userPreferredMethodForSecondaryAuthentication values (docs/graph-contract.md
# §3.1).
PREFERRED_METHODS = (
    "push",
    "oath",
    "voiceMobile",
    "voiceAlternateMobile",
    "voiceOffice",
    "sms",
    "unknownFutureValue",
)
# Which phone a default MFA method uses (the phone cannot be deleted while it is the default).
DEFAULT_METHOD_PHONE = {
    "sms": "mobile",
    "voiceMobile": "mobile",
    "voiceAlternateMobile": "alternateMobile",
    "voiceOffice": "office",
}
# Non-phone default methods need one of these registered (tenant.other_methods).
_DEFAULT_METHOD_NEEDS = {
    "push": {"microsoftAuthenticatorPush", "microsoftAuthenticatorPasswordless"},
    "oath": {"softwareOneTimePasscode", "hardwareOneTimePasscode", "microsoftAuthenticatorPush"},
}


def phone_number_problem(number: Any) -> str | None:
    """Why `number` is not in Graph's phone format, or None."""
    if not isinstance(number, str):
        return "phoneNumber must be a string."
    found = _PHONE_RE.match(number)
    if not found:
        return (
            f"Invalid phone number '{number}'. Expected the format '+{{country code}} "
            "{number}x{extension}', e.g. '+1 5555551234' or '+1 5555551234x123'."
        )
    if len(found["cc"]) + len(found["number"]) > 15:
        return f"Invalid phone number '{number}': more than 15 digits."
    return None


def mask_phone_number(number: str) -> str:
    """The number as an Authentication Administrator reads it.

    DOC-GAP (docs/graph-contract.md §3, §9.9: Authentication Administrators read masked numbers,
    format not documented): the country code and the space stay, every digit of the number and of
    the extension becomes "X" except the last two digits of the number: "+1 XXXXXXXX23",
    "+1 XXXXXXXX34xXXX".
    """
    found = _PHONE_RE.match(number)
    if not found:
        return re.sub(r"[0-9]", "X", number)
    national = found["number"]
    masked = f"+{found['cc']} {'X' * (len(national) - 2)}{national[-2:]}"
    if found["ext"]:
        masked += "x" + "X" * len(found["ext"])
    return masked


def sms_number_is_unique(tenant: Tenant, user_id: str, number: str) -> bool:
    """No other user signs in by SMS with the same number (enableSmsSignIn, docs/graph-contract.md
    §3)."""
    for other_id, phones in tenant.phone_methods.items():
        if other_id == user_id:
            continue
        mobile = phones.get("mobile")
        if (
            mobile is not None
            and mobile.phone_number == number
            and mobile.sms_sign_in_state in ("ready", "phoneNumberNotUnique")
        ):
            return False
    return True


def initial_sms_state(tenant: Tenant, phone_type: str) -> str:
    """smsSignInState of a new phone: only mobile can do SMS sign-in (docs/graph-contract.md §3).

    The SMS sign-in policy is not modelled beyond `tenant.sms_sign_in_allowed` (default False,
    which reproduces the examples' "notAllowedByPolicy"); when it is allowed a new mobile is
    "notEnabled" until enableSmsSignIn.
    """
    if phone_type != "mobile":
        return "notSupported"
    return "notEnabled" if tenant.sms_sign_in_allowed else "notAllowedByPolicy"


def registered_method_names(tenant: Tenant, user_id: str) -> list[str]:
    """methodsRegistered-style names for the user's phones and other methods."""
    names = {
        "mobile": "mobilePhone",
        "alternateMobile": "alternateMobilePhone",
        "office": "officePhone",
    }
    phones = tenant.phone_methods.get(user_id, {})
    result = [names[kind] for kind in PHONE_TYPES if kind in phones]
    result += [name for name in tenant.other_methods.get(user_id, []) if name not in result]
    return result


def preference_problem(tenant: Tenant, user_id: str, method: str) -> str | None:
    """Why `method` cannot be the user's default MFA method, or None."""
    if method not in PREFERRED_METHODS or method == "unknownFutureValue":
        return f"Invalid value '{method}' for userPreferredMethodForSecondaryAuthentication."
    phones = tenant.phone_methods.get(user_id, {})
    if method in DEFAULT_METHOD_PHONE:
        if DEFAULT_METHOD_PHONE[method] not in phones:
            return f"The user has no {DEFAULT_METHOD_PHONE[method]} phone for '{method}'."
        return None
    if not _DEFAULT_METHOD_NEEDS[method] & set(tenant.other_methods.get(user_id, [])):
        return f"The user has not registered a method that supports '{method}'."
    return None


# --------------------------------------------------------------------------------------------
# Shapes and permissions
# --------------------------------------------------------------------------------------------

# The per-endpoint tables (graphsim/permissions.py, from Microsoft's map) decide which of these
# grants a given path: e.g. the phone-only permissions reach phoneMethods but not signInPreferences.
_READ_APP = ("UserAuthenticationMethod.Read.All", "UserAuthenticationMethod.ReadWrite.All",
             "UserAuthMethod-Phone.Read.All", "UserAuthMethod-Phone.ReadWrite.All")  # fmt: skip
_READ_SELF = ("UserAuthenticationMethod.Read", "UserAuthenticationMethod.ReadWrite",
              "UserAuthMethod-Phone.Read", "UserAuthMethod-Phone.ReadWrite")  # fmt: skip
_WRITE_APP = ("UserAuthenticationMethod.ReadWrite.All", "UserAuthMethod-Phone.ReadWrite.All")
_WRITE_SELF = ("UserAuthenticationMethod.ReadWrite", "UserAuthMethod-Phone.ReadWrite")
# Roles that see full numbers (others holding a read role see them masked).
_UNMASKED_ROLES = {PRIVILEGED_AUTHENTICATION_ADMINISTRATOR, GLOBAL_ADMINISTRATOR}


def _authorize_read(req: SimRequest) -> User:
    return authorize_on_user(
        req,
        application=_READ_APP,
        delegated_others=_READ_APP,
        delegated_self=_READ_SELF,
        roles=READ_ROLES,
    )


def _authorize_write(req: SimRequest) -> User:
    user = authorize_on_user(
        req,
        application=_WRITE_APP,
        delegated_others=_WRITE_APP,
        delegated_self=_WRITE_SELF,
        roles=WRITE_ROLES,
    )
    authz.require_privileged_for_role_assignable_member(req, user)
    return user


def _masks_numbers(req: SimRequest, user: User) -> bool:
    """A delegated admin reading another user's phones without Privileged Authentication
    Administrator (or Global Administrator) sees masked numbers (docs/graph-contract.md §3)."""
    if req.principal.kind != "delegated" or req.principal.user_id == user.id:
        return False
    held = authz.user_role_templates_over(req.tenant, req.principal.user_id or "", user)
    return not held & _UNMASKED_ROLES


def phone_json(phone: PhoneMethod, *, masked: bool = False) -> dict[str, Any]:
    return {
        "id": phone.id,
        "phoneNumber": mask_phone_number(phone.phone_number) if masked else phone.phone_number,
        "phoneType": phone.phone_type,
        "smsSignInState": phone.sms_sign_in_state,
    }


def _context(req: SimRequest, user: User, tail: str) -> str:
    return req.version_url(f"/$metadata#users('{user.id}')/authentication/{tail}")


def _phone_for_id(req: SimRequest, user: User) -> PhoneMethod:
    """The user's phone addressed by its fixed id (case-insensitive), or 404."""
    method_id = req.params["methodId"].lower()
    for phone_type, fixed_id in PHONE_METHOD_IDS.items():
        if fixed_id == method_id:
            phone = req.tenant.phone_methods.get(user.id, {}).get(phone_type)
            if phone is not None:
                return phone
    raise not_found(
        f"The phone authentication method '{req.params['methodId']}' was not found.",
        code="itemNotFound",
    )


def _check_body_keys(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed - {"@odata.type"})
    if unknown:
        # smsSignInState and id are read-only; anything else is not a property.
        raise bad_request(f"Property '{unknown[0]}' cannot be set on a phoneAuthenticationMethod.")
    odata_type = body.get("@odata.type", "#microsoft.graph.phoneAuthenticationMethod")
    if odata_type != "#microsoft.graph.phoneAuthenticationMethod":
        raise bad_request(
            "Invalid @odata.type: expected '#microsoft.graph.phoneAuthenticationMethod'."
        )


# --------------------------------------------------------------------------------------------
# Handlers: phone methods
# --------------------------------------------------------------------------------------------


def list_phones(req: SimRequest) -> SimResponse:
    """GET …/phoneMethods: at most three, mobile, alternateMobile, office."""
    user = _authorize_read(req)
    masked = _masks_numbers(req, user)
    phones = req.tenant.phone_methods.get(user.id, {})
    value = [phone_json(phones[kind], masked=masked) for kind in PHONE_TYPES if kind in phones]
    return json_response({"@odata.context": _context(req, user, "phoneMethods"), "value": value})


def get_phone(req: SimRequest) -> SimResponse:
    user = _authorize_read(req)
    phone = _phone_for_id(req, user)
    body = {"@odata.context": _context(req, user, "phoneMethods/$entity")}
    body |= phone_json(phone, masked=_masks_numbers(req, user))
    return json_response(body)


def create_phone(req: SimRequest) -> SimResponse:
    """POST …/phoneMethods: 201 with the fixed id of its type."""
    user = _authorize_write(req)
    body = req.json()
    _check_body_keys(body, {"phoneNumber", "phoneType"})
    phone_type = body.get("phoneType")
    if phone_type not in PHONE_TYPES:
        raise bad_request("phoneType must be one of mobile, alternateMobile, office.")
    problem = phone_number_problem(body.get("phoneNumber"))
    if problem:
        raise bad_request(problem)
    with req.tenant.lock:
        phones = req.tenant.phone_methods.setdefault(user.id, {})
        if phone_type in phones:
            raise bad_request(
                f"The user already has a {phone_type} phone. Update or delete it instead."
            )
        if phone_type == "alternateMobile" and "mobile" not in phones:
            raise bad_request("A mobile phone must be registered before an alternateMobile phone.")
        phone = PhoneMethod(
            phone_type=phone_type,
            phone_number=body["phoneNumber"],
            sms_sign_in_state=initial_sms_state(req.tenant, phone_type),
        )
        phones[phone_type] = phone
        touch_registration(req.tenant, user.id, req.now)
        out = {"@odata.context": _context(req, user, "phoneMethods/$entity")} | phone_json(phone)
    return json_response(out, 201, is_write=True)


def update_phone(req: SimRequest) -> SimResponse:
    """PATCH …/phoneMethods/{id}: new number (204); the type cannot change."""
    user = _authorize_write(req)
    body = req.json()
    _check_body_keys(body, {"phoneNumber", "phoneType"})
    with req.tenant.lock:
        phone = _phone_for_id(req, user)
        if "phoneType" in body and body["phoneType"] != phone.phone_type:
            raise bad_request(
                "phoneType cannot be changed. Add a phone of the new type and delete this one."
            )
        if "phoneNumber" not in body:
            raise bad_request("phoneNumber is required.")
        problem = phone_number_problem(body["phoneNumber"])
        if problem:
            raise bad_request(problem)
        if body["phoneNumber"] != phone.phone_number:
            phone.phone_number = body["phoneNumber"]
            if phone.sms_sign_in_state in ("ready", "phoneNumberNotUnique"):
                unique = sms_number_is_unique(req.tenant, user.id, phone.phone_number)
                phone.sms_sign_in_state = "ready" if unique else "phoneNumberNotUnique"
            touch_registration(req.tenant, user.id, req.now)
    return no_content()


def delete_phone(req: SimRequest) -> SimResponse:
    """DELETE …/phoneMethods/{id} (204), unless it is the default MFA method or a mobile with an
    alternateMobile behind it."""
    user = _authorize_write(req)
    with req.tenant.lock:
        phone = _phone_for_id(req, user)
        phones = req.tenant.phone_methods[user.id]
        if phone.phone_type == "mobile" and "alternateMobile" in phones:
            raise bad_request(
                "The mobile phone cannot be deleted while an alternateMobile phone exists. "
                "Update the mobile number instead, or delete the alternateMobile phone first."
            )
        prefs = req.tenant.sign_in_preferences.get(user.id)
        default = prefs.user_preferred_method_for_secondary_authentication if prefs else None
        if default and DEFAULT_METHOD_PHONE.get(default) == phone.phone_type:
            raise bad_request(
                f"The {phone.phone_type} phone is the user's default sign-in method ('{default}'). "
                "Change the default method first."
            )
        del phones[phone.phone_type]
        touch_registration(req.tenant, user.id, req.now)
    return no_content()


def _sms_target(req: SimRequest) -> tuple[User, PhoneMethod]:
    user = _authorize_write(req)
    phone = _phone_for_id(req, user)
    if phone.phone_type != "mobile":
        raise bad_request("SMS sign-in is available only for the mobile phone.")
    return user, phone


def enable_sms_sign_in(req: SimRequest) -> SimResponse:
    """POST …/{mobileId}/enableSmsSignIn (204). A number shared with another SMS sign-in user is
    accepted but left in smsSignInState phoneNumberNotUnique."""
    with req.tenant.lock:
        user, phone = _sms_target(req)
        if not req.tenant.sms_sign_in_allowed:
            raise bad_request("SMS sign-in is not enabled for this user by the policy.")
        unique = sms_number_is_unique(req.tenant, user.id, phone.phone_number)
        phone.sms_sign_in_state = "ready" if unique else "phoneNumberNotUnique"
    return no_content()


def disable_sms_sign_in(req: SimRequest) -> SimResponse:
    """POST …/{mobileId}/disableSmsSignIn (204)."""
    with req.tenant.lock:
        _user, phone = _sms_target(req)
        phone.sms_sign_in_state = initial_sms_state(req.tenant, "mobile")
    return no_content()


# --------------------------------------------------------------------------------------------
# Handlers: all methods, sign-in preferences
# --------------------------------------------------------------------------------------------

# The password method's well-known id in Graph.
PASSWORD_METHOD_ID = "28c10230-6103-485e-b985-444c60001490"

# tenant.other_methods names → authenticationMethod types.
_OTHER_METHOD_TYPES = {
    "microsoftAuthenticatorPush": "microsoftAuthenticatorAuthenticationMethod",
    "microsoftAuthenticatorPasswordless": "microsoftAuthenticatorAuthenticationMethod",
    "softwareOneTimePasscode": "softwareOathAuthenticationMethod",
    "hardwareOneTimePasscode": "hardwareOathAuthenticationMethod",
    "email": "emailAuthenticationMethod",
    "fido2": "fido2AuthenticationMethod",
    "windowsHelloForBusiness": "windowsHelloForBusinessAuthenticationMethod",
    "temporaryAccessPass": "temporaryAccessPassAuthenticationMethod",
}


def list_methods(req: SimRequest) -> SimResponse:
    """GET …/authentication/methods: every method with its @odata.type (docs/graph-contract.md
    §3.1)."""
    user = _authorize_read(req)
    tenant = req.tenant
    masked = _masks_numbers(req, user)
    value: list[dict[str, Any]] = [
        {
            "@odata.type": "#microsoft.graph.passwordAuthenticationMethod",
            "id": PASSWORD_METHOD_ID,
            "password": None,
            "createdDateTime": (
                format_datetime(user.created_date_time) if user.created_date_time else None
            ),
        }
    ]
    phones = tenant.phone_methods.get(user.id, {})
    for kind in PHONE_TYPES:
        if kind in phones:
            value.append(
                {"@odata.type": "#microsoft.graph.phoneAuthenticationMethod"}
                | phone_json(phones[kind], masked=masked)
            )
    qr = tenant.qr_methods.get(user.id)
    if qr is not None:
        value.append(
            {
                "@odata.type": "#microsoft.graph.qrCodePinAuthenticationMethod",
                "id": qr.id,
                "createdDateTime": format_datetime(qr.created_date_time),
            }
        )
    for name in tenant.other_methods.get(user.id, []):
        odata_type = _OTHER_METHOD_TYPES.get(name)
        if odata_type:
            # Stable ids for the simulated methods, derived from user and method name.
            method_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"graphsim:{user.id}:{name}"))
            value.append({"@odata.type": f"#microsoft.graph.{odata_type}", "id": method_id})
    return json_response({"@odata.context": _context(req, user, "methods"), "value": value})


def _preferences_json(req: SimRequest, user: User) -> dict[str, Any]:
    prefs = req.tenant.sign_in_preferences.get(user.id) or SignInPreferences()
    return {
        "@odata.context": _context(req, user, "signInPreferences"),
        "isSystemPreferredAuthenticationMethodEnabled": (
            prefs.is_system_preferred_authentication_method_enabled
        ),
        "userPreferredMethodForSecondaryAuthentication": (
            prefs.user_preferred_method_for_secondary_authentication
        ),
    }


def get_sign_in_preferences(req: SimRequest) -> SimResponse:
    """GET /beta/users/{user}/authentication/signInPreferences (beta only, docs/graph-contract.md
    §3.1)."""
    user = _authorize_read(req)
    return json_response(_preferences_json(req, user))


def update_sign_in_preferences(req: SimRequest) -> SimResponse:
    """PATCH /beta/…/signInPreferences (204). The default method must be one the user has."""
    user = _authorize_write(req)
    body = req.json()
    allowed = {
        "isSystemPreferredAuthenticationMethodEnabled",
        "userPreferredMethodForSecondaryAuthentication",
    }
    unknown = sorted(set(body) - allowed - {"@odata.type"})
    if unknown:
        raise bad_request(f"Property '{unknown[0]}' is not a property of signInPreferences.")
    enabled = body.get("isSystemPreferredAuthenticationMethodEnabled")
    if "isSystemPreferredAuthenticationMethodEnabled" in body and not isinstance(enabled, bool):
        raise bad_request("isSystemPreferredAuthenticationMethodEnabled must be a boolean.")
    with req.tenant.lock:
        if "userPreferredMethodForSecondaryAuthentication" in body:
            # DOC-GAP: Graph refuses a default method the user has not registered; the code is
            # undocumented (400 badRequest, as the other rules).
            problem = preference_problem(
                req.tenant, user.id, body["userPreferredMethodForSecondaryAuthentication"]
            )
            if problem:
                raise bad_request(problem)
        prefs = req.tenant.sign_in_preferences.setdefault(user.id, SignInPreferences())
        if "isSystemPreferredAuthenticationMethodEnabled" in body:
            prefs.is_system_preferred_authentication_method_enabled = enabled
        if "userPreferredMethodForSecondaryAuthentication" in body:
            prefs.user_preferred_method_for_secondary_authentication = body[
                "userPreferredMethodForSecondaryAuthentication"
            ]
        touch_registration(req.tenant, user.id, req.now)
    return no_content()


def register(router: Router) -> None:
    """Add this module's Graph routes to the router."""
    base = "/users/{user}/authentication"
    router.add("GET", f"{base}/phoneMethods", list_phones)
    router.add("POST", f"{base}/phoneMethods", create_phone)
    router.add("POST", base + "/phoneMethods/{methodId}/enableSmsSignIn", enable_sms_sign_in)
    router.add("POST", base + "/phoneMethods/{methodId}/disableSmsSignIn", disable_sms_sign_in)
    router.add("GET", base + "/phoneMethods/{methodId}", get_phone)
    router.add("PATCH", base + "/phoneMethods/{methodId}", update_phone)
    router.add("DELETE", base + "/phoneMethods/{methodId}", delete_phone)
    router.add("GET", f"{base}/methods", list_methods)
    router.add("GET", f"{base}/signInPreferences", get_sign_in_preferences, versions=("beta",))
    router.add("PATCH", f"{base}/signInPreferences", update_sign_in_preferences, versions=("beta",))
