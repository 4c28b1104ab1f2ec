"""Who manages which store, with only the README's delegated permissions: direct, group-assigned
and PIM roles (issue 9 items 1 and 2; docs/graph-contract.md §4.4)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from graphsim.demo import DEMO_CLIENT_ID
from graphsim.model import AUTHENTICATION_POLICY_ADMINISTRATOR, Group
from provisioning.directory import directory_sync
from provisioning.graph import get_app_client
from provisioning.models import AdministrativeUnit, Operation, ScopedRoleAssignment
from tests.fixtures_manager import _fresh_worker, add_qr
from tests.fixtures_portal import _persona, sign_in

pytestmark = pytest.mark.django_db

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_delegated_permissions() -> set[str]:
    """The delegated column of the README's "API permissions" table, plus the sign-in extras the
    README names under it (`User.Read`)."""
    granted = {"User.Read"}
    for line in README.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and re.fullmatch(r"`[A-Za-z.\-]+`", cells[0]) and "✓" in cells[1]:
            granted.add(cells[0].strip("`"))
    return granted


@pytest.fixture
def readme_grants(portal_graph):
    """The app consented to exactly the README's delegated permissions, nothing more."""
    granted = readme_delegated_permissions()
    assert "RoleManagement.Read.Directory" in granted and "Directory.Read.All" not in granted
    portal_graph.tenant.apps[DEMO_CLIENT_ID].delegated_permissions = granted
    return granted


def test_a_manager_signs_in_with_only_the_readme_delegated_permissions(
    client, alice, portal_graph, readme_grants
):
    user = sign_in(client, alice)
    stores = set(
        AdministrativeUnit.objects.filter(scoped_roles__principal_id=alice.user_id).values_list(
            "id", flat=True
        )
    )
    assert stores == set(portal_graph.people.stores[:2])
    assert not user.manages_all_stores
    page = client.get("/").content.decode()
    for store in AdministrativeUnit.objects.filter(id__in=stores):
        assert store.display_name in page
    # graphsim enforces each call's permission table: nothing was refused along the way.
    assert not any(key.endswith(" 403") for key in portal_graph.stats["requests"])


def test_a_group_assigned_manager_sees_the_store_at_sign_in(client, portal_graph, readme_grants):
    people = portal_graph.people
    sign_in(client, _persona(portal_graph, people.group_manager))
    store = people.stores[2]
    assert ScopedRoleAssignment.objects.filter(
        administrative_unit_id=store, principal_id=people.group_manager
    ).exists()
    assert client.get(f"/stores/{store}/").status_code == 200
    assert client.get(f"/stores/{people.stores[0]}/").status_code == 404


def test_the_sync_expands_a_group_principal_to_its_members(directory):
    people = directory.people
    held = ScopedRoleAssignment.objects.filter(administrative_unit_id=people.stores[2])
    assert set(held.values_list("principal_id", flat=True)) == {
        people.managers[1],
        people.group_manager,
    }
    # Removed from the group in Entra: no longer a manager after the next sync.
    directory.tenant.groups[people.manager_group].member_ids.remove(people.group_manager)
    directory_sync(client=get_app_client())
    assert not ScopedRoleAssignment.objects.filter(principal_id=people.group_manager).exists()


def test_a_pim_eligible_only_user_is_not_a_manager_until_activated(
    client, portal_graph, readme_grants
):
    people = portal_graph.people
    persona = _persona(portal_graph, people.eligible_manager)
    sign_in(client, persona)
    response = client.get("/")
    assert response.status_code == 403
    assert client.get(f"/stores/{people.stores[3]}/").status_code == 404

    (eligibility_id,) = portal_graph.tenant.role_eligibilities
    portal_graph.tenant.role_activate(eligibility_id)
    client.post("/auth/sign-out")
    sign_in(client, persona)
    assert client.get(f"/stores/{people.stores[3]}/").status_code == 200


def test_the_sync_ignores_an_eligible_role(directory):
    assert not ScopedRoleAssignment.objects.filter(
        principal_id=directory.people.eligible_manager
    ).exists()


# -- members of role-assignable groups --------------------------------------------------------


def _role_assignable_group(graphsim, member: str, *, holds_role: bool) -> Group:
    group = Group(id="0c8f1f4e-1111-4222-8333-444455556666", display_name="Shift leads (roles)",
                  member_ids=[member], is_assignable_to_role=True)  # fmt: skip
    graphsim.tenant.groups[group.id] = group
    if holds_role:
        role = graphsim.tenant.directory_role_by_template(AUTHENTICATION_POLICY_ADMINISTRATOR)
        role.member_ids.append(group.id)
    return group


def test_the_worker_page_says_before_trying_that_only_a_privileged_admin_can(
    client, bob, directory, bob_store, run_tasks
):
    worker = _fresh_worker(directory, bob_store)
    _role_assignable_group(directory, worker.user_id, holds_role=True)
    directory_sync(client=get_app_client())
    sign_in(client, bob)
    page = client.get(worker.url()).content.decode()
    assert "role-assignable-warning" in page
    assert "Only a Privileged Authentication Administrator" in page
    assert "Shift leads (roles)" in page

    add_qr(client, worker, run_tasks)
    operation = Operation.objects.get(worker_id=worker.user_id)
    assert operation.status == "failed"
    assert "role-assignable group Shift leads (roles)" in operation.error
    assert "Privileged Authentication Administrator" in operation.error
    assert worker.user_id not in directory.tenant.qr_methods


def test_a_refusal_lanyard_did_not_foresee_is_explained(
    client, bob, directory, bob_store, run_tasks
):
    worker = _fresh_worker(directory, bob_store)
    _role_assignable_group(directory, worker.user_id, holds_role=False)  # not known to Lanyard
    sign_in(client, bob)
    assert "role-assignable-warning" not in client.get(worker.url()).content.decode()
    add_qr(client, worker, run_tasks)
    operation = Operation.objects.get(worker_id=worker.user_id)
    assert operation.status == "failed"
    assert "role-assignable group" in operation.error
    assert "Privileged Authentication Administrator" in operation.error


def test_an_ordinary_worker_page_has_no_such_warning(client, bob, directory, bob_store):
    worker = _fresh_worker(directory, bob_store)
    sign_in(client, bob)
    assert "role-assignable-warning" not in client.get(worker.url()).content.decode()
