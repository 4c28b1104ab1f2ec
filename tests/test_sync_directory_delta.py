"""A warm `sync_directory` follows Graph's delta queries (docs/graph-contract.md §4.6): only what
changed in Entra is read and written, a refused delta link means a full sync, and a sync stopped
between pages does not move the saved links."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from graphsim.model import (
    AUTHENTICATION_ADMINISTRATOR,
    ScopedRoleMembership,
    new_id,
)
from graphsim.model import (
    AdministrativeUnit as SimUnit,
)
from graphsim.model import (
    User as SimUser,
)
from provisioning.directory import directory_sync, scoped_role_key
from provisioning.graph import get_app_client
from provisioning.models import (
    AdministrativeUnit,
    AUMembership,
    DirectoryRoleHolder,
    DirectorySync,
    DirectorySyncState,
    DirectoryUser,
    ScopedRoleAssignment,
)

pytestmark = pytest.mark.django_db


def sync(*args: str) -> str:
    out = StringIO()
    call_command("sync_directory", *args, stdout=out)
    return out.getvalue()


def requests_made(graph) -> int:
    return sum(graph.stats["requests"].values())


def links() -> dict[str, str]:
    return dict(DirectorySyncState.objects.values_list("collection", "delta_link"))


def visible_units(tenant) -> list[SimUnit]:
    return [unit for unit in tenant.administrative_units.values() if not unit.visibility]


def new_worker(tenant, name: str) -> SimUser:
    user = SimUser(id=new_id(), user_principal_name=f"{name}@{tenant.domain}",
                   display_name=name.title(), employee_id="E-" + name)  # fmt: skip
    tenant.users[user.id] = user
    return user


def synced_at(model) -> dict[str, object]:
    return dict(model.objects.values_list("id", "synced_at"))


def test_the_first_run_is_full_and_saves_delta_links(portal_graph):
    output = sync()
    assert "Full sync" in output
    assert DirectorySync.objects.latest().mode == "full"
    assert set(links()) == {"users", "administrativeUnits"}
    assert "$deltatoken=" in links()["users"]


def test_a_warm_run_reads_only_the_delta_rounds(portal_graph):
    sync()
    full = requests_made(portal_graph)
    before = requests_made(portal_graph)
    holders = sorted(DirectoryRoleHolder.objects.values_list("id", flat=True))
    roles = synced_at(ScopedRoleAssignment)
    output = sync()
    warm = requests_made(portal_graph) - before
    assert "Warm sync" in output
    assert "users delta: page 1, 0 changed users" in output  # progress, a line per page
    assert "stores delta: page 1, 0 changed stores" in output
    assert DirectorySync.objects.latest().mode == "delta"
    assert DirectorySync.objects.latest().summary == {}
    # Nothing changed in Entra: no role row was rewritten.
    assert sorted(DirectoryRoleHolder.objects.values_list("id", flat=True)) == holders
    assert synced_at(ScopedRoleAssignment) == roles
    # Two delta rounds, the role listing in one $batch and the IT admin group — not every store.
    stores = len(portal_graph.tenant.administrative_units)
    assert warm < full
    assert warm < stores + 10


def test_it_picks_up_a_member_added_and_one_removed(portal_graph):
    sync()
    tenant = portal_graph.tenant
    first, second = visible_units(tenant)[:2]
    newcomer = new_worker(tenant, "newcomer")
    first.member_ids.append(newcomer.id)
    leaver = next(m for m in second.member_ids if m in tenant.users)
    second.member_ids.remove(leaver)
    users_before = synced_at(DirectoryUser)

    sync()

    run = DirectorySync.objects.latest()
    assert run.mode == "delta"
    assert AUMembership.objects.filter(
        administrative_unit_id=first.id, user_id=newcomer.id
    ).exists()
    assert DirectoryUser.objects.get(id=newcomer.id).employee_id == "E-newcomer"
    assert not AUMembership.objects.filter(
        administrative_unit_id=second.id, user_id=leaver
    ).exists()
    assert run.summary["members_added"] == 1
    assert run.summary["members_removed"] == 1
    assert run.summary["users_created"] == 1
    # No other user row was written.
    after = synced_at(DirectoryUser)
    assert {k: v for k, v in after.items() if k in users_before and k != leaver} == {
        k: v for k, v in users_before.items() if k in after and k != leaver
    }


def test_it_picks_up_a_user_renamed_disabled_and_deleted(portal_graph):
    sync()
    tenant = portal_graph.tenant
    cached = list(DirectoryUser.objects.values_list("id", flat=True)[:3])
    renamed, disabled, deleted = (tenant.users[i] for i in cached)
    renamed.display_name = "Renamed Person"
    disabled.account_enabled = False
    del tenant.users[deleted.id]
    before = synced_at(DirectoryUser)

    sync()

    run = DirectorySync.objects.latest()
    assert run.mode == "delta"
    assert DirectoryUser.objects.get(id=renamed.id).display_name == "Renamed Person"
    assert DirectoryUser.objects.get(id=disabled.id).account_enabled is False
    assert not DirectoryUser.objects.filter(id=deleted.id).exists()
    assert not AUMembership.objects.filter(user_id=deleted.id).exists()
    assert run.summary == {"users_updated": 2, "users_removed": 1}
    after = synced_at(DirectoryUser)
    changed = {k for k in after if after[k] != before.get(k)}
    assert changed == {renamed.id, disabled.id}  # writes only the changed rows


def test_it_picks_up_a_store_added_removed_and_renamed(portal_graph):
    sync()
    tenant = portal_graph.tenant
    units = visible_units(tenant)
    renamed, removed = units[0], units[1]
    renamed.display_name = "Store renamed"
    del tenant.administrative_units[removed.id]
    workers = [m for m in units[2].member_ids if m in tenant.users][:2]
    added = SimUnit(id=new_id(), display_name="Store opened", member_ids=list(workers))
    tenant.administrative_units[added.id] = added
    units_before = synced_at(AdministrativeUnit)

    sync()

    run = DirectorySync.objects.latest()
    assert run.mode == "delta"
    assert AdministrativeUnit.objects.get(id=renamed.id).display_name == "Store renamed"
    assert not AdministrativeUnit.objects.filter(id=removed.id).exists()
    assert AdministrativeUnit.objects.get(id=added.id).display_name == "Store opened"
    assert set(
        AUMembership.objects.filter(administrative_unit_id=added.id).values_list(
            "user_id", flat=True
        )
    ) == set(workers)
    assert run.summary["units_created"] == 1
    assert run.summary["units_updated"] == 1
    assert run.summary["units_removed"] == 1
    units_after = synced_at(AdministrativeUnit)
    untouched = set(units_before) - {renamed.id, removed.id}
    assert {k: units_after[k] for k in untouched} == {k: units_before[k] for k in untouched}


def test_it_picks_up_a_manager_role_assigned_and_one_removed(portal_graph):
    sync()
    tenant = portal_graph.tenant
    role = tenant.directory_role_by_template(AUTHENTICATION_ADMINISTRATOR)
    store = visible_units(tenant)[0]
    promoted = next(m for m in store.member_ids if m in tenant.users)
    membership = ScopedRoleMembership(
        id=new_id().replace("-", ""),
        role_id=role.id,
        administrative_unit_id=store.id,
        user_id=promoted,
    )
    tenant.scoped_role_memberships[membership.id] = membership
    revoked_id, revoked = next(
        (key, m)
        for key, m in tenant.scoped_role_memberships.items()
        if key != membership.id and m.user_id in tenant.users
    )
    del tenant.scoped_role_memberships[revoked_id]
    revoked_role = tenant.directory_roles[revoked.role_id].role_template_id
    revoked_key = scoped_role_key(revoked.administrative_unit_id, revoked_role, revoked.user_id)
    assert ScopedRoleAssignment.objects.filter(id=revoked_key).exists()

    sync()

    run = DirectorySync.objects.latest()
    assert run.mode == "delta"
    row = ScopedRoleAssignment.objects.get(
        id=scoped_role_key(store.id, AUTHENTICATION_ADMINISTRATOR, promoted)
    )
    assert row.principal_upn == tenant.users[promoted].user_principal_name
    assert not ScopedRoleAssignment.objects.filter(id=revoked_key).exists()
    assert run.summary == {"roles_created": 1, "roles_removed": 1}


def test_warm_and_full_syncs_agree(portal_graph):
    """After the same changes, a warm sync leaves the cache exactly as a full sync would."""
    sync()
    tenant = portal_graph.tenant
    first, second = visible_units(tenant)[:2]
    mover = next(m for m in first.member_ids if m in tenant.users and m not in second.member_ids)
    first.member_ids.remove(mover)
    second.member_ids.append(mover)
    tenant.users[next(iter(tenant.users))].job_title = "Changed title"
    sync()

    def cache() -> tuple:
        return (
            sorted(AUMembership.objects.values_list("administrative_unit_id", "user_id")),
            sorted(DirectoryUser.objects.values_list("id", "display_name", "job_title")),
            sorted(AdministrativeUnit.objects.values_list("id", "display_name")),
            sorted(ScopedRoleAssignment.objects.values_list("id", "principal_upn")),
        )

    warm = cache()
    sync("--full")
    assert DirectorySync.objects.latest().mode == "full"
    assert DirectorySync.objects.latest().summary == {}
    assert cache() == warm


@pytest.mark.parametrize("status", [410, 400])
def test_an_expired_delta_link_means_a_full_sync_then_new_links(portal_graph, status):
    sync()
    old = links()
    tenant = portal_graph.tenant
    store = visible_units(tenant)[0]
    leaver = next(m for m in store.member_ids if m in tenant.users)
    store.member_ids.remove(leaver)
    portal_graph.sim.config.delta_expired_status = status
    portal_graph.sim.config.delta_epoch += 1  # Graph forgets every delta state

    output = sync()

    run = DirectorySync.objects.latest()
    assert run.mode == "resync"
    assert "no longer has this sync's delta state" in output
    assert f"HTTP {status} syncStateNotFound" in output
    assert not AUMembership.objects.filter(administrative_unit_id=store.id, user_id=leaver).exists()
    assert run.summary["members_removed"] == 1
    assert links() != old
    sync()
    assert DirectorySync.objects.latest().mode == "delta"  # the new links work


def test_links_saved_for_another_graph_endpoint_mean_a_full_sync(portal_graph):
    sync()
    for state in DirectorySyncState.objects.all():  # as if GRAPH_ENDPOINT had changed since
        state.delta_link = state.delta_link.replace("https://", "https://old-graph.", 1)
        state.save()
    tenant = portal_graph.tenant
    store = visible_units(tenant)[0]
    leaver = next(m for m in store.member_ids if m in tenant.users)
    store.member_ids.remove(leaver)

    output = sync()

    run = DirectorySync.objects.latest()
    assert run.mode == "resync"
    assert "for another Graph endpoint" in output
    assert not AUMembership.objects.filter(administrative_unit_id=store.id, user_id=leaver).exists()
    assert not any("old-graph." in link for link in links().values())
    sync()
    assert DirectorySync.objects.latest().mode == "delta"  # the new links work


def test_a_sync_stopped_between_pages_keeps_the_saved_links(portal_graph):
    sync()
    saved = links()
    tenant = portal_graph.tenant
    units = visible_units(tenant)[:3]
    for unit in units:
        unit.display_name += " (moved)"
    portal_graph.sim.config.delta_page_size = 1  # one changed store a page

    class Stopped(Exception):
        pass

    def stop_after_first_store_page(line: str) -> None:
        if line.startswith("stores delta: page 1,"):
            raise Stopped(line)

    with pytest.raises(Stopped):
        directory_sync(client=get_app_client(), notice=stop_after_first_store_page)

    assert links() == saved  # the round did not complete: the next sync starts from the old links
    renamed = [u for u in units if AdministrativeUnit.objects.get(id=u.id).display_name.endswith(
        "(moved)")]  # fmt: skip
    assert len(renamed) == 1  # the first page was written as it arrived

    summary = directory_sync(client=get_app_client())

    assert links() != saved
    assert summary == {"units_updated": 2}  # the replayed first store is a no-op
    for unit in units:
        assert AdministrativeUnit.objects.get(id=unit.id).display_name == unit.display_name


@pytest.mark.parametrize("status", [403, 400, 404])
def test_a_hidden_store_stays_skipped_in_a_warm_sync(portal_graph, status):
    portal_graph.sim.config.hidden_membership_status = status
    sync()
    hidden = [u for u in portal_graph.tenant.administrative_units.values() if u.visibility]
    assert hidden
    sync()
    assert DirectorySync.objects.latest().mode == "delta"
    for unit in hidden:
        row = AdministrativeUnit.objects.get(id=unit.id)
        assert row.members_unreadable_since is not None
