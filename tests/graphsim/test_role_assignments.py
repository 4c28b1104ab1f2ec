"""Unified RBAC role assignments, role-assignable groups and PIM in graphsim
(docs/graph-contract.md §4.4)."""

from __future__ import annotations

import pytest

from graphsim.model import (
    AUTHENTICATION_ADMINISTRATOR,
    GLOBAL_ADMINISTRATOR,
    PRIVILEGED_AUTHENTICATION_ADMINISTRATOR,
    Group,
    ScopedRoleMembership,
)

ASSIGNMENTS = "/roleManagement/directory/roleAssignments"
README_DELEGATED = ["User.Read", "AdministrativeUnit.Read.All", "RoleManagement.Read.Directory",
                    "UserAuthenticationMethod.ReadWrite.All"]  # fmt: skip


@pytest.fixture
def app(graphsim):
    return graphsim.session(graphsim.issue_app_token())


def assignments(graphsim, session, query, version="v1.0"):
    response = session.get(graphsim.graph_url(f"{ASSIGNMENTS}?{query}", version))
    assert response.status_code == 200, response.text
    return response.json()["value"]


def test_a_managers_assignments_carry_the_au_scope_and_the_template_id(graphsim):
    manager = graphsim.people.managers[0]
    session = graphsim.session(graphsim.issue_delegated_token(manager, scopes=README_DELEGATED))
    found = assignments(graphsim, session, f"$filter=principalId eq '{manager}'")
    assert {a["directoryScopeId"] for a in found} == {
        f"/administrativeUnits/{unit}" for unit in graphsim.people.stores[:2]
    }
    assert {a["roleDefinitionId"] for a in found} == {AUTHENTICATION_ADMINISTRATOR}
    assert {a["principalId"] for a in found} == {manager}


def test_a_tenant_wide_assignment_has_the_root_scope(graphsim, app):
    found = assignments(graphsim, app, f"$filter=principalId eq '{graphsim.people.global_admin}'")
    assert [(a["directoryScopeId"], a["roleDefinitionId"]) for a in found] == [
        ("/", GLOBAL_ADMINISTRATOR)
    ]
    # The id follows the documented shape: role definition and principal, base64url, "-1".
    assert found[0]["id"].endswith("-1")


def test_a_filter_is_required(graphsim, app):
    response = app.get(graphsim.graph_url(ASSIGNMENTS))
    assert response.status_code == 400


def test_filters_on_scope_and_role_and_in(graphsim, app):
    store = graphsim.people.stores[2]
    found = assignments(
        graphsim,
        app,
        f"$filter=directoryScopeId eq '/administrativeUnits/{store}'&$expand=principal",
    )
    principals = {a["principalId"]: a["principal"]["@odata.type"] for a in found}
    assert principals == {
        graphsim.people.managers[1]: "#microsoft.graph.user",
        graphsim.people.manager_group: "#microsoft.graph.group",
    }
    ids = f"'{graphsim.people.it_admin}','{graphsim.people.global_admin}'"
    found = assignments(graphsim, app, f"$filter=principalId in ({ids})")
    assert {a["roleDefinitionId"] for a in found} >= {GLOBAL_ADMINISTRATOR}
    found = assignments(graphsim, app, f"$filter=roleDefinitionId eq '{GLOBAL_ADMINISTRATOR}'")
    assert [a["principalId"] for a in found] == [graphsim.people.global_admin]


def test_the_list_pages(graphsim, app):
    graphsim.sim.config.max_page_size = 2
    first = app.get(graphsim.graph_url(f"{ASSIGNMENTS}?$filter=directoryScopeId ne 'x'"))
    # ne is an advanced query: refused without ConsistencyLevel, like any directory collection.
    assert first.status_code == 400
    query = f"$filter=roleDefinitionId eq '{AUTHENTICATION_ADMINISTRATOR}'"
    body = app.get(graphsim.graph_url(f"{ASSIGNMENTS}?{query}")).json()
    assert len(body["value"]) == 2 and "@odata.nextLink" in body
    seen = list(body["value"])
    while "@odata.nextLink" in body:
        body = app.get(body["@odata.nextLink"]).json()
        seen += body["value"]
    assert len(seen) == 6  # five scoped (one through a group) and the IT admin's tenant-wide one


def test_it_needs_a_role_management_permission(graphsim):
    session = graphsim.session(graphsim.issue_app_token(roles=["User.Read.All"]))
    query = f"$filter=principalId eq '{graphsim.people.it_admin}'"
    response = session.get(graphsim.graph_url(f"{ASSIGNMENTS}?{query}"))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "Authorization_RequestDenied"


