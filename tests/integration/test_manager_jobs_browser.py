"""In Chromium (ISSUE 11 item 7 acceptance): a manager filters "no QR code", selects 10 workers,
runs one action with a real Celery worker, and the store's kiosk receives ONE sheet whose 10 QR
codes decode to the payloads graphsim issued."""

from __future__ import annotations

import re

import pytest

from badges.models import PrintJob
from graphsim.demo import DEMO_CLIENT_ID
from provisioning.directory import directory_sync
from provisioning.graph import get_app_client
from provisioning.models import AdministrativeUnit, BulkJob
from provisioning.worker_state import worker_states_refresh_for_unit
from tests.fixtures_badges import decoded_qr_codes

DONE = 90_000  # ms: a real worker


@pytest.fixture
def portal_url(live_server, portal_graph) -> str:
    portal_graph.tenant.apps[DEMO_CLIENT_ID].redirect_uris.append(
        f"{live_server.url}/auth/callback"
    )
    return live_server.url


def _pair_kiosk(browser, manager, portal_url: str, store) -> object:
    manager.get_by_role("link", name="Kiosks").click()
    manager.get_by_role("link", name="Register a kiosk").click()
    manager.get_by_label("Kiosk name").fill("Back office PC")
    manager.get_by_label(store.display_name).check()
    manager.get_by_role("button", name="Get a pairing code").click()
    code = manager.get_by_label("Pairing code").inner_text().strip()
    context = browser.new_context(viewport={"width": 1024, "height": 768})
    kiosk = context.new_page()
    kiosk.goto(portal_url + "/badges/kiosk/")
    kiosk.wait_for_url("**/badges/kiosk/pair")
    kiosk.get_by_label("Pairing code").fill(code)
    kiosk.get_by_role("button", name="Pair").click()
    kiosk.wait_for_url("**/badges/kiosk/")
    kiosk.get_by_text("Nothing to print").wait_for()
    return kiosk


def test_a_manager_adds_qr_codes_for_ten_workers_and_the_kiosk_gets_one_sheet(
    services_configured, browser, portal_url, portal_graph, alice, start_worker,
    transactional_db,
):  # fmt: skip
    start_worker()
    directory_sync(client=get_app_client())
    tenant = portal_graph.tenant
    store = (
        AdministrativeUnit.objects.filter(scoped_roles__principal_id=alice.user_id)
        .order_by("display_name")
        .first()
    )
    # The store's QR column as the "Refresh QR and phone status" button fills it.
    worker_states_refresh_for_unit(client=get_app_client(), unit=store)
    fresh = {
        uid
        for uid in tenant.administrative_units[store.id].member_ids
        if uid not in tenant.qr_methods
        and tenant.users[uid].account_enabled
        and tenant.users[uid].licensed
        and tenant.users[uid].user_type == "Member"
    }

    errors: list[str] = []
    manager = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    manager.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    manager.goto(portal_url + "/")
    manager.get_by_role("link", name="Sign in with Microsoft Entra").click()
    manager.wait_for_url(f"{portal_graph.browser_url}/**")
    manager.get_by_role("button", name=alice.display_name).click()
    manager.wait_for_url(portal_url + "/")
    kiosk = _pair_kiosk(browser, manager, portal_url, store)

    # Filter the store's workers: "No QR code".
    manager.goto(f"{portal_url}/stores/{store.id}/")
    manager.get_by_label("Show").select_option("no_qr")
    manager.get_by_text(re.compile(r"workers? · No QR code")).wait_for()
    shown = manager.locator('input[name="worker"]').evaluate_all("els => els.map(e => e.value)")
    assert shown and all(tenant.qr_methods.get(uid) is None for uid in shown)
    chosen = [uid for uid in shown if uid in fresh][:10]
    assert len(chosen) == 10, f"only {len(chosen)} fresh workers on the first page"
    for uid in chosen:
        manager.locator(f'input[name="worker"][value="{uid}"]').check()
    assert manager.locator("[data-selected-count]").inner_text() == "10"
    manager.get_by_role("button", name="Add QR codes + PINs").click()

    # Progress polls until the job is done, then one sheet goes to the kiosk.
    job_card = manager.locator("#store-job")
    job_card.locator(".op-status", has_text="Done").wait_for(timeout=DONE)
    job_card.get_by_text("One badge sheet with 10 QR codes").wait_for()
    job = BulkJob.objects.get()
    assert job.identity == "delegated" and job.rows.filter(status="succeeded").count() == 10
    assert PrintJob.objects.filter(store=store).count() == 1
    sheet = PrintJob.objects.get(store=store)
    assert manager.get_by_role("button", name="Print PIN slips (once)").is_visible()

    # The kiosk's queue refreshes itself and shows the one sheet; its PDF's codes decode to the
    # payloads graphsim issued for exactly those 10 workers (their current standard codes).
    kiosk.get_by_text(f"Sheet {sheet.pk}").wait_for(timeout=20_000)
    href = kiosk.get_by_role("link", name="Open PDF to print").get_attribute("href")
    pdf = kiosk.request.get(portal_url + href)
    assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf"
    decoded = [code.decode() for code in decoded_qr_codes(pdf.body())]
    assert len(decoded) == 10
    issued = {
        (tenant.users[uid].user_principal_name, tenant.qr_methods[uid].standard.id)
        for uid in chosen
    }
    assert {tuple(code.split("|")[1:3]) for code in decoded} == issued
    assert all(code.startswith("ms-qrpin:v1|") for code in decoded)
    assert not [e for e in errors if "Content Security Policy" in e], errors
