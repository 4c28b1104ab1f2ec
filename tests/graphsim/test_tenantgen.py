"""The generated demo tenants: deterministic, realistic, with the personas the portal needs."""

from __future__ import annotations

import copy
import unicodedata

from graphsim import demo, persist
from graphsim.authz import user_role_templates_over
from graphsim.model import AUTHENTICATION_ADMINISTRATOR, AUTHENTICATION_POLICY_ADMINISTRATOR
from graphsim.tenantgen import (
    APPLICATION_PERMISSIONS,
    MESSY_PHONES,
    demo_tenant,
    demo_tenant_with_people,
    large_tenant,
    valid_pin,
)


def test_generated_pins_follow_the_complexity_rules():
    import random

    rng = random.Random(1)
    for _ in range(200):
        pin = valid_pin(rng)
        assert pin.isdigit() and len(pin) == 8
        # No 2-digit group three times or 3-digit group twice in a row (121212, 123123).
        windows = [pin[i : i + 6] for i in range(len(pin) - 5)]
        assert not any(w[:2] * 3 == w or w[:3] * 2 == w for w in windows)
        assert "0123456789" not in pin and "9876543210" not in pin


def test_same_seed_same_tenant():
    assert persist.tenant_to_json(demo_tenant()) == persist.tenant_to_json(demo_tenant())
    assert persist.tenant_to_json(demo_tenant(7)) != persist.tenant_to_json(demo_tenant(8))


def test_fixed_ids_from_demo_module():
    tenant = demo_tenant()
    assert tenant.id == demo.DEMO_TENANT_ID
    assert tenant.domain == demo.DEMO_TENANT_DOMAIN
    app = tenant.apps[demo.DEMO_CLIENT_ID]
    assert app.client_secret == demo.DEMO_CLIENT_SECRET
    assert app.application_permissions == set(APPLICATION_PERMISSIONS)
    assert "http://127.0.0.1:8000/auth/callback" in app.redirect_uris
    assert "http://localhost:8000/auth/callback" in app.redirect_uris


def test_stores_workers_and_variety():
    tenant, people = demo_tenant_with_people()
    assert len(people.stores) >= 3
    for unit_id in people.stores:
        assert len(tenant.administrative_units[unit_id].member_ids) >= 50
    workers = [u for u in tenant.users.values() if u.employee_id]
    scripts = {
        unicodedata.name(ch).split()[0] for u in workers for ch in u.display_name if ch.isalpha()
    }
    assert {"LATIN", "CYRILLIC", "GREEK", "CJK", "ARABIC"} <= scripts
    assert any(not ch.isascii() for u in workers for ch in u.display_name if "LATIN" in
               unicodedata.name(ch, ""))  # accents  # fmt: skip
    assert {u.usage_location for u in workers} >= {"US", "GB", "DE", "FR", "NL", "JP"}
    assert all(u.user_principal_name.isascii() for u in tenant.users.values())
    assert len({u.user_principal_name.lower() for u in tenant.users.values()}) == len(tenant.users)
    assert len({u.employee_id for u in workers}) == len(workers)
    phones = [u.mobile_phone for u in workers]
    assert None in phones
    assert set(MESSY_PHONES) & set(phones)


def test_managers_and_it_admin_roles():
    tenant, people = demo_tenant_with_people()
    jordan, marie, hiroshi = people.managers
    scoped = {}
    for membership in tenant.scoped_role_memberships.values():
        scoped.setdefault(membership.user_id, set()).add(membership.administrative_unit_id)
        role = tenant.directory_roles[membership.role_id]
        assert role.role_template_id == AUTHENTICATION_ADMINISTRATOR
        assert membership.role_id != AUTHENTICATION_ADMINISTRATOR
    assert scoped[jordan] == set(people.stores[:2])
    assert len(scoped[marie]) == len(scoped[hiroshi]) == 1
    admin_roles = {
        r.role_template_id
        for r in tenant.directory_roles.values()
        if people.it_admin in r.member_ids
    }
    assert admin_roles == {AUTHENTICATION_ADMINISTRATOR, AUTHENTICATION_POLICY_ADMINISTRATOR}
    assert people.it_admin in tenant.groups[demo.DEMO_ADMIN_GROUP_ID].member_ids
    # Jordan administers a worker in store 1, not one in Marie's store.
    store1_worker = tenant.users[tenant.administrative_units[people.stores[0]].member_ids[0]]
    store3_worker = tenant.users[tenant.administrative_units[people.stores[2]].member_ids[0]]
    assert AUTHENTICATION_ADMINISTRATOR in user_role_templates_over(tenant, jordan, store1_worker)
    assert not user_role_templates_over(tenant, jordan, store3_worker)


def test_edge_cases_and_existing_methods():
    tenant, people = demo_tenant_with_people()
    assert tenant.users[people.guest].user_type == "Guest"
    assert tenant.users[people.disabled].account_enabled is False
    assert 5 < len(tenant.qr_methods) < 80
    assert len(tenant.phone_methods) > 10
    for method in tenant.qr_methods.values():
        pin = method.pin.code
        assert pin.isdigit() and len(pin) == 8 and "0123456789" not in pin
        assert method.standard is not None
    frontline = next(g for g in tenant.groups.values() if g.display_name == "Frontline Workers")
    nested = [tenant.groups[m] for m in frontline.member_ids if m in tenant.groups]
    assert len(nested) == 1 and len(nested[0].member_ids) >= 50


def test_large_tenant_has_one_big_store():
    tenant = large_tenant(10_000)
    sizes = sorted(len(u.member_ids) for u in tenant.administrative_units.values())
    assert sizes[-1] == 10_000
    assert len(tenant.users) > 10_000


def test_tenant_survives_a_json_round_trip_and_deepcopy():
    tenant = demo_tenant()
    again = persist.tenant_from_json(persist.tenant_to_json(tenant))
    assert persist.tenant_to_json(again) == persist.tenant_to_json(tenant)
    copied = copy.deepcopy(tenant)
    assert copied.lock is not tenant.lock
    assert persist.tenant_to_json(copied) == persist.tenant_to_json(tenant)


def test_user_lookup_by_upn_follows_changes():
    tenant = demo_tenant()
    user = next(iter(tenant.users.values()))
    assert tenant.user_by_id_or_upn(user.user_principal_name.upper()) is user
    user.user_principal_name = "renamed@" + tenant.domain
    assert tenant.user_by_id_or_upn("RENAMED@" + tenant.domain) is user
    del tenant.users[user.id]
    assert tenant.user_by_id_or_upn(user.id) is None


def test_profile_numbers_are_as_messy_as_people_type_them():
    """Phone pre-population's inputs (issue 11): national formats, spaces and dashes, a country
    code without its plus sign, values that are no number, and none at all."""
    from graphsim.reports import registration_row
    from graphsim.tenantgen import MESSY_PHONES_MORE

    tenant = demo_tenant()
    phones = {u.mobile_phone for u in tenant.users.values()}
    assert {" 06-12345678 ", "(555) 010-2345"} <= phones  # national, with dashes and spaces
    assert {"4930 1234567", "12345", "ask the store"} <= phones  # no plus sign; no number
    assert set(MESSY_PHONES_MORE) <= phones and None in phones
    # The registration report agrees with the methods: a phone means MFA, QR code + PIN does not.
    for user in tenant.users.values():
        row = registration_row(tenant, user)
        if tenant.phone_methods.get(user.id):
            assert row["isMfaRegistered"] is True
        elif not tenant.other_methods.get(user.id):
            assert row["isMfaRegistered"] is False
