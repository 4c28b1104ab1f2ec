"""Directory reads over HTTPS: users, AUs, scoped roles, directory roles, groups
(docs/graph-contract.md §4)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from graphsim import demo
from graphsim.model import AUTHENTICATION_ADMINISTRATOR
from graphsim.tenantgen import large_tenant

EVENTUAL = {"ConsistencyLevel": "eventual"}
DEFAULT_USER_KEYS = {"businessPhones", "displayName", "givenName", "id", "jobTitle", "mail",
                     "mobilePhone", "officeLocation", "preferredLanguage", "surname",
                     "userPrincipalName"}  # fmt: skip


@pytest.fixture
def app(graphsim):
    """A session with the demo app's application token."""
    return graphsim.session(graphsim.issue_app_token())


def get(graphsim, session, path, headers=None, version="v1.0"):
    return session.get(graphsim.graph_url(path, version), headers=headers or {})


def error_code(response, status):
    assert response.status_code == status, response.text
    return response.json()["error"]["code"]


def follow(session, first, headers=None):
    """All items of a collection, following nextLink verbatim; returns (items, pages)."""
    items, pages, url = [], 0, first
    while url:
        r = session.get(url, headers=headers or {})
        assert r.status_code == 200, r.text
        body = r.json()
        items += body["value"]
        pages += 1
        url = body.get("@odata.nextLink")
        if pages > 1:
            assert "@odata.count" not in body
    return items, pages


# -- users -----------------------------------------------------------------------------------


def test_user_list_has_default_properties_and_pages_of_100(graphsim, app):
    body = get(graphsim, app, "/users").json()
    assert len(body["value"]) == 100
    assert set(body["value"][0]) == DEFAULT_USER_KEYS
    assert body["@odata.context"].endswith("/v1.0/$metadata#users")
    assert body["@odata.nextLink"].startswith(graphsim.base_url + "/v1.0/users?")


def test_select_returns_exactly_the_selected_properties(graphsim, app):
    upn = "jordan.lee@" + demo.DEMO_TENANT_DOMAIN
    select = (
        "id,displayName,userPrincipalName,mobilePhone,employeeId,jobTitle,department,accountEnabled"
    )
    r = get(graphsim, app, f"/users/{upn}?$select={select}")
    assert r.status_code == 200
    body = r.json()
    assert list(body)[1:] == select.split(",")
    assert body["@odata.context"].endswith(f"#users({select})/$entity")
    assert body["accountEnabled"] is True
    r = get(graphsim, app, "/users?$select=id,shoeSize")
    assert error_code(r, 400) == "Request_BadRequest"


def test_get_user_by_id_and_upn_case_insensitive(graphsim, app):
    manager = graphsim.people.managers[1]
    by_id = get(graphsim, app, f"/users/{manager.upper()}").json()
    by_upn = get(graphsim, app, "/users/MARIE.DUPONT@" + demo.DEMO_TENANT_DOMAIN).json()
    assert by_id["id"] == by_upn["id"] == manager


def test_unknown_user_is_request_resource_not_found(graphsim, app):
    missing = "00000000-1111-2222-3333-444444444444"
    r = get(graphsim, app, f"/users/{missing}")
    assert error_code(r, 404) == "Request_ResourceNotFound"
    assert missing in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("expression", "check"),
    [
        (f"userPrincipalName eq 'JORDAN.LEE@{demo.DEMO_TENANT_DOMAIN}'", lambda v: len(v) == 1),
        ("employeeId eq 'FLW-004401'", lambda v: [u["employeeId"] for u in v] == ["FLW-004401"]),
        ("accountEnabled eq false", lambda v: len(v) == 1 and not v[0]["accountEnabled"]),
        ("userType eq 'Guest'", lambda v: len(v) == 1 and v[0]["userType"] == "Guest"),
        ("startswith(displayName,'jord')", lambda v: v[0]["displayName"] == "Jordan Lee"),
        ("employeeId in ('FLW-004401','FLW-004402')", lambda v: len(v) == 2),
        (
            "startswith(displayName,'Jordan') or startswith(displayName,'Marie')",
            lambda v: {u["displayName"] for u in v} == {"Jordan Lee", "Marie Dupont"},
        ),
        ("accountEnabled eq true and userType eq 'Guest'", lambda v: len(v) == 1),
    ],
)
def test_basic_filters(graphsim, app, expression, check):
    select = "$select=id,displayName,employeeId,accountEnabled,userType"
    r = get(graphsim, app, f"/users?$filter={expression}&{select}")
    assert r.status_code == 200, r.text
    assert check(r.json()["value"])


