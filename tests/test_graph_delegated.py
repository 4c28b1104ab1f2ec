"""A manager's own token: auth code flow through MSAL, the cache stored by the portal, and a
DelegatedTokenProvider reading it back in a worker (docs/architecture.md §5 "Two identities toward
Graph")."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import msal
import pytest
import requests

from graphsim import demo
from provisioning.graph import (
    DelegatedTokenProvider,
    GraphConfig,
    InteractionRequired,
    build_client,
    build_msal_app,
)
from provisioning.graph import operations as ops
from provisioning.graph.tokens import DELEGATED_SCOPES, WELL_KNOWN_AUTHORITY_HOSTS

REDIRECT_URI = "http://127.0.0.1:8000/auth/callback"


@pytest.fixture
def config(graphsim, tmp_path):
    return GraphConfig(
        tenant_id=graphsim.tenant.id,
        client_id=demo.DEMO_CLIENT_ID,
        client_secret=demo.DEMO_CLIENT_SECRET,
        authority_host=graphsim.base_url,
        graph_endpoint=graphsim.base_url,
        rate_limiter_url=str(tmp_path / "ratelimit"),
    )


class Store:
    """Stands in for the portal's encrypted per-user cache column."""

    def __init__(self):
        self.value = None
        self.saves = 0

    def load(self):
        return self.value

    def save(self, serialized):
        self.value = serialized
        self.saves += 1


def sign_in(config, upn, store) -> str:
    """What the portal's sign-in views do: initiate the flow, follow the redirect, redeem."""
    cache = msal.SerializableTokenCache()
    app = build_msal_app(config, token_cache=cache)
    flow = app.initiate_auth_code_flow(
        list(DELEGATED_SCOPES), redirect_uri=REDIRECT_URI, login_hint=upn, prompt="none"
    )
    answer = requests.get(flow["auth_uri"], allow_redirects=False, timeout=10)
    assert answer.status_code in (302, 303), answer.text[:300]
    params = dict(parse_qsl(urlsplit(answer.headers["Location"]).query))
    result = app.acquire_token_by_auth_code_flow(flow, params)
    assert "access_token" in result, result.get("error_description")
    store.save(cache.serialize())
    return result["id_token_claims"]["oid"] + "." + result["id_token_claims"]["tid"]


def test_a_manager_acts_with_their_own_token_from_the_stored_cache(graphsim, config):
    store = Store()
    manager = graphsim.tenant.users[graphsim.people.managers[0]]
    home_account_id = sign_in(config, manager.user_principal_name, store)
    provider = DelegatedTokenProvider(
        config, home_account_id=home_account_id, load=store.load, save=store.save
    )
    client = build_client(config, provider)
    assert client.get("/me")["id"] == manager.id
    units = {
        a.administrative_unit_id for a in ops.role_assignments_for_principal(client, manager.id)
    }
    assert set(graphsim.people.stores[:2]) <= units


def test_an_expired_token_is_refreshed_silently_and_the_cache_saved(graphsim, config):
    store = Store()
    manager = graphsim.tenant.users[graphsim.people.managers[0]]
    provider = DelegatedTokenProvider(
        config,
        home_account_id=sign_in(config, manager.user_principal_name, store),
        load=store.load,
        save=store.save,
    )
    client = build_client(config, provider)
    client.get("/me")
    saves = store.saves
    # Two hours later for Graph: it has expired the token the provider still thinks fresh. The
    # refreshed token is issued on the same shifted clock, so it is valid however slow the machine.
    graphsim.sim.shift_clock(2 * 3600)
    assert client.get("/me")["id"] == manager.id
    assert client.stats["token_refreshes"] == 1
    assert store.saves > saves  # the refresh token was redeemed; the new cache was stored


def test_no_account_in_the_cache_means_sign_in_again(graphsim, config):
    store = Store()
    provider = DelegatedTokenProvider(
        config, home_account_id="nobody.tenant", load=store.load, save=store.save
    )
    with pytest.raises(InteractionRequired) as info:
        build_client(config, provider).get("/me")
    assert "sign in again" in str(info.value)
    assert info.value.permanent


def test_instance_discovery_is_off_for_hosts_microsoft_does_not_know():
    assert "login.microsoftonline.com" in WELL_KNOWN_AUTHORITY_HOSTS
    assert "login.partner.microsoftonline.cn" in WELL_KNOWN_AUTHORITY_HOSTS
    assert "127.0.0.1" not in WELL_KNOWN_AUTHORITY_HOSTS


def test_config_reads_django_style_settings(tmp_path):
    class Settings:
        ENTRA_TENANT_ID = "t"
        ENTRA_CLIENT_ID = "c"
        ENTRA_CLIENT_SECRET = "s"
        ENTRA_CLIENT_CERTIFICATE = ""
        ENTRA_AUTHORITY_HOST = "https://login.example/"
        GRAPH_ENDPOINT = "https://graph.example/"
        GRAPH_RESOURCE = "https://graph.example/"  # hosts of no known cloud: named explicitly
        GRAPH_WRITES_PER_SECOND = "12"
        GRAPH_RATE_LIMITER_URL = "redis://127.0.0.1:6379/1"
        GRAPH_TIMEOUT_SECONDS = 30

    config = GraphConfig.from_django_settings(Settings())
    assert config.authority == "https://login.example/t"
    assert config.app_scope == "https://graph.example/.default"
    assert config.writes_per_second == 12.0
    assert config.timeout == (10.0, 30.0)
    assert config.client_certificate_path is None
    assert "client_secret" not in repr(config)
