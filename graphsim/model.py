"""The simulated tenant's data: plain dataclasses held in memory behind one lock.

Everything the identity endpoints and the Graph handlers read or change lives in a `Tenant`.
Handlers take `tenant.lock` for the whole of a request that changes state, so concurrent requests
see Graph's "one active method / one code of each kind" rules hold.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

# Role template ids (docs/graph-contract.md §4.4).
AUTHENTICATION_ADMINISTRATOR = "c4e39bd9-1100-46d3-8c65-fb160da0071f"
PRIVILEGED_AUTHENTICATION_ADMINISTRATOR = "7be44c8a-adaf-4e2a-84d6-ab2649e08a13"
AUTHENTICATION_POLICY_ADMINISTRATOR = "0526716b-113d-4c15-b2c8-68e3c22b9f80"
GLOBAL_READER = "f2ef992c-3afb-46b9-b7cf-a126ee74c451"
GLOBAL_ADMINISTRATOR = "62e90394-69f5-4237-9190-012177145e10"

ROLE_NAMES = {
    AUTHENTICATION_ADMINISTRATOR: "Authentication Administrator",
    PRIVILEGED_AUTHENTICATION_ADMINISTRATOR: "Privileged Authentication Administrator",
    AUTHENTICATION_POLICY_ADMINISTRATOR: "Authentication Policy Administrator",
    GLOBAL_READER: "Global Reader",
    GLOBAL_ADMINISTRATOR: "Global Administrator",
}

# Fixed phone method ids (docs/graph-contract.md §3).
PHONE_METHOD_IDS = {
    "mobile": "3179e48a-750b-4051-897c-87b9720928f7",
    "alternateMobile": "b6332ec1-7057-4abe-9331-3d72feddfe41",
    "office": "e37fc753-ff3b-4958-9484-eaa9425c82bc",
}


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass
class User:
    id: str
    user_principal_name: str
    display_name: str
    given_name: str = ""
    surname: str = ""
    mail: str | None = None
    job_title: str | None = None
    department: str | None = None
    employee_id: str | None = None
    mobile_phone: str | None = None  # the profile's mobilePhone, free text as people type it
    business_phones: list[str] = field(default_factory=list)
    office_location: str | None = None
    preferred_language: str | None = None
    usage_location: str | None = None  # ISO 3166 alpha-2
    country: str | None = None
    account_enabled: bool = True
    user_type: str = "Member"  # Member | Guest
    created_date_time: datetime | None = None
    # Licensed for QR code + PIN (docs/graph-contract.md §2: every enabled user must be licensed).
    licensed: bool = True


@dataclass
class Group:
    id: str
    display_name: str
    description: str | None = None
    member_ids: list[str] = field(default_factory=list)  # users and groups (nested)
    # Role-assignable: Entra roles can be assigned to the group, and then every member holds them
    # (docs/graph-contract.md §4.4). Such a group has only direct user members (no nesting).
    is_assignable_to_role: bool = False


@dataclass
class AdministrativeUnit:
    id: str
    display_name: str
    description: str | None = None
    member_ids: list[str] = field(default_factory=list)  # users (and groups)
    # "HiddenMembership": only callers with Member.Read.Hidden (or members) may list the members
    # (docs/graph-contract.md §4.3). None = public, Graph's default.
    visibility: str | None = None


@dataclass
class DirectoryRole:
    """An activated role: its `id` is tenant-specific and differs from `role_template_id`
    (docs/graph-contract.md §4.4)."""

    id: str
    role_template_id: str
    display_name: str
    description: str = ""
    # Tenant-wide (unscoped) active holders: users, or role-assignable groups.
    member_ids: list[str] = field(default_factory=list)


@dataclass
class ScopedRoleMembership:
    id: str  # opaque
    role_id: str  # DirectoryRole.id, not the template id
    administrative_unit_id: str
    user_id: str  # the principal: a user, or a role-assignable group (roleMemberInfo)

    @property
    def principal_id(self) -> str:
        return self.user_id


@dataclass
class RoleEligibility:
    """PIM: `principal_id` may activate the role at `directory_scope_id` ("/" tenant-wide,
    "/administrativeUnits/{id}"). Not a role until activated: eligible assignments never appear in
    roleAssignments or scopedRoleMembers (docs/graph-contract.md §4.4); `Tenant.role_activate`
    turns one into an active assignment, as a PIM activation does."""

    id: str
    role_template_id: str
    principal_id: str
    directory_scope_id: str = "/"


@dataclass
class QrCode:
    id: str
    start_date_time: datetime
    expire_date_time: datetime
    created_date_time: datetime
    last_used_date_time: datetime | None = None


@dataclass
class QrPin:
    id: str
    # Kept by the simulator so a simulated sign-in / updatePin can check it; never returned by GET.
    code: str
    force_change_pin_next_sign_in: bool
    created_date_time: datetime
    updated_date_time: datetime


@dataclass
class QrMethod:
    id: str
    created_date_time: datetime
    standard: QrCode | None
    temporary: QrCode | None
    pin: QrPin
    last_used_date_time: datetime | None = None


@dataclass
class PhoneMethod:
    phone_type: str  # mobile | alternateMobile | office
    phone_number: str  # "+CC NUMBER[xEXT]"
    sms_sign_in_state: str = "notConfigured"

    @property
    def id(self) -> str:
        return PHONE_METHOD_IDS[self.phone_type]


@dataclass
class QrPolicy:
    state: str = "disabled"
    include_targets: list[dict] = field(
        default_factory=lambda: [
            {"targetType": "group", "id": "all_users", "isRegistrationRequired": False}
        ]
    )
    exclude_targets: list[dict] = field(default_factory=list)
    standard_qr_code_lifetime_in_days: int = 365
    pin_length: int = 8


@dataclass
class SignInPreferences:
    is_system_preferred_authentication_method_enabled: bool = True
    user_preferred_method_for_secondary_authentication: str | None = None


@dataclass
class AppRegistration:
    """A confidential client: secret and/or certificate, and its granted application permissions."""

    client_id: str
    display_name: str
    client_secret: str | None = None
    certificate_thumbprint_sha1: str | None = None  # base64url x5t of the registered certificate
    certificate_pem: str | None = None
    application_permissions: set[str] = field(default_factory=set)
    delegated_permissions: set[str] = field(default_factory=set)
    redirect_uris: list[str] = field(default_factory=list)


@dataclass
class Tenant:
    id: str
    domain: str  # e.g. "contoso-demo.onmicrosoft.com"
    display_name: str
    users: dict[str, User] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    administrative_units: dict[str, AdministrativeUnit] = field(default_factory=dict)
    directory_roles: dict[str, DirectoryRole] = field(default_factory=dict)
    scoped_role_memberships: dict[str, ScopedRoleMembership] = field(default_factory=dict)
    role_eligibilities: dict[str, RoleEligibility] = field(default_factory=dict)  # PIM, by id
    apps: dict[str, AppRegistration] = field(default_factory=dict)
    qr_policy: QrPolicy = field(default_factory=QrPolicy)
    qr_methods: dict[str, QrMethod] = field(default_factory=dict)  # by user id
    phone_methods: dict[str, dict[str, PhoneMethod]] = field(default_factory=dict)  # user → type
    sign_in_preferences: dict[str, SignInPreferences] = field(default_factory=dict)
    # Other registered methods (e.g. "microsoftAuthenticatorPush", "email") for reports.
    other_methods: dict[str, list[str]] = field(default_factory=dict)
    # Added by the authentication-methods handlers (qrmethods.py, phone.py, reports.py):
    # how many times a QR code + PIN method was created per user id (tests read it to prove a
    # retried PUT did not create a second method),
    qr_method_creations: dict[str, int] = field(default_factory=dict)
    # the DOC-GAP switch of docs/graph-contract.md §1.6: GET …/{standardQRCode|temporaryQRCode}
    # answers the bare qrCode (False, the contract's default) or the doc-wrapped {"value": {...}}
    # (True),
    qr_code_get_wrapped: bool = False
    # whether the SMS sign-in policy lets users sign in with SMS (not modelled further; the
    # phoneMethods examples show a new mobile as "notAllowedByPolicy", so it defaults to False),
    sms_sign_in_allowed: bool = False
    # when each user's methods last changed (userRegistrationDetails.lastUpdatedDateTime),
    registration_updated: dict[str, datetime] = field(default_factory=dict)
    # and the userRegistrationDetails throttle's request log, (tenant, app id) → request times.
    report_requests: dict[str, list[datetime]] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)
    # The delta queries' change tracker (graphsim/delta.py), made at the first delta request; a
    # copy of the tenant starts without one, so state tokens of a reset tenant are unknown.
    delta_tracker: Any = field(default=None, repr=False, compare=False)

    # Lookup index by lower-cased id and UPN, rebuilt when the user set changes (10,000-user
    # tenants are looked up on every request). Not part of the tenant's data.
    _index: dict[str, User] = field(default_factory=dict, repr=False, compare=False)
    _index_size: int = field(default=-1, repr=False, compare=False)

    def __deepcopy__(self, memo: dict) -> Tenant:
        """A deep copy with its own lock (locks cannot be copied); used to reset to a snapshot."""
        import copy

        values = {
            f.name: copy.deepcopy(getattr(self, f.name), memo)
            for f in fields(self)
            if f.name not in ("lock", "_index", "_index_size", "delta_tracker")
        }
        return Tenant(**values)

    def user_by_id_or_upn(self, key: str) -> User | None:
        """Users are addressed by id or userPrincipalName; ids compare case-insensitively
        (docs/graph-contract.md §9.7)."""
        key_lower = key.lower()
        user = self.users.get(key) or self._index.get(key_lower)
        if (
            len(self.users) != self._index_size
            or user is None
            or (key_lower not in (user.id.lower(), user.user_principal_name.lower()))
        ):
            # The index may be stale (users added or renamed): rebuild it, then look again.
            self._index = {}
            for candidate in self.users.values():
                self._index[candidate.id.lower()] = candidate
                self._index[candidate.user_principal_name.lower()] = candidate
            self._index_size = len(self.users)
            user = self._index.get(key_lower)
        if user is not None and self.users.get(user.id) is not user:
            return None
        return user

    def directory_role_by_template(self, template_id: str) -> DirectoryRole | None:
        for role in self.directory_roles.values():
            if role.role_template_id.lower() == template_id.lower():
                return role
        return None

    def principal_ids_of(self, user_id: str) -> set[str]:
        """The user and the role-assignable groups it belongs to: every principal whose role
        assignments the user holds (such groups cannot be nested, so membership is direct)."""
        ids = {user_id}
        ids.update(
            g.id
            for g in self.groups.values()
            if g.is_assignable_to_role and user_id in g.member_ids
        )
        return ids

    def role_activate(self, eligibility_id: str) -> str:
        """A PIM activation: the eligible assignment becomes active; returns the assignment id
        (the scopedRoleMembership id for an AU scope, else the role's id)."""
        eligibility = self.role_eligibilities[eligibility_id]
        role = self.directory_role_by_template(eligibility.role_template_id)
        if role is None:
            role = DirectoryRole(
                id=new_id(),
                role_template_id=eligibility.role_template_id,
                display_name=ROLE_NAMES.get(eligibility.role_template_id, ""),
            )
            self.directory_roles[role.id] = role
        scope = eligibility.directory_scope_id
        if scope == "/":
            if eligibility.principal_id not in role.member_ids:
                role.member_ids.append(eligibility.principal_id)
            return role.id
        unit_id = scope.rsplit("/", 1)[-1]
        membership = ScopedRoleMembership(
            id=new_id().replace("-", ""),
            role_id=role.id,
            administrative_unit_id=unit_id,
            user_id=eligibility.principal_id,
        )
        self.scoped_role_memberships[membership.id] = membership
        return membership.id
