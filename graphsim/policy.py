"""The QR code + PIN authentication method policy (docs/graph-contract.md §2).

GET    /policies/authenticationMethodsPolicy/authenticationMethodConfigurations/qrCodePin
PATCH  same (v1.0: 200 + object; beta: 204)
DELETE same, v1.0 only: back to the defaults (204)
"""

from __future__ import annotations

from typing import Any

from graphsim import authz
from graphsim.errors import bad_request
from graphsim.http import Router, SimRequest, SimResponse, json_response, no_content
from graphsim.model import (
    AUTHENTICATION_ADMINISTRATOR,
    AUTHENTICATION_POLICY_ADMINISTRATOR,
    GLOBAL_ADMINISTRATOR,
    GLOBAL_READER,
    PRIVILEGED_AUTHENTICATION_ADMINISTRATOR,
    QrPolicy,
)

PATH = "/policies/authenticationMethodsPolicy/authenticationMethodConfigurations/qrCodePin"
ODATA_TYPE = "#microsoft.graph.qrCodePinAuthenticationMethodConfiguration"

_READ_PERMISSIONS = ("Policy.Read.AuthenticationMethod", "Policy.Read.All",
                     "Policy.ReadWrite.AuthenticationMethod")  # fmt: skip
_WRITE_PERMISSIONS = ("Policy.ReadWrite.AuthenticationMethod",)
# Delegated PATCH needs Authentication Policy Administrator (docs/graph-contract.md §2); Global
# Administrator holds every permission. DOC-GAP: the roles that may *read* the policy are not in the
# contract; we accept the policy and authentication admin roles and Global Reader.
_WRITE_ROLES = (AUTHENTICATION_POLICY_ADMINISTRATOR, GLOBAL_ADMINISTRATOR)
_READ_ROLES = (
    *_WRITE_ROLES,
    GLOBAL_READER,
    AUTHENTICATION_ADMINISTRATOR,
    PRIVILEGED_AUTHENTICATION_ADMINISTRATOR,
)


# --------------------------------------------------------------------------------------------
# Domain rules
# --------------------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _include_target(target: Any) -> dict[str, Any]:
    if not isinstance(target, dict):
        raise bad_request("Each includeTarget must be an object.")
    unknown = sorted(set(target) - {"targetType", "id", "isRegistrationRequired", "@odata.type"})
    if unknown:
        raise bad_request(f"Property '{unknown[0]}' is not allowed in an includeTarget.")
    if target.get("targetType") not in ("group", "user"):
        raise bad_request("includeTargets[].targetType must be 'group' or 'user'.")
    if not isinstance(target.get("id"), str) or not target["id"]:
        raise bad_request("includeTargets[].id is required.")
    required = target.get("isRegistrationRequired", False)
    if not isinstance(required, bool):
        raise bad_request("includeTargets[].isRegistrationRequired must be a boolean.")
    return {
        "targetType": target["targetType"],
        "id": target["id"],
        "isRegistrationRequired": required,
    }


def _exclude_target(target: Any) -> dict[str, Any]:
    if not isinstance(target, dict):
        raise bad_request("Each excludeTarget must be an object.")
    unknown = sorted(set(target) - {"targetType", "id", "@odata.type"})
    if unknown:
        raise bad_request(f"Property '{unknown[0]}' is not allowed in an excludeTarget.")
    if target.get("targetType") not in ("group", "user"):
        raise bad_request("excludeTargets[].targetType must be 'group' or 'user'.")
    if not isinstance(target.get("id"), str) or not target["id"]:
        raise bad_request("excludeTargets[].id is required.")
    return {"targetType": target["targetType"], "id": target["id"]}


