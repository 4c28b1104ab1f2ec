"""Row-level checks and the preview (dry run): nothing is written to Entra."""

from __future__ import annotations

from provisioning.bulk import csvfile, preview
from provisioning.models import BulkJob
from tests.fixtures_bulk import DATA, fresh_workers, qr_csv, run_job


def _preview(name: str, kind: str) -> BulkJob:
    rows = csvfile.read_rows((DATA / name).read_bytes(), kind=kind)
    key = "userPrincipalName" if kind == "qr" else "UPN"
    inputs = [preview.RowInput(r.line, r.values[key], r.values) for r in rows]
    return preview.bulk_job_preview(
        kind=kind, source="csv", source_label=name, inputs=inputs, created_by=None
    )


def _plans(job: BulkJob) -> dict[int, tuple[str, str]]:
    return {r.line: (r.action, r.reason) for r in job.rows.all()}


def test_qr_rows_are_checked_and_nothing_is_written(bulk_graph):
    job = _preview("qr_mixed.csv", "qr")
    plans = _plans(job)
    assert plans[2][0] == "create"
    assert plans[3][0] == "create" and "2026-12-01" in plans[3][1]
    assert plans[4][0] == "create" and "PIN custom" in plans[4][1]
    assert plans[6] == ("skip", "Guest account (B2B): Lanyard does not provision guests.")
    assert plans[7] == ("skip", "The account is disabled in Entra ID.")
    assert plans[8][0] == "invalid" and "No user" in plans[8][1]
    assert plans[9][0] == "invalid" and "not a date" in plans[9][1]
    assert plans[10][0] == "invalid" and "repeat" in plans[10][1]
    assert plans[11] == ("skip", "Duplicate of line 2 (merged).")
    assert job.status == BulkJob.Status.DRAFT
    assert job.summary == {"rows": 10, "create": 4, "update": 0, "skip": 3, "invalid": 3}
    writes = {k: v for k, v in bulk_graph.stats["requests"].items() if not k.startswith("GET")}
    assert writes == {}


def test_a_custom_pin_goes_to_the_vault_not_the_row(bulk_graph):
    job = _preview("qr_mixed.csv", "qr")
    row = job.rows.get(line=4)
    assert row.input_secret_id is not None
    assert "48271593" not in str(row.params) + row.reason + row.outcome


def test_pin_rules_follow_the_tenant_policy(bulk_graph):
    from django.core.cache import cache

    bulk_graph.tenant.qr_policy.pin_length = 10
    cache.delete("lanyard:qr-policy")
    job = _preview("qr_mixed.csv", "qr")
    assert "10 to 20 digits" in job.rows.get(line=4).reason
    assert job.policy["pin_length"] == 10


def test_conflicting_duplicates_are_rejected(bulk_graph):
    upn = "priya.murphy@lanyard-demo.onmicrosoft.com"
    data = f"upn,expireDateTime\r\n{upn},2027-01-01\r\n{upn},2027-02-01\r\n".encode()
    rows = csvfile.read_rows(data, kind="qr")
    inputs = [preview.RowInput(r.line, r.values["userPrincipalName"], r.values) for r in rows]
    job = preview.bulk_job_preview(kind="qr", source="csv", source_label="x", inputs=inputs,
                                   created_by=None)  # fmt: skip
    assert [r.action for r in job.rows.all()] == ["invalid", "invalid"]
    assert "lines 2, 3" in job.rows.first().reason


def test_lifetimes_are_checked(bulk_graph):
    upn = "priya.murphy@lanyard-demo.onmicrosoft.com"
    data = (
        "upn,startDateTime,expireDateTime\r\n"
        f"{upn},2026-12-01,2028-12-01\r\n"
        f"{upn.replace('priya.murphy', 'zoe.kierkegard')},2027-01-01,2026-12-01\r\n"
        f"{upn.replace('priya.murphy', 'amelia.nunez')},2020-01-01,\r\n"
    ).encode()
    rows = csvfile.read_rows(data, kind="qr")
    inputs = [preview.RowInput(r.line, r.values["userPrincipalName"], r.values) for r in rows]
    job = preview.bulk_job_preview(kind="qr", source="csv", source_label="x", inputs=inputs,
                                   created_by=None)  # fmt: skip
    reasons = [r.reason for r in job.rows.all()]
    assert "at most 395 days" in reasons[0]
    assert "must be after startDateTime" in reasons[1]
    assert "already in the past" in reasons[2]


def test_phone_rows_are_normalised_in_the_users_country(bulk_graph):
    job = _preview("phone_ps1.csv", "phone")
    rows = {r.line: r for r in job.rows.all()}
    assert rows[2].params["numbers"] == {"mobile": "+49 15123456789"}  # German national format
    assert rows[3].params["numbers"] == {"mobile": "+44 7911123456",
                                         "alternateMobile": "+44 7911123457"}  # fmt: skip
    assert rows[6].warning.startswith("An alternate mobile needs a mobile")
    assert rows[7].action == "invalid" and "Mobile:" in rows[7].reason
    assert rows[8].action == "invalid" and "ForcedRemoval must be True or False" in rows[8].reason