@pytest.mark.parametrize(
    "query",
    [
        "$filter=userType ne 'Guest'",
        "$filter=not(accountEnabled eq true)",
        "$filter=endswith(mail,'onmicrosoft.com')",
        "$filter=accountEnabled eq true&$orderby=displayName",
    ],
)
def test_advanced_filters_need_consistency_level_and_count(graphsim, app, query):
    assert error_code(get(graphsim, app, f"/users?{query}"), 400) == "Request_UnsupportedQuery"
    r = get(graphsim, app, f"/users?{query}", EVENTUAL)  # header without $count=true
    assert error_code(r, 400) == "Request_UnsupportedQuery"
    r = get(graphsim, app, f"/users?{query}&$count=true", EVENTUAL)
    assert r.status_code == 200, r.text
    assert r.json()["@odata.count"] > 0


def test_search_needs_consistency_level(graphsim, app):
    query = '/users?$search="displayName:jord"'
    assert error_code(get(graphsim, app, query), 400) == "Request_UnsupportedQuery"
    r = get(graphsim, app, query, EVENTUAL)
    assert [u["displayName"] for u in r.json()["value"]] == ["Jordan Lee"]


def test_orderby_alone_is_not_advanced(graphsim, app):
    r = get(graphsim, app, "/users?$orderby=displayName desc&$top=3")
    assert r.status_code == 200
    names = [u["displayName"] for u in r.json()["value"]]
    assert names == sorted(names, key=str.lower, reverse=True)


def test_skip_is_refused_and_top_is_bounded(graphsim, app):
    assert error_code(get(graphsim, app, "/users?$skip=10"), 400) == "Request_BadRequest"
    for top in ("0", "1000", "x"):
        assert error_code(get(graphsim, app, f"/users?$top={top}"), 400) == "Request_BadRequest"


