"""graphsim: phone methods, the methods list and sign-in preferences (docs/graph-contract.md §3,
§3.1, §9.8, §9.9)."""

from __future__ import annotations

import pytest

from graphsim.model import (
    AUTHENTICATION_ADMINISTRATOR,
    PRIVILEGED_AUTHENTICATION_ADMINISTRATOR,
    SignInPreferences,
    User,
)
from graphsim.phone import mask_phone_number, phone_number_problem
from tests.graphsim.test_qr_method import (
    RW,
    Caller,
    add_user,
    app_caller,
    create_method,
    grant_role,
    grant_scoped_role,
    user_caller,
)

PHONES = "/users/{}/authentication/phoneMethods"
MOBILE = "3179e48a-750b-4051-897c-87b9720928f7"
ALTERNATE = "b6332ec1-7057-4abe-9331-3d72feddfe41"
OFFICE = "e37fc753-ff3b-4958-9484-eaa9425c82bc"
PREFS = "/users/{}/authentication/signInPreferences"


@pytest.fixture
def worker(graphsim) -> User:
    return add_user(graphsim.tenant)


@pytest.fixture
def api(graphsim) -> Caller:
    return app_caller(graphsim, RW)


def add_phone(api: Caller, user: User, number: str, phone_type: str = "mobile"):
    return api.post(PHONES.format(user.id), {"phoneNumber": number, "phoneType": phone_type})


# --- the format (pure) --------------------------------------------------------------------------


@pytest.mark.parametrize("number", ["+1 5555551234", "+1 5555551234x123", "+44 7700900123"])
def test_graph_format_numbers_are_valid(number: str) -> None:
    assert phone_number_problem(number) is None


@pytest.mark.parametrize(
    "number",
    [
        "+15555551234",  # E.164 without the space
        "+1 555 555 1234",
        "+1 (555) 5551234",
        "+1 555-555-1234",
        "1 5555551234",
        "+0 5555551234",
        "+1234 5555551234",
        "+1 5555551234 x123",
        "+1 5555551234ext123",
        "+44 77009001234567",  # 16 digits
        "",
        None,
        15555551234,
    ],
)
def test_other_numbers_are_not(number) -> None:
    assert phone_number_problem(number) is not None


def test_masking_keeps_the_country_code_and_two_digits() -> None:
    assert mask_phone_number("+1 2065550123") == "+1 XXXXXXXX23"
    assert mask_phone_number("+1 4255550100x2231") == "+1 XXXXXXXX00xXXXX"


# --- create, list, get ---------------------------------------------------------------------------


def test_it_creates_a_mobile_with_its_fixed_id(graphsim, api, worker) -> None:
    response = add_phone(api, worker, "+1 2065550123")

    assert response.status_code == 201
    assert response.json() == {
        "@odata.context": f"{graphsim.base_url}/v1.0/$metadata#users('{worker.id}')"
        "/authentication/phoneMethods/$entity",
        "id": MOBILE,
        "phoneNumber": "+1 2065550123",
        "phoneType": "mobile",
        "smsSignInState": "notAllowedByPolicy",
    }


def test_the_list_holds_up_to_three_phones_in_order(graphsim, api, worker) -> None:
    add_phone(api, worker, "+1 4255550100x2231", "office")
    add_phone(api, worker, "+1 2065550123")
    add_phone(api, worker, "+1 2065550124", "alternateMobile")
    response = api.get(PHONES.format(worker.id))

    assert response.status_code == 200
    body = response.json()
    assert body["@odata.context"].endswith(f"#users('{worker.id}')/authentication/phoneMethods")
    assert [(p["id"], p["phoneType"], p["smsSignInState"]) for p in body["value"]] == [
        (MOBILE, "mobile", "notAllowedByPolicy"),
        (ALTERNATE, "alternateMobile", "notSupported"),
        (OFFICE, "office", "notSupported"),
    ]


def test_get_one_phone_and_404_for_others(graphsim, api, worker) -> None:
    add_phone(api, worker, "+1 2065550123")
    assert api.get(PHONES.format(worker.id) + "/" + MOBILE.upper()).json()["id"] == MOBILE
    assert api.get(PHONES.format(worker.id) + "/" + OFFICE).status_code == 404
    assert api.get(PHONES.format(worker.id) + "/not-a-phone").status_code == 404


