"""Issue 10: access ends when its reason ends — sessions, admin rights, kiosks, throttles, sign-out
and the browser's history cache (docs/architecture.md §5). Each test performs the attack."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.contrib.sessions.models import Session
from django.utils import timezone

from provisioning.models import TokenCache
from tests.fixtures_portal import sign_in

pytestmark = pytest.mark.django_db


# -- finding 10: the session table and token caches are cleared -------------------------------


def test_anonymous_sessions_and_the_token_caches_of_ended_sessions_are_cleared(
    client, alice, bob, directory, django_user_model
):
    from django.test import Client

    from portal.tasks import sessions_clear

    with time_machine.travel(timezone.now() - timedelta(days=2), tick=False):
        for _ in range(5):  # anonymous visits to /auth/sign-in, each writes a session
            Client().get("/auth/sign-in")
        gone = sign_in(Client(), bob)  # signed in two days ago, never signed out
    present = sign_in(client, alice)
    assert Session.objects.count() == 7
    assert TokenCache.objects.filter(user=gone).exists()

    assert sessions_clear() == {"sessions": 6, "token_caches": 1}

    assert Session.objects.count() == 1  # alice's
    assert not TokenCache.objects.filter(user=gone).exists()
    assert TokenCache.objects.filter(user=present).exists()


def test_a_session_past_its_absolute_lifetime_loses_its_token_cache(client, alice, directory):
    from portal.tasks import sessions_clear

    user = sign_in(client, alice)
    session = client.session
    with time_machine.travel(timezone.now() + timedelta(hours=7), tick=False):
        session["activity"] = 1
        session.save()  # written recently: its sliding expiry is hours away
    with time_machine.travel(timezone.now() + timedelta(hours=13), tick=False):
        sessions_clear()
    assert not Session.objects.exists()
    assert not TokenCache.objects.filter(user=user).exists()


def test_clearing_sessions_is_scheduled():
    from django.conf import settings

    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "portal.sessions_clear" in tasks


# -- finding 12: no htmx history snapshots of worker lists ----------------------------------


def test_pages_keep_no_htmx_history_and_clear_old_snapshots(alice_client):
    from django.contrib.staticfiles import finders

    page = alice_client.get("/stores/")
    assert page.status_code == 200
    html = page.content.decode()
    assert '"historyCacheSize": 0' in html
    assert 'hx-history="false"' in html
    assert "js/history.js" in html
    script = Path(finders.find("js/history.js")).read_text(encoding="utf-8")
    assert 'localStorage.removeItem("htmx-history-cache")' in script


# -- finding 3: pairing throttle per client, behind the proxy ---------------------------------


def _pairing_code(alice_client, alice_store) -> str:
    from tests.test_kiosks import _code, _register

    return _code(_register(alice_client, [alice_store]))


def test_wrong_codes_from_one_client_behind_the_proxy_do_not_block_another_store(
    alice_client, alice_store, settings
):
    from django.test import Client

    settings.TRUSTED_PROXY_COUNT = 1
    code = _pairing_code(alice_client, alice_store)
    proxy = {"REMOTE_ADDR": "10.0.0.2"}  # every request arrives from the reverse proxy
    attacker = Client(**proxy, HTTP_X_FORWARDED_FOR="203.0.113.9")
    statuses = {
        attacker.post("/badges/kiosk/pair", {"code": f"AAAA-AAA{i}"}).status_code for i in range(12)
    }
    assert 429 in statuses  # the attacker is throttled...
    store = Client(**proxy, HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert store.post("/badges/kiosk/pair", {"code": code}).status_code == 302  # ...the store not


def test_a_forged_forwarded_for_entry_does_not_escape_the_throttle(
    alice_client, alice_store, settings
):
    from django.test import Client

    settings.TRUSTED_PROXY_COUNT = 1
    statuses = [
        # The client writes a new "address" each time; the proxy appends the real one.
        Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=f"192.0.2.{i}, 203.0.113.9")
        .post("/badges/kiosk/pair", {"code": f"AAAA-AAA{i}"})
        .status_code
        for i in range(12)
    ]
    assert statuses[10:] == [429, 429]


def test_client_address_reads_forwarded_for_right_to_left(rf, settings):
    from portal.http import client_address

    request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 1.2.3.4, 10.0.0.1")
    settings.TRUSTED_PROXY_COUNT = 0
    assert client_address(request) == "10.0.0.2"
    settings.TRUSTED_PROXY_COUNT = 1
    assert client_address(request) == "10.0.0.1"
    settings.TRUSTED_PROXY_COUNT = 2
    assert client_address(request) == "1.2.3.4"


def test_guessing_from_many_addresses_is_capped_too(alice_client, alice_store, settings):
    from django.test import Client

    from portal.http import KIOSK_PAIR_FAILURES_GLOBAL

    settings.TRUSTED_PROXY_COUNT = 1
    for _ in range(KIOSK_PAIR_FAILURES_GLOBAL.limit):
        KIOSK_PAIR_FAILURES_GLOBAL.count("all")
    fresh = Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.99")
    assert fresh.post("/badges/kiosk/pair", {"code": "AAAA-AAAA"}).status_code == 429


def test_throttles_live_in_a_cache_shared_by_all_processes(settings):
    from django.conf import settings as live

    backend = live.CACHES["shared"]["BACKEND"]
    assert backend in (
        "django.core.cache.backends.db.DatabaseCache",
        "django.core.cache.backends.redis.RedisCache",
    )


def test_the_database_cache_table_exists_after_migrate(db):
    from django.core.cache import caches

    caches["shared"].set("lanyard:test", 1, 60)
    assert caches["shared"].get("lanyard:test") == 1


# -- finding 9: store refresh, one pending per store, rate-limited ----------------------------


@pytest.fixture
def published_tasks():
    """Names of the tasks sent to the broker during the test (Celery's own signal)."""
    from celery import signals

    sent: list[str] = []

    def record(sender=None, **kwargs):
        sent.append(sender)

    signals.before_task_publish.connect(record, weak=False)
    yield sent
    signals.before_task_publish.disconnect(record)


HTMX = {"HTTP_HX_REQUEST": "true"}


def test_pressing_refresh_repeatedly_queues_one_pass_per_store(
    alice_client, alice_store, published_tasks
):
    statuses = [
        alice_client.post(f"/stores/{alice_store}/refresh", **HTMX).status_code for _ in range(8)
    ]
    assert published_tasks.count("provisioning.worker_states_refresh") == 1
    assert set(statuses) == {200}


def test_a_manager_cannot_queue_refreshes_without_limit(alice_client, alice_store, published_tasks):
    from portal.http import STORE_REFRESHES
    from provisioning.worker_state import worker_states_refresh_release

    statuses = []
    for _ in range(STORE_REFRESHES.limit + 3):
        statuses.append(alice_client.post(f"/stores/{alice_store}/refresh", **HTMX).status_code)
        worker_states_refresh_release(unit_id=alice_store)  # as if each pass had finished
    assert published_tasks.count("provisioning.worker_states_refresh") == STORE_REFRESHES.limit
    assert statuses[-1] == 429


def test_a_finished_refresh_lets_the_next_one_go(alice_client, alice_store, run_tasks):
    from provisioning.models import AdministrativeUnit

    with run_tasks():
        alice_client.post(f"/stores/{alice_store}/refresh", **HTMX)
    assert AdministrativeUnit.objects.get(pk=alice_store).states_refresh_queued_at is None


# -- finding 4: removed IT admins lose admin access; sessions have an absolute lifetime -------


def _admin_group_remove(graph, user_id: str) -> None:
    from django.conf import settings

    group = next(
        g for g in graph.tenant.groups.values() if g.id.lower() == settings.LANYARD_ADMIN_GROUP_ID
    )
    group.member_ids = [m for m in group.member_ids if m.lower() != user_id.lower()]


def test_an_it_admin_removed_from_the_group_loses_admin_within_minutes(client, charlie, directory):
    user = sign_in(client, charlie)
    assert user.is_it_admin and client.get("/admin/").status_code == 200
    _admin_group_remove(directory, charlie.user_id)
    with time_machine.travel(timezone.now() + timedelta(minutes=6), tick=False):
        assert client.get("/admin/").status_code == 403
    user.refresh_from_db()
    assert not user.is_it_admin


def test_sync_directory_revokes_it_admin_of_someone_removed_from_the_group(
    client, charlie, directory
):
    from provisioning.directory import directory_sync
    from provisioning.graph import get_app_client

    user = sign_in(client, charlie)
    _admin_group_remove(directory, charlie.user_id)
    summary = directory_sync(client=get_app_client())
    user.refresh_from_db()
    assert not user.is_it_admin
    assert summary["it_admins_removed"] == 1


def test_a_session_ends_after_its_absolute_lifetime_however_active(
    client, alice, directory, settings
):
    sign_in(client, alice)
    start = timezone.now()
    # Activity that writes the session (any write extends it by SESSION_COOKIE_AGE) keeps it
    # alive...
    for hours in (4, 8, 11):
        with time_machine.travel(start + timedelta(hours=hours), tick=False):
            assert client.get("/stores/").status_code == 200
            session = client.session
            session["activity"] = hours
            session.save()
    # ...but not past SESSION_ABSOLUTE_HOURS (12) after sign-in.
    with time_machine.travel(start + timedelta(hours=12, minutes=5), tick=False):
        response = client.get("/stores/")
    assert response.status_code == 302 and "/auth/sign-in" in response["Location"]


# -- finding 5: a kiosk does not outlive its registrar's access -------------------------------


def _alice_pairs_a_kiosk(alice_client, alice_store):
    from django.test import Client

    from badges.models import Kiosk

    code = _pairing_code(alice_client, alice_store)
    kiosk_browser = Client()
    assert kiosk_browser.post("/badges/kiosk/pair", {"code": code}).status_code == 302
    return kiosk_browser, Kiosk.objects.get()


def _alice_loses_the_store(directory, alice, alice_store) -> None:
    from provisioning.directory import directory_sync
    from provisioning.graph import get_app_client

    tenant = directory.tenant
    for key, membership in list(tenant.scoped_role_memberships.items()):
        if membership.user_id == alice.user_id and membership.administrative_unit_id == alice_store:
            del tenant.scoped_role_memberships[key]
    directory_sync(client=get_app_client())


def test_a_kiosk_is_suspended_when_its_registrar_loses_the_store_until_confirmed(
    alice_client, alice, charlie, alice_store, alice_badged, directory
):
    from django.test import Client

    from tests.test_kiosks import _queue

    kiosk_browser, kiosk = _alice_pairs_a_kiosk(alice_client, alice_store)
    job = _queue(alice_store, [b.user_id for b in alice_badged])
    assert f"Sheet {job.pk}" in kiosk_browser.get("/badges/kiosk/").content.decode()

    _alice_loses_the_store(directory, alice, alice_store)

    kiosk.refresh_from_db()
    assert kiosk.suspended_at is not None
    page = kiosk_browser.get("/badges/kiosk/").content.decode()
    assert f"Sheet {job.pk}" not in page and "suspended" in page
    assert kiosk_browser.get(f"/badges/kiosk/sheets/{job.pk}.pdf").status_code == 404
    assert kiosk_browser.post(f"/badges/kiosk/sheets/{job.pk}/printed").status_code == 404

    admin = Client()
    sign_in(admin, charlie)
    assert admin.post(f"/badges/kiosks/{kiosk.pk}/confirm").status_code == 302
    assert f"Sheet {job.pk}" in kiosk_browser.get("/badges/kiosk/").content.decode()


def test_a_kiosk_is_suspended_on_its_next_request_without_a_sync(
    alice_client, alice, alice_store, directory
):
    from provisioning.models import ScopedRoleAssignment

    kiosk_browser, kiosk = _alice_pairs_a_kiosk(alice_client, alice_store)
    ScopedRoleAssignment.objects.filter(
        principal_id=alice.user_id.lower(), administrative_unit_id=alice_store
    ).delete()  # as the sign-in of alice, or a sync of her store, records it
    assert "suspended" in kiosk_browser.get("/badges/kiosk/").content.decode()


def test_only_a_manager_of_every_store_of_a_kiosk_sees_or_revokes_it(
    alice_client, alice_store, bob_store, pair_kiosk
):
    from badges.models import Kiosk

    pair_kiosk([alice_store, bob_store], name="Shared till")
    shared = Kiosk.objects.get(name="Shared till")
    assert "Shared till" not in alice_client.get("/badges/kiosks/").content.decode()
    assert alice_client.post(f"/badges/kiosks/{shared.pk}/revoke").status_code == 404
    assert alice_client.post(f"/badges/kiosks/{shared.pk}/confirm").status_code == 404
    shared.refresh_from_db()
    assert shared.revoked_at is None


# -- finding 6: sign-out ends the Entra session; sign-in lets the person pick the account ------


def test_the_next_person_on_a_shared_pc_is_not_signed_in_as_the_previous_manager(
    client, alice, directory
):
    """One browser: `client` holds its Lanyard cookies, `entra` its cookies for Entra (graphsim)."""
    from urllib.parse import urlsplit

    import requests

    from portal.models import User

    entra = requests.Session()
    start = client.get("/auth/sign-in")
    picked = entra.post(start["Location"], data={"user": alice.user_id}, allow_redirects=False)
    callback = urlsplit(picked.headers["Location"])
    assert client.get(f"{callback.path}?{callback.query}").status_code == 302

    signed_out = client.post("/auth/sign-out")
    assert signed_out.status_code == 302
    end_session = signed_out["Location"]
    assert "/oauth2/v2.0/logout" in end_session and "post_logout_redirect_uri" in end_session
    back = entra.get(end_session, allow_redirects=False)
    assert back.status_code == 302 and back.headers["Location"] == "http://testserver/"

    # The next person presses "Sign in": Entra must ask who they are, not answer for alice.
    again = client.get("/auth/sign-in")
    answer = entra.get(again["Location"], allow_redirects=False)
    assert answer.status_code == 200 and "Pick an account" in answer.text
    assert User.objects.filter(entra_object_id=alice.user_id.lower()).count() == 1


def test_sign_in_always_offers_account_selection(client, alice, directory):
    """Even while Entra's session remembers alice (she did not sign out), sign-in asks."""
    from urllib.parse import urlsplit

    import requests

    entra = requests.Session()
    start = client.get("/auth/sign-in")
    assert "prompt=select_account" in start["Location"]
    picked = entra.post(start["Location"], data={"user": alice.user_id}, allow_redirects=False)
    callback = urlsplit(picked.headers["Location"])
    client.get(f"{callback.path}?{callback.query}")
    client.logout()  # the session ends without going through Entra (expiry, lifetime)
    answer = entra.get(client.get("/auth/sign-in")["Location"], allow_redirects=False)
    assert answer.status_code == 200 and "Pick an account" in answer.text
