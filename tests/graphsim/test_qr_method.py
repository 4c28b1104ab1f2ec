"""graphsim: the QR code + PIN method over HTTPS (docs/graph-contract.md §1.1, §1.3-§1.5, §1.9).

graphsim must reject what Graph rejects, and answer what Graph answers, shape for shape.
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta

import pytest

from graphsim.model import (
    AUTHENTICATION_ADMINISTRATOR,
    GLOBAL_READER,
    AdministrativeUnit,
    DirectoryRole,
    Group,
    ScopedRoleMembership,
    User,
    new_id,
)
from tests.graphsim.test_qr_rules import decode_svg

QR = "/users/{}/authentication/qrCodePinMethod"
RW = "UserAuthenticationMethod.ReadWrite.All"


# --- a small client over the harness -------------------------------------------------------


class Caller:
    """Requests to graphsim with one token."""

    def __init__(self, graphsim, token: str) -> None:
        self.session = graphsim.session(token)
        self.base_url = graphsim.base_url.rstrip("/")

    def call(self, method: str, path: str, body=None, *, version: str = "v1.0", **kwargs):
        return self.session.request(
            method, f"{self.base_url}/{version}{path}", json=body, timeout=10, **kwargs
        )

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def put(self, path, body, **kw):
        return self.call("PUT", path, body, **kw)

    def patch(self, path, body, **kw):
        return self.call("PATCH", path, body, **kw)

    def post(self, path, body=None, **kw):
        return self.call("POST", path, body, **kw)

    def delete(self, path, **kw):
        return self.call("DELETE", path, **kw)


def app_caller(graphsim, *roles: str) -> Caller:
    return Caller(graphsim, graphsim.issue_app_token(roles=list(roles)))


def user_caller(graphsim, user_id: str, *scopes: str) -> Caller:
    return Caller(graphsim, graphsim.issue_delegated_token(user_id, scopes=list(scopes)))


def add_user(tenant, name: str = "Casey Worker", **fields) -> User:
    """A fresh licensed member in the tenant (the default QR policy targets all_users)."""
    local = re.sub(r"[^a-z]+", ".", name.lower()).strip(".") + "." + new_id()[:6]
    user = User(
        id=new_id(),
        user_principal_name=f"{local}@{tenant.domain}",
        display_name=name,
        created_date_time=datetime(2025, 1, 1, tzinfo=UTC),
        **fields,
    )
    with tenant.lock:
        tenant.users[user.id] = user
    return user


def grant_role(tenant, user_id: str, template_id: str) -> None:
    """Give the user a tenant-wide directory role (activating the role if needed)."""
    with tenant.lock:
        role = tenant.directory_role_by_template(template_id)
        if role is None:
            role = DirectoryRole(id=new_id(), role_template_id=template_id, display_name="role")
            tenant.directory_roles[role.id] = role
        role.member_ids.append(user_id)


def grant_scoped_role(tenant, admin_id: str, member_ids: list[str], template_id: str) -> None:
    """Give the admin a role scoped to a new administrative unit holding `member_ids`."""
    with tenant.lock:
        role = tenant.directory_role_by_template(template_id)
        if role is None:
            role = DirectoryRole(id=new_id(), role_template_id=template_id, display_name="role")
            tenant.directory_roles[role.id] = role
        unit = AdministrativeUnit(id=new_id(), display_name="Store", member_ids=list(member_ids))
        tenant.administrative_units[unit.id] = unit
        membership = ScopedRoleMembership(
            id=new_id(), role_id=role.id, administrative_unit_id=unit.id, user_id=admin_id
        )
        tenant.scoped_role_memberships[membership.id] = membership


def iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def standard_body(start: datetime, days: float = 365, pin: str | None = "48207315") -> dict:
    body: dict = {
        "@odata.type": "#microsoft.graph.qrCodePinAuthenticationMethod",
        "standardQRCode": {
            "startDateTime": iso(start),
            "expireDateTime": iso(start + timedelta(days=days)),
        },
    }
    if pin is not None:
        body["pin"] = {"code": pin}
    return body


def sim_now(graphsim) -> datetime:
    return graphsim.sim.now().replace(microsecond=0)


@pytest.fixture
def worker(graphsim) -> User:
    return add_user(graphsim.tenant)


@pytest.fixture
def admin_app(graphsim) -> Caller:
    return app_caller(graphsim, RW)


def create_method(graphsim, api: Caller, user: User, **kwargs) -> dict:
    response = api.put(QR.format(user.id), standard_body(sim_now(graphsim), **kwargs))
    assert response.status_code == 201, response.text
    return response.json()


# --- create -------------------------------------------------------------------------------


def test_it_creates_a_method_with_image_and_pin_once(graphsim, admin_app, worker) -> None:
    start = sim_now(graphsim)
    response = admin_app.put(QR.format(worker.id), standard_body(start))

    assert response.status_code == 201
    body = response.json()
    assert list(body) == [
        "@odata.type",
        "id",
        "isUsable",
        "methodUsabilityReason",
        "standardQRCode",
        "temporaryQRCode",
        "pin",
    ]
    assert body["@odata.type"] == "#microsoft.graph.qrCodePinAuthenticationMethod"
    assert body["isUsable"] is False
    assert body["methodUsabilityReason"] is None
    assert body["temporaryQRCode"] is None
    standard = body["standardQRCode"]
    assert standard["@odata.type"] == "#microsoft.graph.qrCode"
    assert standard["startDateTime"] == iso(start)
    assert standard["expireDateTime"] == iso(start + timedelta(days=365))
    assert standard["lastUsedDateTime"] == "0001-01-01T00:00:00Z"
    assert standard["createdDateTime"].endswith("Z")
    image = standard["image"]
    assert image["@odata.type"] == "#microsoft.graph.qrCodeImageDetails"
    assert image["errorCorrectionLevel"] == "l"
    assert isinstance(image["version"], int) and image["version"] >= 1
    assert body["pin"] == {
        "@odata.type": "#microsoft.graph.qrPin",
        "id": body["pin"]["id"],
        "code": "48207315",
        "forceChangePinNextSignIn": True,
        "createdDateTime": body["pin"]["createdDateTime"],
        "updatedDateTime": body["pin"]["updatedDateTime"],
    }
    assert graphsim.tenant.qr_method_creations[worker.id] == 1


def test_the_raw_content_and_the_svg_carry_the_qr_payload(graphsim, admin_app, worker) -> None:
    body = create_method(graphsim, admin_app, worker)
    image = body["standardQRCode"]["image"]

    raw = base64.b64decode(image["rawContent"]).decode("utf-8")
    prefix, upn, code_id, secret = raw.split("|")
    assert prefix == "ms-qrpin:v1"
    assert upn == worker.user_principal_name
    assert code_id == body["standardQRCode"]["id"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", secret)
    svg = base64.b64decode(image["binaryValue"]).decode("utf-8")
    assert svg.startswith("<svg ") and svg.endswith("</svg>")
    assert decode_svg(image["binaryValue"]) == raw


def test_each_code_gets_a_new_secret(graphsim, admin_app) -> None:
    first = create_method(graphsim, admin_app, add_user(graphsim.tenant))
    second = create_method(graphsim, admin_app, add_user(graphsim.tenant))
    secrets = [
        base64.b64decode(b["standardQRCode"]["image"]["rawContent"]).decode().split("|")[3]
        for b in (first, second)
    ]
    assert secrets[0] != secrets[1]


def test_it_generates_a_pin_of_the_policy_length_when_omitted(graphsim, admin_app, worker) -> None:
    graphsim.tenant.qr_policy.pin_length = 12
    body = create_method(graphsim, admin_app, worker, pin=None)
    assert re.fullmatch(r"[0-9]{12}", body["pin"]["code"])
    assert body["pin"]["forceChangePinNextSignIn"] is True


def test_it_accepts_dates_with_offsets(graphsim, admin_app, worker) -> None:
    body = {
        "standardQRCode": {
            "startDateTime": "2026-12-01T10:00:00+02:00",
            "expireDateTime": "2027-06-01T08:00:00.0000000Z",
        }
    }
    response = admin_app.put(QR.format(worker.user_principal_name), body)
    assert response.status_code == 201, response.text
    assert response.json()["standardQRCode"]["startDateTime"] == "2026-12-01T08:00:00Z"


@pytest.mark.parametrize(
    "standard",
    [
        None,
        {},
        # v1.0: both dates required (docs/graph-contract.md §1.3, §10)
        {"startDateTime": "2026-12-01T08:00:00Z"},
        {"expireDateTime": "2027-12-01T08:00:00Z"},
        {"startDateTime": "2026-12-01 08:00", "expireDateTime": "2027-12-01T08:00:00Z"},
        {"startDateTime": "2026-12-01T08:00:00", "expireDateTime": "2027-12-01T08:00:00Z"},
        {"startDateTime": "2026-12-01T08:00:00Z", "expireDateTime": "2026-12-01T08:00:00Z"},
        {"startDateTime": "2026-12-01T08:00:00Z", "expireDateTime": "2025-12-01T08:00:00Z"},
        # 396 days: over the 395-day maximum (docs/graph-contract.md §1.1)
        {"startDateTime": "2026-12-01T08:00:00Z", "expireDateTime": "2028-01-01T08:00:00Z"},
    ],
)
def test_it_rejects_missing_or_bad_dates(graphsim, admin_app, worker, standard) -> None:
    body = {} if standard is None else {"standardQRCode": standard}
    response = admin_app.put(QR.format(worker.id), body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "badRequest"
    assert worker.id not in graphsim.tenant.qr_methods


def test_it_accepts_exactly_395_days(graphsim, admin_app, worker) -> None:
    create_method(graphsim, admin_app, worker, days=395)


@pytest.mark.parametrize(
    "body",
    [
        {"@odata.type": "#microsoft.graph.qrCode"},
        {"temporaryQRCode": {"startDateTime": "2026-12-01T08:00:00Z"}},  # only standard + PIN
        {"isUsable": True},
        {"pin": {"code": "48207315", "forceChangePinNextSignIn": False}},
        {"pin": "48207315"},
    ],
)
def test_it_rejects_unknown_or_wrong_properties(graphsim, admin_app, worker, body) -> None:
    full = standard_body(sim_now(graphsim)) | body
    response = admin_app.put(QR.format(worker.id), full)
    assert response.status_code == 400, response.text


def test_it_rejects_a_body_that_is_not_json(admin_app, worker) -> None:
    response = admin_app.call(
        "PUT", QR.format(worker.id), data=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400


def test_a_second_active_method_is_a_conflict(graphsim, admin_app, worker) -> None:
    create_method(graphsim, admin_app, worker)
    response = admin_app.put(QR.format(worker.id), standard_body(sim_now(graphsim)))
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert graphsim.tenant.qr_method_creations[worker.id] == 1


def test_the_switch_answers_a_second_method_with_400(graphsim, admin_app, worker) -> None:
    create_method(graphsim, admin_app, worker)
    graphsim.sim.config.update({"undocumented_conflict_status": 400})
    response = admin_app.put(QR.format(worker.id), standard_body(sim_now(graphsim)))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "badRequest"
    assert graphsim.tenant.qr_method_creations[worker.id] == 1


def test_the_switch_takes_only_400_or_409(graphsim) -> None:
    with pytest.raises(ValueError, match="400 or 409"):
        graphsim.sim.config.update({"undocumented_conflict_status": 422})


def test_a_method_without_codes_is_still_active(graphsim, admin_app, worker) -> None:
    create_method(graphsim, admin_app, worker)
    assert admin_app.delete(QR.format(worker.id) + "/standardQRCode").status_code == 204
    response = admin_app.put(QR.format(worker.id), standard_body(sim_now(graphsim)))
    assert response.status_code == 409


def test_an_expired_method_can_be_replaced(graphsim, worker) -> None:
    api = app_caller(graphsim, RW)
    start = sim_now(graphsim) - timedelta(days=30)
    first = api.put(QR.format(worker.id), standard_body(start, days=10))
    assert first.status_code == 201  # already expired when created: allowed, dates are valid
    second = api.put(QR.format(worker.id), standard_body(sim_now(graphsim)))
    assert second.status_code == 201, second.text
    assert second.json()["id"] != first.json()["id"]
    assert graphsim.tenant.qr_method_creations[worker.id] == 2


def test_the_method_expires_with_the_simulator_clock(graphsim, worker) -> None:
    # One token for both sides of the shift (a token minted after it carries an `iat` that
    # pyjwt, on real time, finds in the future).
    api = Caller(graphsim, graphsim.issue_app_token(roles=[RW], lifetime_s=10 * 86400))
    create_method(graphsim, api, worker, days=2)
    graphsim.sim.shift_clock(3 * 86400)
    response = api.put(QR.format(worker.id), standard_body(sim_now(graphsim)))
    assert response.status_code == 201, response.text


def test_it_refuses_when_the_policy_is_disabled(graphsim, admin_app, worker) -> None:
    graphsim.tenant.qr_policy.state = "disabled"
    response = admin_app.put(QR.format(worker.id), standard_body(sim_now(graphsim)))
    assert response.status_code == 400
    assert "disabled" in response.json()["error"]["message"]


def test_it_refuses_a_user_the_policy_does_not_target(graphsim, admin_app, worker) -> None:
    tenant = graphsim.tenant
    included = Group(id=new_id(), display_name="QR users", member_ids=[])
    tenant.groups[included.id] = included
    tenant.qr_policy.include_targets = [
        {"targetType": "group", "id": included.id, "isRegistrationRequired": False}
    ]
    response = admin_app.put(QR.format(worker.id), standard_body(sim_now(graphsim)))
    assert response.status_code == 400

    # Nested membership counts.
    inner = Group(id=new_id(), display_name="Inner", member_ids=[worker.id])
    tenant.groups[inner.id] = inner
    included.member_ids.append(inner.id)
    assert admin_app.put(QR.format(worker.id), standard_body(sim_now(graphsim))).status_code == 201


def test_it_refuses_an_excluded_user(graphsim, admin_app, worker) -> None:
    graphsim.tenant.qr_policy.exclude_targets = [{"targetType": "user", "id": worker.id}]
    response = admin_app.put(QR.format(worker.id), standard_body(sim_now(graphsim)))
    assert response.status_code == 400


def test_it_refuses_an_unlicensed_user(graphsim, admin_app) -> None:
    user = add_user(graphsim.tenant, licensed=False)
    response = admin_app.put(QR.format(user.id), standard_body(sim_now(graphsim)))
    assert response.status_code == 400
    assert "license" in response.json()["error"]["message"]


def test_an_unknown_user_is_404(graphsim, admin_app) -> None:
    response = admin_app.put(QR.format(new_id()), standard_body(sim_now(graphsim)))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "Request_ResourceNotFound"


# --- get and delete -------------------------------------------------------------------------


@pytest.mark.parametrize(("version", "pin_code"), [("v1.0", None), ("beta", "")])
def test_get_never_returns_the_image_or_the_pin(graphsim, admin_app, worker, version, pin_code):
    created = create_method(graphsim, admin_app, worker)
    response = admin_app.get(QR.format(worker.id), version=version)

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == created["id"]
    assert body["@odata.type"] == "#microsoft.graph.qrCodePinAuthenticationMethod"
    assert ("createdDateTime" in body) == (version == "v1.0")
    assert ("lastUsedDateTime" in body) == (version == "beta")
    assert body["standardQRCode"]["image"] is None
    assert body["standardQRCode"]["id"] == created["standardQRCode"]["id"]
    assert body["temporaryQRCode"] is None
    assert body["pin"]["code"] == pin_code
    assert body["pin"]["forceChangePinNextSignIn"] is True
    assert "48207315" not in response.text
    assert "binaryValue" not in response.text


@pytest.mark.parametrize("version", ["v1.0", "beta"])
def test_get_without_a_method_is_404(admin_app, worker, version) -> None:
    response = admin_app.get(QR.format(worker.id), version=version)
    assert response.status_code == 404


@pytest.mark.parametrize("version", ["v1.0", "beta"])
def test_delete_removes_codes_and_pin(graphsim, admin_app, worker, version) -> None:
    create_method(graphsim, admin_app, worker)
    assert admin_app.delete(QR.format(worker.id), version=version).status_code == 204
    assert admin_app.get(QR.format(worker.id)).status_code == 404
    assert admin_app.delete(QR.format(worker.id)).status_code == 404
    # Deleted: a new method may be created.
    create_method(graphsim, admin_app, worker)


def test_me_paths_reach_the_signed_in_user(graphsim, worker) -> None:
    api = app_caller(graphsim, RW)
    create_method(graphsim, api, worker)
    me = user_caller(graphsim, worker.id, "UserAuthenticationMethod.Read")
    response = me.get("/me/authentication/qrCodePinMethod")
    assert response.status_code == 200
    assert response.json()["pin"]["code"] is None


# --- permissions (docs/graph-contract.md §1.9)
# ---------------------------------------------------------------------


@pytest.mark.parametrize("role", ["UserAuthMethod-QR.ReadWrite.All", RW])
def test_apps_may_write_with_either_listed_permission(graphsim, worker, role) -> None:
    create_method(graphsim, app_caller(graphsim, role), worker)


@pytest.mark.parametrize(
    "roles", [[], ["UserAuthenticationMethod.Read.All"], ["UserAuthMethod-QR.Read.All"]]
)
def test_apps_without_a_write_permission_get_403(graphsim, worker, roles) -> None:
    api = app_caller(graphsim, *roles)
    response = api.put(QR.format(worker.id), standard_body(sim_now(graphsim)))
    assert response.status_code == 403
    assert worker.id not in graphsim.tenant.qr_methods


@pytest.mark.parametrize(
    "role", ["UserAuthMethod-QR.Read.All", "UserAuthenticationMethod.Read.All", RW]
)
def test_apps_may_read_with_any_listed_permission(graphsim, worker, role) -> None:
    create_method(graphsim, app_caller(graphsim, RW), worker)
    assert app_caller(graphsim, role).get(QR.format(worker.id)).status_code == 200


def test_a_delegated_admin_needs_a_role_over_the_user(graphsim, worker) -> None:
    tenant = graphsim.tenant
    manager = add_user(tenant, "Store Manager")
    api = user_caller(graphsim, manager.id, RW)
    assert api.put(QR.format(worker.id), standard_body(sim_now(graphsim))).status_code == 403

    grant_scoped_role(tenant, manager.id, [worker.id], AUTHENTICATION_ADMINISTRATOR)
    create_method(graphsim, api, worker)

    other = add_user(tenant, "Other Store Worker")  # not in the manager's unit
    assert api.put(QR.format(other.id), standard_body(sim_now(graphsim))).status_code == 403


def test_a_delegated_admin_needs_the_all_scope_for_other_users(graphsim, worker) -> None:
    manager = add_user(graphsim.tenant, "Store Manager")
    grant_role(graphsim.tenant, manager.id, AUTHENTICATION_ADMINISTRATOR)
    api = user_caller(graphsim, manager.id, "UserAuthenticationMethod.ReadWrite")
    assert api.put(QR.format(worker.id), standard_body(sim_now(graphsim))).status_code == 403


def test_global_reader_may_read_but_not_write(graphsim, worker) -> None:
    create_method(graphsim, app_caller(graphsim, RW), worker)
    reader = add_user(graphsim.tenant, "Auditor")
    grant_role(graphsim.tenant, reader.id, GLOBAL_READER)
    api = user_caller(graphsim, reader.id, RW)
    assert api.get(QR.format(worker.id)).status_code == 200
    assert api.delete(QR.format(worker.id)).status_code == 403


def test_the_scope_is_checked_before_the_user_exists(graphsim) -> None:
    api = app_caller(graphsim, "User.Read.All")
    assert api.get(QR.format(new_id())).status_code == 403
