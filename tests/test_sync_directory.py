"""`manage.py sync_directory`: AUs, members and scoped roles; incremental and idempotent."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from graphsim.tenantgen import large_tenant
from provisioning.models import (
    AdministrativeUnit,
    AUMembership,
    DirectorySync,
    DirectoryUser,
    ScopedRoleAssignment,
)
from provisioning.roles import MANAGER_ROLE_TEMPLATES
from tests.fixtures_portal import reset_graph_clients

pytestmark = pytest.mark.django_db


def sync() -> str:
    out = StringIO()
    call_command("sync_directory", stdout=out)
    return out.getvalue()


def test_it_mirrors_stores_members_and_scoped_roles(portal_graph):
    output = sync()
    tenant = portal_graph.tenant
    assert "Directory synced" in output
    assert AdministrativeUnit.objects.count() == len(tenant.administrative_units)
    for unit in tenant.administrative_units.values():
        # Without Member.Read.Hidden the hidden store's members are not readable (see below).
        users = {m for m in unit.member_ids if m in tenant.users and not unit.visibility}
        cached = set(
            AUMembership.objects.filter(administrative_unit_id=unit.id).values_list(
                "user_id", flat=True
            )
        )
        assert cached == users
    # roleId is a directoryRole id: the cache holds the template id it resolves to.
    assert set(ScopedRoleAssignment.objects.values_list("role_template_id", flat=True)) <= set(
        MANAGER_ROLE_TEMPLATES
    ) | {t.lower() for t in MANAGER_ROLE_TEMPLATES}
    manager = portal_graph.people.managers[0]
    assert ScopedRoleAssignment.objects.filter(principal_id=manager).count() == 2


def test_a_second_run_changes_nothing(portal_graph):
    sync()
    before = list(DirectoryUser.objects.values_list("id", "synced_at"))
    output = sync()
    assert "no changes" in output or "created" not in output
    assert list(DirectoryUser.objects.values_list("id", "synced_at")) == before
    assert DirectorySync.objects.latest().summary == {}


def test_it_removes_departed_members_and_revoked_roles(portal_graph):
    sync()
    tenant = portal_graph.tenant
    unit = next(iter(tenant.administrative_units.values()))
    departed = next(m for m in unit.member_ids if m in tenant.users)
    unit.member_ids.remove(departed)
    membership = next(iter(tenant.scoped_role_memberships))
    del tenant.scoped_role_memberships[membership]
    renamed = next(m for m in unit.member_ids if m in tenant.users)
    tenant.users[renamed].job_title = "Shift Lead (renamed)"

    sync()
    summary = DirectorySync.objects.latest().summary
    assert not AUMembership.objects.filter(
        administrative_unit_id=unit.id, user_id=departed
    ).exists()
    assert not ScopedRoleAssignment.objects.filter(id=membership).exists()
    assert DirectoryUser.objects.get(id=renamed).job_title == "Shift Lead (renamed)"
    assert summary["members_removed"] == 1
    assert summary["roles_removed"] == 1
    assert summary["users_updated"] == 1


def test_it_removes_a_deleted_store(portal_graph):
    sync()
    tenant = portal_graph.tenant
    unit_id = next(iter(tenant.administrative_units))
    del tenant.administrative_units[unit_id]
    sync()
    assert not AdministrativeUnit.objects.filter(id=unit_id).exists()


def test_it_pages_through_ten_thousand_members(portal_graph):
    portal_graph.reset(large_tenant(users=10_000))
    portal_graph.sim.config.max_page_size = 999
    sync()
    assert DirectoryUser.objects.count() >= 10_000
    pages = portal_graph.stats["requests"].get("GET 200", 0)
    assert pages > 10_000 // 999  # it followed @odata.nextLink through every page


def test_it_fails_with_a_clear_message_when_graph_refuses(portal_graph):
    portal_graph.tenant.apps[next(iter(portal_graph.tenant.apps))].client_secret = "rotated"
    with pytest.raises(CommandError, match="Directory sync failed"):
        sync()
    assert DirectorySync.objects.latest().outcome == "failed"


def test_it_can_read_every_workers_methods_too(portal_graph):
    from provisioning.models import WorkerMethodState

    call_command("sync_directory", "--with-method-state", stdout=StringIO())
    tenant = portal_graph.tenant
    with_qr = set(tenant.qr_methods)
    states = WorkerMethodState.objects.filter(has_qr_method=True)
    assert set(states.values_list("user_id", flat=True)) == with_qr & set(
        DirectoryUser.objects.values_list("id", flat=True)
    )


# -- a store with hidden membership (docs/graph-contract.md §4.3) -----------------------------


def test_a_hidden_store_is_skipped_reported_and_every_other_store_synced(portal_graph, caplog):
    tenant, hidden = portal_graph.tenant, portal_graph.people.hidden_store
    output = sync()
    assert "Directory synced" in output
    assert "Head Office" in output and "Member.Read.Hidden" in output
    assert DirectorySync.objects.latest().outcome == "succeeded"
    unit = AdministrativeUnit.objects.get(id=hidden)
    assert unit.members_unreadable
    assert "403" in unit.members_unreadable_reason
    assert not AUMembership.objects.filter(administrative_unit=unit).exists()
    assert any("Head Office" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
    for store in portal_graph.people.stores:
        cached = set(
            AUMembership.objects.filter(administrative_unit_id=store).values_list(
                "user_id", flat=True
            )
        )
        expected = {m for m in tenant.administrative_units[store].member_ids if m in tenant.users}
        assert cached == expected
        assert not AdministrativeUnit.objects.get(id=store).members_unreadable
    # A second run changes nothing and still says which store it skipped.
    again = sync()
    assert DirectorySync.objects.latest().summary == {}
    assert "Head Office" in again


def test_granting_member_read_hidden_makes_the_store_readable_again(portal_graph):
    sync()
    hidden = portal_graph.people.hidden_store
    app = portal_graph.tenant.apps[next(iter(portal_graph.tenant.apps))]
    app.application_permissions.add("Member.Read.Hidden")
    reset_graph_clients()  # a new grant shows in the next token, as in Entra
    output = sync()
    unit = AdministrativeUnit.objects.get(id=hidden)
    assert not unit.members_unreadable
    assert "Head Office" not in output
    members = set(portal_graph.tenant.administrative_units[hidden].member_ids)
    cached = set(
        AUMembership.objects.filter(administrative_unit=unit).values_list("user_id", flat=True)
    )
    assert cached == members
    assert DirectorySync.objects.latest().summary["units_members_readable_again"] == 1


@pytest.mark.parametrize("status", [400, 404])
def test_a_hidden_store_answered_with_another_refusal_is_skipped_too(portal_graph, status):
    """The refusal's status is undocumented (docs/graph-contract.md §4.3): a hidden store answered
    with 400 or 404 is skipped as well, and the rest synced."""
    portal_graph.sim.config.hidden_membership_status = status
    output = sync()
    assert AdministrativeUnit.objects.get(id=portal_graph.people.hidden_store).members_unreadable
    assert "Head Office" in output
    assert AUMembership.objects.filter(
        administrative_unit_id=portal_graph.people.stores[0]
    ).exists()


def test_the_one_store_sync_task_skips_a_hidden_store(portal_graph, eager_tasks):
    """A manager's sign-in queues sync_administrative_unit for a new store: it must not fail."""
    from provisioning.tasks import sync_administrative_unit

    summary = sync_administrative_unit.delay(portal_graph.people.hidden_store).get()
    assert summary["units_created"] == 1
    assert AdministrativeUnit.objects.get(id=portal_graph.people.hidden_store).members_unreadable


