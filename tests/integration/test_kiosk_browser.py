"""In Chromium (ISSUE 4 acceptance): a manager registers a kiosk, the kiosk's browser pairs with
the code, receives a sheet the manager queues, opens its PDF (whose QR codes decode to the
payloads) and marks it printed; then the payloads are gone from the vault."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from badges.models import Kiosk, PrintJob
from graphsim.demo import DEMO_CLIENT_ID
from portal.models import User
from provisioning.directory import directory_sync
from provisioning.graph import get_app_client
from provisioning.models import AdministrativeUnit, AUMembership, VaultSecret
from tests.fixtures_badges import decoded_qr_codes, store_payload

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture
def portal_url(live_server, portal_graph) -> str:
    portal_graph.tenant.apps[DEMO_CLIENT_ID].redirect_uris.append(
        f"{live_server.url}/auth/callback"
    )
    return live_server.url


def test_a_kiosk_pairs_receives_a_sheet_opens_it_and_marks_it_printed(
    services_configured, browser, portal_url, portal_graph, alice, transactional_db
):
    directory_sync(client=get_app_client())
    store = (
        AdministrativeUnit.objects.filter(scoped_roles__principal_id=alice.user_id)
        .order_by("display_name")
        .first()
    )
    members = AUMembership.objects.filter(administrative_unit=store).order_by("user_id")

    # The manager signs in and registers a kiosk for the store.
    manager = browser.new_context(viewport={"width": 1024, "height": 768}).new_page()
    errors: list[str] = []
    manager.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    manager.goto(portal_url + "/")
    manager.get_by_role("link", name="Sign in with Microsoft Entra").click()
    manager.wait_for_url(f"{portal_graph.browser_url}/**")
    manager.get_by_role("button", name=alice.display_name).click()
    manager.wait_for_url(portal_url + "/")
    # Payloads of codes alice just created: only she may print them (docs/architecture.md §5).
    alice_user = User.objects.get(entra_object_id=alice.user_id)
    badged = [store_payload(m.user_id, created_by=alice_user) for m in members[:2]]
    manager.get_by_role("link", name="Kiosks").click()
    manager.get_by_role("link", name="Register a kiosk").click()
    manager.get_by_label("Kiosk name").fill("Back office PC")
    manager.get_by_label(store.display_name).check()
    manager.get_by_role("button", name="Get a pairing code").click()
    code = manager.get_by_label("Pairing code").inner_text().strip()
    assert re.fullmatch(r"[A-Z2-9]{4}-[A-Z2-9]{4}", code)

    # The kiosk's own browser (no session) pairs with the code.
    kiosk_context = browser.new_context(viewport={"width": 1024, "height": 768})
    kiosk = kiosk_context.new_page()
    kiosk.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    kiosk.goto(portal_url + "/badges/kiosk/")
    kiosk.wait_for_url("**/badges/kiosk/pair")
    kiosk.get_by_label("Pairing code").fill(code)
    kiosk.get_by_role("button", name="Pair").click()
    kiosk.wait_for_url("**/badges/kiosk/")
    kiosk.get_by_text("Nothing to print").wait_for()
    cookie = next(c for c in kiosk_context.cookies() if c["name"] == "lanyard_kiosk")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert Kiosk.objects.get().last_seen_at is not None

    # The manager sends the ready badges to the store's kiosk.
    manager.goto(f"{portal_url}/badges/stores/{store.id}/sheets/")
    manager.get_by_role("button", name="Send to the store's kiosk").click()
    manager.get_by_text("2 badges queued").wait_for()
    job = PrintJob.objects.get()

    # The kiosk's queue refreshes itself (htmx polling) and shows the sheet.
    kiosk.get_by_text(f"Sheet {job.pk}").wait_for(timeout=20_000)
    kiosk.screenshot(path=SCREENSHOTS / "kiosk-queue.png")

    # Open the PDF for printing (a new tab), as the kiosk's operator does.
    link = kiosk.get_by_role("link", name="Open PDF to print")
    href = link.get_attribute("href")
    with kiosk_context.expect_page() as opened:
        link.click()
    opened.value.close()
    job.refresh_from_db()
    assert job.status == "printing" and job.kiosk.name == "Back office PC"
    # The same response the tab received, with the kiosk's credential: a PDF whose QR codes
    # decode to the payloads.
    pdf = kiosk.request.get(portal_url + href)
    assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf"
    assert Counter(decoded_qr_codes(pdf.body())) == Counter(b.payload for b in badged)

    kiosk.get_by_role("button", name="Mark printed").click()
    kiosk.get_by_text("Nothing to print").wait_for()
    job.refresh_from_db()
    assert job.status == "printed"
    for badge in badged:
        secret = VaultSecret.objects.get(pk=badge.secret_id)
        assert secret.destroyed_at is not None and bytes(secret.ciphertext) == b""

    # The kiosk sees nothing else of the portal.
    kiosk.goto(f"{portal_url}/stores/{store.id}/")
    assert kiosk.url.startswith(portal_graph.browser_url), kiosk.url  # sent to sign in
    for badge in badged:
        assert badge.display_name not in kiosk.content()

    # The manager sees the kiosk, its last contact and an empty queue.
    manager.goto(f"{portal_url}/badges/kiosks/")
    row = manager.get_by_role("row", name=re.compile("Back office PC"))
    assert "ago" in row.inner_text() and row.get_by_role("cell", name="0", exact=True).count() == 1
    # The CSP held: nothing inline was refused on the way.
    assert not [e for e in errors if "Content Security Policy" in e], errors
