"""In Chromium, with a real Celery worker: the manager portal's main flows (issue 3, item 10).

sign in → pick store → search → add a QR code with a known PIN → the PIN is shown once → print the
badge; a temporary QR code; a PIN reset; a try at another store's worker. Screenshots of the main
screens go to docs/screenshots/. Along the way: no CSP violation, every control labelled, the
worker page fits a 768 px tablet, and the PIN reaches neither the worker's log nor the broker.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import redis
from django.conf import settings
from playwright.sync_api import expect

from graphsim.demo import DEMO_CLIENT_ID
from provisioning.directory import directory_sync
from provisioning.graph import get_app_client
from provisioning.models import AdministrativeUnit, WorkerMethodState
from tests.integration.conftest import wait_for

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
KNOWN_PIN = "48203917"
DONE = 60_000  # ms: a real worker, polling every second


@pytest.fixture
def portal_url(live_server, portal_graph) -> str:
    portal_graph.tenant.apps[DEMO_CLIENT_ID].redirect_uris.append(
        f"{live_server.url}/auth/callback"
    )
    return live_server.url


def _fresh_worker(tenant, au_id):
    for uid in tenant.administrative_units[au_id].member_ids:
        user = tenant.users[uid]
        if (
            uid not in tenant.qr_methods
            and uid not in tenant.phone_methods
            and user.account_enabled
            and user.licensed
            and user.user_type == "Member"
        ):
            return user
    raise AssertionError("no fresh worker")


# Numbers every visible, enabled control (links, buttons, fields) in a data attribute.
_MARK_CONTROLS = """() => {
  const controls = [...document.querySelectorAll('a[href], button, input, select, textarea')]
    .filter(el => el.type !== 'hidden' && !el.disabled && el.offsetParent !== null);
  controls.forEach((el, n) => { el.dataset.kbd = String(n); });
  return controls.length;
}"""


def _unlabelled_controls(page) -> list[str]:
    return page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea, button')]
          .filter(el => el.type !== 'hidden' && el.offsetParent !== null)
          .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                        && !el.getAttribute('aria-labelledby') && !(el.textContent || '').trim()
                        && !el.closest('fieldset legend'))
          .map(el => el.outerHTML.slice(0, 120))"""
    )


def _wait_done(page, kind: str):
    card = page.locator("article.operation").filter(has_text=kind).first
    card.locator(".op-status", has_text="Done").wait_for(timeout=DONE)
    return card