def policy_changes(body: dict[str, Any]) -> dict[str, Any]:
    """The validated changes of a PATCH body, as QrPolicy field names, or a 400.

    `@odata.type` is required (docs/graph-contract.md §2, v1.0 note; applied to beta too). Targets
    are checked for shape only: whether a group id exists is not validated (DOC-GAP, not in the
    contract).
    """
    if body.get("@odata.type") != ODATA_TYPE:
        raise bad_request(f'The request body must have "@odata.type": "{ODATA_TYPE}".')
    allowed = {
        "@odata.type",
        "id",
        "state",
        "includeTargets",
        "excludeTargets",
        "standardQRCodeLifetimeInDays",
        "pinLength",
    }
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise bad_request(f"Property '{unknown[0]}' is not a property of {ODATA_TYPE[1:]}.")
    if "id" in body and body["id"] != "qrCodePin":
        raise bad_request("The id of this configuration is 'qrCodePin' and cannot be changed.")
    changes: dict[str, Any] = {}
    if "state" in body:
        if body["state"] not in ("enabled", "disabled"):
            raise bad_request("state must be 'enabled' or 'disabled'.")
        changes["state"] = body["state"]
    if "pinLength" in body:
        if not _is_int(body["pinLength"]) or not 8 <= body["pinLength"] <= 20:
            raise bad_request("pinLength must be an integer from 8 to 20.")
        changes["pin_length"] = body["pinLength"]
    if "standardQRCodeLifetimeInDays" in body:
        days = body["standardQRCodeLifetimeInDays"]
        if not _is_int(days) or not 1 <= days <= 395:
            raise bad_request("standardQRCodeLifetimeInDays must be an integer from 1 to 395.")
        changes["standard_qr_code_lifetime_in_days"] = days
    if "includeTargets" in body:
        if not isinstance(body["includeTargets"], list):
            raise bad_request("includeTargets must be an array.")
        changes["include_targets"] = [_include_target(t) for t in body["includeTargets"]]
    if "excludeTargets" in body:
        if not isinstance(body["excludeTargets"], list):
            raise bad_request("excludeTargets must be an array.")
        changes["exclude_targets"] = [_exclude_target(t) for t in body["excludeTargets"]]
    return changes


# --------------------------------------------------------------------------------------------
# Shapes and handlers
# --------------------------------------------------------------------------------------------


def policy_json(req: SimRequest, policy: QrPolicy) -> dict[str, Any]:
    """examples/qrcodepin-policy-get.response.json."""
    context = req.version_url(
        "/$metadata#policies/authenticationMethodsPolicy/authenticationMethodConfigurations/$entity"
    )
    targets_context = req.version_url(
        "/$metadata#policies/authenticationMethodsPolicy/authenticationMethodConfigurations"
        "('qrCodePin')/microsoft.graph.qrCodePinAuthenticationMethodConfiguration/includeTargets"
    )
    return {
        "@odata.context": context,
        "@odata.type": ODATA_TYPE,
        "id": "qrCodePin",
        "state": policy.state,
        "standardQRCodeLifetimeInDays": policy.standard_qr_code_lifetime_in_days,
        "pinLength": policy.pin_length,
        "excludeTargets": [dict(t) for t in policy.exclude_targets],
        "includeTargets@odata.context": targets_context,
        "includeTargets": [dict(t) for t in policy.include_targets],
    }


def get_policy(req: SimRequest) -> SimResponse:
    authz.require_permission(req, application=_READ_PERMISSIONS, delegated=_READ_PERMISSIONS)
    authz.require_tenant_role(req, _READ_ROLES)
    return json_response(policy_json(req, req.tenant.qr_policy))


def patch_policy(req: SimRequest) -> SimResponse:
    """PATCH: v1.0 answers 200 with the object
    (docs/graph-examples/qrcodepin-policy-update.response.v1.json, which has no includeTargets),
    beta 204 (docs/graph-contract.md §2)."""
    authz.require_permission(req, application=_WRITE_PERMISSIONS, delegated=_WRITE_PERMISSIONS)
    authz.require_tenant_role(req, _WRITE_ROLES)
    changes = policy_changes(req.json())
    with req.tenant.lock:
        policy = req.tenant.qr_policy
        for name, value in changes.items():
            setattr(policy, name, value)
        snapshot = {
            "@odata.type": ODATA_TYPE,
            "id": "qrCodePin",
            "state": policy.state,
            "standardQRCodeLifetimeInDays": policy.standard_qr_code_lifetime_in_days,
            "pinLength": policy.pin_length,
            "excludeTargets": [dict(t) for t in policy.exclude_targets],
        }
    if req.api_version == "beta":
        return no_content()
    return json_response(snapshot, 200, is_write=True)


def delete_policy(req: SimRequest) -> SimResponse:
    """DELETE (v1.0 only): revert the configuration to its defaults (204)."""
    authz.require_permission(req, application=_WRITE_PERMISSIONS, delegated=_WRITE_PERMISSIONS)
    authz.require_tenant_role(req, _WRITE_ROLES)
    with req.tenant.lock:
        req.tenant.qr_policy = QrPolicy()
    return no_content()


def register(router: Router) -> None:
    """Add this module's Graph routes to the router."""
    router.add("GET", PATH, get_policy)
    router.add("PATCH", PATH, patch_policy)
    router.add("DELETE", PATH, delete_policy, versions=("v1.0",))
