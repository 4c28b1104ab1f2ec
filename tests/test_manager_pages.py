"""The manager's pages: store picker, worker page, activity, sign-in and session expiry."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from provisioning.models import AdministrativeUnit, AuditEvent

HTMX = {"HTTP_HX_REQUEST": "true"}


def test_the_store_picker_lists_only_my_stores_and_remembers_the_last(
    alice_client, alice, bob_store, alice_store
):
    page = alice_client.get("/stores/")
    assert page.status_code == 200
    mine = AdministrativeUnit.objects.filter(scoped_roles__principal_id=alice.user_id)
    assert mine.count() == 2
    for store in mine:
        assert store.display_name in page.content.decode()
    other = AdministrativeUnit.objects.get(id=bob_store)
    assert other.display_name not in page.content.decode()
    assert "Continue with" not in page.content.decode()
    alice_client.get(f"/stores/{alice_store}/")
    page = alice_client.get("/stores/")
    store = AdministrativeUnit.objects.get(id=alice_store)
    assert f"Continue with {store.display_name}" in page.content.decode()
    assert "Last used" in alice_client.get("/").content.decode()


def test_the_store_picker_searches(alice_client, alice_store):
    store = AdministrativeUnit.objects.get(id=alice_store)
    word = store.display_name.split("·")[-1].strip()
    page = alice_client.get("/stores/", {"q": word}, **HTMX)
    assert page.status_code == 200
    assert store.display_name in page.content.decode()
    assert "<html" not in page.content.decode()  # the fragment only
    assert "No store matches" in alice_client.get("/stores/", {"q": "zzzz"}).content.decode()


def test_no_role_explains_what_is_needed(client, charlie, directory):
    from tests.fixtures_portal import sign_in

    sign_in(client, charlie)
    page = client.get("/stores/")
    # The IT admin gets the picker, not an error (their tenant-wide role makes them a manager of
    # every store: test_tenant_wide_roles.py); someone without a role gets the explanation
    # (portal/no_access.html, tested in test_sign_in.py).
    assert page.status_code == 200


def test_the_worker_page_shows_every_action_and_insight(
    alice_client, alice_worker, run_tasks, directory
):
    page = alice_client.get(alice_worker.url()).content.decode()
    assert "Add a QR code + PIN" in page
    assert "Lanyard has not read" in page
    with run_tasks():
        alice_client.post(
            alice_worker.url("qr/"),
            {"add-activation": "now", "add-pin_mode": "generated",
             "add-expiry": (timezone.localdate() + timedelta(days=10)).isoformat()},
            **HTMX,
        )  # fmt: skip
    page = alice_client.get(alice_worker.url()).content.decode()
    for text in (
        "never been used",
        "expires within 30 days",
        "Renew",
        "Replace a lost QR code",
        "Add a temporary QR code",
        "Reset PIN",
        "Delete QR code + PIN",
        "alternate mobile",
        "default sign-in method",
    ):
        assert text in page, text
    fragment = alice_client.get(alice_worker.url("methods"), **HTMX)
    assert fragment.status_code == 200
    assert "<html" not in fragment.content.decode()


def test_an_unusable_method_says_why(alice_client, alice_worker, run_tasks, directory):
    with run_tasks():
        alice_client.post(
            alice_worker.url("qr/"),
            {"add-activation": "now", "add-pin_mode": "generated",
             "add-expiry": (timezone.localdate() + timedelta(days=10)).isoformat()},
            **HTMX,
        )  # fmt: skip
    directory.tenant.qr_methods[alice_worker.user_id].standard = None  # deleted elsewhere
    alice_client.post(alice_worker.url("refresh"), **HTMX)
    page = alice_client.get(alice_worker.url()).content.decode()
    assert "Not usable" in page and "replace the lost QR code" in page


def test_activity_per_worker_and_per_store(alice_client, alice_worker, run_tasks, alice):
    with run_tasks():
        alice_client.post(
            alice_worker.url("qr/"),
            {"add-activation": "now", "add-pin_mode": "custom", "add-pin": "73914862",
             "add-expiry": (timezone.localdate() + timedelta(days=10)).isoformat()},
            **HTMX,
        )  # fmt: skip
    worker_page = alice_client.get(alice_worker.url("activity/")).content.decode()
    store_page = alice_client.get(f"/stores/{alice_worker.au_id}/activity/").content.decode()
    for page in (worker_page, store_page):
        assert "qr_create" in page and "succeeded" in page
        assert alice.upn in page
        assert "73914862" not in page
    assert AuditEvent.objects.filter(target_user_id=alice_worker.user_id).count() >= 2


def test_an_expired_session_sends_htmx_back_through_sign_in(client, alice_worker):
    page = client.get(alice_worker.url())
    assert page.status_code == 302 and page["Location"].startswith("/auth/sign-in?next=")
    fragment = client.get(
        alice_worker.url("methods"), HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL=alice_worker.url()
    )
    assert fragment.status_code == 200
    assert fragment["HX-Redirect"].startswith("/auth/sign-in?next=")
    assert "workers" in fragment["HX-Redirect"]


def test_wrong_methods_are_405(alice_client, alice_worker):
    assert alice_client.get(alice_worker.url("qr/pin-reset")).status_code == 405
    assert alice_client.post(alice_worker.url()).status_code == 405
    assert alice_client.post(f"/stores/{alice_worker.au_id}/").status_code == 405


def test_the_store_refresh_reads_every_worker(alice_client, alice_store, run_tasks, directory):
    from provisioning.models import DirectoryUser, WorkerMethodState

    with run_tasks():
        response = alice_client.post(f"/stores/{alice_store}/refresh", **HTMX)
    assert response.status_code == 200
    members = DirectoryUser.objects.filter(memberships__administrative_unit_id=alice_store)
    assert WorkerMethodState.objects.filter(user__in=members).count() == members.count()
    with_qr = sum(1 for uid in directory.tenant.administrative_units[alice_store].member_ids
                  if uid in directory.tenant.qr_methods)  # fmt: skip
    assert WorkerMethodState.objects.filter(user__in=members, has_qr_method=True).count() == with_qr


def test_someone_with_no_scoped_role_is_told_what_role_they_need(client, directory, alice_worker):
    from tests.fixtures_portal import Persona, sign_in

    sign_in(client, Persona(alice_worker.user_id, alice_worker.upn, alice_worker.display_name))
    page = client.get("/stores/")
    assert page.status_code == 403
    assert "Authentication Administrator" in page.content.decode()
    assert client.get(f"/stores/{alice_worker.au_id}/").status_code == 404
