"""One Graph resource per cloud drives the app identity's and the managers' scopes
(docs/graph-contract.md §8.4); a tenant written as a domain is resolved to its GUID (§8.1)."""

from __future__ import annotations

import pytest
from django.core.checks import Tags, run_checks
from django.test import override_settings

from provisioning.graph import DELEGATED_SCOPES, GraphConfig, build_msal_app
from provisioning.graph.tokens import TenantNotResolved, tenant_guid_resolve

TENANT = "11111111-2222-3333-4444-555555555555"

CLOUDS = {
    # cloud: (ENTRA_AUTHORITY_HOST, GRAPH_ENDPOINT, the Graph resource)
    "global": (
        "https://login.microsoftonline.com",
        "https://graph.microsoft.com",
        "https://graph.microsoft.com",
    ),
    "gcc-high": (
        "https://login.microsoftonline.us",
        "https://graph.microsoft.us",
        "https://graph.microsoft.us",
    ),
    "dod": (
        "https://login.microsoftonline.us",
        "https://dod-graph.microsoft.us",
        "https://dod-graph.microsoft.us",
    ),
    "china": (
        "https://login.partner.microsoftonline.cn",
        "https://microsoftgraph.chinacloudapi.cn",
        "https://microsoftgraph.chinacloudapi.cn",
    ),
    "china-older-host": (
        "https://login.chinacloudapi.cn",
        "https://microsoftgraph.chinacloudapi.cn",
        "https://microsoftgraph.chinacloudapi.cn",
    ),
}


def config(authority: str, endpoint: str, resource: str = "") -> GraphConfig:
    return GraphConfig(
        tenant_id=TENANT,
        client_id="c",
        client_secret="s",
        authority_host=authority,
        graph_endpoint=endpoint,
        graph_resource=resource,
    )


def resource_of(scope: str) -> str:
    return scope.rsplit("/", 1)[0]


@pytest.mark.parametrize("cloud", CLOUDS)
def test_delegated_and_application_scopes_name_the_same_graph_resource(cloud):
    authority, endpoint, resource = CLOUDS[cloud]
    cfg = config(authority, endpoint)
    assert cfg.graph_resource == resource
    assert cfg.app_scope == f"{resource}/.default"
    delegated = cfg.scopes_for(DELEGATED_SCOPES)
    assert {resource_of(scope) for scope in delegated} == {resource}


@pytest.mark.parametrize("cloud", ["global", "gcc-high", "dod", "china"])
def test_graphsim_playing_the_cloud_issues_app_and_manager_tokens_for_its_resource(cloud, graphsim):
    """graphsim accepts only the resource of the cloud it plays: the app identity's token and a
    manager's sign-in both succeed only if both ask for that resource, and carry it as `aud`."""
    import jwt
    import requests

    from graphsim import demo
    from tests.graphsim.test_identity import REDIRECT_URI, sign_in

    resource = CLOUDS[cloud][2]
    graphsim.sim.config.graph_resource = resource
    cfg = GraphConfig(
        tenant_id=demo.DEMO_TENANT_ID,
        client_id=demo.DEMO_CLIENT_ID,
        client_secret=demo.DEMO_CLIENT_SECRET,
        authority_host=graphsim.base_url,  # graphsim stands for the cloud's sign-in host
        graph_endpoint=graphsim.base_url,
        graph_resource=resource,
    )
    app = build_msal_app(cfg)
    app_token = app.acquire_token_for_client([cfg.app_scope])
    assert "access_token" in app_token, app_token
    flow = app.initiate_auth_code_flow(cfg.scopes_for(DELEGATED_SCOPES), redirect_uri=REDIRECT_URI)
    manager = graphsim.people.managers[0]
    result = app.acquire_token_by_auth_code_flow(flow, sign_in(graphsim, flow["auth_uri"], manager))
    assert "access_token" in result, result
    for token in (app_token["access_token"], result["access_token"]):
        assert jwt.decode(token, options={"verify_signature": False})["aud"] == resource
    me = graphsim.session(result["access_token"]).get(graphsim.graph_url("/me"))
    assert me.status_code == 200
    # A scope on another cloud's resource is refused, as Entra refuses it (tokens do not cross).
    if cloud != "global":
        other = app.acquire_token_for_client(["https://graph.microsoft.com/.default"])
        assert other.get("error") == "invalid_resource"
        global_token = graphsim.sim.issue_app_token(audience="https://graph.microsoft.com")
        refused = requests.Session()
        refused.verify = graphsim.ca_bundle
        answer = refused.get(
            graphsim.graph_url("/users"), headers={"Authorization": f"Bearer {global_token}"}
        )
        assert answer.status_code == 401


