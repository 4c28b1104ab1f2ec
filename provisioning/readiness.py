"""Is the tenant ready for QR code + PIN sign-in? What Graph (and the directory cache) can tell,
and a checklist of what it cannot (docs/architecture.md §1, docs/graph-contract.md §2, §12).

Each check is `ok` or a problem with what to do about it. Read with the app identity; nothing is
written.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractUser
from django.db.models import Exists, OuterRef

from provisioning.graph import (
    APPLICATION_PERMISSIONS,
    DELEGATED_SCOPES,
    GraphError,
    get_app_client,
)
from provisioning.models import AdministrativeUnit, ScopedRoleAssignment
from provisioning.privileged import admin_group_warning
from provisioning.qr_policy import (
    ALL_USERS_ID,
    POLICY_UNREADABLE,
    qr_policy_fresh,
    qr_policy_targets,
    qr_policy_unreadable,
)
from provisioning.roles import MANAGER_ROLE_TEMPLATES
from provisioning.token_cache import delegated_client_for


@dataclass(frozen=True)
class Check:
    """One readiness check: `ok`, what was found, and (when not ok) what to do."""

    key: str
    title: str
    ok: bool
    found: str
    fix: str = ""
    items: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ManualStep:
    """A step Graph cannot check; the page lists it for IT to tick off."""

    key: str
    title: str
    how: str


MANUAL_STEPS = (
    ManualStep(
        "devices",
        "Shared Android and iOS devices offer QR code sign-in in Teams and Authenticator",
        "In Intune, give the shared devices' managed app configuration for Microsoft Teams and "
        "Microsoft Authenticator the key preferred_auth_config with the value qrpin (Android "
        "shared device mode, iOS shared device mode); without it the apps open with the "
        "username and password page.",
    ),
    ManualStep(
        "conditional-access",
        "Conditional Access limits QR code sign-in to compliant shared devices",
        "Create a Conditional Access policy for the frontline workers' group that requires a "
        "compliant (or shared-mode, Intune-enrolled) device, so a QR badge and PIN cannot sign "
        "in from any other phone or PC.",
    ),
)


def jwt_claims(token: str) -> dict:
    """The payload of a JWT, not verified: Lanyard received the token from Entra over TLS a
    moment ago and reads it only to report what it grants."""
    try:
        payload = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}


def _policy_checks() -> list[Check]:
    policy = qr_policy_fresh()
    if qr_policy_unreadable(policy):
        return [
            Check(
                "policy",
                "QR code + PIN policy",
                False,
                "The policy cannot be read.",
                POLICY_UNREADABLE,
            )
        ]
    checks = [
        Check(
            "state",
            "The QR code + PIN method is enabled",
            policy.state == "enabled",
            f"The method is {policy.state}.",
            ""
            if policy.state == "enabled"
            else "Enable it on the Policy page (or Entra admin center → Authentication methods → "
            "QR code).",
        )
    ]
    targets = qr_policy_targets(targets=policy.include_targets)
    names = [t.name for t in targets]
    everyone = any(t.id == ALL_USERS_ID for t in targets)
    checks.append(
        Check(
            "targets",
            "The method targets the frontline workers",
            bool(targets),
            (
                "It targets all users."
                if everyone
                else f"It targets {len(targets)} group(s) or user(s)."
                if targets
                else "It targets nobody: no worker can be given a QR code."
            ),
            ""
            if targets
            else "Add the frontline workers' group to the included groups on the Policy page.",
            items=[] if everyone else names,
        )
    )
    checks.append(
        Check(
            "pin-length",
            "PIN length",
            True,
            f"PINs have at least {policy.pin_length} digits; standard QR codes last "
            f"{policy.standard_qr_code_lifetime_in_days} days.",
        )
    )
    return checks


def _app_permissions_check() -> Check:
    title = "The portal's application permissions"
    try:
        token = get_app_client().tokens.get_token()
    except GraphError as exc:
        return Check(
            "app-permissions",
            title,
            False,
            f"Lanyard could not get a token: {exc}",
            "Check ENTRA_CLIENT_ID and the app's certificate or secret.",
        )
    roles = set(jwt_claims(token).get("roles") or [])
    missing = sorted(set(APPLICATION_PERMISSIONS) - roles)
    extra = sorted(roles - set(APPLICATION_PERMISSIONS) - {"Member.Read.Hidden"})
    if missing:
        return Check(
            "app-permissions",
            title,
            False,
            f"The app's token lacks {len(missing)} permission(s) the README lists.",
            "Add these Microsoft Graph application permissions to the app registration "
            "and grant admin consent (README, “Registering the Entra app”); the page "
            "shows the change once the app's next token is issued (within an hour).",
            items=missing,
        )
    found = "The app's token carries every permission the README lists."
    if extra:
        found += " It also carries permissions Lanyard does not need: " + ", ".join(extra) + "."
    return Check(
        "app-permissions",
        title,
        not extra,
        found,
        "Remove the permissions Lanyard does not need (least privilege)." if extra else "",
        items=extra,
    )


def _delegated_scopes_check(user: AbstractUser) -> Check:
    """The delegated permissions managers consent to, read from the signed-in admin's own token
    (the same app registration and consent)."""
    title = "The managers' delegated permissions"
    try:
        token = delegated_client_for(user=user).tokens.get_token()
    except Exception as exc:  # noqa: BLE001 - any failure is reported, never breaks the page
        return Check(
            "delegated-scopes",
            title,
            False,
            f"Lanyard could not read your sign-in token ({type(exc).__name__}).",
            "Sign out and sign in again, then reload this page.",
        )
    scopes = set(str(jwt_claims(token).get("scp") or "").split())
    missing = sorted(set(DELEGATED_SCOPES) - scopes)
    if missing:
        return Check(
            "delegated-scopes",
            title,
            False,
            f"Sign-in tokens lack {len(missing)} delegated permission(s) the README lists.",
            "Add these Microsoft Graph delegated permissions to the app registration and "
            "grant admin consent.",
            items=missing,
        )
    return Check(
        "delegated-scopes",
        title,
        True,
        "Sign-in tokens carry every delegated permission the README lists.",
    )


def stores_without_manager() -> list[AdministrativeUnit]:
    """Stores where nobody holds a manager role (from the synced scoped role assignments)."""
    managed = ScopedRoleAssignment.objects.filter(
        administrative_unit=OuterRef("pk"), role_template_id__in=MANAGER_ROLE_TEMPLATES
    )
    return list(AdministrativeUnit.objects.filter(~Exists(managed)).order_by("display_name"))


def _store_checks() -> list[Check]:
    unmanaged = stores_without_manager()
    hidden = list(
        AdministrativeUnit.objects.filter(members_unreadable_since__isnull=False).order_by(
            "display_name"
        )
    )
    return [
        Check(
            "unmanaged-stores",
            "Every store has a manager",
            not unmanaged,
            f"{len(unmanaged)} store(s) have no manager."
            if unmanaged
            else "Every store has at least one manager.",
            "Assign the Authentication Administrator role scoped to each of these "
            "administrative units to its manager (Entra admin center → Administrative units "
            "→ Roles and administrators); the next directory sync picks it up."
            if unmanaged
            else "",
            items=[u.display_name for u in unmanaged],
        ),
        Check(
            "hidden-stores",
            "Lanyard can read every store's members",
            not hidden,
            f"{len(hidden)} store(s) hide their membership from Lanyard."
            if hidden
            else "Every store's membership is readable.",
            "Grant the optional application permission Member.Read.Hidden (README), then run "
            "the directory sync."
            if hidden
            else "",
            items=[u.display_name for u in hidden],
        ),
    ]


def _admin_group_check() -> Check:
    warning = admin_group_warning()
    return Check(
        "admin-group",
        "Only privileged role administrators can make someone an IT admin of Lanyard",
        not warning,
        warning or "The IT admin group is role-assignable (or not read yet by the directory sync).",
    )


def readiness_checks(*, user: AbstractUser) -> list[Check]:
    """Every check Graph and the directory cache can answer, in the page's order."""
    return [
        *_policy_checks(),
        _app_permissions_check(),
        _delegated_scopes_check(user),
        _admin_group_check(),
        *_store_checks(),
    ]
