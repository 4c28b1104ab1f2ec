"""Small typed views of the Graph resources Lanyard uses (docs/graph-contract.md §1–§5).

Secrets that Graph returns once — `pin.code`, `image.rawContent`, `image.binaryValue` — are held
in `Secret`, whose str() and repr() are masked: they cannot leak through logging, tracebacks or
templates by accident. Call `.reveal()` where the value is really needed (the vault).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


class Secret:
    """A credential value; shows as '***' everywhere except `.reveal()`."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self):
        # Secrets must not travel through pickles (task arguments, caches).
        raise TypeError("Secret values cannot be pickled")


def _secret(value: Any) -> Secret | None:
    return Secret(value) if isinstance(value, str) and value else None


_FRACTION = re.compile(r"(\.\d{6})\d+")
_NEVER = "0001-01-01"


def parse_datetime(value: Any) -> datetime | None:
    """An aware datetime from Graph's ISO 8601 text (7-digit fractions; 0001-01-01 = never)."""
    if not isinstance(value, str) or not value or value.startswith(_NEVER):
        return None
    text = _FRACTION.sub(r"\1", value.replace("Z", "+00:00"))
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def format_datetime(value: datetime) -> str:
    """Graph's UTC form, e.g. 2026-11-20T09:15:00Z (naive values are taken as UTC)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


USER_SELECT = (
    "id,displayName,userPrincipalName,mail,mobilePhone,employeeId,jobTitle,department,"
    "accountEnabled,userType,usageLocation,country"
)


@dataclass(frozen=True)
class User:
    id: str
    display_name: str | None
    user_principal_name: str | None
    mail: str | None = None
    mobile_phone: str | None = None
    employee_id: str | None = None
    job_title: str | None = None
    department: str | None = None
    account_enabled: bool | None = None
    user_type: str | None = None
    usage_location: str | None = None
    country: str | None = None

    @classmethod
    def from_graph(cls, data: dict[str, Any]) -> User:
        return cls(
            id=data["id"],
            display_name=data.get("displayName"),
            user_principal_name=data.get("userPrincipalName"),
            mail=data.get("mail"),
            mobile_phone=data.get("mobilePhone"),
            employee_id=data.get("employeeId"),
            job_title=data.get("jobTitle"),
            department=data.get("department"),
            account_enabled=data.get("accountEnabled"),
            user_type=data.get("userType"),
            usage_location=data.get("usageLocation"),
            country=data.get("country"),
        )


@dataclass(frozen=True)
class DirectoryObject:
    """An item of memberOf / members: a user, group, role, AU … told apart by `odata_type`."""

    id: str
    odata_type: str | None
    display_name: str | None = None
    # Groups only: roles can be assigned to it (None when Graph did not say).
    is_assignable_to_role: bool | None = None

    @classmethod
    def from_graph(cls, data: dict[str, Any]) -> DirectoryObject:
        return cls(
            data["id"],
            data.get("@odata.type"),
            data.get("displayName"),
            data.get("isAssignableToRole"),
        )


@dataclass(frozen=True)
class AdministrativeUnit:
    id: str
    display_name: str | None
    description: str | None = None
    # "HiddenMembership" or None (public): docs/graph-contract.md §4.3.
    visibility: str | None = None

    @classmethod
    def from_graph(cls, data: dict[str, Any]) -> AdministrativeUnit:
        return cls(
            data["id"], data.get("displayName"), data.get("description"), data.get("visibility")
        )

    @property
    def membership_hidden(self) -> bool:
        return (self.visibility or "").lower() == "hiddenmembership"


@dataclass(frozen=True)
class Group:
    id: str
    display_name: str | None
    description: str | None = None
    is_assignable_to_role: bool | None = None  # None when not selected

    @classmethod
    def from_graph(cls, data: dict[str, Any]) -> Group:
        return cls(
            data["id"],
            data.get("displayName"),
            data.get("description"),
            data.get("isAssignableToRole"),
        )


@dataclass(frozen=True)
class RoleAssignment:
    """An active directory role assignment (unified RBAC). `role_definition_id` is the template
    id for built-in roles; `directory_scope_id` is "/" tenant-wide or
    "/administrativeUnits/{id}" (docs/graph-contract.md §4.4)."""

    id: str
    role_definition_id: str
    principal_id: str
    directory_scope_id: str
    principal_type: str | None = None  # "#microsoft.graph.user" | "…group" when expanded
    principal_display_name: str | None = None  # when expanded
    principal_user_principal_name: str | None = None  # when expanded, for a user

    @classmethod
    def from_graph(cls, data: dict[str, Any]) -> RoleAssignment:
        principal = data.get("principal") or {}
        return cls(
            id=data["id"],
            role_definition_id=(data.get("roleDefinitionId") or "").lower(),
            principal_id=(data.get("principalId") or "").lower(),
            directory_scope_id=data.get("directoryScopeId") or "/",
            principal_type=principal.get("@odata.type"),
            principal_display_name=principal.get("displayName"),
            principal_user_principal_name=principal.get("userPrincipalName"),
        )

    @property
    def administrative_unit_id(self) -> str | None:
        """The AU of an AU-scoped assignment, else None."""
        prefix = "/administrativeUnits/"
        if self.directory_scope_id.lower().startswith(prefix.lower()):
            return self.directory_scope_id[len(prefix) :]
        return None


@dataclass(frozen=True)
class DirectoryRole:
    id: str
    display_name: str | None
    role_template_id: str | None

    @classmethod
    def from_graph(cls, data: dict[str, Any]) -> DirectoryRole:
        return cls(data["id"], data.get("displayName"), data.get("roleTemplateId"))


@dataclass(frozen=True)
class ScopedRoleMembership:
    """A role held over one AU. `role_id` is a directoryRole id, not a template id
    (docs/graph-contract.md §4.4)."""

    id: str
    role_id: str
    administrative_unit_id: str
    member_id: str | None
    member_display_name: str | None = None
    member_user_principal_name: str | None = None

    @classmethod
    def from_graph(cls, data: dict[str, Any]) -> ScopedRoleMembership:
        member = data.get("roleMemberInfo") or {}
        return cls(
            id=data["id"],
            role_id=data["roleId"],
            administrative_unit_id=data["administrativeUnitId"],
            member_id=member.get("id"),
            member_display_name=member.get("displayName"),
            member_user_principal_name=member.get("userPrincipalName"),
        )


@dataclass(frozen=True)
class QrCodeImage:
    """The QR image and payload, returned only when a code is created (docs/graph-contract.md
    §1.1)."""

    secret_binary_value: Secret | None  # base64 of the rendered image (SVG)
    secret_raw_content: Secret | None  # base64 of the payload the QR encodes
    version: int | None = None
    error_correction_level: str | None = None

    @classmethod
    def from_graph(cls, data: dict[str, Any] | None) -> QrCodeImage | None:
        if not isinstance(data, dict):
            return None
        return cls(
            secret_binary_value=_secret(data.get("binaryValue")),
            secret_raw_content=_secret(data.get("rawContent")),
            version=data.get("version"),
            error_correction_level=data.get("errorCorrectionLevel"),
        )


@dataclass(frozen=True)
class QrCode:
    id: str | None
    start_date_time: datetime | None
    expire_date_time: datetime | None
    created_date_time: datetime | None = None
    last_used_date_time: datetime | None = None
    image: QrCodeImage | None = None

    @classmethod
    def from_graph(cls, data: dict[str, Any] | None) -> QrCode | None:
        if not isinstance(data, dict):
            return None
        if set(data) <= {"value", "@odata.context"} and isinstance(data.get("value"), dict):
            data = data["value"]  # the doc-wrapped GET form (docs/graph-contract.md §1.6)
        return cls(
            id=data.get("id"),
            start_date_time=parse_datetime(data.get("startDateTime")),
            expire_date_time=parse_datetime(data.get("expireDateTime")),
            created_date_time=parse_datetime(data.get("createdDateTime")),
            last_used_date_time=parse_datetime(data.get("lastUsedDateTime")),
            image=QrCodeImage.from_graph(data.get("image")),
        )


@dataclass(frozen=True)
class QrPin:
    secret_code: Secret | None  # only on create / reset; None on GET
    force_change_pin_next_sign_in: bool | None = None
    id: str | None = None
    created_date_time: datetime | None = None
    updated_date_time: datetime | None = None

    @classmethod
    def from_graph(cls, data: dict[str, Any] | None) -> QrPin | None:
        if not isinstance(data, dict):
            return None
        return cls(
            secret_code=_secret(data.get("code")),
            force_change_pin_next_sign_in=data.get("forceChangePinNextSignIn"),
            id=data.get("id"),
            created_date_time=parse_datetime(data.get("createdDateTime")),
            updated_date_time=parse_datetime(data.get("updatedDateTime")),
        )


@dataclass(frozen=True)
class QrMethod:
    id: str | None
    standard_qr_code: QrCode | None
    temporary_qr_code: QrCode | None
    pin: QrPin | None
    created_date_time: datetime | None = None
    is_usable: bool | None = None

    @classmethod
    def from_graph(cls, data: dict[str, Any]) -> QrMethod:
        return cls(
            id=data.get("id"),
            standard_qr_code=QrCode.from_graph(data.get("standardQRCode")),
            temporary_qr_code=QrCode.from_graph(data.get("temporaryQRCode")),
            pin=QrPin.from_graph(data.get("pin")),
            created_date_time=parse_datetime(data.get("createdDateTime")),
            is_usable=data.get("isUsable"),
        )

    @property
    def has_secrets(self) -> bool:
        """True when this came from a create: the image payload and the PIN are here."""
        image = self.standard_qr_code.image if self.standard_qr_code else None
        return bool(image and image.secret_raw_content and self.pin and self.pin.secret_code)


@dataclass(frozen=True)
class QrPolicy:
    state: str | None
    standard_qr_code_lifetime_in_days: int | None
    pin_length: int | None
    include_targets: list[dict[str, Any]] = field(default_factory=list)
    exclude_targets: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_graph(cls, data: dict[str, Any]) -> QrPolicy:
        return cls(
            state=data.get("state"),
            standard_qr_code_lifetime_in_days=data.get("standardQRCodeLifetimeInDays"),
            pin_length=data.get("pinLength"),
            include_targets=list(data.get("includeTargets") or []),
            exclude_targets=list(data.get("excludeTargets") or []),
        )


PHONE_METHOD_IDS = {
    "mobile": "3179e48a-750b-4051-897c-87b9720928f7",
    "alternateMobile": "b6332ec1-7057-4abe-9331-3d72feddfe41",
    "office": "e37fc753-ff3b-4958-9484-eaa9425c82bc",
}


@dataclass(frozen=True)
class PhoneMethod:
    id: str
    phone_number: str | None
    phone_type: str | None
    sms_sign_in_state: str | None = None

    @classmethod
    def from_graph(cls, data: dict[str, Any]) -> PhoneMethod:
        return cls(
            data["id"], data.get("phoneNumber"), data.get("phoneType"), data.get("smsSignInState")
        )


@dataclass(frozen=True)
class SignInPreferences:
    is_system_preferred_authentication_method_enabled: bool | None
    user_preferred_method_for_secondary_authentication: str | None

    @classmethod
    def from_graph(cls, data: dict[str, Any]) -> SignInPreferences:
        return cls(
            data.get("isSystemPreferredAuthenticationMethodEnabled"),
            data.get("userPreferredMethodForSecondaryAuthentication"),
        )


@dataclass(frozen=True)
class UserRegistrationDetails:
    """One row of the authentication methods registration report (docs/graph-contract.md §5)."""

    id: str
    user_principal_name: str
    user_type: str  # "member" | "guest"
    is_admin: bool
    is_mfa_registered: bool
    methods_registered: tuple[str, ...]

    @classmethod
    def from_graph(cls, data: dict[str, Any]) -> UserRegistrationDetails:
        return cls(
            id=str(data.get("id") or ""),
            user_principal_name=str(data.get("userPrincipalName") or ""),
            user_type=str(data.get("userType") or ""),
            is_admin=bool(data.get("isAdmin")),
            is_mfa_registered=bool(data.get("isMfaRegistered")),
            methods_registered=tuple(data.get("methodsRegistered") or ()),
        )
