"""Bulk jobs write only to frontline workers (issue 10 finding 1; docs/architecture.md §5).

Every test checks graphsim's own state: nothing is created for an administrator, whatever the
source (CSV, group, store) or the kind (QR, phone), and the preview and the results say why.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from graphsim.demo import DEMO_ADMIN_GROUP_ID
from graphsim.model import (
    AUTHENTICATION_ADMINISTRATOR,
    GLOBAL_ADMINISTRATOR,
    PRIVILEGED_AUTHENTICATION_ADMINISTRATOR,
    Group,
    ScopedRoleMembership,
)
from provisioning.bulk import csvfile, jobs, preview, sources
from provisioning.directory import directory_sync
from provisioning.graph import get_app_client
from provisioning.models import BulkJob
from tests.fixtures_bulk import fresh_workers, qr_csv, run_job


@dataclass
class Admins:
    """Store workers given a privilege in Entra, and one ordinary worker."""

    store: str
    by_kind: dict[str, str]  # what they hold → user id
    ordinary: str

    @property
    def ids(self) -> set[str]:
        return set(self.by_kind.values())


def _store_workers(graphsim, store: str, n: int) -> list[str]:
    members = set(graphsim.tenant.administrative_units[store].member_ids)
    return [u.id for u in fresh_workers(graphsim) if u.id in members][:n]


@pytest.fixture
def admins(bulk_graph) -> Admins:
    tenant = bulk_graph.tenant
    store = bulk_graph.people.stores[0]
    ga, paa, aa, scoped, via_group, it_admin, ordinary = _store_workers(bulk_graph, store, 7)
    tenant.directory_role_by_template(GLOBAL_ADMINISTRATOR).member_ids.append(ga)
    tenant.directory_role_by_template(PRIVILEGED_AUTHENTICATION_ADMINISTRATOR).member_ids.append(
        paa
    )
    tenant.directory_role_by_template(AUTHENTICATION_ADMINISTRATOR).member_ids.append(aa)
    role = tenant.directory_role_by_template(AUTHENTICATION_ADMINISTRATOR)
    other_store = bulk_graph.people.stores[1]
    membership = ScopedRoleMembership(
        id="scoped-shift-lead", role_id=role.id, administrative_unit_id=other_store, user_id=scoped
    )
    tenant.scoped_role_memberships[membership.id] = membership
    group = Group(id="7d9c2f10-aaaa-4bbb-8ccc-000000000001", display_name="Night shift admins",
                  member_ids=[via_group], is_assignable_to_role=True)  # fmt: skip
    tenant.groups[group.id] = group
    group_role = ScopedRoleMembership(
        id="scoped-via-group", role_id=role.id, administrative_unit_id=other_store, user_id=group.id
    )
    tenant.scoped_role_memberships[group_role.id] = group_role
    tenant.groups[DEMO_ADMIN_GROUP_ID].member_ids.append(it_admin)
    directory_sync(client=get_app_client())  # what the hourly sync records
    return Admins(
        store=store,
        by_kind={
            "Global Administrator": ga,
            "Privileged Authentication Administrator": paa,
            "tenant-wide Authentication Administrator": aa,
            "scoped role": scoped,
            "role through a group": via_group,
            "IT admin group": it_admin,
        },
        ordinary=ordinary,
    )


EXPECTED = {
    "Global Administrator": "Global Administrator (tenant-wide)",
    "Privileged Authentication Administrator": "Privileged Authentication Administrator "
    "(tenant-wide)",
    "tenant-wide Authentication Administrator": "Authentication Administrator (tenant-wide)",
    "scoped role": "Authentication Administrator (over Store 112",
    "role through a group": "through the group Night shift admins",
    "IT admin group": "Member of the IT admin group",
}


def _upn(graphsim, user_id: str) -> str:
    return graphsim.tenant.users[user_id].user_principal_name


def _qr_preview(graphsim, upns: list[str]) -> BulkJob:
    rows = csvfile.read_rows(qr_csv(upns), kind="qr")
    inputs = [preview.RowInput(r.line, r.values["userPrincipalName"], r.values) for r in rows]
    return preview.bulk_job_preview(
        kind="qr", source="csv", source_label="t.csv", inputs=inputs, created_by=None
    )


def _confirm_and_run(job: BulkJob) -> BulkJob:
    job = jobs.bulk_job_confirm(job=job, previewed_hash=job.preview_hash, confirmed_by=None)
    run_job(job.pk)
    job.refresh_from_db()
    return job


def _assert_refused(graphsim, job: BulkJob, admins: Admins) -> None:
    rows = {row.user_id: row for row in job.rows.all()}
    for kind, user_id in admins.by_kind.items():
        row = rows[user_id]
        assert row.action == "skip", (kind, row.reason)
        assert EXPECTED[kind] in row.reason, (kind, row.reason)
        assert "never write to administrators" in row.reason
        assert row.status == "skipped"
        assert EXPECTED[kind] in row.outcome  # the results say why, too
        assert user_id not in graphsim.tenant.qr_methods, kind
        assert user_id not in graphsim.tenant.phone_methods, kind
    assert not graphsim.tenant.qr_method_creations.keys() & admins.ids


def test_a_csv_naming_administrators_creates_nothing_for_them(bulk_graph, admins):
    upns = [_upn(bulk_graph, u) for u in [*admins.ids, admins.ordinary]]
    job = _qr_preview(bulk_graph, upns)
    _assert_refused(bulk_graph, job, admins)
    job = _confirm_and_run(job)
    _assert_refused(bulk_graph, job, admins)
    assert admins.ordinary in bulk_graph.tenant.qr_methods  # a frontline worker still gets one


def test_a_group_source_naming_administrators_creates_nothing_for_them(bulk_graph, admins):
    group = Group(id="7d9c2f10-aaaa-4bbb-8ccc-000000000002", display_name="Mixed",
                  member_ids=[*sorted(admins.ids), admins.ordinary])  # fmt: skip
    bulk_graph.tenant.groups[group.id] = group
    label, inputs, people = sources.group_members(group_id=group.id)
    job = preview.bulk_job_preview(kind="qr", source="group", source_label=label, inputs=inputs,
                                   people=people, created_by=None)  # fmt: skip
    _assert_refused(bulk_graph, job, admins)
    job = _confirm_and_run(job)
    _assert_refused(bulk_graph, job, admins)
    assert admins.ordinary in bulk_graph.tenant.qr_methods


def test_a_store_source_with_administrators_creates_nothing_for_them(bulk_graph, admins):
    label, inputs, people = sources.store_members(au_id=admins.store)
    job = preview.bulk_job_preview(kind="qr", source="store", source_label=label, inputs=inputs,
                                   people=people, created_by=None)  # fmt: skip
    _assert_refused(bulk_graph, job, admins)
    job = _confirm_and_run(job)
    _assert_refused(bulk_graph, job, admins)
    assert admins.ordinary in bulk_graph.tenant.qr_methods


def test_a_phone_csv_with_forced_update_changes_no_administrators_number(bulk_graph, admins):
    lines = ["UPN,Mobile,AlternateMobile,OfficePhone,ForcedUpdate,ForcedRemoval"]
    lines += [f"{_upn(bulk_graph, u)},+1 2065550191,,,True,False" for u in admins.ids]
    rows = csvfile.read_rows(("\r\n".join(lines) + "\r\n").encode(), kind="phone")
    inputs = [preview.RowInput(r.line, r.values["UPN"], r.values) for r in rows]
    job = preview.bulk_job_preview(kind="phone", source="csv", source_label="p.csv",
                                   inputs=inputs, created_by=None)  # fmt: skip
    assert {row.action for row in job.rows.all()} == {"skip"}
    job = _confirm_and_run(job)
    for user_id in admins.ids:
        assert user_id not in bulk_graph.tenant.phone_methods


def test_the_break_glass_attack_gives_the_global_administrator_no_qr_method(bulk_graph):
    """Finding 1 as reported: a CSV line for the Global Administrator with a known PIN."""
    ga = bulk_graph.people.global_admin
    upn = _upn(bulk_graph, ga)
    data = f"userPrincipalName,startDateTime,expireDateTime,pin\r\n{upn},,,48159263\r\n".encode()
    rows = csvfile.read_rows(data, kind="qr")
    inputs = [preview.RowInput(r.line, r.values["userPrincipalName"], r.values) for r in rows]
    job = preview.bulk_job_preview(
        kind="qr", source="csv", source_label="attack.csv", inputs=inputs, created_by=None
    )
    (row,) = job.rows.all()
    assert row.action == "skip"
    assert row.input_secret_id is None  # the attacker's PIN is not even kept
    job = _confirm_and_run(job)
    assert ga not in bulk_graph.tenant.qr_methods
    assert not bulk_graph.tenant.qr_method_creations.get(ga)
    row.refresh_from_db()
    assert row.status == "skipped" and "Global Administrator (tenant-wide)" in row.outcome


def test_a_role_gained_after_the_preview_stops_the_write(bulk_graph):
    worker, joiner = fresh_workers(bulk_graph, 2)
    job = _qr_preview(bulk_graph, [worker.user_principal_name, joiner.user_principal_name])
    assert {row.action for row in job.rows.all()} == {"create"}
    # Between preview and confirmation, in Entra only (no sync ran):
    tenant = bulk_graph.tenant
    tenant.directory_role_by_template(GLOBAL_ADMINISTRATOR).member_ids.append(worker.id)
    tenant.groups[DEMO_ADMIN_GROUP_ID].member_ids.append(joiner.id)
    job = _confirm_and_run(job)
    rows = {row.user_id: row for row in job.rows.all()}
    assert rows[worker.id].status == "skipped"
    assert "Global Administrator (tenant-wide)" in rows[worker.id].outcome
    assert rows[joiner.id].status == "skipped"
    assert "IT admin group" in rows[joiner.id].outcome
    assert worker.id not in tenant.qr_methods and joiner.id not in tenant.qr_methods


def test_an_eligible_but_inactive_role_does_not_block_and_an_activated_one_does(bulk_graph):
    worker = fresh_workers(bulk_graph, 1)[0]
    from graphsim.model import RoleEligibility

    tenant = bulk_graph.tenant
    eligibility = RoleEligibility(id="elig-1", role_template_id=GLOBAL_ADMINISTRATOR,
                                  principal_id=worker.id)  # fmt: skip
    tenant.role_eligibilities[eligibility.id] = eligibility
    job = _qr_preview(bulk_graph, [worker.user_principal_name])
    assert job.rows.get().action == "create"
    tenant.role_activate(eligibility.id)
    job = _confirm_and_run(job)
    assert job.rows.get().status == "skipped"
    assert worker.id not in tenant.qr_methods
