"""JSON batching (docs/graph-contract.md §6) over HTTPS."""

from __future__ import annotations

import pytest

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def app(graphsim):
    return graphsim.session(graphsim.issue_app_token())


def workers_without_phone(graphsim, count):
    tenant = graphsim.tenant
    store = tenant.administrative_units[graphsim.people.stores[0]]
    ids = [u for u in store.member_ids if u not in tenant.phone_methods and u in tenant.users]
    ids = [
        u for u in ids if tenant.users[u].account_enabled and tenant.users[u].user_type == "Member"
    ]
    return ids[:count]


def add_phone(request_id, user_id, number="+1 2065550199", phone_type="mobile", **extra):
    return {
        "id": request_id,
        "method": "POST",
        "url": f"/users/{user_id}/authentication/phoneMethods",
        "headers": JSON,
        "body": {"phoneNumber": number, "phoneType": phone_type},
        **extra,
    }


def post_batch(graphsim, session, requests_, version="v1.0"):
    return session.post(graphsim.graph_url("/$batch", version), json={"requests": requests_})


def by_id(response):
    return {item["id"]: item for item in response.json()["responses"]}


def test_mixed_batch_answers_each_item_unordered(graphsim, app):
    [worker] = workers_without_phone(graphsim, 1)
    store = graphsim.people.stores[0]
    items = [
        {"id": "1", "method": "GET", "url": f"/users/{worker}?$select=id,displayName"},
        add_phone("2", worker),
        {"id": "3", "method": "GET", "url": "/users/00000000-0000-0000-0000-000000000000"},
        {
            "id": "4",
            "method": "GET",
            "url": f"/directory/administrativeUnits/{store}/members/microsoft.graph.user"
            "?$count=true&$select=id,displayName",
            "headers": {"ConsistencyLevel": "eventual"},
        },
    ]
    r = post_batch(graphsim, app, items)
    assert r.status_code == 200
    order = [item["id"] for item in r.json()["responses"]]
    assert sorted(order) == ["1", "2", "3", "4"]
    assert order != ["1", "2", "3", "4"]
    answers = by_id(r)
    assert answers["1"]["status"] == 200 and answers["1"]["body"]["id"] == worker
    assert answers["2"]["status"] == 201
    assert answers["3"]["status"] == 404
    assert answers["3"]["body"]["error"]["code"] == "Request_ResourceNotFound"
    assert answers["4"]["body"]["@odata.count"] == 56
    assert answers["4"]["headers"]["Content-Type"].startswith("application/json")
    assert "mobile" in graphsim.tenant.phone_methods[worker]


def test_more_than_twenty_requests_is_400(graphsim, app):
    items = [{"id": str(i), "method": "GET", "url": "/users?$top=1"} for i in range(21)]
    r = post_batch(graphsim, app, items)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "BadRequest"
    assert post_batch(graphsim, app, items[:20]).status_code == 200


@pytest.mark.parametrize(
    "items",
    [
        [{"id": "1", "method": "GET", "url": "https://graph.microsoft.com/v1.0/users"}],
        [{"id": "1", "method": "GET", "url": "/users"}, {"id": "1", "method": "GET", "url": "/me"}],
        [
            {
                "id": "1",
                "method": "POST",
                "url": "/users/x/authentication/phoneMethods",
                "body": {"phoneNumber": "+1 2065550199", "phoneType": "mobile"},
            }
        ],  # no Content-Type
        [
            {"id": "1", "method": "GET", "url": "/users", "dependsOn": ["2"]},
            {"id": "2", "method": "GET", "url": "/users"},
        ],  # depends on a later request
        [{"id": "1", "method": "POST", "url": "/$batch", "headers": JSON, "body": {}}],
        [],
    ],
)
def test_malformed_batches_are_400(graphsim, app, items):
    r = post_batch(graphsim, app, items)
    assert r.status_code == 400, r.text


def test_unreadable_batch_is_400(graphsim, app):
    r = app.post(graphsim.graph_url("/$batch"), data=b"{nope", headers=JSON)
    assert r.status_code == 400


def test_failed_dependency_gives_424_to_dependants(graphsim, app):
    [worker] = workers_without_phone(graphsim, 1)
    items = [
        add_phone("1", worker, number="not a number"),
        add_phone("2", worker, "+1 2065550198", "alternateMobile", dependsOn=["1"]),
        {"id": "3", "method": "GET", "url": f"/users/{worker}", "dependsOn": ["2"]},
    ]
    answers = by_id(post_batch(graphsim, app, items))
    assert answers["1"]["status"] == 400
    assert answers["2"]["status"] == 424
    assert answers["3"]["status"] == 424
    assert answers["2"]["body"]["error"]["code"] == "FailedDependency"
    assert worker not in graphsim.tenant.phone_methods


def test_each_item_counts_against_the_write_budget(graphsim, app):
    graphsim.sim.config.write_budget_per_s = 5
    graphsim.sim.config.write_burst = None  # a strict 1-second window
    workers = workers_without_phone(graphsim, 8)
    items = [add_phone(str(i), w) for i, w in enumerate(workers)]
    answers = by_id(post_batch(graphsim, app, items))
    statuses = sorted(a["status"] for a in answers.values())
    assert statuses == [201] * 5 + [429] * 3
    throttled = [a for a in answers.values() if a["status"] == 429]
    for item in throttled:
        assert float(item["headers"]["Retry-After"]) > 0
        assert item["body"]["error"]["code"] == "TooManyRequests"
    assert graphsim.stats["throttled"] == 3


def test_batch_items_use_the_outer_token(graphsim):
    session = graphsim.session(graphsim.issue_app_token(roles=["Policy.Read.All"]))
    answers = by_id(post_batch(graphsim, session, [{"id": "a", "method": "GET", "url": "/users"}]))
    assert answers["a"]["status"] == 403


def test_batch_needs_a_token(graphsim):
    r = graphsim.session().post(graphsim.graph_url("/$batch"), json={"requests": []})
    assert r.status_code == 401


def test_beta_batch_runs_beta_routes(graphsim, app):
    items = [{"id": "1", "method": "GET", "url": "/administrativeUnits"}]
    assert by_id(post_batch(graphsim, app, items, "beta"))["1"]["status"] == 200
    assert by_id(post_batch(graphsim, app, items, "v1.0"))["1"]["status"] == 400


def test_item_urls_are_percent_decoded_like_top_level_paths(graphsim, app):
    guest = graphsim.tenant.users[graphsim.people.guest]
    encoded = guest.user_principal_name.replace("#", "%23")
    answers = by_id(
        post_batch(
            graphsim, app, [{"id": "1", "method": "GET", "url": f"/users/{encoded}?$select=id"}]
        )
    )
    assert answers["1"]["status"] == 200
    assert answers["1"]["body"]["id"] == guest.id
