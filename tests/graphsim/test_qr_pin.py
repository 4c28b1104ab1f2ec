"""graphsim: PIN rules at create, admin PIN reset and the user's own PIN change
(docs/graph-contract.md §1.2, §1.7, §1.8)."""

from __future__ import annotations

import re

import pytest

from graphsim.model import AUTHENTICATION_ADMINISTRATOR, User
from tests.graphsim.test_qr_method import (
    QR,
    RW,
    Caller,
    add_user,
    app_caller,
    create_method,
    grant_role,
    sim_now,
    standard_body,
    user_caller,
)

PIN = QR + "/pin"
UPDATE_PIN = "/me/authentication/qrCodePinMethod/pin/updatePin"


@pytest.fixture
def worker(graphsim) -> User:
    return add_user(graphsim.tenant)


@pytest.fixture
def api(graphsim) -> Caller:
    return app_caller(graphsim, RW)


# --- PIN rules at create (docs/graph-contract.md §1.2)
# ---------------------------------------------------------------


@pytest.mark.parametrize(
    "pin",
    [
        "4820731a",  # letters
        "4820 7315",  # spaces
        "4820-731",  # symbols
        "４８２０７３１５",  # unicode digits
        "4820731",  # 7 digits
        "482073154820731548207",  # 21 digits
        "50123456789",  # ascending run
        "79876543210",  # descending run
        "90121212",  # 12 three times
        "81231234",  # 123 twice
        "34234270",  # 342 twice
        "",  # an empty PIN is not "omitted"
    ],
)
def test_it_rejects_invalid_pins_at_create(graphsim, api, worker, pin) -> None:
    response = api.put(QR.format(worker.id), standard_body(sim_now(graphsim), pin=pin))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "badRequest"
    assert response.json()["error"]["message"].startswith("Invalid PIN")
    assert worker.id not in graphsim.tenant.qr_methods


def test_a_pin_that_is_not_a_string_is_400(graphsim, api, worker) -> None:
    body = standard_body(sim_now(graphsim))
    body["pin"] = {"code": 48207315}
    assert api.put(QR.format(worker.id), body).status_code == 400


@pytest.mark.parametrize("pin", ["48207315", "48207315482073154820", "12124545"])
def test_it_accepts_valid_pins_at_create(graphsim, api, worker, pin) -> None:
    body = create_method(graphsim, api, worker, pin=pin)
    assert body["pin"]["code"] == pin


def test_the_policy_pin_length_is_a_minimum(graphsim, api, worker) -> None:
    graphsim.tenant.qr_policy.pin_length = 10
    short = api.put(QR.format(worker.id), standard_body(sim_now(graphsim), pin="48207315"))
    assert short.status_code == 400
    create_method(graphsim, api, worker, pin="4820731569")


# --- admin reset (docs/graph-contract.md §1.7)
# -----------------------------------------------------------------------


def test_reset_generates_a_new_temporary_pin(graphsim, api, worker) -> None:
    create_method(graphsim, api, worker, pin="48207315")
    response = api.patch(
        PIN.format(worker.id), {"@odata.type": "#microsoft.graph.qrPin", "code": ""}
    )

    assert response.status_code == 201
    body = response.json()
    assert list(body) == [
        "@odata.type",
        "code",
        "forceChangePinNextSignIn",
        "createdDateTime",
        "updatedDateTime",
    ]
    assert body["@odata.type"] == "#microsoft.graph.qrPin"
    assert re.fullmatch(r"[0-9]{8}", body["code"])
    assert body["forceChangePinNextSignIn"] is True
    assert graphsim.tenant.qr_methods[worker.id].pin.code == body["code"]
    assert graphsim.stats["pin_resets"] == {worker.id: 1}


def test_reset_ignores_a_requested_code(graphsim, api, worker) -> None:
    create_method(graphsim, api, worker)
    graphsim.tenant.qr_policy.pin_length = 14
    body = api.patch(PIN.format(worker.id), {"code": "11112222"}).json()
    assert body["code"] != "11112222"
    assert len(body["code"]) == 14


