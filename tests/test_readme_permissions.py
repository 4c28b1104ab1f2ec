"""README.md's permission table is the whole truth (issue 9; docs/graph-contract.md §11, §12): the
demo registration, the product's delegated scopes and graphsim's grants in the suite all equal it,
and a product call the table does not cover fails."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import msal
import pytest
import requests
from django.conf import settings

from graphsim import demo, permissions, tenantgen
from graphsim.http import json_response
from provisioning.graph import GraphConfig, GraphForbidden, build_client, get_config
from provisioning.graph.tokens import DELEGATED_SCOPES
from tests.readme_permissions import parse_permission_table, readme_grants

TABLE = """
  | permission | delegated (managers) | application (bulk and scheduled jobs) | for |
  |---|---|---|---|
  | `User.Read` | ✓ | | sign-in |
  | `UserAuthMethod-QR.ReadWrite.All` | ✓ | ✓ | QR |
  | `Member.Read.Hidden` | | optional | hidden stores |

  Grant nothing else.
"""


def test_the_parser_reads_required_and_optional_grants() -> None:
    grants = parse_permission_table(TABLE)
    assert grants.delegated == {"User.Read", "UserAuthMethod-QR.ReadWrite.All"}
    assert grants.application == {"UserAuthMethod-QR.ReadWrite.All"}
    assert grants.optional_application == {"Member.Read.Hidden"}
    assert grants.optional_delegated == frozenset()


def test_the_parser_refuses_a_cell_it_cannot_read() -> None:
    with pytest.raises(ValueError, match="unreadable cell"):
        parse_permission_table(TABLE.replace("| ✓ | | sign-in", "| yes | | sign-in"))


def test_the_demo_registration_is_the_readme_table() -> None:
    grants = readme_grants()
    assert grants.delegated == tenantgen.DELEGATED_PERMISSIONS
    assert grants.application == tenantgen.APPLICATION_PERMISSIONS


def test_managers_ask_for_exactly_the_readme_delegated_permissions() -> None:
    grants = readme_grants()
    assert set(DELEGATED_SCOPES) == grants.delegated
    # What sign-in really asks for: the same names on the cloud's Graph resource.
    scopes = get_config().scopes_for(DELEGATED_SCOPES)
    assert {scope.rpartition("/")[2] for scope in scopes} == grants.delegated
    assert {scope.rpartition("/")[0] for scope in scopes} == {settings.GRAPH_RESOURCE}


def test_every_readme_permission_is_one_microsoft_lists() -> None:
    """A misspelt grant would silently grant nothing: each name appears in graphsim's tables."""
    grants = readme_grants()
    known: set[str] = set()
    for entry in permissions.permission_table().values():
        known |= entry.delegated | entry.application
    listed = grants.delegated | grants.application
    listed |= grants.optional_delegated | grants.optional_application
    assert listed - known - set(permissions.ADDITIONAL_PERMISSIONS) == set()


def test_least_privilege_the_broad_method_grants_are_gone() -> None:
    grants = readme_grants()
    for broad in (
        "UserAuthenticationMethod.ReadWrite.All",
        "Policy.Read.All",
        "Directory.Read.All",
    ):
        assert broad not in grants.delegated | grants.application


def test_asking_for_a_permission_outside_the_table_fails_consent(graphsim) -> None:
    """AADSTS65001 at authorize (docs/graph-contract.md §8.3), as Entra answers."""
    app = msal.ConfidentialClientApplication(
        demo.DEMO_CLIENT_ID,
        client_credential=demo.DEMO_CLIENT_SECRET,
        authority=graphsim.authority,
        instance_discovery=False,
    )
    flow = app.initiate_auth_code_flow(
        ["https://graph.microsoft.com/UserAuthenticationMethod.ReadWrite.All"],
        redirect_uri="http://127.0.0.1:8000/auth/callback",
    )
    answer = requests.get(flow["auth_uri"], allow_redirects=False, timeout=10)
    error = dict(parse_qsl(urlsplit(answer.headers["Location"]).query))
    assert error["error"] == "consent_required"
    assert "AADSTS65001" in error["error_description"]


@pytest.fixture
def app_client(graphsim, tmp_path):
    """The product's Graph client with the app identity, as bulk jobs and the sync use it."""
    return build_client(
        GraphConfig(
            tenant_id=graphsim.tenant.id,
            client_id=demo.DEMO_CLIENT_ID,
            client_secret=demo.DEMO_CLIENT_SECRET,
            authority_host=graphsim.base_url,
            graph_endpoint=graphsim.base_url,
            graph_resource=demo.DEMO_GRAPH_RESOURCE,
            rate_limiter_url=str(tmp_path / "ratelimit"),
            timeout=(5.0, 10.0),
        )
    )


def test_a_product_call_the_table_does_not_cover_fails(graphsim, app_client) -> None:
    """The MFA registration report needs AuditLog.Read.All: without that row of the table (here
    taken away from the registration, before the first token), Graph refuses it."""
    graphsim.tenant.apps[demo.DEMO_CLIENT_ID].application_permissions.discard("AuditLog.Read.All")
    with pytest.raises(GraphForbidden):
        app_client.get("/reports/authenticationMethods/userRegistrationDetails")
    assert app_client.get("/users?$top=1")["value"]


def test_a_product_call_to_an_endpoint_nobody_looked_up_fails(graphsim, app_client) -> None:
    """An endpoint graphsim serves without a permission-table entry is refused outright."""
    graphsim.sim.router.add(
        "GET", "/users/{user}/authentication/emailMethods", lambda req: json_response({})
    )
    with pytest.raises(GraphForbidden):
        app_client.get(f"/users/{graphsim.people.managers[0]}/authentication/emailMethods")