def test_group_members_are_a_source(bulk_graph):
    from provisioning.bulk import sources

    frontline = next(g for g in bulk_graph.tenant.groups.values()
                     if g.display_name == "Frontline Workers")  # fmt: skip
    label, inputs, people = sources.group_members(group_id=frontline.id)
    assert label == "Frontline Workers"
    assert len(inputs) > 200  # nested group members included
    job = preview.bulk_job_preview(kind="qr", source="group", source_label=label, inputs=inputs,
                                   created_by=None, people=people)  # fmt: skip
    assert job.summary["create"] > 150
    assert job.summary["skip"] >= 1  # the disabled worker


def test_store_members_are_a_source(bulk_graph):
    from provisioning.bulk import sources

    label, inputs, _ = sources.store_members(au_id=bulk_graph.people.stores[0])
    assert label.startswith("Store")
    assert any("#EXT#" in i.upn for i in inputs)  # the guest of the first store


def _preview_csv(data: bytes) -> BulkJob:
    rows = csvfile.read_rows(data, kind="qr")
    inputs = [preview.RowInput(r.line, r.values["userPrincipalName"], r.values) for r in rows]
    return preview.bulk_job_preview(kind="qr", source="csv", source_label="x", inputs=inputs,
                                    created_by=None)  # fmt: skip


def test_an_unreadable_policy_is_reported_not_guessed(bulk_graph, qr_policy_unreadable):
    from provisioning.bulk import jobs

    workers = fresh_workers(bulk_graph, 3)
    data = (
        "upn,expireDateTime,pin\r\n"
        f"{workers[0].user_principal_name},,\r\n"  # lifetime unknown: refused
        f"{workers[1].user_principal_name},2027-03-01,48271593\r\n"  # custom PIN: refused
        f"{workers[2].user_principal_name},2027-03-01,\r\n"  # generated PIN, explicit expiry
    ).encode()
    job = _preview_csv(data)
    plans = _plans(job)
    assert job.policy["pin_length"] is None and job.policy["lifetime_days"] is None
    assert plans[2][0] == "invalid" and "lifetime is unknown" in plans[2][1]
    assert plans[3][0] == "invalid" and "custom PIN cannot be checked" in plans[3][1]
    assert plans[4][0] == "create"
    assert job.rows.get(line=3).input_secret_id is None  # the refused PIN was never vaulted
    job = jobs.bulk_job_confirm(job=job, previewed_hash=job.preview_hash, confirmed_by=None)
    run_job(job.pk)
    assert job.rows.get(line=4).status == "succeeded"


def test_rows_the_policy_does_not_target_are_named(bulk_graph, monkeypatch):
    from django.core.cache import cache

    from graphsim.model import Group
    from provisioning.graph import operations

    reads: list[str] = []
    read_group = operations.group_transitive_users

    def counted(client, group_id, **kw):  # calls through: only counts the reads
        reads.append(group_id)
        return read_group(client, group_id, **kw)

    monkeypatch.setattr(operations, "group_transitive_users", counted)

    tenant = bulk_graph.tenant
    included, nested_in, excluded, outside = fresh_workers(bulk_graph, 4)
    tenant.groups["g-nested"] = Group(
        id="g-nested", display_name="Nested", member_ids=[nested_in.id]
    )
    tenant.groups["g-in"] = Group(
        id="g-in", display_name="QR users", member_ids=[included.id, excluded.id, "g-nested"]
    )
    tenant.groups["g-out"] = Group(id="g-out", display_name="No QR", member_ids=[excluded.id])
    tenant.qr_policy.include_targets = [{"targetType": "group", "id": "g-in"}]
    tenant.qr_policy.exclude_targets = [{"targetType": "group", "id": "g-out"}]
    cache.delete("lanyard:qr-policy")
    job = _preview_csv(qr_csv([w.user_principal_name for w in (included, nested_in, excluded,
                                                                outside)]))  # fmt: skip
    plans = _plans(job)
    assert plans[2][0] == "create" and plans[3][0] == "create"  # nested membership counts
    assert plans[4][0] == "skip" and "excludes this user" in plans[4][1]
    assert plans[5][0] == "skip" and "does not target this user" in plans[5][1]
    # Each group's transitive members were read once for the whole preview, not once per user.
    assert sorted(reads) == ["g-in", "g-out"]


def test_a_disabled_policy_skips_every_qr_row_with_the_reason(bulk_graph):
    from django.core.cache import cache

    bulk_graph.tenant.qr_policy.state = "disabled"
    cache.delete("lanyard:qr-policy")
    workers = fresh_workers(bulk_graph, 2)
    job = _preview_csv(qr_csv([w.user_principal_name for w in workers]))
    assert {r.action for r in job.rows.all()} == {"skip"}
    assert all("disabled in the tenant's policy" in r.reason for r in job.rows.all())