@pytest.mark.parametrize("cloud", CLOUDS)
def test_a_proxy_in_front_of_graph_keeps_the_clouds_resource(cloud):
    """GRAPH_ENDPOINT is where requests go; a proxy there changes no token or scope."""
    authority, _endpoint, resource = CLOUDS[cloud]
    if cloud == "dod":  # DoD shares its sign-in host with GCC High: the proxy case names it
        cfg = config(authority, "https://graph-proxy.corp.example", resource)
    else:
        cfg = config(authority, "https://graph-proxy.corp.example")
    assert cfg.app_scope == f"{resource}/.default"
    assert cfg.graph_endpoint == "https://graph-proxy.corp.example"


def test_both_behind_proxies_take_graph_resource():
    cfg = config(
        "https://login-proxy.corp.example",
        "https://graph-proxy.corp.example",
        "https://graph.microsoft.us/",
    )
    assert cfg.app_scope == "https://graph.microsoft.us/.default"
    assert {resource_of(s) for s in cfg.scopes_for(DELEGATED_SCOPES)} == {
        "https://graph.microsoft.us"
    }


def test_the_demo_names_the_global_graph_resource(settings):
    from django.conf import settings as live

    assert live.DEMO_MODE
    assert live.GRAPH_RESOURCE == "https://graph.microsoft.com"
    cfg = GraphConfig.from_django_settings()
    assert cfg.graph_endpoint.startswith("https://127.0.0.1")
    assert cfg.app_scope == "https://graph.microsoft.com/.default"


# -- system checks -------------------------------------------------------------------------------


def checks(**overrides):
    with override_settings(**overrides):
        return {m.id: m for m in run_checks(tags=[Tags.security])}


@pytest.mark.parametrize("cloud", ["global", "gcc-high", "dod", "china"])
def test_a_consistent_cloud_passes(cloud):
    authority, endpoint, _ = CLOUDS[cloud]
    found = checks(ENTRA_AUTHORITY_HOST=authority, GRAPH_ENDPOINT=endpoint, GRAPH_RESOURCE="")
    assert not {"lanyard.E020", "lanyard.E021", "lanyard.W020"} & set(found)
    # The QR APIs are global-only: a national cloud is told so plainly.
    assert ("lanyard.W021" in found) == (cloud != "global")
    if cloud != "global":
        assert "QR code + PIN" in found["lanyard.W021"].msg


def test_a_global_authority_with_a_us_graph_host_is_refused_with_a_hint():
    found = checks(
        ENTRA_AUTHORITY_HOST="https://login.microsoftonline.com",
        GRAPH_ENDPOINT="https://graph.microsoft.us",
        GRAPH_RESOURCE="",
    )
    error = found["lanyard.E021"]
    assert "ENTRA_AUTHORITY_HOST is in the global cloud" in error.msg
    assert "GRAPH_ENDPOINT is in the US Government" in error.msg
    assert "GRAPH_RESOURCE" in error.hint


def test_a_resource_of_another_cloud_than_the_authority_is_refused():
    found = checks(
        ENTRA_AUTHORITY_HOST="https://login.partner.microsoftonline.cn",
        GRAPH_ENDPOINT="https://graph-proxy.corp.example",
        GRAPH_RESOURCE="https://graph.microsoft.com",
    )
    assert "lanyard.E021" in found


