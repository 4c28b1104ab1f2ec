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
        users = {m for m in unit.member_ids if m in tenant.users}
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
