"""Click to PIN shown, and click to kiosk shown, in Chromium (issue 12, item 4).

    .venv/bin/python bench/click_to_pin.py [--clicks 10] [--latency 80-250]

Needs PostgreSQL, Redis and Chromium, like the integration suite (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/lanyard_bench_click; BENCH_BROKER_URL, default
redis://127.0.0.1:6379/12; CHROMIUM_PATH, default /usr/bin/chromium). It reuses the integration
suite's fixtures (a live server, a real `celery -A portal worker`, graphsim over HTTPS, Playwright)
by running the measurement below under pytest; graphsim answers with 80–250 ms latency.

A manager signs in, pairs a kiosk for the store, and for each of `--clicks` fresh workers:
clicks "Add QR code + PIN" and waits until the action shows Done with its "Show PIN" button
(click to PIN shown); then clicks "Send to the store's kiosk" and waits until the kiosk's page
shows the sheet ready to print (click to kiosk shown). It does so twice in the same run: with the
old fixed polls (an action's status every 1 s, the kiosk's queue every 10 s: OPERATION_POLL_FIXED,
KIOSK_POLL_SECONDS=10) and with the adaptive ones (docs/architecture.md §11.1); it prints the
median and p95 of each, and the ratios after/before. Figures, not assertions: no test times this.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/lanyard_bench_click"
)
BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/12")


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def _figures(name: str, pin: list[float], kiosk: list[float]) -> dict:
    return {
        "polling": name,
        "clicks": len(pin),
        "click_to_pin_median_s": round(statistics.median(pin), 3),
        "click_to_pin_p95_s": round(_p95(pin), 3),
        "click_to_kiosk_median_s": round(statistics.median(kiosk), 3),
        "click_to_kiosk_p95_s": round(_p95(kiosk), 3),
    }


def test_click_to_pin_and_kiosk(
    services_configured, browser, live_server, portal_graph, alice, start_worker, settings,
    transactional_db,
):  # fmt: skip
    from graphsim.demo import DEMO_CLIENT_ID
    from provisioning.directory import directory_sync
    from provisioning.graph import get_app_client
    from provisioning.models import AdministrativeUnit

    clicks = int(os.environ.get("BENCH_CLICKS", "10"))
    low, high = (int(x) for x in os.environ.get("BENCH_LATENCY", "80-250").split("-"))
    url = live_server.url
    portal_graph.tenant.apps[DEMO_CLIENT_ID].redirect_uris.append(f"{url}/auth/callback")
    start_worker(concurrency=2)
    directory_sync(client=get_app_client())
    tenant = portal_graph.tenant
    store = (
        AdministrativeUnit.objects.filter(scoped_roles__principal_id=alice.user_id)
        .order_by("id")
        .first()
    )
    fresh = [
        uid for uid in sorted(tenant.administrative_units[store.id].member_ids)
        if uid not in tenant.qr_methods and uid not in tenant.phone_methods
        and tenant.users[uid].account_enabled and tenant.users[uid].licensed
        and tenant.users[uid].user_type == "Member"
    ]  # fmt: skip
    assert len(fresh) >= 2 * clicks, f"only {len(fresh)} fresh workers in the store"
    portal_graph.sim.config.latency_min_ms = low
    portal_graph.sim.config.latency_max_ms = high

    manager = browser.new_context(viewport={"width": 1024, "height": 900}).new_page()
    manager.goto(url + "/")
    manager.get_by_role("link", name="Sign in with Microsoft Entra").click()
    manager.wait_for_url(f"{portal_graph.browser_url}/**")
    manager.get_by_role("button", name=alice.display_name).click()
    manager.wait_for_url(url + "/")
    manager.goto(url + "/badges/kiosks/")
    manager.get_by_role("link", name="Register a kiosk").click()
    manager.get_by_label("Kiosk name").fill("Back office PC")
    manager.get_by_label(store.display_name).check()
    manager.get_by_role("button", name="Get a pairing code").click()
    code = manager.get_by_label("Pairing code").inner_text().strip()
    kiosk = browser.new_context(viewport={"width": 1024, "height": 768}).new_page()
    kiosk.goto(url + "/badges/kiosk/")
    kiosk.wait_for_url("**/badges/kiosk/pair")
    kiosk.get_by_label("Pairing code").fill(code)
    kiosk.get_by_role("button", name="Pair").click()
    kiosk.wait_for_url("**/badges/kiosk/")

    results = []
    for name, fixed, kiosk_seconds in (("fixed 1 s (before)", True, 10), ("adaptive", False, 1)):
        settings.OPERATION_POLL_FIXED = fixed
        settings.KIOSK_POLL_SECONDS = kiosk_seconds
        kiosk.goto(url + "/badges/kiosk/")  # the queue page with this mode's poll
        kiosk.get_by_role("heading", name="Badges to print").wait_for()
        pin_times, kiosk_times = [], []
        for uid in fresh[:clicks]:
            manager.goto(f"{url}/stores/{store.id}/workers/{uid}/")
            name_of = tenant.users[uid].display_name
            manager.get_by_role("heading", name=name_of, exact=True).wait_for()
            card = manager.locator("article.operation").first
            started = time.monotonic()
            manager.locator("#add-qr").get_by_role("button", name="Add QR code + PIN").click()
            card.get_by_role("button", name="Show PIN").wait_for(timeout=60_000)
            pin_times.append(time.monotonic() - started)

            started = time.monotonic()
            card.get_by_role("button", name="Send to the store's kiosk").click()
            sheet = kiosk.locator("li.print-job").filter(has_text=name_of)
            sheet.get_by_role("link", name="Open PDF to print").wait_for(timeout=60_000)
            kiosk_times.append(time.monotonic() - started)
            # Clear the queue as the operator would, so the next sheet is the only one.
            sheet.get_by_role("button", name="Mark printed").click()
            sheet.wait_for(state="detached")
        fresh = fresh[clicks:]
        results.append(_figures(name, pin_times, kiosk_times))
    before, after = results
    for figures in results:
        figures["latency_ms"] = f"{low}-{high}"
        print("\nBENCH " + json.dumps(figures), flush=True)
    ratios = {
        key.replace("_s", "_ratio_after_to_before"): round(after[key] / before[key], 3)
        for key in before
        if key.endswith("_s")
    }
    print("\nBENCH " + json.dumps(ratios), flush=True)


def main() -> int:
    import psycopg
    import redis

    name = DATABASE_URL.rsplit("/", 1)[1]
    admin = DATABASE_URL.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    redis.Redis.from_url(BROKER_URL).flushdb()
    os.environ.update(
        DATABASE_URL=DATABASE_URL,
        CELERY_BROKER_URL=BROKER_URL,
        CHROMIUM_PATH=os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"),
    )
    os.chdir(ROOT)
    # The suite's fixtures are loaded as plugins (-p), before pytest-django would set Django up.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    return pytest.main([
        __file__, "-q", "-s", "-p", "tests.conftest", "-p", "tests.integration.conftest",
        "--create-db", "-W", "ignore::DeprecationWarning",
    ])  # fmt: skip


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
