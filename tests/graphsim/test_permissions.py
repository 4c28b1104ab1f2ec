"""graphsim's per-endpoint permission tables, built from Microsoft's map (graphsim/permissions.py,
docs/graph-contract.md §11, §12)."""

from __future__ import annotations

import json

import pytest

from graphsim import demo, permissions, persist, tenantgen
from graphsim.app import build_router
from graphsim.http import json_response
from graphsim.model import PHONE_METHOD_IDS
from tests.graphsim.test_qr_method import add_user, app_caller, create_method, user_caller
from tests.readme_permissions import readme_grants

# A value for each path parameter graphsim's routes use.
_SAMPLE = {"{kind}": "standardQRCode", "{cast}": "microsoft.graph.user"}


def _sample_path(template: str) -> str:
    path = template.replace("{kind:standardQRCode|temporaryQRCode}", "standardQRCode")
    for name, value in _SAMPLE.items():
        path = path.replace(name, value)
    parts = [("x1" if p.startswith("{") else p) for p in path.split("/")]
    return "/".join(parts).replace("('{template}')", "('x1')")


def test_every_route_graphsim_serves_has_a_table_entry() -> None:
    router = build_router()
    missing = [
        f"{route.method} {route.template}"
        for route in router._routes
        if permissions.lookup(route.method, _sample_path(route.template)) is None
    ]
    assert missing == []


def test_the_map_is_microsofts_with_its_source() -> None:
    data = json.loads(permissions.MAP_FILE.read_text(encoding="utf-8"))
    assert "microsoftgraph/microsoft-graph-devx-content" in data["source"]
    entry = permissions.lookup("PUT", "/users/u1/authentication/qrCodePinMethod")
    assert entry is not None
    assert entry.application == {
        "UserAuthenticationMethod.ReadWrite.All",
        "UserAuthMethod-QR.ReadWrite.All",
    }


@pytest.mark.parametrize(
    ("method", "path", "key"),
    [
        ("GET", "/users/$count", "GET /users"),
        ("GET", "/me/transitiveMemberOf", "GET /me/transitivememberof"),
        ("GET", "/directoryRoles(roleTemplateId='abc')", "GET /directoryroles/{id}"),
        ("GET", "/administrativeUnits/a/members/microsoft.graph.user",
         "GET /directory/administrativeunits/{id}/members"),
        ("DELETE", "/users/a@b.c/authentication/phoneMethods/3179e48a",
         "DELETE /users/{id}/authentication/phonemethods/{id}"),
        ("GET", "/roleManagement/directory/roleAssignments",
         "GET /rolemanagement/directory/roleassignments"),
    ],
)  # fmt: skip
def test_request_paths_map_to_the_maps_keys(method, path, key) -> None:
    assert permissions.endpoint_key(method, path) == key


@pytest.mark.parametrize(
    ("method", "path", "permission"),
    [
        # Issue 9: the store managers' lookups another helper builds on.
        ("GET", "/roleManagement/directory/roleAssignments", "RoleManagement.Read.Directory"),
        ("GET", "/roleManagement/directory/transitiveRoleAssignments",
         "RoleManagement.Read.Directory"),
        ("GET", "/users/u1/transitiveMemberOf", "GroupMember.Read.All"),
        ("GET", "/me/transitiveMemberOf", "User.Read"),
        ("GET", "/groups/g1/members", "GroupMember.Read.All"),
    ],
)  # fmt: skip
def test_tables_exist_for_the_directory_reads_sign_in_needs(method, path, permission) -> None:
    entry = permissions.lookup(method, path)
    assert entry is not None
    assert permission in entry.delegated


def test_an_endpoint_without_a_table_entry_is_refused(graphsim) -> None:
    graphsim.sim.router.add(
        "GET", "/users/{user}/authentication/emailMethods", lambda req: json_response({})
    )
    worker = add_user(graphsim.tenant).id
    response = app_caller(graphsim, "UserAuthenticationMethod.ReadWrite.All").get(
        f"/users/{worker}/authentication/emailMethods"
    )
    assert response.status_code == 403
    assert "no permission table entry" in response.json()["error"]["message"]


