"""graphsim's delta queries: `/users/delta` and `/directory/administrativeUnits/delta`
(docs/graph-contract.md §4.6)."""

from __future__ import annotations

import pytest

from graphsim import delta
from graphsim.model import User, new_id

UNITS = "/directory/administrativeUnits/delta"
USERS = "/users/delta"


@pytest.fixture
def app(graphsim):
    return graphsim.session(graphsim.issue_app_token())


def round_of(session, url: str, headers: dict | None = None) -> tuple[list[dict], str, int]:
    """Every item of one round, its deltaLink and how many pages it took."""
    items, pages = [], 0
    while True:
        response = session.get(url, headers=headers or {})
        assert response.status_code == 200, response.text
        body = response.json()
        pages += 1
        items += body["value"]
        if "@odata.nextLink" in body:
            assert "@odata.deltaLink" not in body
            assert "$skiptoken=" in body["@odata.nextLink"]
            url = body["@odata.nextLink"]
            continue
        assert "$deltatoken=" in body["@odata.deltaLink"]
        return items, body["@odata.deltaLink"], pages


def test_the_first_round_pages_every_store_with_its_members(graphsim, app):
    graphsim.sim.config.delta_page_size = 2
    tenant = graphsim.tenant
    items, _, pages = round_of(app, graphsim.graph_url(f"{UNITS}?$select=displayName,members"))
    assert pages == -(-len(tenant.administrative_units) // 2)
    assert {item["id"] for item in items} == set(tenant.administrative_units)
    public = next(u for u in tenant.administrative_units.values() if not u.visibility)
    item = next(i for i in items if i["id"] == public.id)
    assert item["displayName"] == public.display_name
    assert {m["id"] for m in item["members@delta"]} == {
        m for m in public.member_ids if m in tenant.users
    }
    assert all(m["@odata.type"] == "#microsoft.graph.user" for m in item["members@delta"])
    hidden = next(i for i in items if tenant.administrative_units[i["id"]].visibility)
    assert "members@delta" not in hidden  # no Member.Read.Hidden (DOC-GAP, §4.6)


def test_a_later_round_returns_only_what_changed(graphsim, app):
    tenant = graphsim.tenant
    _, link, _ = round_of(app, graphsim.graph_url(f"{UNITS}?$select=displayName,members"))
    units = [u for u in tenant.administrative_units.values() if not u.visibility]
    leaver = next(m for m in units[0].member_ids if m in tenant.users)
    units[0].member_ids.remove(leaver)
    units[1].display_name = "Renamed"
    del tenant.administrative_units[units[2].id]

    items, link, _ = round_of(app, link)

    by_id = {item["id"]: item for item in items}
    assert set(by_id) == {units[0].id, units[1].id, units[2].id}
    assert by_id[units[0].id]["members@delta"] == [
        {"@odata.type": "#microsoft.graph.user", "id": leaver, "@removed": {"reason": "deleted"}}
    ]
    assert by_id[units[1].id]["displayName"] == "Renamed"
    assert "members@delta" not in by_id[units[1].id]
    assert by_id[units[2].id] == {"id": units[2].id, "@removed": {"reason": "changed"}}
    assert round_of(app, link)[0] == []  # nothing changed since


def test_users_delta_from_now_then_changed_and_deleted_users(graphsim, app):
    tenant = graphsim.tenant
    response = app.get(
        graphsim.graph_url(f"{USERS}?$select=displayName,jobTitle&$deltatoken=latest")
    )
    body = response.json()
    assert body["value"] == [] and "@odata.deltaLink" in body
    ids = list(tenant.users)
    tenant.users[ids[0]].job_title = "Lead"
    tenant.users[ids[1]].mobile_phone = "+1 5550100"  # not selected: not reported
    del tenant.users[ids[2]]
    added = User(id=new_id(), user_principal_name="new@x.test", display_name="New")
    tenant.users[added.id] = added

    items, _, _ = round_of(app, body["@odata.deltaLink"], {"Prefer": "return=minimal"})

    by_id = {item["id"]: item for item in items}
    assert set(by_id) == {ids[0], ids[2], added.id}
    assert by_id[ids[0]] == {"jobTitle": "Lead", "id": ids[0]}  # only the changed property
    assert by_id[ids[2]]["@removed"] == {"reason": "changed"}
    assert by_id[added.id]["displayName"] == "New"


@pytest.mark.parametrize("status", [410, 400])
def test_an_expired_token_is_refused_with_sync_state_not_found(graphsim, app, status):
    _, link, _ = round_of(app, graphsim.graph_url(f"{USERS}?$select=displayName"))
    graphsim.sim.config.delta_expired_status = status
    graphsim.sim.config.delta_epoch += 1
    response = app.get(link)
    assert response.status_code == status
    assert response.json()["error"]["code"] == "syncStateNotFound"
    if status == 410:
        assert "$deltatoken=" in response.headers["Location"]
        assert "$select=displayName" in response.headers["Location"]


def test_a_token_older_than_the_bounded_change_log_is_expired(graphsim, app):
    tenant = graphsim.tenant
    _, link, _ = round_of(app, graphsim.graph_url(USERS))
    tracker = delta.tracker_of(tenant)
    tracker.log.limit = 3
    user = next(iter(tenant.users.values()))
    for n in range(5):  # five rounds, one change each: the log keeps the last three
        user.display_name = f"Name {n}"
        round_of(app, graphsim.graph_url(f"{USERS}?$deltatoken=latest"))
    assert len(tracker.log.entries) == 3
    response = app.get(link)
    assert response.status_code == 410


def test_unknown_tokens_and_unsupported_options_are_refused(graphsim, app):
    assert app.get(graphsim.graph_url(f"{USERS}?$deltatoken=bogus")).status_code == 410
    response = app.get(graphsim.graph_url(f"{USERS}?$top=5"))
    assert response.status_code == 400
    response = app.get(graphsim.graph_url(f"{UNITS}?$filter=displayName eq 'x'"))
    assert response.status_code == 400


def test_delta_needs_the_collections_read_permission(graphsim):
    session = graphsim.session(graphsim.issue_app_token(roles=["User.Read.All"]))
    assert session.get(graphsim.graph_url(UNITS)).status_code == 403
    assert session.get(graphsim.graph_url(f"{USERS}?$deltatoken=latest")).status_code == 200
    session = graphsim.session(graphsim.issue_app_token(roles=["AdministrativeUnit.Read.All"]))
    assert session.get(graphsim.graph_url(f"{UNITS}?$deltatoken=latest")).status_code == 200
    assert session.get(graphsim.graph_url(USERS)).status_code == 403


def test_a_filter_on_ids_scopes_the_round(graphsim, app):
    wanted = list(graphsim.tenant.administrative_units)[:2]
    query = " or ".join(f"id eq '{unit_id}'" for unit_id in wanted)
    items, _, _ = round_of(app, graphsim.graph_url(f"{UNITS}?$filter={query}"))
    assert [item["id"] for item in items] == wanted
