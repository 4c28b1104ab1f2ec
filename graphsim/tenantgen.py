"""Deterministic demo tenants.

`demo_tenant()` builds the tenant `make run` and the test suite use: four stores (administrative
units) of 55 workers each with international names, three store managers holding a scoped
Authentication Administrator role (one of them on two stores), an IT admin in the Lanyard admin
group holding tenant-wide Authentication (Policy) Administrator, a "Frontline Workers" group with a
nested group, some workers with QR or phone methods already, messy profile phone numbers, a guest
and a disabled account. Every id is derived from a seeded `random.Random`, so the same seed gives
the same tenant every run. `large_tenant()` adds one big store for paging tests and benchmarks.
"""

from __future__ import annotations

import random
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from graphsim import demo
from graphsim.model import (
    AUTHENTICATION_ADMINISTRATOR,
    AUTHENTICATION_POLICY_ADMINISTRATOR,
    GLOBAL_ADMINISTRATOR,
    PRIVILEGED_AUTHENTICATION_ADMINISTRATOR,
    ROLE_NAMES,
    AdministrativeUnit,
    AppRegistration,
    DirectoryRole,
    Group,
    PhoneMethod,
    QrCode,
    QrMethod,
    QrPin,
    RoleEligibility,
    ScopedRoleMembership,
    SignInPreferences,
    Tenant,
    User,
)

# Dates in the demo tenant are relative to this fixed instant, so a tenant is byte-for-byte the
# same every run. The CLI passes the real date instead so `make run` shows fresh QR codes.
DEMO_EPOCH = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)

# The demo app registration's admin consent: exactly README.md's "Registering the Entra app" table
# (required rows; tests/readme_permissions.py parses it and a test fails when the two disagree).
APPLICATION_PERMISSIONS = frozenset(
    {
        "User.Read.All",
        "AdministrativeUnit.Read.All",
        "RoleManagement.Read.Directory",
        "GroupMember.Read.All",
        "UserAuthMethod-QR.ReadWrite.All",
        "UserAuthMethod-Phone.ReadWrite.All",
        "UserAuthenticationMethod.Read.All",
        "Policy.ReadWrite.AuthenticationMethod",
        "AuditLog.Read.All",
    }
)
DELEGATED_PERMISSIONS = frozenset(
    {
        "User.Read",
        "AdministrativeUnit.Read.All",
        "RoleManagement.Read.Directory",
        "UserAuthMethod-QR.ReadWrite.All",
        "UserAuthMethod-Phone.ReadWrite.All",
        "UserAuthenticationMethod.Read.All",
    }
)
REDIRECT_URIS = ("http://127.0.0.1:8000/auth/callback", "http://localhost:8000/auth/callback")