def test_one_phone_per_type(graphsim, api, worker) -> None:
    add_phone(api, worker, "+1 2065550123")
    response = add_phone(api, worker, "+1 2065550199")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "badRequest"


def test_alternate_mobile_needs_a_mobile(graphsim, api, worker) -> None:
    assert add_phone(api, worker, "+1 2065550124", "alternateMobile").status_code == 400
    add_phone(api, worker, "+1 2065550123")
    assert add_phone(api, worker, "+1 2065550124", "alternateMobile").status_code == 201


@pytest.mark.parametrize(
    "body",
    [
        {"phoneNumber": "+12065550123", "phoneType": "mobile"},
        {"phoneNumber": "+1 206-555-0123", "phoneType": "mobile"},
        {"phoneNumber": "+1 2065550123", "phoneType": "landline"},
        {"phoneNumber": "+1 2065550123"},
        {"phoneType": "mobile"},
        {"phoneNumber": "+1 2065550123", "phoneType": "mobile", "smsSignInState": "ready"},
        {"phoneNumber": "+1 2065550123", "phoneType": "mobile", "id": MOBILE},
    ],
)
def test_create_rejects_bad_bodies(graphsim, api, worker, body) -> None:
    assert api.post(PHONES.format(worker.id), body).status_code == 400
    assert graphsim.tenant.phone_methods.get(worker.id, {}) == {}


# --- update, delete -----------------------------------------------------------------------------


def test_update_changes_the_number_with_204(graphsim, api, worker) -> None:
    add_phone(api, worker, "+1 2065550123")
    path = PHONES.format(worker.id) + "/" + MOBILE
    response = api.patch(path, {"phoneNumber": "+44 7700900123", "phoneType": "mobile"})
    assert response.status_code == 204
    assert api.get(path).json()["phoneNumber"] == "+44 7700900123"


@pytest.mark.parametrize(
    "body",
    [
        {"phoneNumber": "+44 7700900123", "phoneType": "office"},
        {"phoneNumber": "+447700900123"},
        {"phoneType": "mobile"},
    ],
)
def test_update_rejects_type_changes_and_bad_numbers(graphsim, api, worker, body) -> None:
    add_phone(api, worker, "+1 2065550123")
    path = PHONES.format(worker.id) + "/" + MOBILE
    assert api.patch(path, body).status_code == 400
    assert api.get(path).json()["phoneNumber"] == "+1 2065550123"


def test_delete_with_204(graphsim, api, worker) -> None:
    add_phone(api, worker, "+1 4255550100", "office")
    assert api.delete(PHONES.format(worker.id) + "/" + OFFICE).status_code == 204
    assert api.get(PHONES.format(worker.id)).json()["value"] == []
    assert api.delete(PHONES.format(worker.id) + "/" + OFFICE).status_code == 404


def test_the_mobile_stays_while_an_alternate_exists(graphsim, api, worker) -> None:
    add_phone(api, worker, "+1 2065550123")
    add_phone(api, worker, "+1 2065550124", "alternateMobile")
    assert api.delete(PHONES.format(worker.id) + "/" + MOBILE).status_code == 400
    assert api.delete(PHONES.format(worker.id) + "/" + ALTERNATE).status_code == 204
    assert api.delete(PHONES.format(worker.id) + "/" + MOBILE).status_code == 204


@pytest.mark.parametrize(
    ("default", "phone_id", "phone_type"),
    [
        ("sms", MOBILE, "mobile"),
        ("voiceMobile", MOBILE, "mobile"),
        ("voiceOffice", OFFICE, "office"),
        ("voiceAlternateMobile", ALTERNATE, "alternateMobile"),
    ],
)
def test_the_default_mfa_phone_cannot_be_deleted(
    graphsim, api, worker, default, phone_id, phone_type
) -> None:
    add_phone(api, worker, "+1 2065550123")
    if phone_type != "mobile":
        add_phone(api, worker, "+1 2065550124", phone_type)
    graphsim.tenant.sign_in_preferences[worker.id] = SignInPreferences(
        user_preferred_method_for_secondary_authentication=default
    )
    response = api.delete(PHONES.format(worker.id) + "/" + phone_id)
    assert response.status_code == 400
    assert "default" in response.json()["error"]["message"]