def test_a_manager_runs_the_qr_flows_in_a_browser(
    services_configured, browser, portal_url, portal_graph, alice, bob, start_worker,
    transactional_db,
):  # fmt: skip
    worker_process = start_worker()
    directory_sync(client=get_app_client())
    tenant = portal_graph.tenant
    store = (
        AdministrativeUnit.objects.filter(scoped_roles__principal_id=alice.user_id)
        .order_by("id")
        .first()
    )
    worker = _fresh_worker(tenant, store.id)
    bob_store = AdministrativeUnit.objects.filter(scoped_roles__principal_id=bob.user_id).first()
    bob_worker = _fresh_worker(tenant, bob_store.id)

    csp_violations: list[str] = []
    page = browser.new_page(viewport={"width": 1024, "height": 900})
    page.on(
        "console",
        lambda m: (
            csp_violations.append(f"{page.url}: {m.text[:90]}")
            if "Content Security Policy" in m.text and page.url.startswith(portal_url)
            else None
        ),
    )
    page.on("dialog", lambda dialog: dialog.accept())

    # Sign in through graphsim's authorize page.
    page.goto(portal_url + "/")
    page.get_by_role("link", name="Sign in with Microsoft Entra").click()
    page.wait_for_url(f"{portal_graph.browser_url}/**")
    page.get_by_role("button", name=alice.display_name).click()
    page.wait_for_url(portal_url + "/")

    # Pick the store, search for the worker.
    page.get_by_role("link", name=store.display_name).click()
    page.get_by_role("heading", name=store.display_name).wait_for()
    # Read every worker's QR and phone state from Graph (a task, app identity), then reload.
    page.get_by_role("button", name="Refresh QR and phone status").click()
    page.get_by_text("Refreshing QR and phone status").wait_for()
    members = tenant.administrative_units[store.id].member_ids
    wait_for(
        lambda: WorkerMethodState.objects.filter(user_id__in=members).count() == len(members),
        60,
        "the store's method states were not refreshed",
    )
    page.reload()
    expect(page.get_by_text("Not read yet")).to_have_count(0)
    page.screenshot(path=SCREENSHOTS / "worker-list.png", caret="initial")
    page.get_by_label("Search workers").fill(worker.display_name)
    expect(page.locator("table.workers tbody tr")).to_have_count(1)
    page.locator("#worker-table").get_by_role("link", name=worker.display_name).wait_for()
    page.screenshot(path=SCREENSHOTS / "worker-search.png", caret="initial")
    page.locator("#worker-table").get_by_role("link", name=worker.display_name).click()
    page.get_by_role("heading", name=worker.display_name, exact=True).wait_for()
    assert _unlabelled_controls(page) == []

    # Add a QR code + PIN with a known PIN.
    form = page.locator("#add-qr")
    form.get_by_label("Type a PIN").check()
    form.get_by_label("PIN (digits only)").fill(KNOWN_PIN)
    form.get_by_role("button", name="Add QR code + PIN").click()
    card = _wait_done(page, "Add QR code + PIN")
    card.locator("img.qr-preview").wait_for()
    # The preview is drawn from the vault: wait until the browser has it (or its load failed).
    page.wait_for_function("() => document.querySelector('img.qr-preview').complete")
    assert page.evaluate("document.querySelector('img.qr-preview').naturalWidth") > 0
    assert tenant.qr_methods[worker.id].pin.code == KNOWN_PIN
    page.screenshot(path=SCREENSHOTS / "qr-added.png", full_page=True, caret="initial")

    # The PIN is shown once, with a copy button, then handed over and gone.
    card.get_by_role("button", name="Show PIN").click()
    pin = card.locator("output.pin")
    pin.wait_for()
    assert pin.inner_text() == KNOWN_PIN
    card.get_by_role("button", name="Copy PIN").wait_for()
    page.screenshot(path=SCREENSHOTS / "pin-shown.png", caret="initial")
    card.get_by_role("button", name="I have handed it over").click()
    page.locator("article.operation").first.get_by_text("PIN handed over").wait_for()
    assert KNOWN_PIN not in page.content()
    page.reload()
    assert KNOWN_PIN not in page.content()

    # Print the badge: a PDF download.
    with page.expect_download() as download:
        page.locator("article.operation").first.get_by_role(
            "link", name="Print badge (PDF)"
        ).click()
    assert Path(download.value.path()).read_bytes().startswith(b"%PDF")

    # A temporary QR code for 2 hours.
    page.get_by_label("Valid for").select_option("2")
    page.get_by_role("button", name="Add temporary QR code").click()
    _wait_done(page, "Add temporary QR code").locator("img.qr-preview").wait_for()
    assert tenant.qr_methods[worker.id].temporary is not None
    page.get_by_role("button", name="Delete temporary QR code").wait_for(timeout=DONE)
    page.screenshot(path=SCREENSHOTS / "worker-page.png", full_page=True, caret="initial")

    # Reset the PIN: Entra generates one; shown once.
    page.get_by_role("button", name="Reset PIN").click()
    card = _wait_done(page, "Reset PIN")
    card.get_by_role("button", name="Show PIN").click()
    card.locator("output.pin").wait_for()
    assert card.locator("output.pin").inner_text() == tenant.qr_methods[worker.id].pin.code
    card.get_by_role("button", name="I have handed it over").click()
    page.locator("article.operation").first.get_by_text("PIN handed over").wait_for()

    # A tablet: 768 px wide, nothing wider than the screen, every control reachable by keyboard.
    page.set_viewport_size({"width": 768, "height": 1024})
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= 768
    page.screenshot(path=SCREENSHOTS / "worker-page-tablet.png", full_page=True, caret="initial")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    # Tab through the whole page: every visible control receives the focus at some point.
    controls = page.evaluate(_MARK_CONTROLS)
    reached: set[str] = set()
    for _ in range(controls + 40):
        page.keyboard.press("Tab")
        mark = page.evaluate("document.activeElement.dataset.kbd || ''")
        if mark:
            reached.add(mark)
    assert controls > 20
    assert reached == {str(n) for n in range(controls)}

    # Another store's worker: 404, as if it did not exist.
    response = page.goto(f"{portal_url}/stores/{bob_store.id}/workers/{bob_worker.id}/")
    assert response.status == 404
    response = page.goto(f"{portal_url}/stores/{store.id}/workers/{bob_worker.id}/")
    assert response.status == 404

    assert csp_violations == []
    # The PIN never reached the worker's log or the broker.
    assert KNOWN_PIN not in worker_process.log
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    for key in broker.scan_iter():
        kind = broker.type(key)
        if kind == b"list":
            values = broker.lrange(key, 0, -1)
        elif kind == b"hash":
            values = list(broker.hgetall(key).values())
        elif kind == b"string":
            values = [broker.get(key)]
        else:
            values = []
        for value in values:
            assert KNOWN_PIN.encode() not in (value or b"")
            assert not re.search(rb"ms-qrpin:v1\|", value or b"")
