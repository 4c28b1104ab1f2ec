"""The IT admin's insights page (issue 11 item 3): MFA coverage snapshots and their SVG chart,
bulk outcomes by source, QR codes expiring per store, and the renewal of those codes."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.utils import timezone

import provisioning.graph
from badges import print_jobs
from badges.models import PrintJob
from graphsim.phone import registered_method_names
from graphsim.reports import MFA_METHODS
from provisioning import insights, vault
from provisioning.models import (
    AUMembership,
    BulkJob,
    MfaCoverageSnapshot,
    VaultSecret,
    WorkerMethodState,
)
from provisioning.worker_state import worker_state_refresh
from tests.fixtures_badges import decoded_qr_codes
from tests.fixtures_bulk import fresh_workers, payload_code_id, run_job
from tests.fixtures_portal import sign_in


@pytest.fixture
def charlie_client(client, charlie, bulk_graph, directory):
    sign_in(client, charlie)
    return client


# -- access ---------------------------------------------------------------------------------


def test_it_admins_only(client, alice, bulk_graph, directory):
    for method, url in (("get", "/admin/insights/"), ("post", "/admin/insights/snapshot"),
                        ("post", "/admin/insights/renew")):  # fmt: skip
        response = getattr(client, method)(url)
        assert response.status_code == 302, url  # not signed in: to sign-in
        assert "/auth/sign-in" in response["Location"]
    sign_in(client, alice)  # a store manager, not an IT admin
    assert client.get("/admin/insights/").status_code == 403
    assert client.post("/admin/insights/snapshot").status_code == 403
    unit = AUMembership.objects.first().administrative_unit
    assert client.post("/admin/insights/renew", {"au_id": unit.id, "days": 30}).status_code == 403
    assert not BulkJob.objects.exists()
    assert not MfaCoverageSnapshot.objects.exists()


def test_the_admin_navigation_links_to_insights(charlie_client):
    page = charlie_client.get("/admin/").content.decode()
    assert 'href="/admin/insights/"' in page


# -- MFA coverage ---------------------------------------------------------------------------


def _expected_coverage(tenant) -> tuple[int, int, int]:
    members = [u for u in tenant.users.values() if u.user_type.lower() == "member"]
    mfa = sum(1 for u in members if MFA_METHODS & set(registered_method_names(tenant, u.id)))
    phones = sum(1 for u in members if "mobilePhone" in registered_method_names(tenant, u.id))
    return len(members), mfa, phones


def test_the_snapshot_counts_members_from_the_report(bulk_graph):
    tenant = bulk_graph.tenant
    # One more worker gets a mobile phone, so the count moves from what the tenant started with.
    worker = fresh_workers(bulk_graph, 1)[0]
    tenant.phone_methods.setdefault(worker.id, {})["mobile"] = "+44 7700900123"
    guests = [u for u in tenant.users.values() if u.user_type.lower() == "guest"]
    assert guests, "the demo tenant has a guest: it must not be counted"
    users, mfa, phones = _expected_coverage(tenant)
    assert 0 < mfa < users

    snapshot = insights.mfa_coverage_snapshot_take(client=provisioning.graph.get_app_client())

    assert (snapshot.users, snapshot.mfa_registered, snapshot.phone_methods) == (users, mfa, phones)
    assert snapshot.without_mfa == users - mfa
    assert snapshot.users == len(tenant.users) - len(guests)
    assert snapshot.qr_methods == WorkerMethodState.objects.filter(has_qr_method=True).count()


def test_the_snapshot_follows_every_page_and_waits_out_the_reports_throttle(
    bulk_graph, monkeypatch
):
    from provisioning.graph import operations

    real = operations.user_registration_details_list
    monkeypatch.setattr(
        operations, "user_registration_details_list", lambda client: real(client, top=3)
    )
    users, mfa, _ = _expected_coverage(bulk_graph.tenant)
    assert users > 3 * 5, "more pages than the report's 5 requests per 10 s"
    # The client waits on graphsim's clock, so Retry-After is waited out without sleeping.
    client = provisioning.graph.get_app_client()
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        bulk_graph.sim.shift_clock(seconds)

    monkeypatch.setattr(client, "_sleep", sleep)
    snapshot = insights.mfa_coverage_snapshot_take(client=client)
    assert (snapshot.users, snapshot.mfa_registered) == (users, mfa)
    assert client.stats["retries"] >= 1 and waits  # throttled, waited, and carried on


def test_take_a_snapshot_now(charlie_client, bulk_graph, run_tasks):
    with run_tasks():
        response = charlie_client.post("/admin/insights/snapshot")
    assert response.status_code == 302
    users, mfa, _ = _expected_coverage(bulk_graph.tenant)
    snapshot = MfaCoverageSnapshot.objects.get()
    assert (snapshot.users, snapshot.mfa_registered) == (users, mfa)
    page = charlie_client.get("/admin/insights/").content.decode()
    assert f"{mfa} of {users} members" in page


def _snap(day: int, users: int, mfa: int) -> MfaCoverageSnapshot:
    return MfaCoverageSnapshot.objects.create(
        taken_at=timezone.now() - timedelta(days=day), users=users, mfa_registered=mfa,
        without_mfa=users - mfa, phone_methods=mfa, qr_methods=3,
    )  # fmt: skip


def test_the_chart_draws_the_snapshots(charlie_client):
    _snap(20, 200, 50)
    _snap(10, 200, 100)
    _snap(1, 200, 150)
    page = charlie_client.get("/admin/insights/").content.decode()
    svg = re.search(r'<svg id="coverage-chart".*?</svg>', page, re.S).group(0)
    assert 'role="img"' in svg
    assert '<title id="coverage-chart-title">Share of member users registered for MFA' in svg
    assert ">Date</text>" in svg and ">Members with MFA (%)</text>" in svg  # axis labels
    for tick in ("0 %", "50 %", "100 %"):
        assert f">{tick}</text>" in svg
    points = re.findall(r'<circle cx="([\d.]+)" cy="([\d.]+)"', svg)
    assert len(points) == 3
    xs = [float(x) for x, _ in points]
    ys = [float(y) for _, y in points]
    assert xs == sorted(xs) and ys == sorted(ys, reverse=True)  # rising coverage, oldest left
    for value in ("25.0 %", "50.0 %", "75.0 %"):
        assert value in svg  # the points' titles
    assert "<polyline" in svg
    assert "<script" not in page.split("<main", 1)[-1].split("</main>")[0]
    table = re.search(r'<table id="coverage-table">.*?</table>', page, re.S).group(0)
    for cell in ("<td>200</td>", "<td>150</td>", "<td>25.0 %</td>", "<td>75.0 %</td>"):
        assert cell in table  # the same data as a table


def test_the_chart_without_snapshots(charlie_client):
    page = charlie_client.get("/admin/insights/").content.decode()
    assert "No snapshot yet" in page
    assert "<circle" not in page


# -- outcomes -------------------------------------------------------------------------------


def test_outcomes_by_source(bulk_graph, make_qr_job):
    workers = fresh_workers(bulk_graph, 3)
    job = make_qr_job([w.user_principal_name for w in workers] + ["nobody@example.com"])
    run_job(job.pk)
    groups = insights.bulk_outcomes_by_source()
    (group,) = [g for g in groups if g.source == "csv" and g.kind == "qr"]
    assert group.jobs == 1
    assert group.counts["succeeded"] == 3 and group.counts["failed"] == 1
    assert any(status == "failed" and "No user nobody@example.com" in why
               for status, why, _ in group.reasons)  # fmt: skip
    # A job confirmed longer ago than the window is not counted.
    BulkJob.objects.filter(pk=job.pk).update(confirmed_at=timezone.now() - timedelta(days=31))
    assert not [g for g in insights.bulk_outcomes_by_source() if g.source == "csv"]


# -- expiring QR codes ----------------------------------------------------------------------


def _expire(user_id: str, when: datetime | None, *, has_method: bool = True) -> None:
    WorkerMethodState.objects.update_or_create(
        user_id=user_id,
        defaults={"has_qr_method": has_method, "standard_expires": when,
                  "refreshed_at": timezone.now()},
    )  # fmt: skip


def test_expiring_codes_per_store_and_window(directory, db):
    now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    unit = (
        AUMembership.objects.values("administrative_unit")
        .order_by("administrative_unit__display_name")
        .first()["administrative_unit"]
    )
    members = list(
        AUMembership.objects.filter(administrative_unit_id=unit).values_list("user_id", flat=True)
    )
    assert len(members) >= 6
    WorkerMethodState.objects.filter(user_id__in=members).delete()
    with time_machine.travel(now, tick=False):
        _expire(members[0], now + timedelta(days=10))
        _expire(members[1], now + timedelta(days=45))
        _expire(members[2], now + timedelta(days=80))
        _expire(members[3], now + timedelta(days=120))  # beyond every window
        _expire(members[4], now - timedelta(days=1))  # expired already: not "expiring"
        _expire(members[5], now + timedelta(days=5), has_method=False)  # no method
        rows = {r.unit.id: r.within for r in insights.qr_expiring_by_store()}
        assert rows[unit] == {30: 1, 60: 2, 90: 3}
        found = insights.qr_expiring_workers(unit=_unit(unit), days=60)
        assert [w.id for w in found] == [members[0], members[1]]
    with time_machine.travel(now + timedelta(days=40), tick=False):
        # members[0] has expired; [1] expires in 5 days, [2] in 40, [3] in 80.
        rows = {r.unit.id: r.within for r in insights.qr_expiring_by_store()}
        assert rows[unit] == {30: 1, 60: 2, 90: 3}
        found = insights.qr_expiring_workers(unit=_unit(unit), days=90)
        assert [w.id for w in found] == [members[1], members[2], members[3]]
    with time_machine.travel(now + timedelta(days=200), tick=False):
        assert unit not in {r.unit.id for r in insights.qr_expiring_by_store()}


def _unit(au_id: str):
    from provisioning.models import AdministrativeUnit

    return AdministrativeUnit.objects.get(pk=au_id)


# -- renewal --------------------------------------------------------------------------------


def test_renewal_replaces_those_codes_keeps_pins_and_queues_one_sheet(
    charlie_client, bulk_graph, make_qr_job
):
    tenant = bulk_graph.tenant
    # Three fresh workers of one store get QR codes from a bulk job.
    by_store: dict[str, list] = {}
    for worker in fresh_workers(bulk_graph):
        au = (
            AUMembership.objects.filter(user_id=worker.id)
            .order_by("administrative_unit__display_name")
            .first()
        )
        if au and AUMembership.objects.filter(user_id=worker.id).count() == 1:
            by_store.setdefault(au.administrative_unit_id, []).append(worker)
    au_id, workers = next((k, v[:3]) for k, v in by_store.items() if len(v) >= 3)
    setup = make_qr_job([w.user_principal_name for w in workers])
    run_job(setup.pk)
    client = provisioning.graph.get_app_client()
    for worker in workers:
        worker_state_refresh(client=client, user_id=worker.id, with_preferences=False)
    # Two of them expire within 30 days (as the cache says); the third does not.
    soon, later = workers[:2], workers[2]
    for worker in soon:
        WorkerMethodState.objects.filter(user_id=worker.id).update(
            standard_expires=timezone.now() + timedelta(days=12)
        )
    before = {w.id: (tenant.qr_methods[w.id].standard.id, tenant.qr_methods[w.id].pin.code)
              for w in workers}  # fmt: skip
    creations = dict(bulk_graph.sim.stats.snapshot()["qr_standard_code_creations"])

    page = charlie_client.get("/admin/insights/").content.decode()
    assert "Renew the 2 QR codes of" in page
    response = charlie_client.post("/admin/insights/renew", {"au_id": au_id, "days": 30})
    assert response.status_code == 302
    job = BulkJob.objects.get(source=BulkJob.Source.RENEW)
    assert response["Location"] == f"/admin/bulk/{job.pk}/"
    assert job.status == BulkJob.Status.DRAFT
    assert sorted(job.rows.values_list("user_id", flat=True)) == sorted(w.id for w in soon)
    assert tenant.qr_methods[soon[0].id].standard.id == before[soon[0].id][0]  # preview only
    preview = charlie_client.get(f"/admin/bulk/{job.pk}/").content.decode()
    assert "Replace the standard QR code" in preview

    confirmed = charlie_client.post(f"/admin/bulk/{job.pk}/confirm",
                                    {"preview_hash": job.preview_hash})  # fmt: skip
    assert confirmed.status_code == 302
    run_job(job.pk)

    job.refresh_from_db()
    assert job.status == BulkJob.Status.FINISHED
    after = bulk_graph.sim.stats.snapshot()["qr_standard_code_creations"]
    payloads = {}
    for worker in soon:
        method = tenant.qr_methods[worker.id]
        assert method.standard.id != before[worker.id][0]  # replaced
        assert method.pin.code == before[worker.id][1]  # the PIN stays
        assert after.get(worker.id, 0) == creations.get(worker.id, 0) + 1  # exactly once
        row = job.rows.get(user_id=worker.id)
        assert row.status == "succeeded" and row.pin_secret_id is None
        payload = vault.secret_read(
            secret_id=row.payload_secret_id, kind=VaultSecret.Kind.QR_PAYLOAD, owner_id=worker.id
        )
        assert payload_code_id(payload) == method.standard.id
        payloads[worker.id] = payload
    assert tenant.qr_methods[later.id].standard.id == before[later.id][0]  # untouched
    assert after.get(later.id, 0) == creations.get(later.id, 0)

    # One sheet, for the store's kiosks, whose codes decode to the new payloads.
    (sheet,) = PrintJob.objects.filter(created_at__gte=job.confirmed_at)
    assert sheet.store_id == au_id and sheet.status == PrintJob.Status.QUEUED
    assert sheet.source == PrintJob.Source.BULK
    decoded = decoded_qr_codes(print_jobs.print_job_pdf(job=sheet))
    assert sorted(decoded) == sorted(p.encode() for p in payloads.values())
    # Finishing again queues nothing more.
    from provisioning.bulk import engine

    assert not engine.job_finish_if_done(job_id=job.pk)
    assert PrintJob.objects.filter(created_at__gte=job.confirmed_at).count() == 1


def test_renewal_skips_non_frontline_workers(charlie_client, bulk_graph):
    from provisioning.models import DirectoryRoleHolder

    member = AUMembership.objects.select_related("administrative_unit").first()
    unit = member.administrative_unit
    _expire(member.user_id, timezone.now() + timedelta(days=3))
    DirectoryRoleHolder.objects.create(user_id=member.user_id,
                                       role_definition_id="c4e39bd9-1100-46d3-8c65-fb160da0071f",
                                       directory_scope_id="/")  # fmt: skip
    job = insights.qr_renewal_preview(unit=unit, days=30, created_by=None)
    row = job.rows.get(user_id=member.user_id)
    assert row.action == "skip" and row.status == "skipped"


def test_renewal_refuses_an_empty_window_and_a_bad_one(charlie_client, bulk_graph):
    unit = AUMembership.objects.select_related("administrative_unit").first().administrative_unit
    WorkerMethodState.objects.all().delete()
    response = charlie_client.post("/admin/insights/renew", {"au_id": unit.id, "days": 30},
                                   follow=True)  # fmt: skip
    assert "expires within 30 days" in response.content.decode()
    response = charlie_client.post("/admin/insights/renew", {"au_id": unit.id, "days": 7},
                                   follow=True)  # fmt: skip
    assert "Choose 30, 60 or 90 days" in response.content.decode()
    assert not BulkJob.objects.exists()


def test_a_renewal_row_whose_method_was_deleted_meanwhile_fails_with_why(
    charlie_client, bulk_graph, make_qr_job
):
    worker = next(
        w for w in fresh_workers(bulk_graph)
        if AUMembership.objects.filter(user_id=w.id).count() == 1
    )  # fmt: skip
    run_job(make_qr_job([worker.user_principal_name]).pk)
    worker_state_refresh(client=provisioning.graph.get_app_client(), user_id=worker.id,
                         with_preferences=False)  # fmt: skip
    WorkerMethodState.objects.filter(user_id=worker.id).update(
        standard_expires=timezone.now() + timedelta(days=5)
    )
    unit = AUMembership.objects.get(user_id=worker.id).administrative_unit
    job = insights.qr_renewal_preview(unit=unit, days=30, created_by=None)
    from provisioning.bulk import jobs

    jobs.bulk_job_confirm(job=job, previewed_hash=job.preview_hash, confirmed_by=None)
    del bulk_graph.tenant.qr_methods[worker.id]  # deleted in Entra after the preview
    run_job(job.pk)
    row = job.rows.get(user_id=worker.id)
    assert row.status == "failed"
    assert "No QR code + PIN method to renew" in row.outcome
    assert worker.id not in bulk_graph.tenant.qr_methods  # nothing was created
    assert not PrintJob.objects.filter(store=unit, created_at__gte=job.created_at).exists()
