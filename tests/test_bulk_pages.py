"""The IT admin's bulk pages: upload, preview, confirm, progress, cancel, re-run, downloads."""

from __future__ import annotations

import csv
import io
from collections import Counter

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from badges.models import PrintJob
from provisioning import vault
from provisioning.models import BulkJob, BulkJobRow, VaultSecret
from tests.fixtures_badges import decoded_qr_codes
from tests.fixtures_bulk import DATA, assert_qr_exactly_once, fresh_workers, qr_csv, run_job
from tests.fixtures_portal import sign_in


@pytest.fixture
def charlie_client(client, charlie, bulk_graph, directory):
    sign_in(client, charlie)
    return client


def _upload(client, data: bytes, kind: str = "qr", name: str = "w.csv", run_tasks=None):
    """Upload a file; with `run_tasks`, its preview task runs before this returns."""
    post = {"kind": kind, "file": SimpleUploadedFile(name, data)}
    if run_tasks is None:
        return client.post("/admin/bulk/new", post)
    with run_tasks():
        return client.post("/admin/bulk/new", post)


def test_it_admins_only(client, alice, bulk_graph, directory):
    assert client.get("/admin/").status_code == 302  # not signed in: to sign-in
    sign_in(client, alice)
    response = client.get("/admin/")
    assert response.status_code == 403
    assert b"IT admins" in response.content
    assert _upload(client, b"upn\r\nx@y.z\r\n").status_code == 403
    assert not BulkJob.objects.exists()


def test_the_list_offers_uploads_templates_and_sources(charlie_client):
    response = charlie_client.get("/admin/")
    assert response.status_code == 200
    for text in (b"Upload a CSV file", b"Every member of a group", b"Every worker of a store"):
        assert text in response.content
    template = charlie_client.get("/admin/bulk/template/phone.csv")
    assert template.content.decode().startswith("UPN,Mobile,AlternateMobile,OfficePhone,")
    assert charlie_client.get("/admin/bulk/template/nope.csv").status_code == 404
    assert charlie_client.post("/admin/").status_code == 405


def test_a_file_level_problem_is_shown_on_the_form(charlie_client):
    response = _upload(charlie_client, (DATA / "binary.xlsx").read_bytes(), name="w.xlsx")
    assert response.status_code == 400
    assert "not a text file" in response.content.decode()
    assert not BulkJob.objects.exists()


def test_upload_preview_confirm_progress_results(charlie_client, bulk_graph, run_tasks):
    workers = fresh_workers(bulk_graph, 6)
    upns = [w.user_principal_name for w in workers]
    response = _upload(
        charlie_client, qr_csv(upns, extra=["=cmd|' /C calc'!A0,,,"]), run_tasks=run_tasks
    )
    assert response.status_code == 302
    job = BulkJob.objects.get()
    page = charlie_client.get(response["Location"])
    assert b"Preview" in page.content and b"nothing has been written" in page.content
    assert b"6</strong> to create" in page.content
    assert not bulk_graph.stats["qr_method_creations"]

    # A confirmation must carry the preview's hash.
    bad = charlie_client.post(f"/admin/bulk/{job.pk}/confirm", {"preview_hash": "0" * 64},
                              follow=True)  # fmt: skip
    assert b"differ from the preview" in bad.content
    job.refresh_from_db()
    assert job.status == "draft"

    with run_tasks():
        charlie_client.post(f"/admin/bulk/{job.pk}/confirm", {"preview_hash": job.preview_hash})
    run_job(job.pk)
    assert_qr_exactly_once(bulk_graph, job)

    progress = charlie_client.get(f"/admin/bulk/{job.pk}/progress", HTTP_HX_REQUEST="true")
    assert progress.status_code == 286  # htmx: stop polling, the job is over
    assert b"6 succeeded" in progress.content and b"1 failed" in progress.content

    results = charlie_client.get(f"/admin/bulk/{job.pk}/results.csv")
    table = list(csv.reader(io.StringIO(results.content.decode("utf-8-sig"))))
    assert table[0][:5] == ["line", "userPrincipalName", "displayName", "plan", "result"]
    assert any(row[1].startswith("'=cmd") for row in table)  # neutralised
    text = results.content.decode()
    for row in job.rows.exclude(pin_secret_id=None):
        from provisioning import vault

        pin = vault.secret_read(secret_id=row.pin_secret_id, kind="pin", owner_id=row.user_id)
        assert pin not in text


