"""The IT admin's tenant pages (issue 11 items 4–6): the QR code + PIN policy, the audit log and
readiness. Graph is graphsim; its state is what the tests check."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

import provisioning.graph
from graphsim.demo import DEMO_CLIENT_ID
from provisioning import audit
from provisioning.graph import APPLICATION_PERMISSIONS
from provisioning.models import AdministrativeUnit, AuditEvent, ScopedRoleAssignment
from tests.fixtures_portal import sign_in
from tests.readme_permissions import readme_grants

PAGES = ("/admin/qr-policy/", "/admin/audit/", "/admin/audit/audit.csv", "/admin/readiness/")
FRONTLINE = "Frontline Workers"


@pytest.fixture
def charlie_client(client, charlie, directory):
    sign_in(client, charlie)
    return client


def _policy_form(**overrides) -> dict:
    form = {
        "state": "enabled",
        "pin_length": "8",
        "lifetime_days": "365",
        "include_groups": "All users",
        "exclude_groups": "",
    }
    form.update(overrides)
    return form


def _group_id(graphsim, name: str) -> str:
    return next(g.id for g in graphsim.tenant.groups.values() if g.display_name == name)


# -- who may come in ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
def test_pages_are_for_it_admins_only(client, alice, directory, path):
    response = client.get(path)
    assert response.status_code == 302 and "/auth/sign-in" in response["Location"]
    sign_in(client, alice)
    assert client.get(path).status_code == 403


def test_a_manager_cannot_change_the_policy(client, alice, directory):
    sign_in(client, alice)
    response = client.post("/admin/qr-policy/", _policy_form(pin_length="12"))
    assert response.status_code == 403
    assert directory.tenant.qr_policy.pin_length == 8


def test_the_admin_header_links_the_pages(charlie_client):
    page = charlie_client.get("/admin/").content.decode()
    for path in ("/admin/qr-policy/", "/admin/audit/", "/admin/readiness/"):
        assert f'href="{path}"' in page


def test_managers_do_not_see_the_admin_links(client, alice, directory):
    sign_in(client, alice)
    assert 'href="/admin/qr-policy/"' not in client.get("/stores/").content.decode()


# -- QR policy ---------------------------------------------------------------------------------


def test_the_policy_page_shows_the_policy_with_group_names(charlie_client, directory):
    tenant = directory.tenant
    tenant.qr_policy.include_targets = [
        {"targetType": "group", "id": _group_id(directory, FRONTLINE),
         "isRegistrationRequired": False}
    ]  # fmt: skip
    response = charlie_client.get("/admin/qr-policy/")
    assert response.status_code == 200
    page = response.content.decode()
    assert FRONTLINE in page
    assert _group_id(directory, FRONTLINE) not in page  # shown by name, not by id


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("pin_length", "7", "from 8 to 20"),
        ("pin_length", "21", "from 8 to 20"),
        ("lifetime_days", "0", "from 1 to 395"),
        ("lifetime_days", "396", "from 1 to 395"),
        ("include_groups", "No Such Group", "No group is named"),
        ("exclude_groups", "No Such Group", "No group is named"),
    ],
)
def test_a_change_graph_would_refuse_never_reaches_graph(charlie_client, directory, field, value,
                                                         message):  # fmt: skip
    before = (directory.tenant.qr_policy.pin_length,
              directory.tenant.qr_policy.standard_qr_code_lifetime_in_days,
              list(directory.tenant.qr_policy.include_targets),
              list(directory.tenant.qr_policy.exclude_targets))  # fmt: skip
    response = charlie_client.post("/admin/qr-policy/", _policy_form(**{field: value}))
    assert response.status_code == 400
    assert message in response.content.decode()
    policy = directory.tenant.qr_policy
    after = (policy.pin_length, policy.standard_qr_code_lifetime_in_days,
             list(policy.include_targets), list(policy.exclude_targets))  # fmt: skip
    assert after == before
    assert not AuditEvent.objects.filter(action="qr_policy_update").exists()


def test_a_valid_change_reaches_graph_is_audited_and_the_cache_is_fresh(charlie_client, directory):
    from provisioning.qr_policy import qr_policy_current

    assert qr_policy_current().pin_length == 8  # cached before the change
    response = charlie_client.post(
        "/admin/qr-policy/",
        _policy_form(pin_length="10", lifetime_days="200", include_groups=FRONTLINE,
                     exclude_groups="Frontline Workers – Tokyo"),
    )  # fmt: skip
    assert response.status_code == 302
    policy = directory.tenant.qr_policy
    frontline, tokyo = (
        _group_id(directory, FRONTLINE),
        _group_id(directory, "Frontline Workers – Tokyo"),
    )
    assert (policy.pin_length, policy.standard_qr_code_lifetime_in_days) == (10, 200)
    assert [t["id"] for t in policy.include_targets] == [frontline]
    assert [t["id"] for t in policy.exclude_targets] == [tokyo]
    assert qr_policy_current().pin_length == 10  # the cached policy was dropped

    event = AuditEvent.objects.get(action="qr_policy_update")
    assert event.outcome == "succeeded"
    assert (
        event.actor_label == directory.tenant.users[directory.people.it_admin].user_principal_name
    )
    assert "pinLength: 8 → 10" in event.detail
    assert "standardQRCodeLifetimeInDays: 365 → 200" in event.detail
    assert f"[all_users] → [{frontline}]" in event.detail
    assert event.graph_request_id

    page = charlie_client.get("/admin/qr-policy/").content.decode()
    assert "The QR code + PIN policy was saved." in page


def test_the_policy_can_be_turned_off_and_an_unchanged_form_writes_nothing(charlie_client,
                                                                           directory):  # fmt: skip
    charlie_client.post("/admin/qr-policy/", _policy_form())
    assert not AuditEvent.objects.filter(action="qr_policy_update").exists()
    charlie_client.post("/admin/qr-policy/", _policy_form(state="disabled"))
    assert directory.tenant.qr_policy.state == "disabled"
    assert "state: enabled → disabled" in AuditEvent.objects.get(action="qr_policy_update").detail


def test_a_misspelt_group_is_refused_with_similar_names(charlie_client, directory):
    response = charlie_client.post("/admin/qr-policy/", _policy_form(include_groups="Frontlin"))
    assert response.status_code == 400
    page = response.content.decode()
    assert "No group is named “Frontlin”." in page
    assert "Groups starting like it: Frontline Workers, Frontline Workers – Tokyo." in page


def test_a_group_can_be_given_by_id_and_an_ambiguous_name_is_refused(charlie_client, directory):
    from graphsim.model import Group

    frontline = _group_id(directory, FRONTLINE)
    twin = Group(id="0f0f0f0f-0000-4000-8000-000000000001", display_name=FRONTLINE)
    directory.tenant.groups[twin.id] = twin
    response = charlie_client.post("/admin/qr-policy/", _policy_form(include_groups=FRONTLINE))
    assert response.status_code == 400
    assert "2 groups are named “Frontline Workers”" in response.content.decode()
    response = charlie_client.post("/admin/qr-policy/", _policy_form(include_groups=frontline))
    assert response.status_code == 302
    assert [t["id"] for t in directory.tenant.qr_policy.include_targets] == [frontline]


def test_a_change_graph_refuses_is_shown_and_audited_as_failed(charlie_client, directory):
    app = directory.tenant.apps[DEMO_CLIENT_ID]
    app.application_permissions -= {"Policy.ReadWrite.AuthenticationMethod"}
    app.application_permissions |= {"Policy.Read.AuthenticationMethod"}  # may read, not write
    provisioning.graph._singletons.clear()
    response = charlie_client.post("/admin/qr-policy/", _policy_form(pin_length="12"))
    assert response.status_code == 400
    assert "Entra refused the change" in response.content.decode()
    assert directory.tenant.qr_policy.pin_length == 8
    event = AuditEvent.objects.get(action="qr_policy_update")
    assert event.outcome == "failed" and "pinLength: 8 → 12" in event.detail


def test_an_unreadable_policy_is_said_plainly(charlie_client, qr_policy_unreadable):
    response = charlie_client.get("/admin/qr-policy/")
    assert response.status_code == 200
    assert 'id="policy-unreadable"' in response.content.decode()
    assert 'id="policy-form"' not in response.content.decode()
    refused = charlie_client.post("/admin/qr-policy/", _policy_form(pin_length="12"))
    assert refused.status_code == 400
    assert qr_policy_unreadable.tenant.qr_policy.pin_length == 8


# -- audit log ---------------------------------------------------------------------------------


def _event(**fields) -> AuditEvent:
    defaults = {"actor": None, "actor_label": "x@contoso.com", "action": "pin_reset",
                "outcome": "succeeded"}  # fmt: skip
    return audit.record(**{**defaults, **fields})


def test_the_audit_log_filters_by_actor_action_store_worker_and_dates(charlie_client, directory):
    store = AdministrativeUnit.objects.order_by("display_name").first()
    _event(actor_label="ann@contoso.com", action="qr_add", target_label="Worker One",
           administrative_unit_id=store.id)  # fmt: skip
    _event(actor_label="ben@contoso.com", action="pin_reset", target_label="Worker Two")
    old = _event(actor_label="ann@contoso.com", action="pin_reset", target_label="Worker Three")
    AuditEvent.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=10))

    def shown(**query) -> set[str]:
        page = charlie_client.get("/admin/audit/", query).content.decode()
        return {name for name in ("Worker One", "Worker Two", "Worker Three") if name in page}

    assert shown() == {"Worker One", "Worker Two", "Worker Three"}
    assert shown(actor="ann") == {"Worker One", "Worker Three"}
    assert shown(action="pin_reset") == {"Worker Two", "Worker Three"}
    assert shown(store=store.id) == {"Worker One"}
    assert shown(worker="two") == {"Worker Two"}
    today = timezone.localdate()
    assert shown(since=str(today - timedelta(days=1))) == {"Worker One", "Worker Two"}
    assert shown(until=str(today - timedelta(days=5))) == {"Worker Three"}
    assert (
        store.display_name
        in charlie_client.get("/admin/audit/", {"store": store.id}).content.decode()
    )


def test_the_audit_log_is_paginated_with_a_constant_number_of_queries(
    charlie_client, directory, django_assert_num_queries
):
    stores = list(AdministrativeUnit.objects.all())
    _event(target_label="first", administrative_unit_id=stores[0].id)
    with CaptureQueriesContext(connection) as small:
        assert charlie_client.get("/admin/audit/").status_code == 200
    for i in range(120):
        _event(target_label=f"w{i}", administrative_unit_id=stores[i % len(stores)].id)
    with django_assert_num_queries(len(small.captured_queries)):
        response = charlie_client.get("/admin/audit/", {"page": 2})
    assert "Page 2 of 3" in response.content.decode()


def test_the_csv_export_is_filtered_quoted_and_neutralised(charlie_client, directory):
    _event(target_label="=cmd|' /C calc'!A0", detail="a;b, c")
    _event(action="qr_add", target_label="not exported")
    response = charlie_client.get("/admin/audit/audit.csv", {"action": "pin_reset"})
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="lanyard-audit-log.csv"'
    text = response.content.decode("utf-8-sig")
    lines = text.splitlines()
    assert len(lines) == 2 and "not exported" not in text
    for line in lines:
        assert line.startswith('"') and line.endswith('"')  # every cell quoted
    row = dict(zip(*csv.reader(io.StringIO(text)), strict=True))
    assert row["worker"] == "'=cmd|' /C calc'!A0"  # neutralised
    assert row["detail"] == "a;b, c"
    assert '"a;b, c"' in lines[1]  # the `;` stays inside one quoted cell


# -- readiness ---------------------------------------------------------------------------------


def test_the_required_application_permissions_are_the_readme_table():
    assert set(APPLICATION_PERMISSIONS) == readme_grants().application


def _check(page: str, key: str) -> str:
    """The readiness page's block of one check."""
    start = page.index(f'id="check-{key}"')
    end = page.find('id="check-', start + 1)
    return page[start : end if end != -1 else page.index('id="manual-steps"')]