def test_a_pim_eligible_role_is_not_listed_until_activated(graphsim, app):
    eligible = graphsim.people.eligible_manager
    query = f"$filter=principalId eq '{eligible}'"
    assert assignments(graphsim, app, query) == []
    (eligibility_id,) = graphsim.tenant.role_eligibilities
    graphsim.tenant.role_activate(eligibility_id)
    found = assignments(graphsim, app, query)
    assert [a["directoryScopeId"] for a in found] == [
        f"/administrativeUnits/{graphsim.people.stores[3]}"
    ]


def test_scoped_role_members_name_the_group(graphsim, app):
    store = graphsim.people.stores[2]
    url = graphsim.graph_url(f"/directory/administrativeUnits/{store}/scopedRoleMembers")
    members = app.get(url).json()["value"]
    group = next(m for m in members if m["roleMemberInfo"]["id"] == graphsim.people.manager_group)
    assert group["roleMemberInfo"]["displayName"] == "Store 205 managers"
    assert group["roleMemberInfo"]["userPrincipalName"] is None


# -- writes by a role held through a group, and to members of role-assignable groups ----------


def _worker_without_phone(graphsim, store: str) -> str:
    tenant = graphsim.tenant
    unit = tenant.administrative_units[store]
    return next(
        m for m in unit.member_ids
        if m in tenant.users and tenant.users[m].account_enabled
        and tenant.users[m].user_type == "Member" and m not in tenant.phone_methods
    )  # fmt: skip


def _add_mobile(graphsim, actor: str, target: str):
    session = graphsim.session(graphsim.issue_delegated_token(actor, scopes=README_DELEGATED))
    return session.post(
        graphsim.graph_url(f"/users/{target}/authentication/phoneMethods"),
        json={"phoneNumber": "+49 15123456789", "phoneType": "mobile"},
    )


def test_a_role_held_through_a_group_allows_writes_in_its_store(graphsim):
    worker = _worker_without_phone(graphsim, graphsim.people.stores[2])
    assert _add_mobile(graphsim, graphsim.people.group_manager, worker).status_code == 201
    other = _worker_without_phone(graphsim, graphsim.people.stores[0])
    assert _add_mobile(graphsim, graphsim.people.group_manager, other).status_code == 403


def _protect(graphsim, user_id: str) -> None:
    group = Group(id="5e0b3b1e-0000-4000-8000-00000000beef", display_name="Shift leads (roles)",
                  member_ids=[user_id], is_assignable_to_role=True)  # fmt: skip
    graphsim.tenant.groups[group.id] = group


def test_an_authentication_administrator_may_not_change_a_role_assignable_group_member(graphsim):
    store = graphsim.people.stores[2]
    worker = _worker_without_phone(graphsim, store)
    _protect(graphsim, worker)
    refused = _add_mobile(graphsim, graphsim.people.managers[1], worker)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "Authorization_RequestDenied"
    assert "role-assignable" in refused.json()["error"]["message"]
    assert worker not in graphsim.tenant.phone_methods
    # QR writes too.
    session = graphsim.session(
        graphsim.issue_delegated_token(graphsim.people.managers[1], scopes=README_DELEGATED)
    )
    qr = session.put(
        graphsim.graph_url(f"/users/{worker}/authentication/qrCodePinMethod"),
        json={"standardQRCode": {"startDateTime": "2026-11-01T09:00:00Z",
                                 "expireDateTime": "2027-01-01T09:00:00Z"}},
    )  # fmt: skip
    assert qr.status_code == 403
    # A Privileged Authentication Administrator over the same store may.
    role = graphsim.tenant.directory_role_by_template(PRIVILEGED_AUTHENTICATION_ADMINISTRATOR)
    membership = ScopedRoleMembership(id="pim-paa", role_id=role.id,
                                      administrative_unit_id=store,
                                      user_id=graphsim.people.managers[1])  # fmt: skip
    graphsim.tenant.scoped_role_memberships[membership.id] = membership
    assert _add_mobile(graphsim, graphsim.people.managers[1], worker).status_code == 201


def test_the_app_identity_is_not_bound_by_the_group_rule(graphsim, app):
    worker = _worker_without_phone(graphsim, graphsim.people.stores[2])
    _protect(graphsim, worker)
    response = app.post(
        graphsim.graph_url(f"/users/{worker}/authentication/phoneMethods"),
        json={"phoneNumber": "+49 15123456789", "phoneType": "mobile"},
    )
    assert response.status_code == 201


def test_the_demo_sign_in_page_offers_the_group_manager_and_the_eligible_user(graphsim):
    from graphsim.identity import sign_in_candidates

    notes = {user.id: " / ".join(n) for user, n in sign_in_candidates(graphsim.tenant)}
    assert "through Store 205 managers" in notes[graphsim.people.group_manager]
    assert "PIM-eligible, not activated" in notes[graphsim.people.eligible_manager]
