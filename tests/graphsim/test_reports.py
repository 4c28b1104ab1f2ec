"""graphsim: the userRegistrationDetails report (docs/graph-contract.md §5)."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from graphsim.model import (
    AUTHENTICATION_ADMINISTRATOR,
    GLOBAL_READER,
    SignInPreferences,
    User,
    new_id,
)
from tests.graphsim.test_qr_method import (
    RW,
    Caller,
    add_user,
    app_caller,
    create_method,
    grant_role,
    user_caller,
)

REPORT = "/reports/authenticationMethods/userRegistrationDetails"
AUDIT = "AuditLog.Read.All"


@pytest.fixture
def api(graphsim) -> Caller:
    return app_caller(graphsim, AUDIT)


def report(api: Caller, query: str = "", **kwargs):
    return api.get(REPORT + ("?" + query if query else ""), **kwargs)


def filtered(api: Caller, expression: str, extra: str = "") -> list[dict]:
    response = report(api, "$filter=" + quote(expression) + extra)
    assert response.status_code == 200, response.text
    return response.json()["value"]


@pytest.fixture
def people(graphsim) -> dict[str, User]:
    """Three users with a recognisable UPN prefix and different registrations."""
    tenant = graphsim.tenant
    tag = "zz" + new_id()[:6]
    phone_user = add_user(tenant, f"{tag} Phone")
    push_user = add_user(tenant, f"{tag} Push")
    nothing = add_user(tenant, f"{tag} Nothing", user_type="Guest")
    writer = app_caller(graphsim, RW)
    writer.post(
        f"/users/{phone_user.id}/authentication/phoneMethods",
        {"phoneNumber": "+1 2065550123", "phoneType": "mobile"},
    )
    tenant.sign_in_preferences[phone_user.id] = SignInPreferences(
        user_preferred_method_for_secondary_authentication="sms"
    )
    tenant.other_methods[push_user.id] = ["microsoftAuthenticatorPush", "email"]
    create_method(graphsim, writer, nothing)  # QR code + PIN is single-factor
    return {"tag": tag, "phone": phone_user, "push": push_user, "nothing": nothing}


def test_a_row_has_the_documented_shape(graphsim, api, people) -> None:
    user = people["phone"]
    rows = filtered(api, f"userPrincipalName eq '{user.user_principal_name}'")

    assert len(rows) == 1
    row = rows[0]
    assert list(row) == [
        "id",
        "userPrincipalName",
        "userDisplayName",
        "userType",
        "isAdmin",
        "isSsprRegistered",
        "isSsprEnabled",
        "isSsprCapable",
        "isMfaRegistered",
        "isMfaCapable",
        "isPasswordlessCapable",
        "lastUpdatedDateTime",
        "methodsRegistered",
        "isSystemPreferredAuthenticationMethodEnabled",
        "systemPreferredAuthenticationMethods",
        "userPreferredMethodForSecondaryAuthentication",
    ]
    assert row["id"] == user.id
    assert row["userType"] == "member"
    assert row["isMfaRegistered"] is True and row["isMfaCapable"] is True
    assert row["methodsRegistered"] == ["mobilePhone"]
    assert row["systemPreferredAuthenticationMethods"] == ["sms"]
    assert row["userPreferredMethodForSecondaryAuthentication"] == "sms"
    assert row["lastUpdatedDateTime"].endswith("Z")


def test_rows_follow_live_state(graphsim, api, people) -> None:
    nothing = people["nothing"]
    row = api.get(f"{REPORT}/{nothing.id}").json()
    assert row["userType"] == "guest"
    assert row["methodsRegistered"] == []
    assert row["isMfaRegistered"] is False
    assert row["userPreferredMethodForSecondaryAuthentication"] == "none"

    app_caller(graphsim, RW).post(
        f"/users/{nothing.id}/authentication/phoneMethods",
        {"phoneNumber": "+1 4255550100", "phoneType": "office"},
    )
    row = api.get(f"{REPORT}/{nothing.id}").json()
    assert row["methodsRegistered"] == ["officePhone"]
    assert row["isMfaRegistered"] is True
    assert row["systemPreferredAuthenticationMethods"] == ["voiceOffice"]


def test_it_filters_on_booleans(graphsim, api, people) -> None:
    tag = people["tag"]
    rows = filtered(api, f"startswith(userDisplayName,'{tag}') and isMfaRegistered eq false")
    assert [r["id"] for r in rows] == [people["nothing"].id]


def test_it_filters_on_methods_registered(graphsim, api, people) -> None:
    tag = people["tag"]
    rows = filtered(
        api,
        f"methodsRegistered/any(x:x eq 'mobilePhone') and startswith(userDisplayName,'{tag}')",
    )
    assert [r["id"] for r in rows] == [people["phone"].id]
    rows = filtered(api, f"startswith(userDisplayName, '{tag}') and methodsRegistered eq 'email'")
    assert [r["id"] for r in rows] == [people["push"].id]


def test_it_filters_on_upn_and_display_name(graphsim, api, people) -> None:
    push = people["push"]
    rows = filtered(api, f"userDisplayName eq '{push.display_name.upper()}'")
    assert [r["id"] for r in rows] == [push.id]
    rows = filtered(api, f"startswith(userPrincipalName,'{push.user_principal_name[:12]}')")
    assert push.id in [r["id"] for r in rows]


@pytest.mark.parametrize(
    "expression",
    [
        "isMfaRegistered eq 'yes'",
        "isMfaRegistered eq true or isAdmin eq true",
        "endswith(userPrincipalName,'x')",
        "jobTitle eq 'x'",
        "methodsRegistered/all(x:x eq 'email')",
        "userPrincipalName eq unquoted",
    ],
)
def test_unsupported_filters_are_400(api, expression) -> None:
    response = report(api, "$filter=" + quote(expression))
    assert response.status_code == 400


def test_it_pages_with_a_next_link(graphsim, api, people) -> None:
    session_rows: list[str] = []
    url = f"{graphsim.base_url}/v1.0{REPORT}?$top=2&$filter=" + quote(
        f"startswith(userDisplayName,'{people['tag']}')"
    )
    pages = 0
    while url:
        body = api.session.get(url, timeout=10).json()
        session_rows += [r["userDisplayName"] for r in body["value"]]
        url = body.get("@odata.nextLink")
        pages += 1
    assert pages == 2
    assert sorted(session_rows) == sorted(
        people[k].display_name for k in ("phone", "push", "nothing")
    )


def test_it_selects_fields(graphsim, api, people) -> None:
    body = api.get(f"{REPORT}/{people['phone'].id}?$select=id,isMfaRegistered").json()
    assert {k for k in body if not k.startswith("@")} == {"id", "isMfaRegistered"}


def test_an_unknown_id_is_404(api) -> None:
    assert api.get(f"{REPORT}/{new_id()}").status_code == 404


def test_it_needs_audit_log_read_all(graphsim) -> None:
    assert report(app_caller(graphsim, "User.Read.All")).status_code == 403
    admin = add_user(graphsim.tenant, "Auth Admin")
    grant_role(graphsim.tenant, admin.id, AUTHENTICATION_ADMINISTRATOR)
    assert report(user_caller(graphsim, admin.id, AUDIT), "$top=1").status_code == 403
    reader = add_user(graphsim.tenant, "Reader")
    grant_role(graphsim.tenant, reader.id, GLOBAL_READER)
    assert report(user_caller(graphsim, reader.id, AUDIT), "$top=1").status_code == 200


def test_it_throttles_at_5_requests_per_10_seconds_per_app(graphsim) -> None:
    api = Caller(graphsim, graphsim.issue_app_token(roles=[AUDIT], lifetime_s=3600))
    for _ in range(5):
        assert report(api, "$top=1").status_code == 200
    throttled = report(api, "$top=1")

    assert throttled.status_code == 429
    assert 1 <= int(throttled.headers["Retry-After"]) <= 10
    error = throttled.json()["error"]
    assert error["code"] == "TooManyRequests"
    assert error["innerError"]["status"] == "429"

    other_app = Caller(graphsim, graphsim.issue_app_token(roles=[AUDIT], app_id=new_id()))
    assert report(other_app, "$top=1").status_code == 200  # each app has its own budget

    graphsim.sim.shift_clock(10)
    assert report(api, "$top=1").status_code == 200
