"""graphsim: the QR code + PIN authentication method policy (docs/graph-contract.md §2)."""

from __future__ import annotations

import dataclasses

import pytest

from graphsim.model import (
    AUTHENTICATION_ADMINISTRATOR,
    AUTHENTICATION_POLICY_ADMINISTRATOR,
    GLOBAL_READER,
)
from tests.graphsim.test_qr_method import (
    QR,
    RW,
    Caller,
    add_user,
    app_caller,
    grant_role,
    sim_now,
    standard_body,
    user_caller,
)

POLICY = "/policies/authenticationMethodsPolicy/authenticationMethodConfigurations/qrCodePin"
WRITE = "Policy.ReadWrite.AuthenticationMethod"
TYPE = "#microsoft.graph.qrCodePinAuthenticationMethodConfiguration"
GROUP = "b185b746-e7db-4fa2-bafc-69ecf18850dd"


@pytest.fixture
def api(graphsim) -> Caller:
    return app_caller(graphsim, WRITE)


def update_body(**changes) -> dict:
    """examples/qrcodepin-policy-update.request.json with changes."""
    body = {
        "@odata.type": TYPE,
        "state": "enabled",
        "includeTargets": [{"targetType": "group", "id": GROUP, "isRegistrationRequired": False}],
        "excludeTargets": [],
        "standardQRCodeLifetimeInDays": 395,
        "pinLength": 10,
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def test_get_has_the_documented_shape(graphsim) -> None:
    response = app_caller(graphsim, "Policy.Read.All").get(POLICY)

    assert response.status_code == 200
    body = response.json()
    assert list(body) == [
        "@odata.context",
        "@odata.type",
        "id",
        "state",
        "standardQRCodeLifetimeInDays",
        "pinLength",
        "excludeTargets",
        "includeTargets@odata.context",
        "includeTargets",
    ]
    assert body["@odata.type"] == TYPE
    assert body["id"] == "qrCodePin"
    assert body["@odata.context"].endswith(
        "/v1.0/$metadata#policies/authenticationMethodsPolicy/authenticationMethodConfigurations/$entity"
    )
    assert body["includeTargets@odata.context"].endswith(
        "('qrCodePin')/microsoft.graph.qrCodePinAuthenticationMethodConfiguration/includeTargets"
    )
    assert body["includeTargets"][0]["id"] == "all_users"


def test_patch_on_v1_answers_200_with_the_object(graphsim, api) -> None:
    response = api.patch(POLICY, update_body())

    assert response.status_code == 200
    assert response.json() == {
        "@odata.type": TYPE,
        "id": "qrCodePin",
        "state": "enabled",
        "standardQRCodeLifetimeInDays": 395,
        "pinLength": 10,
        "excludeTargets": [],
    }
    got = api.get(POLICY).json()
    assert got["pinLength"] == 10
    assert got["includeTargets"] == [
        {"targetType": "group", "id": GROUP, "isRegistrationRequired": False}
    ]


def test_patch_on_beta_answers_204(graphsim, api) -> None:
    response = api.patch(POLICY, update_body(pinLength=12), version="beta")
    assert response.status_code == 204
    assert graphsim.tenant.qr_policy.pin_length == 12


def test_patch_may_change_one_property(graphsim, api) -> None:
    response = api.patch(POLICY, {"@odata.type": TYPE, "state": "disabled"})
    assert response.status_code == 200
    assert graphsim.tenant.qr_policy.state == "disabled"
    assert graphsim.tenant.qr_policy.pin_length == 8


@pytest.mark.parametrize(
    "body",
    [
        {"state": "enabled"},  # no @odata.type
        {"@odata.type": "microsoft.graph.qrCodePinAuthenticationMethodConfiguration"},  # no "#"
        update_body(state="on"),
        update_body(pinLength=7),
        update_body(pinLength=21),
        update_body(pinLength="10"),
        update_body(pinLength=True),
        update_body(standardQRCodeLifetimeInDays=0),
        update_body(standardQRCodeLifetimeInDays=396),
        update_body(standardQRCodeLifetimeInDays=30.5),
        update_body(includeTargets={"targetType": "group", "id": GROUP}),
        update_body(includeTargets=[{"targetType": "device", "id": GROUP}]),
        update_body(includeTargets=[{"targetType": "group"}]),
        update_body(includeTargets=[{"targetType": "group", "id": GROUP, "x": 1}]),
        update_body(
            includeTargets=[{"targetType": "group", "id": GROUP, "isRegistrationRequired": "no"}]
        ),
        update_body(excludeTargets=[{"targetType": "group", "id": ""}]),
        update_body(isSoftwareOathEnabled=True),
        update_body(id="fido2"),
    ],
)
def test_patch_rejects_invalid_bodies(graphsim, api, body) -> None:
    before = dataclasses.asdict(graphsim.tenant.qr_policy)
    response = api.patch(POLICY, body)
    assert response.status_code == 400, response.text
    assert dataclasses.asdict(graphsim.tenant.qr_policy) == before


@pytest.mark.parametrize(("pin_length", "days"), [(8, 1), (20, 395)])
def test_patch_accepts_the_bounds(graphsim, api, pin_length, days) -> None:
    body = update_body(pinLength=pin_length, standardQRCodeLifetimeInDays=days)
    assert api.patch(POLICY, body).status_code == 200


def test_delete_on_v1_reverts_to_defaults(graphsim, api) -> None:
    api.patch(POLICY, update_body())
    assert api.delete(POLICY).status_code == 204
    body = api.get(POLICY).json()
    assert (body["state"], body["pinLength"], body["standardQRCodeLifetimeInDays"]) == (
        "disabled",
        8,
        365,
    )
    assert api.delete(POLICY, version="beta").status_code == 405


def test_reads_need_a_policy_permission(graphsim) -> None:
    assert app_caller(graphsim, RW).get(POLICY).status_code == 403
    assert app_caller(graphsim, WRITE).get(POLICY).status_code == 200


def test_writes_need_the_write_permission(graphsim) -> None:
    reader = app_caller(graphsim, "Policy.Read.All")
    assert reader.patch(POLICY, update_body()).status_code == 403
    assert reader.delete(POLICY).status_code == 403


def test_delegated_patch_needs_authentication_policy_administrator(graphsim) -> None:
    tenant = graphsim.tenant
    auth_admin = add_user(tenant, "Auth Admin")
    grant_role(tenant, auth_admin.id, AUTHENTICATION_ADMINISTRATOR)
    policy_admin = add_user(tenant, "Policy Admin")
    grant_role(tenant, policy_admin.id, AUTHENTICATION_POLICY_ADMINISTRATOR)

    assert (
        user_caller(graphsim, auth_admin.id, WRITE).patch(POLICY, update_body()).status_code == 403
    )
    response = user_caller(graphsim, policy_admin.id, WRITE).patch(POLICY, update_body())
    assert response.status_code == 200


def test_delegated_reads_need_a_role(graphsim) -> None:
    tenant = graphsim.tenant
    nobody = add_user(tenant, "Worker")
    reader = add_user(tenant, "Reader")
    grant_role(tenant, reader.id, GLOBAL_READER)
    assert user_caller(graphsim, nobody.id, "Policy.Read.All").get(POLICY).status_code == 403
    assert user_caller(graphsim, reader.id, "Policy.Read.All").get(POLICY).status_code == 200


def test_the_policy_pin_length_and_state_apply_to_new_methods(graphsim, api) -> None:
    api.patch(POLICY, update_body(pinLength=12, includeTargets=[
        {"targetType": "group", "id": "all_users", "isRegistrationRequired": False}
    ]))  # fmt: skip
    writer = app_caller(graphsim, RW)
    worker = add_user(graphsim.tenant)
    response = writer.put(QR.format(worker.id), standard_body(sim_now(graphsim), pin=None))
    assert len(response.json()["pin"]["code"]) == 12

    api.patch(POLICY, {"@odata.type": TYPE, "state": "disabled"})
    other = add_user(graphsim.tenant)
    response = writer.put(QR.format(other.id), standard_body(sim_now(graphsim)))
    assert response.status_code == 400