def test_the_admin_page_names_the_hidden_store_and_managers_still_work(
    client, portal_graph, charlie, alice
):
    from tests.fixtures_portal import sign_in

    sync()
    sign_in(client, charlie)
    page = client.get("/admin/").content.decode()
    assert 'id="unreadable-stores"' in page
    assert "Head Office" in page and "Member.Read.Hidden" in page
    # A manager of another store signs in and sees their workers.
    client.logout()
    sign_in(client, alice)
    store = portal_graph.people.stores[0]
    assert AUMembership.objects.filter(administrative_unit_id=store).exists()
    response = client.get(f"/stores/{store}/")
    assert response.status_code == 200
    worker = next(m for m in portal_graph.tenant.administrative_units[store].member_ids)
    assert portal_graph.tenant.users[worker].display_name.encode() in response.content


def test_no_notice_when_every_store_is_readable(client, portal_graph, charlie):
    from tests.fixtures_portal import sign_in

    portal_graph.tenant.administrative_units[portal_graph.people.hidden_store].visibility = None
    sync()
    sign_in(client, charlie)
    assert 'id="unreadable-stores"' not in client.get("/admin/").content.decode()


def test_the_hidden_stores_page_says_why_it_lists_no_workers(client, portal_graph, charlie):
    from tests.fixtures_portal import sign_in

    sync()
    sign_in(client, charlie)  # the IT admin holds a tenant-wide manager role: every store
    hidden = portal_graph.people.hidden_store
    page = client.get(f"/stores/{hidden}/").content.decode()
    assert 'id="members-unreadable"' in page and "Member.Read.Hidden" in page
    other = client.get(f"/stores/{portal_graph.people.stores[0]}/").content.decode()
    assert 'id="members-unreadable"' not in other