# --- SMS sign-in ---------------------------------------------------------------------------------


def test_sms_sign_in_needs_the_policy(graphsim, api, worker) -> None:
    add_phone(api, worker, "+1 2065550123")
    assert api.post(PHONES.format(worker.id) + f"/{MOBILE}/enableSmsSignIn").status_code == 400


def test_sms_sign_in_enable_and_disable(graphsim, api, worker) -> None:
    graphsim.tenant.sms_sign_in_allowed = True
    add_phone(api, worker, "+1 2065550123")
    path = PHONES.format(worker.id) + "/" + MOBILE
    assert api.get(path).json()["smsSignInState"] == "notEnabled"

    assert api.post(path + "/enableSmsSignIn").status_code == 204
    assert api.get(path).json()["smsSignInState"] == "ready"
    assert api.post(path + "/disableSmsSignIn").status_code == 204
    assert api.get(path).json()["smsSignInState"] == "notEnabled"


def test_sms_sign_in_with_a_shared_number_is_not_unique(graphsim, api, worker) -> None:
    graphsim.tenant.sms_sign_in_allowed = True
    other = add_user(graphsim.tenant, "Shares A Phone")
    for user in (other, worker):
        add_phone(api, user, "+1 2065550123")
        assert api.post(PHONES.format(user.id) + f"/{MOBILE}/enableSmsSignIn").status_code == 204
    state = api.get(PHONES.format(worker.id) + "/" + MOBILE).json()["smsSignInState"]
    assert state == "phoneNumberNotUnique"


def test_sms_sign_in_is_for_the_mobile_only(graphsim, api, worker) -> None:
    graphsim.tenant.sms_sign_in_allowed = True
    add_phone(api, worker, "+1 4255550100", "office")
    assert api.post(PHONES.format(worker.id) + f"/{OFFICE}/enableSmsSignIn").status_code == 400


# --- permissions and masking ----------------------------------------------------------------------


def test_phone_permissions(graphsim, worker) -> None:
    assert add_phone(app_caller(graphsim, "UserAuthenticationMethod.Read.All"), worker,
                     "+1 2065550123").status_code == 403  # fmt: skip
    assert add_phone(app_caller(graphsim, RW), worker, "+1 2065550123").status_code == 201
    reader = app_caller(graphsim, "UserAuthenticationMethod.Read.All")
    assert reader.get(PHONES.format(worker.id)).status_code == 200
    # The QR-only permission does not reach phones.
    assert (
        app_caller(graphsim, "UserAuthMethod-QR.ReadWrite.All")
        .get(PHONES.format(worker.id))
        .status_code
        == 403
    )


def test_users_manage_their_own_phones_with_self_scopes(graphsim, worker) -> None:
    me = user_caller(graphsim, worker.id, "UserAuthenticationMethod.ReadWrite")
    response = me.post("/me/authentication/phoneMethods", {"phoneNumber": "+1 2065550123",
                                                          "phoneType": "mobile"})  # fmt: skip
    assert response.status_code == 201
    assert me.get("/me/authentication/phoneMethods").json()["value"][0]["phoneNumber"] == (
        "+1 2065550123"
    )
    other = add_user(graphsim.tenant)
    assert me.get(PHONES.format(other.id)).status_code == 403