# (given, surname, ascii given, ascii surname, usage location): displayName keeps the person's own
# script; the UPN is the usual ASCII transliteration.
NAMES: tuple[tuple[str, str, str, str, str], ...] = (
    ("Avery", "Howard", "avery", "howard", "US"),
    ("Bao", "Nguyễn", "bao", "nguyen", "US"),
    ("Zoë", "Müller", "zoe", "mueller", "DE"),
    ("José", "Núñez", "jose", "nunez", "US"),
    ("Siobhán", "O'Connor", "siobhan", "oconnor", "GB"),
    ("Anna", "Смирнова", "anna", "smirnova", "DE"),
    ("Дмитрий", "Иванов", "dmitry", "ivanov", "NL"),
    ("Νίκος", "Παπαδόπουλος", "nikos", "papadopoulos", "GB"),
    ("Ελένη", "Γεωργίου", "eleni", "georgiou", "DE"),
    ("山田", "太郎", "taro", "yamada", "JP"),
    ("佐藤", "花子", "hanako", "sato", "JP"),
    ("王", "芳", "fang", "wang", "NL"),
    ("김", "민준", "minjun", "kim", "US"),
    ("ليلى", "حداد", "layla", "haddad", "FR"),
    ("محمد", "الفارسي", "mohammed", "alfarsi", "GB"),
    ("Chloé", "Lefèvre", "chloe", "lefevre", "FR"),
    ("François", "Dubois", "francois", "dubois", "FR"),
    ("Søren", "Kierkegård", "soren", "kierkegard", "NL"),
    ("Łukasz", "Wróbel", "lukasz", "wrobel", "DE"),
    ("Ángel", "García", "angel", "garcia", "US"),
    ("Daan", "de Vries", "daan", "devries", "NL"),
    ("Sanne", "van der Berg", "sanne", "vanderberg", "NL"),
    ("Oliver", "Smith", "oliver", "smith", "GB"),
    ("Amelia", "Jones", "amelia", "jones", "GB"),
    ("Priya", "Patel", "priya", "patel", "GB"),
    ("Jürgen", "Schäfer", "juergen", "schaefer", "DE"),
    ("Hana", "Novák", "hana", "novak", "DE"),
    ("Kenji", "Watanabe", "kenji", "watanabe", "JP"),
    ("Yuki", "鈴木", "yuki", "suzuki", "JP"),
    ("Camille", "Moreau", "camille", "moreau", "FR"),
    ("Björn", "Åkesson", "bjorn", "akesson", "NL"),
    ("Marta", "Ruiz", "marta", "ruiz", "US"),
    ("Ngozi", "Okafor", "ngozi", "okafor", "GB"),
    ("Olena", "Коваленко", "olena", "kovalenko", "DE"),
    ("Γιάννης", "Αντετοκούνμπο", "giannis", "antetokounmpo", "US"),
    ("Aiko", "Tanaka", "aiko", "tanaka", "JP"),
    ("Fatima", "Zahra", "fatima", "zahra", "FR"),
    ("Mehmet", "Yılmaz", "mehmet", "yilmaz", "DE"),
    ("Liam", "Murphy", "liam", "murphy", "GB"),
    ("Emma", "Jansen", "emma", "jansen", "NL"),
)


def _script(text: str) -> str:
    """The Unicode script family of a name's first letter (LATIN, CYRILLIC, CJK, ...)."""
    name = unicodedata.name(text[0], "LATIN")
    for family in ("CYRILLIC", "GREEK", "ARABIC", "HANGUL", "CJK", "HIRAGANA", "KATAKANA"):
        if name.startswith(family):
            return family
    return "LATIN"


_SAME_SCRIPT: dict[tuple[str, str], list[tuple[str, str, str, str, str]]] = {}
for _entry in NAMES:
    _SAME_SCRIPT.setdefault((_script(_entry[0]), _script(_entry[1])), []).append(_entry)

JOB_TITLES = (
    "Cashier",
    "Stock associate",
    "Sales associate",
    "Customer service associate",
    "Visual merchandiser",
    "Shift lead",
    "Warehouse associate",
)

STORES = (
    ("Store 101", "Amsterdam Centraal", "NL"),
    ("Store 112", "London Oxford Street", "GB"),
    ("Store 205", "Berlin Alexanderplatz", "DE"),
    ("Store 318", "Tokyo Shibuya", "JP"),
)

# Profile mobilePhone values as people really type them (docs/graph-contract.md §9.8 normalisation).
MESSY_PHONES = (
    "(555) 010-2345",
    "+44 7700 900123",
    "0049 151 2345678",
    " 06-12345678 ",
    "+81 90-1234-5678",
    "+1 (206) 555-0147",
)
# More of the same, drawn without the random generator (so every other value of the tenant stays
# what it was): a country code without its plus sign, and values that are no number at all.
MESSY_PHONES_MORE = ("4930 1234567", "12345", "ask the store", "+49 151 2345 6789")
COUNTRY_CODES = {"US": "1", "GB": "44", "DE": "49", "FR": "33", "NL": "31", "JP": "81"}


@dataclass(frozen=True)
class DemoPeople:
    """Well-known personas of a generated tenant, for tests and the authorize page."""

    managers: tuple[str, ...]  # user ids; managers[0] manages two stores
    it_admin: str
    guest: str
    disabled: str
    stores: tuple[str, ...]  # AU ids, in STORES order (then the big store, if any)
    # An AU with hidden membership (head office staff): listing its members needs
    # Member.Read.Hidden, which Lanyard does not ask for (docs/graph-contract.md §4.3).
    hidden_store: str = ""
    global_admin: str = ""
    group_manager: str = ""  # manages stores[2] through a role-assignable group
    manager_group: str = ""  # that group
    eligible_manager: str = ""  # only PIM-eligible for a role on stores[3]