def test_count_only_on_first_page_and_nextlink_needs_resent_header(graphsim, app):
    query = "/users?$filter=endswith(mail,'onmicrosoft.com')&$count=true&$top=50&$select=id"
    first = get(graphsim, app, query, EVENTUAL).json()
    total = first["@odata.count"]
    link = first["@odata.nextLink"]
    options = parse_qs(urlsplit(link).query)
    assert options["$count"] == ["true"] and options["$top"] == ["50"]
    assert "$skiptoken" in options and options["$select"] == ["id"]
    # ConsistencyLevel is not carried over by the link: a client that forgets it fails.
    assert error_code(app.get(link), 400) == "Request_UnsupportedQuery"
    items, pages = follow(app, link, EVENTUAL)
    assert len(items) + 50 == total
    assert pages == -(-total // 50) - 1


def test_count_needs_consistency_level(graphsim, app):
    assert error_code(get(graphsim, app, "/users?$count=true"), 400) == "Request_UnsupportedQuery"


def test_users_count_segment_is_text(graphsim, app):
    assert error_code(get(graphsim, app, "/users/$count"), 400) == "Request_UnsupportedQuery"
    r = get(graphsim, app, "/users/$count", EVENTUAL)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    assert int(r.text) == len(graphsim.tenant.users)


def test_tampered_skiptoken_is_refused(graphsim, app):
    link = get(graphsim, app, "/users?$top=5").json()["@odata.nextLink"]
    tampered = link.replace("$top=5", "$top=6")
    assert error_code(app.get(tampered), 400) == "Request_BadRequest"


def test_small_page_size_fault(graphsim, app):
    graphsim.sim.config.max_page_size = 7
    body = get(graphsim, app, "/users?$top=999&$select=id").json()
    assert len(body["value"]) == 7
    items, pages = follow(app, graphsim.graph_url("/users?$top=999&$select=id"))
    assert len(items) == len(graphsim.tenant.users)
    assert len({u["id"] for u in items}) == len(items)


# -- administrative units --------------------------------------------------------------------


def test_administrative_units_on_both_paths(graphsim, app):
    v1 = get(graphsim, app, "/directory/administrativeUnits").json()["value"]
    assert len(v1) == 5  # four stores and the hidden-membership head office
    assert v1[0]["displayName"].startswith("Store 101")
    beta = get(graphsim, app, "/administrativeUnits", version="beta").json()["value"]
    assert [u["id"] for u in beta] == [u["id"] for u in v1]
    assert get(graphsim, app, "/administrativeUnits").status_code == 400  # beta-only path
    one = get(graphsim, app, f"/directory/administrativeUnits/{v1[0]['id']}").json()
    assert one["id"] == v1[0]["id"]


def test_unit_members_are_typed_directory_objects_and_refs(graphsim, app):
    store = graphsim.people.stores[0]
    members = get(graphsim, app, f"/directory/administrativeUnits/{store}/members").json()
    assert all(m["@odata.type"] == "#microsoft.graph.user" for m in members["value"])
    assert len(members["value"]) == 56  # 55 workers and the guest
    refs = get(graphsim, app, f"/directory/administrativeUnits/{store}/members/$ref").json()
    assert refs["value"][0] == {
        "@odata.id": f"{graphsim.base_url}/v1.0/directoryObjects/{members['value'][0]['id']}"
    }


def test_unit_members_cast_with_count_select_top_and_paging(graphsim, app):
    store = graphsim.people.stores[0]
    select = "id,displayName,userPrincipalName,employeeId,jobTitle,department,accountEnabled"
    url = (f"/directory/administrativeUnits/{store}/members/microsoft.graph.user"
           f"?$select={select}&$count=true&$top=2")  # fmt: skip
    assert error_code(get(graphsim, app, url), 400) == "Request_UnsupportedQuery"
    first = get(graphsim, app, url, EVENTUAL).json()
    assert first["@odata.count"] == 56
    assert first["@odata.context"].endswith(f"#users({select})")
    assert set(first["value"][0]) == {"@odata.type", *select.split(",")}
    items, _ = follow(app, graphsim.graph_url(url), EVENTUAL)
    assert len(items) == 56
    searched = get(graphsim, app, url.split("?")[0] + '?$search="displayName:Jordan"', EVENTUAL)
    assert searched.status_code == 200


def test_unsupported_cast_on_unit_members(graphsim, app):
    store = graphsim.people.stores[0]
    r = get(graphsim, app, f"/directory/administrativeUnits/{store}/members/microsoft.graph.device")
    assert error_code(r, 400) == "Request_UnsupportedQuery"


def test_scoped_role_members_role_id_is_not_the_template_id(graphsim, app):
    store = graphsim.people.stores[1]
    body = get(graphsim, app, f"/directory/administrativeUnits/{store}/scopedRoleMembers").json()
    [membership] = body["value"]
    assert set(membership) == {"id", "roleId", "administrativeUnitId", "roleMemberInfo"}
    assert membership["roleMemberInfo"]["displayName"] == "Jordan Lee"
    assert membership["roleId"] != AUTHENTICATION_ADMINISTRATOR
    role = get(graphsim, app, f"/directoryRoles/{membership['roleId']}").json()
    assert role["roleTemplateId"] == AUTHENTICATION_ADMINISTRATOR
    by_template_url = f"/directoryRoles(roleTemplateId='{AUTHENTICATION_ADMINISTRATOR}')"
    by_template = get(graphsim, app, by_template_url).json()
    assert by_template["id"] == membership["roleId"]


@pytest.mark.parametrize("version", ["v1.0", "beta"])
def test_scoped_role_member_of_for_a_manager(graphsim, app, version):
    """Microsoft's map asks for Directory.Read.All (docs/graph-contract.md §4.4): the README's
    RoleManagement.Read.Directory is refused, as Graph refuses it."""
    manager = graphsim.people.managers[0]
    path = f"/users/{manager}/scopedRoleMemberOf"
    assert (
        error_code(get(graphsim, app, path, version=version), 403) == "Authorization_RequestDenied"
    )
    reader = graphsim.session(graphsim.issue_app_token(roles=["Directory.Read.All"]))
    body = get(graphsim, reader, path, version=version).json()
    assert {m["administrativeUnitId"] for m in body["value"]} == set(graphsim.people.stores[:2])
    delegated = graphsim.session(graphsim.issue_delegated_token(manager))
    refused = get(graphsim, delegated, "/me/scopedRoleMemberOf", version=version)
    assert error_code(refused, 403) == "Authorization_RequestDenied"
    allowed = graphsim.issue_delegated_token(manager, scopes=["Directory.Read.All"])
    mine = get(graphsim, graphsim.session(allowed), "/me/scopedRoleMemberOf", version=version)
    assert mine.json()["value"] == body["value"]


@pytest.mark.parametrize("version", ["v1.0", "beta"])
def test_scoped_role_member_of_is_refused_with_role_management_read_only(graphsim, app, version):
    manager = graphsim.people.managers[0]
    r = get(graphsim, app, f"/users/{manager}/scopedRoleMemberOf", version=version)
    assert error_code(r, 403) == "Authorization_RequestDenied"
    scopes = ["User.Read", "RoleManagement.Read.Directory", "AdministrativeUnit.Read.All"]
    delegated = graphsim.session(graphsim.issue_delegated_token(manager, scopes=scopes))
    r = get(graphsim, delegated, "/me/scopedRoleMemberOf", version=version)
    assert error_code(r, 403) == "Authorization_RequestDenied"


def test_directory_roles_list_and_members(graphsim, app):
    roles = get(graphsim, app, "/directoryRoles").json()["value"]
    assert "@odata.nextLink" not in roles
    auth_admin = next(r for r in roles if r["roleTemplateId"] == AUTHENTICATION_ADMINISTRATOR)
    members = get(graphsim, app, f"/directoryRoles/{auth_admin['id']}/members").json()["value"]
    assert [m["id"] for m in members] == [graphsim.people.it_admin]
    assert members[0]["@odata.type"] == "#microsoft.graph.user"


def test_role_reads_need_role_management_permission(graphsim):
    session = graphsim.session(graphsim.issue_app_token(roles=["User.Read.All"]))
    r = get(graphsim, session, "/directoryRoles")
    assert error_code(r, 403) == "Authorization_RequestDenied"


# -- groups ----------------------------------------------------------------------------------


def frontline(graphsim, app):
    groups = get(graphsim, app, "/groups?$filter=displayName eq 'Frontline Workers'").json()
    return groups["value"][0]["id"]


def test_transitive_members_flatten_nested_groups(graphsim, app):
    group = frontline(graphsim, app)
    direct, _ = follow(app, graphsim.graph_url(f"/groups/{group}/members?$top=999"))
    transitive, _ = follow(app, graphsim.graph_url(f"/groups/{group}/transitiveMembers?$top=999"))
    assert len([m for m in direct if m["@odata.type"] == "#microsoft.graph.group"]) == 1
    users = [m for m in transitive if m["@odata.type"] == "#microsoft.graph.user"]
    assert len(users) == 4 * 55
    assert len(transitive) == len(users) + 1  # the nested group itself


def test_group_member_casts_need_consistency_level_and_count(graphsim, app):
    group = frontline(graphsim, app)
    url = f"/groups/{group}/transitiveMembers/microsoft.graph.user?$select=id"
    assert error_code(get(graphsim, app, url), 400) == "Request_UnsupportedQuery"
    r = get(graphsim, app, url + "&$count=true", EVENTUAL)
    assert r.json()["@odata.count"] == 220
    assert all(m["@odata.type"] == "#microsoft.graph.user" for m in r.json()["value"])
    device_cast = f"/groups/{group}/transitiveMembers/microsoft.graph.device?$count=true"
    bad = get(graphsim, app, device_cast, EVENTUAL)
    assert error_code(bad, 400) == "Request_UnsupportedQuery"


def test_me_transitive_member_of_tells_an_it_admin(graphsim):
    admin = graphsim.session(graphsim.issue_delegated_token(graphsim.people.it_admin))
    body = get(graphsim, admin, "/me/transitiveMemberOf").json()
    ids = {o["id"] for o in body["value"] if o["@odata.type"] == "#microsoft.graph.group"}
    assert demo.DEMO_ADMIN_GROUP_ID in ids
    manager = graphsim.session(graphsim.issue_delegated_token(graphsim.people.managers[2]))
    body = get(graphsim, manager, "/me/transitiveMemberOf").json()
    assert demo.DEMO_ADMIN_GROUP_ID not in {o["id"] for o in body["value"]}


def test_me_with_user_read_only(graphsim):
    token = graphsim.issue_delegated_token(graphsim.people.it_admin, scopes=["User.Read"])
    r = get(graphsim, graphsim.session(token), "/me")
    assert r.status_code == 200
    assert r.json()["userPrincipalName"] == "it.admin@" + demo.DEMO_TENANT_DOMAIN


# -- a 10,000-user store ---------------------------------------------------------------------


def test_paging_through_ten_thousand_users(graphsim):
    graphsim.reset(large_tenant(10_000))
    session = graphsim.session(graphsim.issue_app_token())
    store = next(u for u in graphsim.tenant.administrative_units.values()
                 if u.display_name.startswith("Store 900"))  # fmt: skip
    url = graphsim.graph_url(
        f"/directory/administrativeUnits/{store.id}/members/microsoft.graph.user"
        "?$select=id,displayName&$count=true&$top=999"
    )
    items, pages = follow(session, url, EVENTUAL)
    assert len(items) == 10_000
    assert len({u["id"] for u in items}) == 10_000
    assert pages == 11


# -- hidden membership (docs/graph-contract.md §4.3) ------------------------------------------


def test_a_hidden_store_lists_its_members_only_with_member_read_hidden(graphsim):
    hidden = graphsim.people.hidden_store
    unit = graphsim.graph_url(f"/directory/administrativeUnits/{hidden}")
    plain = graphsim.session(graphsim.issue_app_token())
    assert plain.get(unit, params={"$select": "visibility"}).json()["visibility"] == (
        "HiddenMembership"
    )
    for path in ("/members", "/members/microsoft.graph.user", "/members/$ref"):
        refused = plain.get(unit + path)
        assert refused.status_code == 403, path
        assert refused.json()["error"]["code"] == "Authorization_RequestDenied"
    roles = [*graphsim.tenant.apps[next(iter(graphsim.tenant.apps))].application_permissions]
    allowed = graphsim.session(graphsim.issue_app_token(roles=[*roles, "Member.Read.Hidden"]))
    listed = allowed.get(unit + "/members")
    assert listed.status_code == 200
    assert len(listed.json()["value"]) == len(
        graphsim.tenant.administrative_units[hidden].member_ids
    )
    # Other stores are public: the same token without Member.Read.Hidden lists them.
    public = graphsim.people.stores[0]
    assert plain.get(graphsim.graph_url(f"/directory/administrativeUnits/{public}/members")).ok


def test_a_member_of_a_hidden_store_may_list_the_others(graphsim):
    hidden = graphsim.people.hidden_store
    members = graphsim.tenant.administrative_units[hidden].member_ids
    member = members[0]
    outsider = next(u for u in graphsim.tenant.users if u not in members)
    url = graphsim.graph_url(f"/directory/administrativeUnits/{hidden}/members")
    assert graphsim.session(graphsim.issue_delegated_token(member)).get(url).status_code == 200
    assert graphsim.session(graphsim.issue_delegated_token(outsider)).get(url).status_code == 403
