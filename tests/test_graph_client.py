"""Graph client edge cases that graphsim cannot produce, plus the pure parts (errors, models).

Everything else about the client is tested against graphsim over HTTPS (test_graph_*_graphsim).
`responses` stands in for Graph only where a malformed or unusual answer is the point.
"""

from __future__ import annotations

import json
import pickle
from datetime import UTC, datetime
from pathlib import Path

import pytest
import responses

from provisioning.graph import operations as ops
from provisioning.graph.client import GraphClient, GraphRequest
from provisioning.graph.config import GraphConfig
from provisioning.graph.errors import (
    GraphBadRequest,
    GraphConflict,
    GraphError,
    GraphNotFound,
    GraphThrottled,
    GraphUnavailable,
    InteractionRequired,
    error_for_status,
)
from provisioning.graph.models import QrCode, QrMethod, Secret

GRAPH = "https://graph.example.test"
EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "graph-examples"


class StaticTokens:
    def __init__(self, kind="app"):
        self.kind = kind
        self.invalidated = []

    def get_token(self):
        return f"token-{len(self.invalidated)}"

    def invalidate(self, token):
        self.invalidated.append(token)


def make_client(kind="app", **config):
    cfg = GraphConfig(
        tenant_id="t", client_id="c", client_secret="s", graph_endpoint=GRAPH, **config
    )
    return GraphClient(cfg, StaticTokens(kind), sleep=lambda s: None)


def example(name):
    with open(f"{EXAMPLES}/{name}") as f:
        return json.load(f)


def test_it_keys_errors_on_the_code_and_keeps_the_request_id():
    body = example("error-throttled.response.json")
    error = error_for_status(429, body, {"Retry-After": "2.128"})
    assert isinstance(error, GraphThrottled)
    assert error.retry_after == pytest.approx(2.128)
    assert error.code == "TooManyRequests"
    assert error.inner_code == "429"
    assert error.request_id == "94fb3b52-452a-4535-a601-69e0a90e3aa2"
    assert not error.permanent
    assert "94fb3b52-452a-4535-a601-69e0a90e3aa2" in str(error)
    assert "2.128" in str(error)


@pytest.mark.parametrize(
    ("status", "cls", "permanent"),
    [
        (400, GraphBadRequest, True),
        (404, GraphNotFound, True),
        (409, GraphConflict, True),
        (503, GraphUnavailable, False),
        (504, GraphUnavailable, False),
        (418, GraphError, True),
        (500, GraphError, False),
    ],
)
def test_it_maps_statuses_to_typed_errors(status, cls, permanent):
    error = error_for_status(status, example("error-notfound.response.json"))
    assert isinstance(error, cls)
    assert error.permanent is permanent


def test_an_error_message_never_carries_graph_text_or_secrets():
    body = {
        "error": {
            "code": "badRequest",
            "message": "PIN 48207315 is invalid for payload bXMtcXJwaW46djF8YXZlcnkuaG93YXJk",
            "innerError": {"request-id": "rid-1"},
        }
    }
    error = error_for_status(400, body, {})
    text = f"{error} {error!r}"
    assert "48207315" not in text
    assert "bXMtcXJwaW46" not in text
    assert "invalid" in text  # plain language: "rejected the request as invalid"
    assert "rid-1" in text
    assert "48207315" not in (error.detail or "")


@responses.activate
def test_it_reads_a_malformed_error_body_without_failing():
    responses.get(
        f"{GRAPH}/v1.0/users/x",
        body="<html>Bad gateway</html>",
        status=400,
        headers={"request-id": "rid-html"},
    )
    with pytest.raises(GraphBadRequest) as info:
        make_client().get("/users/x")
    assert info.value.code is None
    assert info.value.request_id == "rid-html"


@responses.activate
def test_a_claims_challenge_asks_the_manager_to_sign_in_again():
    challenge = (
        'Bearer authorization_uri="https://login", error="insufficient_claims", '
        'claims="eyJhY2Nlc3NfdG9rZW4iOnt9fQ=="'
    )
    responses.get(
        f"{GRAPH}/v1.0/me",
        status=401,
        json={"error": {"code": "InvalidAuthenticationToken"}},
        headers={"WWW-Authenticate": challenge},
    )
    with pytest.raises(InteractionRequired) as info:
        make_client("delegated").get("/me")
    # Graph sends the claims base64-encoded; MSAL wants the JSON they encode.
    assert info.value.claims == '{"access_token":{}}'
    assert "sign in again" in str(info.value)


@responses.activate
def test_a_nextlink_to_another_host_is_not_followed():
    responses.get(
        f"{GRAPH}/v1.0/users",
        json={
            "value": [{"id": "1"}],
            "@odata.nextLink": "https://evil.example/v1.0/users?$skiptoken=x",
        },
    )
    with pytest.raises(GraphError, match="another host"):
        list(make_client().iter_values(GraphRequest("GET", "/users")))
    assert len(responses.calls) == 1


@responses.activate
def test_a_batch_item_missing_from_the_answer_is_reported_unknown():
    responses.post(
        f"{GRAPH}/v1.0/$batch",
        json={
            "responses": [
                {"id": "0", "status": 204, "headers": {}},
            ]
        },
    )
    requests_ = [ops.qr_method_delete_request("a"), ops.qr_method_delete_request("b")]
    first, second = make_client().batch(requests_)
    assert first.ok
    assert second.status is None
    assert not second.error.permanent


def test_secrets_are_masked_in_models_and_refuse_pickling():
    method = QrMethod.from_graph(example("qrcodepin-create.response.json"))
    assert method.has_secrets
    assert method.pin.secret_code.reveal() == "48207315"
    text = f"{method!r} {method.standard_qr_code.image} {method.pin.secret_code}"
    assert "48207315" not in text
    assert "PHN2Zy" not in text
    assert "bXMtcXJwaW46" not in text
    with pytest.raises(TypeError):
        pickle.dumps(Secret("1234"))


def test_a_batch_request_does_not_show_the_pin_in_its_repr():
    req = ops.qr_method_create_request(
        "u",
        start=datetime(2026, 1, 1, tzinfo=UTC),
        expire=datetime(2027, 1, 1, tzinfo=UTC),
        pin="48207315",
    )
    assert req.body["pin"] == {"code": "48207315"}
    assert "48207315" not in repr(req)


def test_it_reads_both_forms_of_a_qr_code_get():
    bare = QrCode.from_graph(example("qrcode-get.response.json"))
    wrapped = QrCode.from_graph(example("qrcode-get.response.doc-wrapped.json"))
    assert bare.id == wrapped.id == "5f0e6b8a-3c2d-4e7f-9a1b-2c3d4e5f6a7b"
    assert wrapped.expire_date_time == datetime(2026, 11, 20, 9, 15, tzinfo=UTC)
    assert wrapped.image is None


def test_odata_options_survive_as_a_relative_url():
    assert ops.url("/users", select="id,displayName", filter="startswith(displayName,'A b')") == (
        "/users?$select=id,displayName&$filter=startswith(displayName,'A%20b')"
    )
