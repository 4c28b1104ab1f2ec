"""graphsim: standard and temporary QR codes over HTTPS (docs/graph-contract.md §1.6, §9.2,
§9.3)."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta

import pytest

from graphsim.model import User
from tests.graphsim.test_qr_method import (
    QR,
    RW,
    Caller,
    add_user,
    app_caller,
    create_method,
    iso,
    sim_now,
)
from tests.graphsim.test_qr_rules import decode_svg

STANDARD = QR + "/standardQRCode"
TEMPORARY = QR + "/temporaryQRCode"


@pytest.fixture
def worker(graphsim) -> User:
    return add_user(graphsim.tenant)


@pytest.fixture
def api(graphsim) -> Caller:
    return app_caller(graphsim, RW)


def code_body(start, hours: float) -> dict:
    return {
        "@odata.type": "#microsoft.graph.qrCode",
        "startDateTime": iso(start),
        "expireDateTime": iso(start + timedelta(hours=hours)),
    }


def new_temporary(graphsim, api: Caller, worker: User, hours: float):
    return api.patch(TEMPORARY.format(worker.id), code_body(sim_now(graphsim), hours))


def test_it_creates_a_temporary_code_with_an_image(graphsim, api, worker) -> None:
    create_method(graphsim, api, worker)
    start = sim_now(graphsim)
    response = api.patch(TEMPORARY.format(worker.id), code_body(start, 8))

    assert response.status_code == 201
    body = response.json()
    assert list(body) == [
        "@odata.type",
        "id",
        "expireDateTime",
        "startDateTime",
        "createdDateTime",
        "lastUsedDateTime",
        "image",
    ]
    assert body["expireDateTime"] == iso(start + timedelta(hours=8))
    assert body["lastUsedDateTime"] == "0001-01-01T00:00:00Z"
    raw = base64.b64decode(body["image"]["rawContent"]).decode()
    assert raw.split("|")[:3] == ["ms-qrpin:v1", worker.user_principal_name, body["id"]]
    assert decode_svg(body["image"]["binaryValue"]) == raw
    assert graphsim.stats["qr_temporary_code_creations"] == {worker.id: 1}


@pytest.mark.parametrize("hours", [1, 12])
def test_temporary_lifetimes_of_1_to_12_hours_are_accepted(graphsim, api, worker, hours) -> None:
    create_method(graphsim, api, worker)
    response = api.patch(TEMPORARY.format(worker.id), code_body(sim_now(graphsim), hours))
    assert response.status_code == 201


@pytest.mark.parametrize("hours", [0.5, 12.01, 13, 24, 0, -1])
def test_temporary_lifetimes_outside_1_to_12_hours_are_400(graphsim, api, worker, hours) -> None:
    create_method(graphsim, api, worker)
    response = api.patch(TEMPORARY.format(worker.id), code_body(sim_now(graphsim), hours))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "badRequest"


def test_a_second_active_temporary_code_is_400(graphsim, api, worker) -> None:
    create_method(graphsim, api, worker)
    assert new_temporary(graphsim, api, worker, 4).status_code == 201
    response = api.patch(TEMPORARY.format(worker.id), code_body(sim_now(graphsim), 4))

    # DOC-GAP convention: docs/graph-examples/error-docgap-qrcode-exists.response.json.
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "badRequest"
    assert error["message"].startswith("An active temporary QR code already exists")


def test_the_temporary_expiry_cannot_be_changed(graphsim, api, worker) -> None:
    create_method(graphsim, api, worker)
    start = sim_now(graphsim)
    api.patch(TEMPORARY.format(worker.id), code_body(start, 4))
    response = api.patch(
        TEMPORARY.format(worker.id), {"expireDateTime": iso(start + timedelta(hours=6))}
    )
    assert response.status_code == 400
    got = api.get(TEMPORARY.format(worker.id)).json()
    assert got["expireDateTime"] == iso(start + timedelta(hours=4))


def test_a_new_temporary_code_after_delete_or_expiry(graphsim, worker) -> None:
    api = Caller(graphsim, graphsim.issue_app_token(roles=[RW], lifetime_s=86400))
    create_method(graphsim, api, worker)
    api.patch(TEMPORARY.format(worker.id), code_body(sim_now(graphsim), 1))
    assert api.delete(TEMPORARY.format(worker.id)).status_code == 204
    assert new_temporary(graphsim, api, worker, 1).status_code == 201
    graphsim.sim.shift_clock(2 * 3600)
    assert new_temporary(graphsim, api, worker, 1).status_code == 201


def test_the_standard_code_expiry_can_be_updated(graphsim, api, worker) -> None:
    created = create_method(graphsim, api, worker)
    start = created["standardQRCode"]["startDateTime"]
    new_expiry = iso(sim_now(graphsim) + timedelta(days=180))
    response = api.patch(
        STANDARD.format(worker.id),
        {"@odata.type": "#microsoft.graph.qrCode", "expireDateTime": new_expiry},
    )

    assert response.status_code == 200
    body = response.json()
    assert body["image"] is None
    assert body["id"] == created["standardQRCode"]["id"]
    assert body["startDateTime"] == start
    assert body["expireDateTime"] == new_expiry
    assert api.get(STANDARD.format(worker.id)).json()["expireDateTime"] == new_expiry


def test_the_standard_expiry_stays_within_395_days_of_its_start(graphsim, api, worker) -> None:
    created = create_method(graphsim, api, worker)
    # The code's own start, not "now": a second boundary may lie between its creation and now.
    start = datetime.fromisoformat(created["standardQRCode"]["startDateTime"])
    too_late = iso(start + timedelta(days=396))
    response = api.patch(STANDARD.format(worker.id), {"expireDateTime": too_late})
    assert response.status_code == 400
    assert api.patch(STANDARD.format(worker.id), {"expireDateTime": iso(start)}).status_code == 400


def test_the_standard_start_cannot_change(graphsim, api, worker) -> None:
    created = create_method(graphsim, api, worker)
    start = created["standardQRCode"]["startDateTime"]
    same = api.patch(
        STANDARD.format(worker.id),
        {"startDateTime": start, "expireDateTime": created["standardQRCode"]["expireDateTime"]},
    )
    assert same.status_code == 200
    moved = api.patch(
        STANDARD.format(worker.id),
        {
            "startDateTime": iso(sim_now(graphsim) + timedelta(days=1)),
            "expireDateTime": created["standardQRCode"]["expireDateTime"],
        },
    )
    assert moved.status_code == 400


def test_lost_badge_flow_delete_then_create_keeps_the_pin(graphsim, api, worker) -> None:
    created = create_method(graphsim, api, worker)
    assert api.delete(STANDARD.format(worker.id)).status_code == 204
    assert api.get(STANDARD.format(worker.id)).status_code == 404
    start = sim_now(graphsim)
    response = api.patch(
        STANDARD.format(worker.id),
        {"startDateTime": iso(start), "expireDateTime": iso(start + timedelta(days=30))},
    )

    assert response.status_code == 201
    body = response.json()
    assert body["id"] != created["standardQRCode"]["id"]
    assert body["image"]["binaryValue"]
    method = api.get(QR.format(worker.id)).json()
    assert method["id"] == created["id"]
    assert method["pin"]["createdDateTime"] == created["pin"]["createdDateTime"]
    assert graphsim.stats["qr_standard_code_creations"] == {worker.id: 1}


def test_creating_a_code_needs_both_dates(graphsim, api, worker) -> None:
    create_method(graphsim, api, worker)
    api.delete(STANDARD.format(worker.id))
    response = api.patch(STANDARD.format(worker.id), {"startDateTime": iso(sim_now(graphsim))})
    assert response.status_code == 400


@pytest.mark.parametrize("kind", [STANDARD, TEMPORARY])
def test_code_requests_without_a_method_are_404(graphsim, api, worker, kind) -> None:
    assert api.get(kind.format(worker.id)).status_code == 404
    assert api.delete(kind.format(worker.id)).status_code == 404
    assert api.patch(kind.format(worker.id), code_body(sim_now(graphsim), 2)).status_code == 404


def test_get_temporary_without_one_is_404(graphsim, api, worker) -> None:
    create_method(graphsim, api, worker)
    assert api.get(TEMPORARY.format(worker.id)).status_code == 404
    assert api.delete(TEMPORARY.format(worker.id)).status_code == 404


def test_get_returns_the_bare_code_without_image(graphsim, api, worker) -> None:
    created = create_method(graphsim, api, worker)
    response = api.get(STANDARD.format(worker.id), version="beta")

    assert response.status_code == 200
    body = response.json()
    assert body["@odata.type"] == "#microsoft.graph.qrCode"
    assert body["id"] == created["standardQRCode"]["id"]
    assert body["image"] is None


def test_get_can_answer_the_doc_wrapped_form(graphsim, api, worker) -> None:
    created = create_method(graphsim, api, worker)
    graphsim.tenant.qr_code_get_wrapped = True
    body = api.get(STANDARD.format(worker.id)).json()
    assert list(body) == ["value"]
    assert body["value"]["id"] == created["standardQRCode"]["id"]
    assert body["value"]["image"] is None


def test_the_method_shows_both_codes_without_images(graphsim, api, worker) -> None:
    create_method(graphsim, api, worker)
    temporary = api.patch(TEMPORARY.format(worker.id), code_body(sim_now(graphsim), 3)).json()
    body = api.get(QR.format(worker.id)).json()
    assert body["temporaryQRCode"]["id"] == temporary["id"]
    assert body["temporaryQRCode"]["image"] is None
    assert body["standardQRCode"]["image"] is None


def test_codes_need_a_write_permission(graphsim, worker) -> None:
    create_method(graphsim, app_caller(graphsim, RW), worker)
    reader = app_caller(graphsim, "UserAuthMethod-QR.Read.All")
    assert reader.get(STANDARD.format(worker.id)).status_code == 200
    assert reader.delete(STANDARD.format(worker.id)).status_code == 403
    response = reader.patch(TEMPORARY.format(worker.id), code_body(sim_now(graphsim), 2))
    assert response.status_code == 403
