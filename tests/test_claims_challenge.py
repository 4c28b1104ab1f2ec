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
    plain = graphsim.session(graphsim.issue_delegated_token(manager)).post(url, json=body)
    assert plain.status_code == 401
    assert 'error="insufficient_claims"' in plain.headers["WWW-Authenticate"]
    reads = graphsim.session(graphsim.issue_delegated_token(manager)).get(url)
    assert reads.status_code != 401  # reads are not challenged