def test_unknown_hosts_without_graph_resource_are_refused():
    found = checks(
        ENTRA_AUTHORITY_HOST="https://login-proxy.corp.example",
        GRAPH_ENDPOINT="https://graph-proxy.corp.example",
        GRAPH_RESOURCE="",
    )
    assert "GRAPH_RESOURCE" in found["lanyard.E020"].hint
    fixed = checks(
        ENTRA_AUTHORITY_HOST="https://login-proxy.corp.example",
        GRAPH_ENDPOINT="https://graph-proxy.corp.example",
        GRAPH_RESOURCE="https://graph.microsoft.com",
    )
    assert "lanyard.E020" not in fixed and "lanyard.W020" not in fixed


def test_a_proxy_url_as_graph_resource_is_warned_about():
    found = checks(GRAPH_RESOURCE="https://graph-proxy.corp.example")
    assert "A proxy's URL belongs in GRAPH_ENDPOINT" in found["lanyard.W020"].hint


@pytest.mark.parametrize("tenant", ["common", "organizations", "not a tenant", "contoso"])
def test_a_tenant_that_is_neither_guid_nor_domain_is_refused(tenant):
    found = checks(ENTRA_TENANT_ID=tenant, DEMO_MODE=False)
    assert "Directory (tenant) ID" in found["lanyard.E022"].hint


@pytest.mark.parametrize("tenant", [TENANT, "contoso.onmicrosoft.com", "contoso.com"])
def test_a_guid_or_a_domain_is_accepted(tenant):
    assert "lanyard.E022" not in checks(ENTRA_TENANT_ID=tenant, DEMO_MODE=False)


# -- a tenant written as a domain --------------------------------------------------------------


def graphsim_config(graphsim, tenant: str) -> GraphConfig:
    return GraphConfig(
        tenant_id=tenant,
        client_id="c",
        client_secret="s",
        authority_host=graphsim.base_url,
        graph_endpoint=graphsim.base_url,
    )


@pytest.fixture(autouse=True)
def _fresh_tenant_lookups():
    from provisioning.graph import tokens

    tokens._TENANT_GUIDS.clear()
    yield
    tokens._TENANT_GUIDS.clear()


def test_a_domain_is_resolved_once_through_the_tenants_openid_metadata(graphsim):
    from graphsim import demo

    cfg = graphsim_config(graphsim, demo.DEMO_TENANT_DOMAIN.upper())
    assert not cfg.tenant_is_guid
    assert tenant_guid_resolve(config=cfg) == demo.DEMO_TENANT_ID.lower()
    assert tenant_guid_resolve(config=cfg) == demo.DEMO_TENANT_ID.lower()
    # Asked once per process.
    assert graphsim.stats["discovery_requests"] == {demo.DEMO_TENANT_DOMAIN: 1}
    # A GUID needs no look-up.
    assert tenant_guid_resolve(config=graphsim_config(graphsim, TENANT.upper())) == TENANT
    assert sum(graphsim.stats["discovery_requests"].values()) == 1


def test_an_unknown_domain_says_what_to_configure(graphsim):
    cfg = graphsim_config(graphsim, "typo.onmicrosoft.com")
    with pytest.raises(TenantNotResolved) as caught:
        tenant_guid_resolve(config=cfg)
    message = str(caught.value)
    assert "'typo.onmicrosoft.com'" in message
    assert "HTTP 400" in message
    assert "Directory (tenant) ID" in message


def test_an_unreachable_authority_says_what_to_configure():
    cfg = GraphConfig(
        tenant_id="contoso.onmicrosoft.com",
        client_id="c",
        client_secret="s",
        authority_host="https://127.0.0.1:9",  # nothing listens on the discard port
        timeout=2.0,
    )
    with pytest.raises(TenantNotResolved, match="could not reach .* Directory \\(tenant\\) ID"):
        tenant_guid_resolve(config=cfg)


@pytest.mark.django_db
def test_a_manager_signs_in_when_the_tenant_is_configured_as_a_domain(
    client, portal_graph, alice, settings
):
    from graphsim import demo
    from tests.fixtures_portal import reset_graph_clients, sign_in

    settings.ENTRA_TENANT_ID = demo.DEMO_TENANT_DOMAIN
    reset_graph_clients()
    user = sign_in(client, alice)
    assert user.entra_object_id == alice.user_id
    assert client.get("/stores/").status_code == 200
    assert portal_graph.stats["discovery_requests"][demo.DEMO_TENANT_DOMAIN] >= 1