def test_it_reads_members_999_a_page(portal_graph):
    """docs/graph-contract.md §4.3: AU members take `$top`; at Graph's default of 100 a page a
    3,000-worker store would cost 30 requests instead of 4."""
    sync()
    small = sum(portal_graph.stats["requests"].values())
    portal_graph.reset(large_tenant(users=3_000))
    reset_graph_clients()
    before = sum(portal_graph.stats["requests"].values())
    sync()
    large = sum(portal_graph.stats["requests"].values()) - before
    # One more store: its 4 member pages and its scoped roles, whatever else the sync reads.
    assert large - small <= 8


def test_the_command_reports_progress(portal_graph):
    output = sync()
    stores = len(portal_graph.tenant.administrative_units)
    readable = {
        member
        for unit in portal_graph.tenant.administrative_units.values()
        if not unit.visibility
        for member in unit.member_ids
        if member in portal_graph.tenant.users
    }
    line = next(line for line in output.splitlines() if line.startswith("stores "))
    assert line.startswith(f"stores {stores}/{stores}, members ")
    # Members are counted per store, so a worker in two stores counts twice.
    assert int(line.rsplit(" ", 1)[1]) >= len(readable)


def test_a_worker_moving_store_writes_only_that_move(portal_graph):
    sync()
    tenant = portal_graph.tenant
    first, second = [u for u in tenant.administrative_units.values() if not u.visibility][:2]
    mover = next(m for m in first.member_ids if m in tenant.users and m not in second.member_ids)
    first.member_ids.remove(mover)
    second.member_ids.append(mover)
    users_before = list(DirectoryUser.objects.order_by("id").values_list("id", "synced_at"))
    units_before = list(AdministrativeUnit.objects.order_by("id").values_list("id", "synced_at"))

    sync()

    assert DirectorySync.objects.latest().summary == {"members_added": 1, "members_removed": 1}
    assert AUMembership.objects.filter(administrative_unit_id=second.id, user_id=mover).exists()
    assert not AUMembership.objects.filter(administrative_unit_id=first.id, user_id=mover).exists()
    # No user or store row was rewritten: their synced_at stayed as the first run left it.
    assert list(DirectoryUser.objects.order_by("id").values_list("id", "synced_at")) == users_before
    assert (
        list(AdministrativeUnit.objects.order_by("id").values_list("id", "synced_at"))
        == units_before
    )