class _Ids:
    """Deterministic UUIDs from the seeded generator."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def __call__(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))


def valid_pin(rng: random.Random, length: int = 8) -> str:
    """A PIN that passes the complexity rules of docs/graph-contract.md §1.2."""
    while True:
        pin = "".join(rng.choice("0123456789") for _ in range(length))
        if "0123456789" in pin or "9876543210" in pin:
            continue
        repeated = any(
            pin[i : i + n] * 3 in pin for n in (2, 3) for i in range(len(pin) - n + 1)
        ) or any(pin[i : i + 3] * 2 in pin for i in range(len(pin) - 2))
        if not repeated:
            return pin


def _phone_for(rng: random.Random, country: str) -> str:
    """A Graph-format phone number "+CC NUMBER" (docs/graph-contract.md §3)."""
    return f"+{COUNTRY_CODES.get(country, '1')} {rng.randint(6_000_000_000, 7_999_999_999)}"


def _add_worker(
    tenant: Tenant,
    rng: random.Random,
    new_id: _Ids,
    *,
    serial: int,
    store_code: str,
    store_country: str,
    now: datetime,
    taken: set[str],
) -> User:
    # Given name and surname come from different entries written in the same scripts, so 40
    # entries give hundreds of distinct, plausible people.
    first = rng.choice(NAMES)
    second = rng.choice(_SAME_SCRIPT[(_script(first[0]), _script(first[1]))])
    given, a_given, location = first[0], first[2], first[4]
    surname, a_surname = second[1], second[3]
    # Most workers live where their store is; some are international.
    country = store_country if rng.random() < 0.7 else location
    base = f"{a_given}.{a_surname}"
    upn_local, n = base, 1
    while upn_local in taken:
        n += 1
        upn_local = f"{base}{n}"
    taken.add(upn_local)
    upn = f"{upn_local}@{tenant.domain}"
    roll = rng.random()
    if roll < 0.15:
        mobile = None
    elif roll < 0.30:
        mobile = rng.choice(MESSY_PHONES)
        if serial % 3 == 0:
            mobile = MESSY_PHONES_MORE[serial // 3 % len(MESSY_PHONES_MORE)]
    else:
        mobile = _phone_for(rng, country)
    user = User(
        id=new_id(),
        user_principal_name=upn,
        display_name=f"{given} {surname}",
        given_name=given,
        surname=surname,
        mail=upn,
        job_title=rng.choice(JOB_TITLES),
        department=store_code,
        employee_id=f"FLW-{serial:06d}",
        mobile_phone=mobile,
        office_location=store_code,
        preferred_language={"JP": "ja-JP", "DE": "de-DE", "FR": "fr-FR", "NL": "nl-NL"}.get(
            country, "en-GB" if country == "GB" else "en-US"
        ),
        usage_location=country,
        country=country,
        created_date_time=now - timedelta(days=rng.randint(10, 2000)),
    )
    tenant.users[user.id] = user
    return user


def _give_methods(tenant: Tenant, rng: random.Random, new_id: _Ids, user: User, now: datetime):
    """Some workers already have a QR method, a phone method, or other methods."""
    roll = rng.random()
    if roll < 0.12:
        start = now - timedelta(days=rng.randint(1, 200))
        created = start
        tenant.qr_methods[user.id] = QrMethod(
            id=new_id(),
            created_date_time=created,
            standard=QrCode(
                id=new_id(),
                start_date_time=start,
                expire_date_time=start + timedelta(days=365),
                created_date_time=created,
            ),
            temporary=None,
            pin=QrPin(
                id=new_id(),
                code=valid_pin(rng),
                force_change_pin_next_sign_in=rng.random() < 0.5,
                created_date_time=created,
                updated_date_time=created,
            ),
        )
    if rng.random() < 0.25:
        number = _phone_for(rng, user.country or "US")
        tenant.phone_methods[user.id] = {
            "mobile": PhoneMethod("mobile", number, "notAllowedByPolicy")
        }
        tenant.sign_in_preferences[user.id] = SignInPreferences(
            is_system_preferred_authentication_method_enabled=True,
            user_preferred_method_for_secondary_authentication="sms",
        )
    if rng.random() < 0.2:
        tenant.other_methods[user.id] = rng.choice(
            [["microsoftAuthenticatorPush"], ["email"], ["microsoftAuthenticatorPush", "email"]]
        )


def _person(tenant: Tenant, new_id: _Ids, upn_local: str, name: str, title: str, now: datetime):
    given, _, surname = name.partition(" ")
    user = User(
        id=new_id(),
        user_principal_name=f"{upn_local}@{tenant.domain}",
        display_name=name,
        given_name=given,
        surname=surname,
        mail=f"{upn_local}@{tenant.domain}",
        job_title=title,
        department="Head office" if "IT" in title else "Store management",
        employee_id=None,
        mobile_phone=None,
        usage_location="GB",
        country="GB",
        created_date_time=now - timedelta(days=900),
    )
    tenant.users[user.id] = user
    return user


def demo_tenant(
    seed: int = 20261101,
    *,
    workers_per_store: int = 55,
    big_store_workers: int = 0,
    now: datetime | None = None,
) -> Tenant:
    """The demo tenant. Same seed and arguments → identical tenant (ids, names, methods)."""
    tenant, _ = demo_tenant_with_people(
        seed,
        workers_per_store=workers_per_store,
        big_store_workers=big_store_workers,
        now=now,
    )
    return tenant


def demo_tenant_with_people(
    seed: int = 20261101,
    *,
    workers_per_store: int = 55,
    big_store_workers: int = 0,
    now: datetime | None = None,
) -> tuple[Tenant, DemoPeople]:
    """`demo_tenant` plus the ids of its personas."""
    rng = random.Random(seed)
    new_id = _Ids(rng)
    now = now or DEMO_EPOCH
    tenant = Tenant(id=demo.DEMO_TENANT_ID, domain=demo.DEMO_TENANT_DOMAIN,
                    display_name=demo.DEMO_TENANT_NAME)  # fmt: skip
    tenant.apps[demo.DEMO_CLIENT_ID] = AppRegistration(
        client_id=demo.DEMO_CLIENT_ID,
        display_name="Lanyard",
        client_secret=demo.DEMO_CLIENT_SECRET,
        application_permissions=set(APPLICATION_PERMISSIONS),
        delegated_permissions=set(DELEGATED_PERMISSIONS),
        redirect_uris=list(REDIRECT_URIS),
    )
    tenant.qr_policy.state = "enabled"

    # Activated directory roles: their object ids are tenant-specific, not the template ids.
    roles = {}
    for template in (
        AUTHENTICATION_ADMINISTRATOR,
        AUTHENTICATION_POLICY_ADMINISTRATOR,
        PRIVILEGED_AUTHENTICATION_ADMINISTRATOR,
        GLOBAL_ADMINISTRATOR,
    ):
        role = DirectoryRole(
            id=new_id(),
            role_template_id=template,
            display_name=ROLE_NAMES[template],
            description=_ROLE_DESCRIPTIONS[template],
        )
        tenant.directory_roles[role.id] = role
        roles[template] = role

    managers = [
        _person(tenant, new_id, "jordan.lee", "Jordan Lee", "Regional store manager", now),
        _person(tenant, new_id, "marie.dupont", "Marie Dupont", "Store manager", now),
        _person(tenant, new_id, "hiroshi.sato", "Hiroshi Sato", "Store manager", now),
    ]
    it_admin = _person(tenant, new_id, "it.admin", "Priya Raman", "IT administrator", now)
    global_admin = _person(tenant, new_id, "break.glass", "Break Glass Admin", "IT emergency", now)
    roles[AUTHENTICATION_ADMINISTRATOR].member_ids.append(it_admin.id)
    roles[AUTHENTICATION_POLICY_ADMINISTRATOR].member_ids.append(it_admin.id)
    roles[GLOBAL_ADMINISTRATOR].member_ids.append(global_admin.id)

    admin_group = Group(
        id=demo.DEMO_ADMIN_GROUP_ID,
        display_name="Lanyard IT admins",
        description="Members administer Lanyard (LANYARD_ADMIN_GROUP_ID).",
        member_ids=[it_admin.id],
    )
    frontline = Group(id=new_id(), display_name="Frontline Workers",
                      description="All store staff")  # fmt: skip
    nested = Group(id=new_id(), display_name="Frontline Workers – Tokyo",
                   description="Nested in Frontline Workers")  # fmt: skip
    frontline.member_ids.append(nested.id)
    for group in (admin_group, frontline, nested):
        tenant.groups[group.id] = group

    taken = {"jordan.lee", "marie.dupont", "hiroshi.sato", "it.admin", "break.glass"}
    serial = 4400
    store_ids: list[str] = []
    store_plan = [(code, city, country, workers_per_store) for code, city, country in STORES]
    if big_store_workers:
        store_plan.append(("Store 900", "Distribution Centre", "US", big_store_workers))
    for index, (code, city, country, count) in enumerate(store_plan):
        unit = AdministrativeUnit(id=new_id(), display_name=f"{code} · {city}",
                                  description=f"{city} store staff")  # fmt: skip
        tenant.administrative_units[unit.id] = unit
        store_ids.append(unit.id)
        for _ in range(count):
            serial += 1
            worker = _add_worker(tenant, rng, new_id, serial=serial, store_code=code,
                                 store_country=country, now=now, taken=taken)  # fmt: skip
            unit.member_ids.append(worker.id)
            (nested if index == 3 else frontline).member_ids.append(worker.id)
            _give_methods(tenant, rng, new_id, worker, now)

    # Jordan manages two stores; Marie and Hiroshi one each. The big store (if any) is Jordan's.
    assignments = [(managers[0], store_ids[0]), (managers[0], store_ids[1]),
                   (managers[1], store_ids[2]), (managers[2], store_ids[3])]  # fmt: skip
    if big_store_workers:
        assignments.append((managers[0], store_ids[4]))
    for manager, unit_id in assignments:
        membership = ScopedRoleMembership(
            # Graph's membership ids are opaque base64-ish strings (docs/graph-examples/INDEX.md).
            id=_opaque_id(rng),
            role_id=roles[AUTHENTICATION_ADMINISTRATOR].id,
            administrative_unit_id=unit_id,
            user_id=manager.id,
        )
        tenant.scoped_role_memberships[membership.id] = membership

    # Edge cases: a guest in the first store and a disabled worker in the second.
    guest = User(
        id=new_id(),
        user_principal_name=f"sam.guest_fabrikam.com#EXT#@{tenant.domain}",
        display_name="Sam Guest (Fabrikam)",
        given_name="Sam",
        surname="Guest",
        mail="sam.guest@fabrikam.com",
        job_title="Contract merchandiser",
        user_type="Guest",
        usage_location="US",
        country="US",
        created_date_time=now - timedelta(days=40),
    )
    tenant.users[guest.id] = guest
    tenant.administrative_units[store_ids[0]].member_ids.append(guest.id)
    disabled_id = tenant.administrative_units[store_ids[1]].member_ids[3]
    tenant.users[disabled_id].account_enabled = False
    # One unlicensed worker (docs/graph-contract.md §2: users enabled in the policy must be
    # licensed).
    tenant.users[tenant.administrative_units[store_ids[2]].member_ids[5]].licensed = False
    # Head office hides its membership; its members are the managers and the IT admin, so the
    # store adds no user to the tenant.
    head_office = AdministrativeUnit(
        id=new_id(),
        display_name="Head Office",
        description="Head office staff (hidden membership)",
        member_ids=[*(m.id for m in managers), it_admin.id],
        visibility="HiddenMembership",
    )
    tenant.administrative_units[head_office.id] = head_office

    # Roles through groups and PIM (docs/graph-contract.md §4.4), drawn last so every id above
    # stays what it was. Lena manages the third store as a member of a role-assignable group that
    # holds the AU-scoped Authentication Administrator role; Tom is only PIM-eligible for it on the
    # fourth store (not a manager until he activates it). The IT admin group is role-assignable,
    # as it should be (only Privileged Role Administrators can change its members).
    admin_group.is_assignable_to_role = True
    group_manager = _person(tenant, new_id, "lena.fischer", "Lena Fischer", "Store manager", now)
    manager_group = Group(
        id=new_id(),
        display_name="Store 205 managers",
        description="Role-assignable: Authentication Administrator over Store 205",
        member_ids=[group_manager.id],
        is_assignable_to_role=True,
    )
    tenant.groups[manager_group.id] = manager_group
    membership = ScopedRoleMembership(id=_opaque_id(rng),
                                      role_id=roles[AUTHENTICATION_ADMINISTRATOR].id,
                                      administrative_unit_id=store_ids[2],
                                      user_id=manager_group.id)  # fmt: skip
    tenant.scoped_role_memberships[membership.id] = membership
    eligible = _person(tenant, new_id, "tom.becker", "Tom Becker", "Assistant store manager", now)
    eligibility = RoleEligibility(
        id=new_id(),
        role_template_id=AUTHENTICATION_ADMINISTRATOR,
        principal_id=eligible.id,
        directory_scope_id=f"/administrativeUnits/{store_ids[3]}",
    )
    tenant.role_eligibilities[eligibility.id] = eligibility

    people = DemoPeople(
        managers=tuple(m.id for m in managers),
        it_admin=it_admin.id,
        guest=guest.id,
        disabled=disabled_id,
        stores=tuple(store_ids),
        hidden_store=head_office.id,
        global_admin=global_admin.id,
        group_manager=group_manager.id,
        manager_group=manager_group.id,
        eligible_manager=eligible.id,
    )
    return tenant, people


def large_tenant(users: int = 10_000, seed: int = 20261101) -> Tenant:
    """The demo tenant plus one big store of `users` workers (paging tests, benchmarks)."""
    return demo_tenant(seed, big_store_workers=users)


def retail_tenant(workers: int = 100_000, stores: int = 2_000, seed: int = 20261101) -> Tenant:
    """The demo tenant plus `stores` stores sharing `workers` workers (directory-sync benchmark:
    100,000 workers in 2,000 stores build in a few seconds).

    Plainer than the demo's workers (no methods, numbered names) so that the size, not the
    realism, is what the benchmark measures.
    """
    tenant = demo_tenant(seed)
    rng = random.Random(seed + 1)
    new_id = _Ids(rng)
    created = DEMO_EPOCH - timedelta(days=365)
    per_store, extra = divmod(workers, stores)
    serial = 0
    for store in range(stores):
        unit = AdministrativeUnit(id=new_id(), display_name=f"Store {5000 + store} · Region "
                                  f"{store % 40}", description="Retail store staff")  # fmt: skip
        tenant.administrative_units[unit.id] = unit
        for _ in range(per_store + (1 if store < extra else 0)):
            serial += 1
            user = User(
                id=new_id(),
                user_principal_name=f"worker{serial:06d}@{tenant.domain}",
                display_name=f"Worker {serial:06d}",
                given_name="Worker",
                surname=f"{serial:06d}",
                employee_id=f"R{serial:06d}",
                job_title="Store associate",
                department=unit.display_name,
                usage_location="US",
                country="US",
                created_date_time=created,
            )
            tenant.users[user.id] = user
            unit.member_ids.append(user.id)
    return tenant


def _opaque_id(rng: random.Random) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return "".join(rng.choice(alphabet) for _ in range(48))


_ROLE_DESCRIPTIONS = {
    AUTHENTICATION_ADMINISTRATOR: (
        "Can access to view, set and reset authentication method information for any non-admin "
        "user."
    ),
    AUTHENTICATION_POLICY_ADMINISTRATOR: (
        "Can create and manage the authentication methods policy, tenant-wide MFA settings, "
        "password protection policy, and verifiable credentials."
    ),
    PRIVILEGED_AUTHENTICATION_ADMINISTRATOR: (
        "Can access to view, set and reset authentication method information for any user "
        "(admin or non-admin)."
    ),
    GLOBAL_ADMINISTRATOR: (
        "Can manage all aspects of Microsoft Entra ID and Microsoft services that use Microsoft "
        "Entra identities."
    ),
}
