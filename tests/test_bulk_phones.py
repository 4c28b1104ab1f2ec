"""Phone jobs: docs/architecture.md §7 semantics against graphsim (Pre-ConfigureAuthMethods.ps1
columns)."""

from __future__ import annotations

from graphsim.model import PhoneMethod, SignInPreferences
from provisioning.bulk import csvfile, jobs, preview
from tests.fixtures_bulk import DATA, fresh_workers, run_job

HEADER = "UPN,Mobile,AlternateMobile,OfficePhone,ForcedUpdate,ForcedRemoval"


def _run(data: bytes):
    rows = csvfile.read_rows(data, kind="phone")
    inputs = [preview.RowInput(r.line, r.values["UPN"], r.values) for r in rows]
    job = preview.bulk_job_preview(kind="phone", source="csv", source_label="p.csv",
                                   inputs=inputs, created_by=None)  # fmt: skip
    job = jobs.bulk_job_confirm(job=job, previewed_hash=job.preview_hash, confirmed_by=None)
    run_job(job.pk)
    return {r.line: r for r in job.rows.all()}


def _phones(graphsim, upn: str) -> dict[str, str]:
    user = graphsim.tenant.user_by_id_or_upn(upn)
    return {t: p.phone_number for t, p in graphsim.tenant.phone_methods.get(user.id, {}).items()}


def test_the_ps1_file_gives_each_row_its_result(bulk_graph):
    rows = _run((DATA / "phone_ps1.csv").read_bytes())
    d = "@lanyard-demo.onmicrosoft.com"
    assert rows[2].status == "succeeded"
    assert _phones(bulk_graph, f"mohammed.haddad4{d}") == {"mobile": "+49 15123456789"}
    assert rows[2].result["sms_sign_in_state"]  # reported
    assert "SMS sign-in" in rows[2].outcome
    # Mobile before alternate, written as Graph requires (+CC NUMBER).
    assert rows[3].status == "succeeded"
    assert _phones(bulk_graph, f"priya.murphy{d}") == {
        "mobile": "+44 7911123456", "alternateMobile": "+44 7911123457"}  # fmt: skip
    # Existing number, ForcedUpdate false: kept.
    assert rows[4].status == "skipped" and "ForcedUpdate is false" in rows[4].outcome
    assert _phones(bulk_graph, f"mohammed.alfarsi{d}") == {"mobile": "+31 7916851318"}
    # ForcedUpdate true: updated.
    assert rows[5].status == "succeeded" and "updated" in rows[5].outcome
    assert _phones(bulk_graph, f"ngozi.okafor{d}") == {"mobile": "+44 7911123458"}
    # An alternate needs a mobile.
    assert rows[6].status == "failed" and "needs a mobile" in rows[6].outcome
    assert rows[7].status == "failed" and rows[8].status == "failed"  # invalid at preview


def test_forced_removal_removes_empty_columns_but_never_the_default_method(bulk_graph):
    a, b = fresh_workers(bulk_graph, 2)
    tenant = bulk_graph.tenant
    tenant.phone_methods[a.id] = {
        "mobile": PhoneMethod("mobile", "+1 2065550100"),
        "office": PhoneMethod("office", "+1 2065550199"),
    }
    tenant.phone_methods[b.id] = {"mobile": PhoneMethod("mobile", "+1 2065550111")}
    tenant.sign_in_preferences[b.id] = SignInPreferences(
        user_preferred_method_for_secondary_authentication="sms"
    )
    data = (
        f"{HEADER}\r\n{a.user_principal_name},,,,False,True\r\n"
        f"{b.user_principal_name},,,,False,True\r\n"
    ).encode()
    rows = _run(data)
    assert rows[2].status == "succeeded"
    assert _phones(bulk_graph, a.user_principal_name) == {}
    assert rows[3].status == "failed" and "default sign-in method" in rows[3].outcome
    assert _phones(bulk_graph, b.user_principal_name) == {"mobile": "+1 2065550111"}


def test_empty_cells_leave_numbers_alone(bulk_graph):
    a = fresh_workers(bulk_graph, 1)[0]
    bulk_graph.tenant.phone_methods[a.id] = {"office": PhoneMethod("office", "+1 2065550199")}
    rows = _run(f"{HEADER}\r\n{a.user_principal_name},+1 206 555 0123,,,False,False\r\n".encode())
    assert rows[2].status == "succeeded"
    assert _phones(bulk_graph, a.user_principal_name) == {
        "office": "+1 2065550199", "mobile": "+1 2065550123"}  # fmt: skip


def test_phone_rows_survive_lost_responses(bulk_graph):
    workers = fresh_workers(bulk_graph, 30)
    lines = [f"{w.user_principal_name},+1 206 555 {1000 + i},,,False,False"
             for i, w in enumerate(workers)]  # fmt: skip
    bulk_graph.sim.config.update({"lost_response_rate": 0.2, "error_5xx_rate": 0.1})
    rows = _run((HEADER + "\r\n" + "\r\n".join(lines) + "\r\n").encode())
    bulk_graph.sim.config.update({"lost_response_rate": 0.0, "error_5xx_rate": 0.0})
    assert {r.status for r in rows.values()} == {"succeeded"}
    for i, w in enumerate(workers):
        assert _phones(bulk_graph, w.user_principal_name) == {"mobile": f"+1 206555{1000 + i}"}
