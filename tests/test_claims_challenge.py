"""A Conditional Access claims challenge from Graph (e.g. "fresh MFA for this action").

graphsim can require an authentication context on delegated writes, answering a token without it
with Graph's 401 `insufficient_claims` challenge. The manager is asked to sign in again; the
sign-in carries the challenge's `claims` to Entra, and the action then resumes and succeeds.
"""

from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import requests
from django.utils import timezone

from provisioning.models import Operation

HTMX = {"HTTP_HX_REQUEST": "true"}


def test_a_claims_challenge_leads_to_a_sign_in_that_satisfies_it_and_resumes(
    client, alice, alice_worker, run_tasks, directory
):
    from tests.fixtures_portal import sign_in

    sign_in(client, alice)
    directory.sim.config.require_auth_context = "c1"
    expiry = (timezone.localdate() + timedelta(days=90)).isoformat()
    with run_tasks():
        client.post(
            alice_worker.url("qr/"),
            {"add-activation": "now", "add-expiry": expiry, "add-pin_mode": "generated"},
            **HTMX,
        )
    op = Operation.objects.get()
    assert op.status == "needs_sign_in"
    assert alice_worker.user_id not in directory.tenant.qr_methods
    assert json.loads(op.result["claims"])["access_token"]["acrs"]["value"] == "c1"

    # The "Sign in again" link asks Entra for exactly the claims Graph demanded.
    page = client.get(alice_worker.url()).content.decode()
    link = page.split('href="/auth/sign-in?', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    start = client.get(f"/auth/sign-in?{link}")
    authorize = parse_qs(urlsplit(start["Location"]).query)
    assert json.loads(authorize["claims"][0])["access_token"]["acrs"]["value"] == "c1"
    picked = requests.post(start["Location"], data={"user": alice.user_id}, allow_redirects=False)
    callback = urlsplit(picked.headers["Location"])
    client.get(f"{callback.path}?{callback.query}")

    with run_tasks():
        client.post(alice_worker.url(f"operations/{op.id}/resume"), **HTMX)
    op.refresh_from_db()
    assert op.status == "succeeded", op.error
    assert directory.stats["qr_method_creations"] == {alice_worker.user_id: 1}


def test_graphsim_challenges_only_tokens_without_the_context(graphsim):
    manager = graphsim.people.managers[0]
    graphsim.sim.config.require_auth_context = "c1"
    worker = next(uid for uid in graphsim.tenant.users if uid not in graphsim.tenant.qr_methods)
    url = graphsim.graph_url(f"/users/{worker}/authentication/phoneMethods")
    body = {"phoneNumber": "+1 4255550100", "phoneType": "office"}
    token = graphsim.issue_delegated_token(manager, client_capabilities=["cp1"])
    plain = graphsim.session(token).post(url, json=body)
    assert plain.status_code == 401
    assert 'error="insufficient_claims"' in plain.headers["WWW-Authenticate"]
    reads = graphsim.session(token).get(url)
    assert reads.status_code != 401  # reads are not challenged


def test_graphsim_sends_no_claims_challenge_to_a_client_without_cp1(graphsim):
    """Graph sends claims challenges only to clients that declared cp1 (§8.6); without it the
    write is refused, never challenged."""
    manager = graphsim.people.managers[0]
    graphsim.sim.config.require_auth_context = "c1"
    worker = next(uid for uid in graphsim.tenant.users if uid not in graphsim.tenant.qr_methods)
    url = graphsim.graph_url(f"/users/{worker}/authentication/phoneMethods")
    body = {"phoneNumber": "+1 4255550100", "phoneType": "office"}
    answer = graphsim.session(graphsim.issue_delegated_token(manager)).post(url, json=body)
    assert answer.status_code == 403
    assert "insufficient_claims" not in answer.headers.get("WWW-Authenticate", "")
    assert "cp1" in answer.json()["error"]["message"]


def test_lanyard_declares_cp1_and_its_tokens_carry_it(portal_graph):
    """MSAL sends the declared capability as `xms_cc` in the `claims` of every token request;
    Entra (and graphsim) put it in the access token."""
    import jwt

    from provisioning.graph import get_config
    from provisioning.graph.tokens import AppTokenProvider, build_msal_app

    app = build_msal_app(get_config())
    assert app._client_capabilities == ["cp1"]
    flow = app.initiate_auth_code_flow(["https://graph.microsoft.com/User.Read"], "https://x/cb")
    claims = json.loads(parse_qs(urlsplit(flow["auth_uri"]).query)["claims"][0])
    assert claims["access_token"]["xms_cc"]["values"] == ["cp1"]
    token = AppTokenProvider(get_config()).get_token()
    assert jwt.decode(token, options={"verify_signature": False})["xms_cc"] == ["cp1"]