@pytest.mark.parametrize("body", [{}, {"@odata.type": "#microsoft.graph.qrPin"}, {"code": ""}])
def test_the_strict_switch_refuses_a_reset_without_code(graphsim, api, worker, body) -> None:
    create_method(graphsim, api, worker, pin="48207315")
    graphsim.sim.config.pin_reset_requires_code = True
    response = api.patch(PIN.format(worker.id), body or {"@odata.type": "#microsoft.graph.qrPin"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "badRequest"
    assert graphsim.tenant.qr_methods[worker.id].pin.code == "48207315"
    # With a code the same reset is accepted (generated PIN by default).
    assert api.patch(PIN.format(worker.id), {"code": "58316094"}).status_code == 201


def test_the_sent_code_switch_keeps_the_code_after_the_pin_rules(graphsim, api, worker) -> None:
    create_method(graphsim, api, worker)
    graphsim.sim.config.update({"pin_reset_uses_code": True})
    graphsim.tenant.qr_policy.pin_length = 10
    assert api.patch(PIN.format(worker.id), {"code": "58316094"}).status_code == 400  # too short
    assert api.patch(PIN.format(worker.id), {"code": "1212121212"}).status_code == 400
    body = api.patch(PIN.format(worker.id), {"code": "5831609427"}).json()
    assert body["code"] == "5831609427"
    assert graphsim.tenant.qr_methods[worker.id].pin.code == "5831609427"


def test_reset_without_a_method_is_404(api, worker) -> None:
    assert api.patch(PIN.format(worker.id), {"code": ""}).status_code == 404


def test_reset_needs_a_write_permission(graphsim, worker) -> None:
    create_method(graphsim, app_caller(graphsim, RW), worker)
    reader = app_caller(graphsim, "UserAuthenticationMethod.Read.All")
    assert reader.patch(PIN.format(worker.id), {"code": ""}).status_code == 403


def test_a_delegated_admin_may_reset(graphsim, worker) -> None:
    create_method(graphsim, app_caller(graphsim, RW), worker)
    admin = add_user(graphsim.tenant, "IT Admin")
    grant_role(graphsim.tenant, admin.id, AUTHENTICATION_ADMINISTRATOR)
    response = user_caller(graphsim, admin.id, RW).patch(PIN.format(worker.id), {"code": ""})
    assert response.status_code == 201


# --- the user's own change (docs/graph-contract.md §1.8)
# ---------------------------------------------------------------


def test_a_user_changes_their_own_pin(graphsim, api, worker) -> None:
    create_method(graphsim, api, worker, pin="48207315")
    me = user_caller(graphsim, worker.id, "Directory.AccessAsUser.All")
    response = me.patch(UPDATE_PIN, {"currentPin": "48207315", "newPin": "58316094"})

    assert response.status_code == 204
    assert response.content == b""
    pin = graphsim.tenant.qr_methods[worker.id].pin
    assert pin.code == "58316094"
    assert pin.force_change_pin_next_sign_in is False
    assert api.get(QR.format(worker.id)).json()["pin"]["forceChangePinNextSignIn"] is False


def test_update_pin_checks_the_current_pin(graphsim, api, worker) -> None:
    create_method(graphsim, api, worker, pin="48207315")
    me = user_caller(graphsim, worker.id, "Directory.AccessAsUser.All")
    response = me.patch(UPDATE_PIN, {"currentPin": "48207316", "newPin": "58316094"})
    assert response.status_code == 400
    assert graphsim.tenant.qr_methods[worker.id].pin.code == "48207315"


@pytest.mark.parametrize(
    "body",
    [
        {"currentPin": "48207315", "newPin": "90121212"},  # repeated group
        {"currentPin": "48207315", "newPin": "4820731"},  # too short
        {"currentPin": "48207315", "newPin": "48207315"},  # unchanged
        {"currentPin": "48207315"},
        {"newPin": "58316094"},
        {"currentPin": "48207315", "newPin": "58316094", "pin": "x"},
    ],
)
def test_update_pin_rejects_bad_bodies(graphsim, api, worker, body) -> None:
    create_method(graphsim, api, worker, pin="48207315")
    me = user_caller(graphsim, worker.id, "Directory.AccessAsUser.All")
    assert me.patch(UPDATE_PIN, body).status_code == 400


def test_update_pin_is_not_for_apps(graphsim, api, worker) -> None:
    create_method(graphsim, api, worker, pin="48207315")
    path = PIN.format(worker.id) + "/updatePin"
    response = api.patch(path, {"currentPin": "48207315", "newPin": "58316094"})
    assert response.status_code == 403


def test_update_pin_is_not_for_admins_on_other_users(graphsim, api, worker) -> None:
    create_method(graphsim, api, worker, pin="48207315")
    admin = add_user(graphsim.tenant, "IT Admin")
    grant_role(graphsim.tenant, admin.id, AUTHENTICATION_ADMINISTRATOR)
    caller = user_caller(graphsim, admin.id, "Directory.AccessAsUser.All", RW)
    path = PIN.format(worker.id) + "/updatePin"
    response = caller.patch(path, {"currentPin": "48207315", "newPin": "58316094"})
    assert response.status_code == 403


def test_update_pin_needs_directory_access_as_user(graphsim, api, worker) -> None:
    create_method(graphsim, api, worker, pin="48207315")
    me = user_caller(graphsim, worker.id, "UserAuthenticationMethod.ReadWrite")
    response = me.patch(UPDATE_PIN, {"currentPin": "48207315", "newPin": "58316094"})
    assert response.status_code == 403


def test_the_seed_articles_path_does_not_exist(graphsim, api, worker) -> None:
    """docs/graph-contract.md §10: `…/qrCodePinMethod/updatePin` (without /pin) is wrong."""
    create_method(graphsim, api, worker, pin="48207315")
    me = user_caller(graphsim, worker.id, "Directory.AccessAsUser.All")
    response = me.patch(
        "/me/authentication/qrCodePinMethod/updatePin",
        {"currentPin": "48207315", "newPin": "58316094"},
    )
    assert response.status_code == 400
    assert graphsim.tenant.qr_methods[worker.id].pin.code == "48207315"