def test_method_specific_permissions_reach_their_own_method_only(graphsim) -> None:
    worker = add_user(graphsim.tenant)
    qr = app_caller(graphsim, "UserAuthMethod-QR.ReadWrite.All")
    phone = app_caller(graphsim, "UserAuthMethod-Phone.ReadWrite.All")
    create_method(graphsim, qr, worker)
    assert qr.get(f"/users/{worker.id}/authentication/qrCodePinMethod").status_code == 200
    assert qr.get(f"/users/{worker.id}/authentication/phoneMethods").status_code == 403
    assert phone.get(f"/users/{worker.id}/authentication/qrCodePinMethod").status_code == 403
    assert phone.get(f"/users/{worker.id}/authentication/phoneMethods").status_code == 200
    mobile = PHONE_METHOD_IDS["mobile"]
    added = phone.post(f"/users/{worker.id}/authentication/phoneMethods",
                       {"phoneNumber": "+1 5555550100", "phoneType": "mobile"})  # fmt: skip
    assert added.status_code == 201, added.text
    assert qr.delete(f"/users/{worker.id}/authentication/phoneMethods/{mobile}").status_code == 403


def test_sign_in_preferences_need_an_authentication_method_read(graphsim) -> None:
    """Beta only, absent from the map: SUPPLEMENT reads [Gb] api/authentication-get.md."""
    worker = add_user(graphsim.tenant).id
    path = f"/users/{worker}/authentication/signInPreferences"
    for role in ("UserAuthMethod-QR.ReadWrite.All", "UserAuthMethod-Phone.ReadWrite.All"):
        assert app_caller(graphsim, role).get(path, version="beta").status_code == 403
    reader = app_caller(graphsim, "UserAuthenticationMethod.Read.All")
    assert reader.get(path, version="beta").status_code == 200
    assert reader.patch(path, {"isSystemPreferredAuthenticationMethodEnabled": True},
                        version="beta").status_code == 403  # fmt: skip


def test_the_policy_reads_with_its_least_privileged_permission(graphsim) -> None:
    path = "/policies/authenticationMethodsPolicy/authenticationMethodConfigurations/qrCodePin"
    assert app_caller(graphsim, "Policy.Read.AuthenticationMethod").get(path).status_code == 200
    assert app_caller(graphsim, "User.Read.All").get(path).status_code == 403


def test_self_only_permissions_do_not_reach_another_user(graphsim) -> None:
    worker = add_user(graphsim.tenant).id
    manager = graphsim.people.managers[0]
    own = user_caller(graphsim, worker, "UserAuthMethod-Phone.ReadWrite")
    assert own.get("/me/authentication/phoneMethods").status_code == 200
    assert own.get(f"/users/{worker}/authentication/phoneMethods").status_code == 200
    other = user_caller(graphsim, manager, "UserAuthMethod-Phone.ReadWrite")
    assert other.get(f"/users/{worker}/authentication/phoneMethods").status_code == 403


def test_the_suite_runs_with_exactly_the_readme_grants(graphsim) -> None:
    """tests/fixtures_graphsim.py gives the demo app the README table's grants, nothing more."""
    grants = readme_grants()
    (registration,) = graphsim.tenant.apps.values()
    assert registration.delegated_permissions == grants.delegated
    assert registration.application_permissions == grants.application


def test_a_saved_demo_state_takes_todays_consent() -> None:
    """`make run` keeps its tenant between runs; consent follows the README's table."""
    from graphsim.__main__ import _with_demo_consent

    tenant = tenantgen.demo_tenant()
    registration = tenant.apps[demo.DEMO_CLIENT_ID]
    registration.delegated_permissions = {"UserAuthenticationMethod.ReadWrite.All"}
    registration.application_permissions = {"Policy.Read.All"}
    saved = persist.tenant_from_json(persist.tenant_to_json(tenant))
    restored = _with_demo_consent(saved).apps[demo.DEMO_CLIENT_ID]
    assert restored.delegated_permissions == tenantgen.DELEGATED_PERMISSIONS
    assert restored.application_permissions == tenantgen.APPLICATION_PERMISSIONS
