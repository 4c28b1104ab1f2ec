"""Sign-in with Entra (graphsim): auth code + PKCE through MSAL, scope from scopedRoleMemberOf."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from portal.models import User
from provisioning import crypto
from provisioning.models import AdministrativeUnit, AuditEvent, ScopedRoleAssignment, TokenCache
from tests.fixtures_portal import sign_in

pytestmark = pytest.mark.django_db


def test_it_sends_the_browser_to_entra_with_pkce(client, portal_graph):
    response = client.get("/auth/sign-in")
    assert response.status_code == 302
    location = urlsplit(response["Location"])
    query = parse_qs(location.query)
    assert location.path.endswith("/oauth2/v2.0/authorize")
    assert query["response_type"] == ["code"]
    assert query["code_challenge_method"] == ["S256"]
    assert query["redirect_uri"] == ["http://testserver/auth/callback"]
    assert "state" in query and "nonce" in query


def test_a_manager_signs_in_and_sees_their_stores(client, alice, directory):
    user = sign_in(client, alice)
    assert user.user_principal_name == alice.upn
    response = client.get("/")
    page = response.content.decode()
    assert response.status_code == 200
    stores = AdministrativeUnit.objects.filter(scoped_roles__principal_id=alice.user_id).distinct()
    assert stores.count() == 2  # the demo tenant's first manager manages two stores
    for store in stores:
        assert store.display_name in page
    other = AdministrativeUnit.objects.exclude(id__in=stores.values("id")).first()
    assert other.display_name not in page


def test_the_token_cache_is_stored_encrypted(client, alice, directory):
    user = sign_in(client, alice)
    row = TokenCache.objects.get(user=user)
    assert b"refresh_token" not in bytes(row.ciphertext).lower()
    assert b"RefreshToken" in crypto.decrypt(row.ciphertext)


def test_it_refreshes_scope_at_sign_in(client, alice, portal_graph, db):
    # No directory sync ran: the manager's stores come from their own scopedRoleMemberOf.
    sign_in(client, alice)
    assert ScopedRoleAssignment.objects.filter(principal_id=alice.user_id).count() == 2
    assert AdministrativeUnit.objects.count() == 2


def test_a_revoked_role_counts_from_the_next_sign_in(client, alice, directory, portal_graph):
    sign_in(client, alice)
    tenant = portal_graph.tenant
    revoked = [m for m in tenant.scoped_role_memberships.values() if m.user_id == alice.user_id]
    del tenant.scoped_role_memberships[revoked[0].id]
    client.post("/auth/sign-out")
    sign_in(client, alice)
    assert ScopedRoleAssignment.objects.filter(principal_id=alice.user_id).count() == 1


def test_the_it_admin_is_recognised(client, charlie, directory):
    user = sign_in(client, charlie)
    assert user.is_it_admin


def test_someone_without_a_scoped_role_is_told_what_role_they_need(client, portal_graph, db):
    worker_id = next(
        user.id
        for user in portal_graph.tenant.users.values()
        if user.account_enabled
        and user.user_type == "Member"
        and user.id not in portal_graph.people.managers
        and user.id != portal_graph.people.it_admin
    )
    from tests.fixtures_portal import _persona

    sign_in(client, _persona(portal_graph, worker_id))
    response = client.get("/")
    assert response.status_code == 403
    assert "Authentication Administrator" in response.content.decode()


def test_a_forged_callback_is_refused(client, portal_graph, db):
    client.get("/auth/sign-in")
    response = client.get("/auth/callback?code=forged&state=not-the-state")
    assert response.status_code == 400
    assert "did not match" in response.content.decode()
    assert not User.objects.exists()


def test_a_callback_without_a_started_sign_in_is_refused(client, db):
    response = client.get("/auth/callback?code=x&state=y")
    assert response.status_code == 400
    assert "took too long" in response.content.decode()


def test_a_cancelled_sign_in_says_so(client, portal_graph, db):
    start = client.get("/auth/sign-in")
    state = parse_qs(urlsplit(start["Location"]).query)["state"][0]
    response = client.get(f"/auth/callback?error=access_denied&state={state}")
    assert response.status_code == 400
    assert "cancelled" in response.content.decode()


def test_sign_out_forgets_the_tokens(client, alice, directory):
    user = sign_in(client, alice)
    response = client.post("/auth/sign-out")
    assert response.status_code == 302
    assert not TokenCache.objects.filter(user=user).exists()
    assert client.get("/").status_code == 200  # the welcome page again
    assert AuditEvent.objects.filter(actor=user, action="sign-out").exists()


def test_sign_out_needs_post(client, alice, directory):
    sign_in(client, alice)
    assert client.get("/auth/sign-out").status_code == 405


def test_another_managers_store_is_a_404(client, alice, bob, directory):
    sign_in(client, alice)
    bob_store = AdministrativeUnit.objects.filter(scoped_roles__principal_id=bob.user_id).exclude(
        scoped_roles__principal_id=alice.user_id
    )[0]
    assert client.get(f"/stores/{bob_store.id}/").status_code == 404
    own = AdministrativeUnit.objects.filter(scoped_roles__principal_id=alice.user_id)[0]
    response = client.get(f"/stores/{own.id}/")
    assert response.status_code == 200


def test_pages_need_sign_in(client, db):
    response = client.get("/stores/anything/")
    assert response.status_code == 302
    assert response["Location"].startswith("/auth/sign-in")


def test_graphsim_authorize_page_lists_the_demo_managers(client, portal_graph, alice):
    start = client.get("/auth/sign-in")
    page = requests.get(start["Location"])
    assert page.status_code == 200
    assert alice.upn in page.text


def test_a_claims_challenge_is_passed_to_entra(client, portal_graph):
    claims = '{"access_token":{"acrs":{"essential":true,"value":"c1"}}}'
    response = client.get("/auth/sign-in", {"claims": claims, "login_hint": "a@b.example"})
    query = parse_qs(urlsplit(response["Location"]).query)
    assert '"acrs"' in query["claims"][0]
    assert query["login_hint"] == ["a@b.example"]