def test_readiness_of_the_demo_tenant(charlie_client, directory):
    response = charlie_client.get("/admin/readiness/")
    assert response.status_code == 200
    page = response.content.decode()
    keys = ("state", "targets", "pin-length", "app-permissions", "delegated-scopes", "admin-group")
    for key in keys:
        assert f'id="check-{key}" data-ok="true"' in page, key
    assert 'id="check-hidden-stores" data-ok="false"' in page  # the demo's Head Office
    assert "Head Office" in page
    assert "preferred_auth_config" in page and "qrpin" in page
    assert "Conditional Access" in page


def test_readiness_flags_a_missing_permission_and_a_store_without_a_manager(
    charlie_client, directory
):
    app = directory.tenant.apps[DEMO_CLIENT_ID]
    app.application_permissions -= {"UserAuthMethod-Phone.ReadWrite.All"}
    provisioning.graph._singletons.clear()  # the next app token carries the new roles
    store = AdministrativeUnit.objects.get(id=directory.people.stores[0])
    ScopedRoleAssignment.objects.filter(administrative_unit=store).delete()

    page = charlie_client.get("/admin/readiness/").content.decode()
    assert 'id="check-app-permissions" data-ok="false"' in page
    assert "<li>UserAuthMethod-Phone.ReadWrite.All</li>" in page
    assert 'id="check-unmanaged-stores" data-ok="false"' in page
    assert store.display_name in _check(page, "unmanaged-stores")
    assert store.display_name not in _check(page, "hidden-stores")


def test_readiness_flags_a_disabled_method_targeting_nobody(charlie_client, directory):
    directory.tenant.qr_policy.state = "disabled"
    directory.tenant.qr_policy.include_targets = []
    page = charlie_client.get("/admin/readiness/").content.decode()
    assert 'id="check-state" data-ok="false"' in page
    assert 'id="check-targets" data-ok="false"' in page
    assert "targets nobody" in page
