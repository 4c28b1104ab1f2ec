"""In Chromium: a store manager signs in through graphsim's authorize page and sees their stores."""

from __future__ import annotations

from pathlib import Path

import pytest

from graphsim.demo import DEMO_CLIENT_ID
from provisioning.directory import directory_sync
from provisioning.graph import get_app_client
from provisioning.models import AdministrativeUnit

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture
def portal_url(live_server, portal_graph) -> str:
    portal_graph.tenant.apps[DEMO_CLIENT_ID].redirect_uris.append(
        f"{live_server.url}/auth/callback"
    )
    return live_server.url


def test_a_manager_signs_in_in_a_browser_and_sees_their_stores(
    services_configured, browser, portal_url, portal_graph, alice, transactional_db
):
    directory_sync(client=get_app_client())
    page = browser.new_page(viewport={"width": 1024, "height": 768})
    page.goto(portal_url + "/")
    page.get_by_role("link", name="Sign in with Microsoft Entra").click()
    page.wait_for_url(f"{portal_graph.browser_url}/**")
    page.screenshot(path=SCREENSHOTS / "graphsim-sign-in.png")
    page.get_by_role("button", name=alice.display_name).click()
    page.wait_for_url(portal_url + "/")
    page.get_by_role("heading", name="Your stores").wait_for()
    stores = AdministrativeUnit.objects.filter(scoped_roles__principal_id=alice.user_id)
    assert stores.count() == 2
    for store in stores:
        assert page.get_by_role("link", name=store.display_name).is_visible()
    page.screenshot(path=SCREENSHOTS / "stores.png")
    # The CSP holds: no inline script or style was refused on the way.
    page.get_by_role("link", name=stores[0].display_name).click()
    page.get_by_role("heading", name=stores[0].display_name).wait_for()
    assert page.locator("table.workers tbody tr").count() > 10
