"""graphsim's identity endpoints, driven by the real MSAL library and real HTTPS."""

from __future__ import annotations

import datetime as dt
import hashlib
import html.parser
import re
import time
import uuid
from urllib.parse import parse_qsl, urljoin, urlsplit

import jwt
import msal
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from graphsim import demo
from graphsim.identity import b64url, register_certificate

REDIRECT_URI = "http://127.0.0.1:8000/auth/callback"
GRAPH_DEFAULT = ["https://graph.microsoft.com/.default"]


def confidential_app(graphsim, credential=demo.DEMO_CLIENT_SECRET, client_id=demo.DEMO_CLIENT_ID):
    return msal.ConfidentialClientApplication(
        client_id,
        client_credential=credential,
        authority=graphsim.authority,
        instance_discovery=False,
    )


def make_certificate():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lanyard-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    return key, key_pem, cert, cert_pem


def token_url(graphsim):
    return f"{graphsim.authority}/oauth2/v2.0/token"


def assertion(graphsim, key, cert, **overrides):
    now = int(time.time())
    claims = {
        "aud": token_url(graphsim),
        "iss": demo.DEMO_CLIENT_ID,
        "sub": demo.DEMO_CLIENT_ID,
        "jti": str(uuid.uuid4()),
        "nbf": now,
        "iat": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    x5t = b64url(cert.fingerprint(hashes.SHA1()))
    return jwt.encode(claims, key, algorithm="RS256", headers={"x5t": x5t})


def post_assertion(graphsim, client_assertion):
    return requests.post(
        token_url(graphsim),
        data={
            "client_id": demo.DEMO_CLIENT_ID,
            "scope": GRAPH_DEFAULT[0],
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": client_assertion,
        },
        timeout=10,
    )


def assert_token_error(response, status, error, aadsts):
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    assert body["error_codes"] == [aadsts]
    assert body["error_description"].startswith(f"AADSTS{aadsts}:")
    assert {"timestamp", "trace_id", "correlation_id"} <= body.keys()


# -- discovery -------------------------------------------------------------------------------


def test_it_serves_discovery_for_tenant_id_and_domain(graphsim):
    for segment in (demo.DEMO_TENANT_ID, demo.DEMO_TENANT_DOMAIN):
        r = requests.get(
            f"{graphsim.base_url}/{segment}/v2.0/.well-known/openid-configuration", timeout=10
        )
        assert r.status_code == 200
        doc = r.json()
        assert doc["token_endpoint"] == token_url(graphsim)
        assert doc["issuer"] == f"{graphsim.authority}/v2.0"
        assert doc["jwks_uri"] == f"{graphsim.authority}/discovery/v2.0/keys"
        # The browser-facing endpoints point at the plain-HTTP listener.
        assert doc["authorization_endpoint"].startswith(graphsim.browser_url)
        assert doc["end_session_endpoint"].startswith(graphsim.browser_url)
        assert "private_key_jwt" in doc["token_endpoint_auth_methods_supported"]


def test_it_answers_unknown_tenant_with_aadsts90002(graphsim):
    r = requests.get(f"{graphsim.base_url}/nope.example/v2.0/.well-known/openid-configuration")
    assert_token_error(r, 400, "invalid_tenant", 90002)


def test_jwks_verifies_issued_access_tokens(graphsim):
    keys = requests.get(f"{graphsim.authority}/discovery/v2.0/keys", timeout=10).json()["keys"]
    token = graphsim.issue_app_token()
    kid = jwt.get_unverified_header(token)["kid"]
    jwk = next(k for k in keys if k["kid"] == kid)
    claims = jwt.decode(
        token, jwt.PyJWK(jwk).key, algorithms=["RS256"], audience="https://graph.microsoft.com"
    )
    assert claims["tid"] == demo.DEMO_TENANT_ID


def test_token_endpoint_and_graph_are_not_served_over_plain_http(graphsim):
    r = requests.post(
        f"{graphsim.browser_url}/{demo.DEMO_TENANT_ID}/oauth2/v2.0/token", data={}, timeout=10
    )
    assert r.status_code == 404
    assert requests.get(f"{graphsim.browser_url}/v1.0/users", timeout=10).status_code == 404


# -- client credentials ----------------------------------------------------------------------


def test_msal_client_credentials_with_secret(graphsim):
    result = confidential_app(graphsim).acquire_token_for_client(GRAPH_DEFAULT)
    assert result["token_type"] == "Bearer"
    assert result["expires_in"] == 3599
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert claims["aud"] == "https://graph.microsoft.com"
    assert claims["tid"] == demo.DEMO_TENANT_ID
    assert claims["appid"] == demo.DEMO_CLIENT_ID
    # `roles` carries exactly the application permissions consented for the app.
    registration = graphsim.tenant.apps[demo.DEMO_CLIENT_ID]
    assert claims["roles"] == sorted(registration.application_permissions)
    r = graphsim.session(result["access_token"]).get(graphsim.graph_url("/users?$top=1"))
    assert r.status_code == 200


def test_token_lifetime_follows_config(graphsim):
    graphsim.sim.config.token_lifetime_s = 60
    result = confidential_app(graphsim).acquire_token_for_client(GRAPH_DEFAULT)
    assert result["expires_in"] == 60
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 60


def test_only_graphs_resource_identifiers_are_accepted_in_scopes(graphsim):
    """graphsim plays the global cloud: a scope on its own URL names no resource Entra knows
    (docs/graph-contract.md §8.2, §8.4), so it is refused as Entra refuses one (AADSTS500011)."""
    app = confidential_app(graphsim)
    refused = app.acquire_token_for_client([f"{graphsim.base_url}/.default"])
    assert refused.get("error") == "invalid_resource", refused
    assert 500011 in refused["error_codes"]
    for scope in (GRAPH_DEFAULT[0], "00000003-0000-0000-c000-000000000000/.default"):
        result = confidential_app(graphsim).acquire_token_for_client([scope])
        assert "access_token" in result, result
        claims = jwt.decode(result["access_token"], options={"verify_signature": False})
        assert claims["aud"] == "https://graph.microsoft.com"


def test_a_delegated_scope_on_graphsims_own_url_is_refused_at_authorize(graphsim):
    app = confidential_app(graphsim)
    flow = app.initiate_auth_code_flow(
        [f"{graphsim.base_url}/User.Read"], redirect_uri=REDIRECT_URI
    )
    page = requests.get(flow["auth_uri"], allow_redirects=False, timeout=10)
    assert page.status_code == 302
    query = dict(parse_qsl(urlsplit(page.headers["Location"]).query))
    assert query["error"] == "invalid_resource"
    assert query["error_description"].startswith("AADSTS500011")


def test_tokens_carry_the_client_capabilities_the_client_declared(graphsim):
    """MSAL sends `client_capabilities` as xms_cc in `claims`; Entra puts them in the access token
    (docs/graph-contract.md §8.6). Without a declaration the token carries none."""
    manager = graphsim.people.managers[0]
    for capabilities, expected in ((["cp1"], ["cp1"]), (None, None)):
        app = msal.ConfidentialClientApplication(
            demo.DEMO_CLIENT_ID,
            client_credential=demo.DEMO_CLIENT_SECRET,
            authority=graphsim.authority,
            instance_discovery=False,
            client_capabilities=capabilities,
        )
        flow = app.initiate_auth_code_flow(["User.Read"], redirect_uri=REDIRECT_URI)
        result = app.acquire_token_by_auth_code_flow(
            flow, sign_in(graphsim, flow["auth_uri"], manager)
        )
        claims = jwt.decode(result["access_token"], options={"verify_signature": False})
        assert claims.get("xms_cc") == expected
        account = app.get_accounts()[0]
        refreshed = app.acquire_token_silent(["User.Read"], account=account, force_refresh=True)
        claims = jwt.decode(refreshed["access_token"], options={"verify_signature": False})
        assert claims.get("xms_cc") == expected
        app_only = app.acquire_token_for_client(GRAPH_DEFAULT)
        claims = jwt.decode(app_only["access_token"], options={"verify_signature": False})
        assert claims.get("xms_cc") == expected


def test_secret_in_http_basic_is_accepted(graphsim):
    r = requests.post(
        token_url(graphsim),
        data={"scope": GRAPH_DEFAULT[0], "grant_type": "client_credentials"},
        auth=(demo.DEMO_CLIENT_ID, demo.DEMO_CLIENT_SECRET),
        timeout=10,
    )
    assert r.status_code == 200, r.text
    assert r.json()["ext_expires_in"] == 3599


def test_bad_secret_is_invalid_client(graphsim):
    result = confidential_app(graphsim, credential="wrong").acquire_token_for_client(GRAPH_DEFAULT)
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [7000215]


def test_unknown_client_is_aadsts700016(graphsim):
    app = confidential_app(graphsim, client_id=str(uuid.uuid4()))
    result = app.acquire_token_for_client(GRAPH_DEFAULT)
    assert result["error"] == "unauthorized_client"
    assert result["error_codes"] == [700016]


def test_scope_must_be_one_graph_default(graphsim):
    result = confidential_app(graphsim).acquire_token_for_client(["User.Read.All"])
    assert result["error"] == "invalid_scope"
    assert result["error_codes"] == [70011]
    result = confidential_app(graphsim).acquire_token_for_client(["https://foo.example/.default"])
    assert result["error_codes"] == [500011]


def test_missing_credential_is_invalid_client(graphsim):
    r = requests.post(
        token_url(graphsim),
        data={
            "client_id": demo.DEMO_CLIENT_ID,
            "scope": GRAPH_DEFAULT[0],
            "grant_type": "client_credentials",
        },
        timeout=10,
    )
    assert_token_error(r, 401, "invalid_client", 7000218)


def test_unsupported_grant_type(graphsim):
    r = requests.post(
        token_url(graphsim),
        data={
            "grant_type": "password",
            "client_id": demo.DEMO_CLIENT_ID,
            "client_secret": demo.DEMO_CLIENT_SECRET,
        },  # fmt: skip
        timeout=10,
    )
    assert_token_error(r, 400, "unsupported_grant_type", 70003)


@pytest.mark.parametrize("style", ["sha1-thumbprint", "public-certificate"])
def test_msal_client_credentials_with_certificate(graphsim, style):
    _, key_pem, cert, cert_pem = make_certificate()
    register_certificate(graphsim.tenant.apps[demo.DEMO_CLIENT_ID], cert_pem)
    if style == "sha1-thumbprint":
        # RS256 with x5t (the documented form, docs/graph-contract.md §8.2).
        credential = {"private_key": key_pem, "thumbprint": cert.fingerprint(hashes.SHA1()).hex()}
    else:
        # MSAL ≥ 1.35 signs PS256 with x5t#S256 when given the certificate.
        credential = {"private_key": key_pem, "public_certificate": cert_pem}
    result = confidential_app(graphsim, credential=credential).acquire_token_for_client(
        GRAPH_DEFAULT
    )
    assert "access_token" in result, result


def test_assertion_with_bad_signature_is_rejected(graphsim):
    key, _, cert, cert_pem = make_certificate()
    register_certificate(graphsim.tenant.apps[demo.DEMO_CLIENT_ID], cert_pem)
    assert post_assertion(graphsim, assertion(graphsim, key, cert)).status_code == 200
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = assertion(graphsim, other_key, cert)  # right thumbprint, wrong key
    assert_token_error(post_assertion(graphsim, forged), 401, "invalid_client", 700027)


def test_assertion_with_unregistered_certificate_is_rejected(graphsim):
    _, _, _, cert_pem = make_certificate()
    register_certificate(graphsim.tenant.apps[demo.DEMO_CLIENT_ID], cert_pem)
    key, _, other_cert, _ = make_certificate()
    r = post_assertion(graphsim, assertion(graphsim, key, other_cert))
    assert_token_error(r, 401, "invalid_client", 700027)


def test_assertion_with_wrong_audience_is_rejected(graphsim):
    key, _, cert, cert_pem = make_certificate()
    register_certificate(graphsim.tenant.apps[demo.DEMO_CLIENT_ID], cert_pem)
    wrong = assertion(graphsim, key, cert, aud="https://login.microsoftonline.com/x/oauth2/token")
    assert_token_error(post_assertion(graphsim, wrong), 401, "invalid_client", 700212)


def test_expired_assertion_is_rejected(graphsim):
    key, _, cert, cert_pem = make_certificate()
    register_certificate(graphsim.tenant.apps[demo.DEMO_CLIENT_ID], cert_pem)
    past = int(time.time()) - 3600
    expired = assertion(graphsim, key, cert, nbf=past - 600, iat=past - 600, exp=past)
    assert_token_error(post_assertion(graphsim, expired), 401, "invalid_client", 700024)


def test_assertion_issuer_must_be_the_client(graphsim):
    key, _, cert, cert_pem = make_certificate()
    register_certificate(graphsim.tenant.apps[demo.DEMO_CLIENT_ID], cert_pem)
    other = assertion(graphsim, key, cert, iss="someone-else", sub="someone-else")
    assert_token_error(post_assertion(graphsim, other), 401, "invalid_client", 700021)


# -- authorization code flow -----------------------------------------------------------------


class _Forms(html.parser.HTMLParser):
    """Collects form actions and the user buttons of the authorize page."""

    def __init__(self) -> None:
        super().__init__()
        self.actions: list[str] = []
        self.buttons: dict[str, str] = {}
        self.scripts = 0
        self.inline_styles = 0
        self._button: str | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "form":
            self.actions.append(attributes["action"])
        if tag == "button" and attributes.get("name") == "user":
            self._button = attributes["value"]
            self.buttons[self._button] = ""
        if tag == "script":
            self.scripts += 1
        if tag == "style" or "style" in attributes:
            self.inline_styles += 1

    def handle_data(self, data):
        if self._button is not None:
            self.buttons[self._button] += data

    def handle_endtag(self, tag):
        if tag == "button":
            self._button = None


def sign_in(graphsim, auth_uri: str, user_id: str) -> dict[str, str]:
    """Play the browser: open the authorize page, press the person's button, follow nothing."""
    page = requests.get(auth_uri, timeout=10)
    assert page.status_code == 200, page.text
    forms = _Forms()
    forms.feed(page.text)
    assert user_id in forms.buttons
    response = requests.post(
        urljoin(auth_uri, forms.actions[0]), data={"user": user_id}, allow_redirects=False
    )
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith(REDIRECT_URI)
    return dict(parse_qsl(urlsplit(location).query))


def test_msal_auth_code_flow_then_silent_refresh(graphsim):
    manager = graphsim.people.managers[0]
    app = confidential_app(graphsim)
    flow = app.initiate_auth_code_flow(["User.Read"], redirect_uri=REDIRECT_URI)
    assert flow["auth_uri"].startswith(graphsim.browser_url)
    params = sign_in(graphsim, flow["auth_uri"], manager)
    assert params["state"] == flow["state"]
    result = app.acquire_token_by_auth_code_flow(flow, params)
    assert "access_token" in result, result
    assert result["id_token_claims"]["oid"] == manager
    assert (
        result["id_token_claims"]["preferred_username"] == "jordan.lee@" + demo.DEMO_TENANT_DOMAIN
    )
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    # v2 behaviour (docs/graph-contract.md §8.3): asked for User.Read, the token carries every
    # delegated Graph permission consented for the app.
    registration = graphsim.tenant.apps[demo.DEMO_CLIENT_ID]
    assert claims["scp"].split() == sorted(registration.delegated_permissions)
    assert len(registration.delegated_permissions) > 1
    me = graphsim.session(result["access_token"]).get(graphsim.graph_url("/me"))
    assert me.status_code == 200
    assert me.json()["id"] == manager

    accounts = app.get_accounts()
    assert len(accounts) == 1
    refreshed = app.acquire_token_silent(["User.Read"], account=accounts[0], force_refresh=True)
    assert refreshed and "access_token" in refreshed, refreshed
    assert refreshed["access_token"] != result["access_token"]
    assert graphsim.stats["token_requests"]["refresh_token 200"] == 1


def test_authorize_page_lists_managers_and_admin_without_scripts(graphsim):
    app = confidential_app(graphsim)
    flow = app.initiate_auth_code_flow(["User.Read"], redirect_uri=REDIRECT_URI)
    page = requests.get(flow["auth_uri"], timeout=10)
    forms = _Forms()
    forms.feed(page.text)
    expected = {*graphsim.people.managers, graphsim.people.it_admin}
    assert expected <= set(forms.buttons)
    assert "Jordan Lee" in forms.buttons[graphsim.people.managers[0]]
    assert "Store 101" in page.text  # the manager's stores are shown
    assert forms.scripts == 0 and forms.inline_styles == 0
    assert "script-src" not in page.headers["Content-Security-Policy"]


def test_login_hint_preselects_and_prompt_none(graphsim):
    admin_upn = "it.admin@" + demo.DEMO_TENANT_DOMAIN
    app = confidential_app(graphsim)
    flow = app.initiate_auth_code_flow(["User.Read"], redirect_uri=REDIRECT_URI,
                                       login_hint=admin_upn)  # fmt: skip
    page = requests.get(flow["auth_uri"], timeout=10).text
    assert 'class="person selected"' in page
    assert page.index(graphsim.people.it_admin) < page.index(graphsim.people.managers[0])

    silent = app.initiate_auth_code_flow(["User.Read"], redirect_uri=REDIRECT_URI, prompt="none")
    r = requests.get(silent["auth_uri"], allow_redirects=False, timeout=10)
    assert r.status_code == 302
    assert dict(parse_qsl(urlsplit(r.headers["Location"]).query))["error"] == "login_required"


def test_unregistered_redirect_uri_is_refused_on_the_page(graphsim):
    app = confidential_app(graphsim)
    flow = app.initiate_auth_code_flow(["User.Read"], redirect_uri="http://evil.example/cb")
    r = requests.get(flow["auth_uri"], allow_redirects=False, timeout=10)
    assert r.status_code == 400
    assert "AADSTS50011" in r.text


def test_redirect_uris_added_by_tests_are_honoured(graphsim):
    uri = "http://127.0.0.1:9999/callback"
    graphsim.tenant.apps[demo.DEMO_CLIENT_ID].redirect_uris.append(uri)
    app = confidential_app(graphsim)
    flow = app.initiate_auth_code_flow(["User.Read"], redirect_uri=uri)
    assert requests.get(flow["auth_uri"], timeout=10).status_code == 200


def _code_and_flow(graphsim, user_id):
    app = confidential_app(graphsim)
    flow = app.initiate_auth_code_flow(["User.Read"], redirect_uri=REDIRECT_URI)
    params = sign_in(graphsim, flow["auth_uri"], user_id)
    return app, flow, params


def redeem(graphsim, code, verifier, redirect_uri=REDIRECT_URI):
    return requests.post(
        token_url(graphsim),
        data={
            "client_id": demo.DEMO_CLIENT_ID,
            "client_secret": demo.DEMO_CLIENT_SECRET,
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
            "scope": "User.Read openid profile offline_access",
        },
        timeout=10,
    )


def test_wrong_code_verifier_is_rejected(graphsim):
    _, flow, params = _code_and_flow(graphsim, graphsim.people.managers[1])
    r = redeem(graphsim, params["code"], "not-the-verifier-" + "x" * 40)
    assert_token_error(r, 400, "invalid_grant", 501481)


def test_code_is_single_use(graphsim):
    _, flow, params = _code_and_flow(graphsim, graphsim.people.managers[1])
    assert redeem(graphsim, params["code"], flow["code_verifier"]).status_code == 200
    r = redeem(graphsim, params["code"], flow["code_verifier"])
    assert_token_error(r, 400, "invalid_grant", 54005)


def test_code_redirect_uri_must_match(graphsim):
    _, flow, params = _code_and_flow(graphsim, graphsim.people.managers[1])
    r = redeem(
        graphsim, params["code"], flow["code_verifier"], "http://localhost:8000/auth/callback"
    )
    assert_token_error(r, 400, "invalid_grant", 50011)


def test_code_expires_after_ten_minutes(graphsim):
    _, flow, params = _code_and_flow(graphsim, graphsim.people.managers[1])
    graphsim.sim.shift_clock(601)
    r = redeem(graphsim, params["code"], flow["code_verifier"])
    assert_token_error(r, 400, "invalid_grant", 70008)


def test_pkce_s256_is_required(graphsim):
    query = {
        "client_id": demo.DEMO_CLIENT_ID,
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "scope": "openid User.Read",
        "state": "s1",
        "code_challenge": "abc",
        "code_challenge_method": "plain",
    }
    r = requests.get(
        f"{graphsim.browser_url}/{demo.DEMO_TENANT_ID}/oauth2/v2.0/authorize",
        params=query,
        allow_redirects=False,
        timeout=10,
    )
    location = dict(parse_qsl(urlsplit(r.headers["Location"]).query))
    assert location["error"] == "invalid_request"
    assert location["state"] == "s1"


def test_unconsented_scope_is_refused(graphsim):
    app = confidential_app(graphsim)
    flow = app.initiate_auth_code_flow(["Mail.Send"], redirect_uri=REDIRECT_URI)
    r = requests.get(flow["auth_uri"], allow_redirects=False, timeout=10)
    assert dict(parse_qsl(urlsplit(r.headers["Location"]).query))["error"] == "consent_required"


def test_disabled_user_cannot_sign_in(graphsim):
    app = confidential_app(graphsim)
    flow = app.initiate_auth_code_flow(["User.Read"], redirect_uri=REDIRECT_URI)
    r = requests.post(flow["auth_uri"], data={"user": graphsim.people.disabled}, timeout=10)
    assert r.status_code == 400
    assert "AADSTS50057" in r.text


def test_logout_redirects_to_registered_origin_only(graphsim):
    url = f"{graphsim.browser_url}/{demo.DEMO_TENANT_ID}/oauth2/v2.0/logout"
    ok = requests.get(url, params={"post_logout_redirect_uri": "http://127.0.0.1:8000/"},
                      allow_redirects=False, timeout=10)  # fmt: skip
    assert ok.status_code == 302
    assert ok.headers["Location"] == "http://127.0.0.1:8000/"
    bad = requests.get(url, params={"post_logout_redirect_uri": "http://evil.example/"},
                       allow_redirects=False, timeout=10)  # fmt: skip
    assert bad.status_code == 400


# -- Graph token checks ----------------------------------------------------------------------


def graph_error(response, status, code):
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert body["code"] == code
    assert {"date", "request-id", "client-request-id"} <= body["innerError"].keys()
    return body


def test_graph_requires_a_token(graphsim):
    r = requests.get(graphsim.graph_url("/users"), timeout=10)
    graph_error(r, 401, "InvalidAuthenticationToken")
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert r.headers["request-id"]


def test_graph_rejects_expired_token(graphsim):
    token = graphsim.issue_app_token(lifetime_s=60)
    graphsim.sim.shift_clock(61)
    r = graphsim.session(token).get(graphsim.graph_url("/users"))
    body = graph_error(r, 401, "InvalidAuthenticationToken")
    assert "expired" in body["message"]


def test_graph_rejects_wrong_audience(graphsim):
    token = graphsim.issue_app_token(audience="https://management.azure.com")
    graph_error(graphsim.session(token).get(graphsim.graph_url("/users")), 401,
                "InvalidAuthenticationToken")  # fmt: skip


def test_graph_rejects_token_signed_by_someone_else(graphsim):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = jwt.decode(graphsim.issue_app_token(), options={"verify_signature": False})
    forged = jwt.encode(claims, key, algorithm="RS256")
    graph_error(graphsim.session(forged).get(graphsim.graph_url("/users")), 401,
                "InvalidAuthenticationToken")  # fmt: skip


def test_graph_rejects_other_tenant(graphsim):
    token = graphsim.issue_app_token(tenant_id=str(uuid.uuid4()))
    graph_error(graphsim.session(token).get(graphsim.graph_url("/users")), 401,
                "InvalidAuthenticationToken")  # fmt: skip


def test_missing_application_permission_is_403(graphsim):
    token = graphsim.issue_app_token(roles=["Policy.Read.All"])
    r = graphsim.session(token).get(graphsim.graph_url("/users"))
    graph_error(r, 403, "Authorization_RequestDenied")


def test_missing_delegated_scope_is_403(graphsim):
    token = graphsim.issue_delegated_token(graphsim.people.managers[0], scopes=["User.Read"])
    session = graphsim.session(token)
    graph_error(session.get(graphsim.graph_url("/users")), 403, "Authorization_RequestDenied")
    assert session.get(graphsim.graph_url("/me")).status_code == 200


def test_client_request_id_is_echoed(graphsim):
    session = graphsim.session(graphsim.issue_app_token())
    mine = str(uuid.uuid4())
    r = session.get(graphsim.graph_url("/users?$top=1"), headers={"client-request-id": mine})
    assert r.headers["client-request-id"] == mine
    assert r.headers["request-id"] != mine
    assert r.headers["Date"]
    assert r.headers["Content-Type"].startswith("application/json;odata.metadata=minimal")


def test_me_needs_a_delegated_token(graphsim):
    r = graphsim.session(graphsim.issue_app_token()).get(graphsim.graph_url("/me"))
    graph_error(r, 400, "BadRequest")


def test_sha1_fingerprint_helper_matches_x5t():
    _, _, cert, _ = make_certificate()
    der = cert.public_bytes(serialization.Encoding.DER)
    assert b64url(hashlib.sha1(der).digest()) == b64url(cert.fingerprint(hashes.SHA1()))


def test_form_post_response_mode(graphsim):
    app = confidential_app(graphsim)
    flow = app.initiate_auth_code_flow(
        ["User.Read"], redirect_uri=REDIRECT_URI, response_mode="form_post"
    )
    page = requests.get(flow["auth_uri"], timeout=10)
    forms = _Forms()
    forms.feed(page.text)
    chosen = requests.post(
        urljoin(flow["auth_uri"], forms.actions[0]),
        data={"user": graphsim.people.it_admin},
        timeout=10,
    )
    assert chosen.status_code == 200
    assert f'action="{REDIRECT_URI}"' in chosen.text
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', chosen.text))
    result = app.acquire_token_by_auth_code_flow(flow, fields)
    assert result["id_token_claims"]["oid"] == graphsim.people.it_admin


def test_the_browser_session_signs_in_silently_until_logout(graphsim):
    """Entra's single sign-on: a remembered person is signed in without a page, unless the app
    asks for account selection; the logout endpoint forgets them."""
    app = confidential_app(graphsim)
    browser = requests.Session()
    first = app.initiate_auth_code_flow(["User.Read"], redirect_uri=REDIRECT_URI)
    picked = browser.post(first["auth_uri"], data={"user": graphsim.people.it_admin},
                          allow_redirects=False, timeout=10)  # fmt: skip
    assert picked.status_code == 302 and "code=" in picked.headers["Location"]

    silent = app.initiate_auth_code_flow(["User.Read"], redirect_uri=REDIRECT_URI)
    again = browser.get(silent["auth_uri"], allow_redirects=False, timeout=10)
    assert again.status_code == 302 and "code=" in again.headers["Location"]

    choose = app.initiate_auth_code_flow(["User.Read"], redirect_uri=REDIRECT_URI,
                                         prompt="select_account")  # fmt: skip
    page = browser.get(choose["auth_uri"], allow_redirects=False, timeout=10)
    assert page.status_code == 200 and 'class="person selected"' in page.text

    logout = f"{graphsim.browser_url}/{demo.DEMO_TENANT_ID}/oauth2/v2.0/logout"
    browser.get(logout, params={"post_logout_redirect_uri": "http://127.0.0.1:8000/"},
                allow_redirects=False, timeout=10)  # fmt: skip
    after = app.initiate_auth_code_flow(["User.Read"], redirect_uri=REDIRECT_URI)
    assert browser.get(after["auth_uri"], allow_redirects=False, timeout=10).status_code == 200
