"""In Chromium (ISSUE 12 item 1): an IT admin uploads a CSV; the request only stores it and the
page says the rows are being checked; a real Celery worker runs the preview task (Graph with
realistic latency, most users not in the directory cache) while the page polls its progress; the
page turns into the preview by itself; the IT admin confirms and the job finishes, each row once."""

from __future__ import annotations

import pytest
from django.db.models import Value
from django.db.models.functions import Concat

from graphsim.demo import DEMO_CLIENT_ID
from provisioning.directory import directory_sync
from provisioning.graph import get_app_client
from provisioning.models import BulkJob, DirectoryUser, VaultSecret
from tests.fixtures_bulk import assert_qr_exactly_once, fresh_workers, qr_csv

DONE = 120_000  # ms: a real worker at Graph's write budget


@pytest.fixture
def portal_url(live_server, portal_graph) -> str:
    portal_graph.tenant.apps[DEMO_CLIENT_ID].redirect_uris.append(
        f"{live_server.url}/auth/callback"
    )
    return live_server.url


def test_an_upload_is_previewed_by_a_worker_with_progress_then_runs(
    services_configured, browser, portal_url, portal_graph, charlie, start_worker,
    transactional_db, tmp_path,
):  # fmt: skip
    directory_sync(client=get_app_client())
    workers = fresh_workers(portal_graph, 150)
    assert len(workers) == 150
    # 140 of them renamed since the last sync: the preview reads them from Graph ($batch).
    DirectoryUser.objects.filter(id__in=[w.id for w in workers[:140]]).update(
        user_principal_name=Concat(Value("renamed."), "user_principal_name")
    )
    portal_graph.sim.config.latency_min_ms = 80
    portal_graph.sim.config.latency_max_ms = 250
    csv_path = tmp_path / "stores.csv"
    csv_path.write_bytes(qr_csv([w.user_principal_name for w in workers]))

    errors: list[str] = []
    polls: list[tuple[int, str]] = []  # the progress polls' answers: status, HX-Refresh
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on(
        "response",
        lambda r: (
            polls.append((r.status, r.headers.get("hx-refresh", "")))
            if "/progress?stage=preview" in r.url
            else None
        ),
    )
    page.goto(portal_url + "/")
    page.get_by_role("link", name="Sign in with Microsoft Entra").click()
    page.wait_for_url(f"{portal_graph.browser_url}/**")
    page.get_by_role("button", name=charlie.display_name).click()
    page.wait_for_url(portal_url + "/**")

    # No worker yet: the request has stored the rows and the page says they are being checked.
    page.goto(portal_url + "/admin/")
    page.get_by_label("CSV file").set_input_files(str(csv_path))
    page.get_by_role("button", name="Preview", exact=True).click()
    page.get_by_text("Checking 150 rows against Entra…").wait_for()
    assert page.locator(".preview-count").inner_text() == "0 of 150"
    job = BulkJob.objects.get()
    assert job.status == "previewing" and not job.rows.exists()
    assert VaultSecret.objects.get(pk=job.upload_secret_id).kind == "bulk_upload"

    # A worker runs the preview task; the page polls its progress and becomes the preview.
    start_worker()
    page.get_by_text("Preview — nothing has been written yet").wait_for(timeout=DONE)
    job.refresh_from_db()
    assert job.status == "draft" and job.preview_done == job.preview_total == 150
    assert page.locator(".plan-counts").inner_text().startswith("150 to create")
    assert VaultSecret.objects.get(pk=job.upload_secret_id).destroyed_at is not None
    # The page polled the preview's progress, then was told to reload into the preview.
    assert polls[-1] == (200, "true") and len(polls) >= 2

    page.get_by_role("button", name="Run this job").click()
    page.locator("#progress h2", has_text="Finished").wait_for(timeout=DONE)
    job.refresh_from_db()
    counts = assert_qr_exactly_once(portal_graph, job)
    assert counts["succeeded"] == 150
    assert not [e for e in errors if "Content Security Policy" in e], errors