def test_authentication_admins_read_masked_numbers(graphsim, api, worker) -> None:
    add_phone(api, worker, "+1 2065550123")
    manager = add_user(graphsim.tenant, "Store Manager")
    grant_scoped_role(graphsim.tenant, manager.id, [worker.id], AUTHENTICATION_ADMINISTRATOR)
    privileged = add_user(graphsim.tenant, "Privileged Admin")
    grant_role(graphsim.tenant, privileged.id, PRIVILEGED_AUTHENTICATION_ADMINISTRATOR)

    masked = user_caller(graphsim, manager.id, RW)
    assert masked.get(PHONES.format(worker.id)).json()["value"][0]["phoneNumber"] == (
        "+1 XXXXXXXX23"
    )
    assert masked.get(PHONES.format(worker.id) + "/" + MOBILE).json()["phoneNumber"] == (
        "+1 XXXXXXXX23"
    )
    methods = masked.get(f"/users/{worker.id}/authentication/methods").json()["value"]
    assert "+1 XXXXXXXX23" in [m.get("phoneNumber") for m in methods]
    full = user_caller(graphsim, privileged.id, RW).get(PHONES.format(worker.id)).json()
    assert full["value"][0]["phoneNumber"] == "+1 2065550123"
    # Masked readers can still write.
    assert masked.patch(PHONES.format(worker.id) + "/" + MOBILE,
                        {"phoneNumber": "+1 2065550199"}).status_code == 204  # fmt: skip


# --- all methods (docs/graph-contract.md §3.1) -----------------


def test_the_methods_list_carries_types(graphsim, api, worker) -> None:
    add_phone(api, worker, "+1 2065550123")
    qr = create_method(graphsim, api, worker)
    response = api.get(f"/users/{worker.id}/authentication/methods")

    assert response.status_code == 200
    body = response.json()
    assert body["@odata.context"].endswith(f"#users('{worker.id}')/authentication/methods")
    by_type = {m["@odata.type"]: m for m in body["value"]}
    assert set(by_type) == {
        "#microsoft.graph.passwordAuthenticationMethod",
        "#microsoft.graph.phoneAuthenticationMethod",
        "#microsoft.graph.qrCodePinAuthenticationMethod",
    }
    assert by_type["#microsoft.graph.phoneAuthenticationMethod"] == {
        "@odata.type": "#microsoft.graph.phoneAuthenticationMethod",
        "id": MOBILE,
        "phoneNumber": "+1 2065550123",
        "phoneType": "mobile",
        "smsSignInState": "notAllowedByPolicy",
    }
    assert by_type["#microsoft.graph.qrCodePinAuthenticationMethod"]["id"] == qr["id"]
    assert "binaryValue" not in response.text and qr["pin"]["code"] not in response.text


# --- signInPreferences (beta only) -----------


def test_sign_in_preferences_are_beta_only(graphsim, api, worker) -> None:
    assert api.get(PREFS.format(worker.id)).status_code in (400, 404)
    response = api.get(PREFS.format(worker.id), version="beta")
    assert response.status_code == 200
    assert response.json() == {
        "@odata.context": f"{graphsim.base_url}/beta/$metadata#users('{worker.id}')"
        "/authentication/signInPreferences",
        "isSystemPreferredAuthenticationMethodEnabled": True,
        "userPreferredMethodForSecondaryAuthentication": None,
    }


def test_the_default_method_can_be_changed_to_a_registered_one(graphsim, api, worker) -> None:
    path = PREFS.format(worker.id)
    change = {"userPreferredMethodForSecondaryAuthentication": "sms"}
    assert api.patch(path, change, version="beta").status_code == 400  # no mobile yet
    add_phone(api, worker, "+1 2065550123")
    assert api.patch(path, change, version="beta").status_code == 204
    assert api.get(path, version="beta").json()[
        "userPreferredMethodForSecondaryAuthentication"
    ] == ("sms")
    assert api.patch(path, change).status_code in (400, 404)  # not on v1.0
    assert api.patch(path, {"userPreferredMethodForSecondaryAuthentication": "carrierPigeon"},
                     version="beta").status_code == 400  # fmt: skip
    assert api.patch(path, {"isSystemPreferredAuthenticationMethodEnabled": "yes"},
                     version="beta").status_code == 400  # fmt: skip

    # Then the mobile is the default and cannot be deleted until the default changes.
    assert api.delete(PHONES.format(worker.id) + "/" + MOBILE).status_code == 400
    add_phone(api, worker, "+1 4255550100", "office")
    api.patch(path, {"userPreferredMethodForSecondaryAuthentication": "voiceOffice"},
              version="beta")  # fmt: skip
    assert api.delete(PHONES.format(worker.id) + "/" + MOBILE).status_code == 204