def test_progress_polls_while_running(charlie_client, bulk_graph, make_qr_job):
    job = make_qr_job([w.user_principal_name for w in fresh_workers(bulk_graph, 3)])
    response = charlie_client.get(f"/admin/bulk/{job.pk}/progress", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert b'hx-trigger="every 2s"' in response.content
    assert b"0 of 3 rows" in response.content


def test_cancel_and_rerun_failed(charlie_client, bulk_graph, make_qr_job, run_tasks):
    job = make_qr_job([w.user_principal_name for w in fresh_workers(bulk_graph, 4)])
    page = charlie_client.post(f"/admin/bulk/{job.pk}/cancel", follow=True)
    assert b"4 rows will not run" in page.content
    job.rows.filter(line=2).update(status=BulkJobRow.Status.FAILED)
    with run_tasks():
        page = charlie_client.post(f"/admin/bulk/{job.pk}/rerun", follow=True)
    assert b"1 failed rows will run again" in page.content
    run_job(job.pk)
    assert job.rows.get(line=2).status == "succeeded"


def test_badges_and_pin_slips_once(charlie_client, bulk_graph, make_qr_job):
    job = make_qr_job([w.user_principal_name for w in fresh_workers(bulk_graph, 3)])
    run_job(job.pk)
    rows = list(job.rows.exclude(payload_secret_id=None))
    payloads = [
        vault.secret_read(
            secret_id=row.payload_secret_id, kind="qr_payload", owner_id=row.user_id
        ).encode("utf-8", errors="surrogateescape")
        for row in rows
    ]
    assert len(payloads) == 3
    assert b"Badge sheet (once, 3)" in charlie_client.get(f"/admin/bulk/{job.pk}/").content
    assert charlie_client.get(f"/admin/bulk/{job.pk}/badges.pdf").status_code == 405
    badges = charlie_client.post(f"/admin/bulk/{job.pk}/badges.pdf")
    assert badges.status_code == 200 and badges.content.startswith(b"%PDF")
    assert Counter(decoded_qr_codes(badges.content)) == Counter(payloads)
    # The download is the printout: its QR codes left the vault, as when a kiosk prints them.
    secrets = VaultSecret.objects.filter(pk__in=[row.payload_secret_id for row in rows])
    assert all(secret.destroyed_reason == "printed" for secret in secrets)
    assert all(row.badge_printed_at for row in job.rows.exclude(payload_secret_id=None))
    assert PrintJob.objects.filter(source="bulk", status="printed").exists()
    badges_again = charlie_client.post(f"/admin/bulk/{job.pk}/badges.pdf", follow=True)
    assert b"no QR code left to print" in badges_again.content
    assert b"Badge sheet (once" not in badges_again.content

    assert charlie_client.get(f"/admin/bulk/{job.pk}/pin-slips.pdf").status_code == 405
    slips = charlie_client.post(f"/admin/bulk/{job.pk}/pin-slips.pdf")
    assert slips.status_code == 200 and slips.content.startswith(b"%PDF")
    again = charlie_client.post(f"/admin/bulk/{job.pk}/pin-slips.pdf", follow=True)
    assert b"already printed" in again.content
    assert all(r.pin_printed_at for r in job.rows.all())


def test_a_group_is_a_source(charlie_client, bulk_graph, run_tasks):
    nested = next(g for g in bulk_graph.tenant.groups.values() if "Tokyo" in g.display_name)
    # Its members are read and checked by the preview task, not in the request.
    response = charlie_client.post("/admin/bulk/source", {"source": "group", "group_id": nested.id})
    assert response.status_code == 302
    job = BulkJob.objects.get()
    assert job.status == "previewing" and not job.rows.exists()
    with run_tasks():
        response = charlie_client.post(
            "/admin/bulk/source", {"source": "group", "group_id": nested.id}
        )
    job = BulkJob.objects.get(pk=response["Location"].split("/")[-2])
    assert job.status == "draft" and job.source == "group" and job.summary["rows"] >= 50
    assert job.source_label == nested.display_name
    with run_tasks():
        missing = charlie_client.post("/admin/bulk/source", {"source": "group", "group_id": "nope"})
    page = charlie_client.get(missing["Location"])
    assert b"The preview failed." in page.content and b"No group" in page.content
    assert BulkJob.objects.order_by("-pk").first().status == "cancelled"


def test_a_store_is_a_source(charlie_client, bulk_graph, run_tasks):
    store = bulk_graph.people.stores[1]
    with run_tasks():
        response = charlie_client.post("/admin/bulk/source", {"source": "store", "au_id": store})
    assert response.status_code == 302
    job = BulkJob.objects.get()
    assert job.source == "store" and job.status == "draft" and job.rows.exists()


def test_the_admin_pages_say_when_the_policy_cannot_be_read(
    charlie_client, bulk_graph, qr_policy_unreadable, run_tasks
):
    page = charlie_client.get("/admin/").content.decode()
    assert "the minimum PIN length and the standard QR lifetime are unknown" in page
    response = _upload(
        charlie_client,
        qr_csv([fresh_workers(bulk_graph, 1)[0].user_principal_name]),
        run_tasks=run_tasks,
    )
    job = BulkJob.objects.get()
    detail = charlie_client.get(f"/admin/bulk/{job.pk}/").content.decode()
    assert "PIN length unknown" in detail and "QR lifetime unknown" in detail
    assert response.status_code in (200, 302)
