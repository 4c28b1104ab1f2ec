"""The control API under `/_graphsim/` (HTTPS listener), for tests and benchmarks in other
processes: read/patch the config, read stats, reset the tenant, shift the clock, start a 429
storm, inspect a user's authentication methods, register an app certificate.

Protection: when the simulator was started with a control key (`--control-key`), every call but
`healthz` must send it in `X-Graphsim-Control-Key`. Without a key the API is open; the CLI only
allows that when listening on a loopback address (see `__main__`).
"""

from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from graphsim.identity import register_certificate
from graphsim.model import QrCode

if TYPE_CHECKING:
    from graphsim.app import Simulator

CONTROL_KEY_HEADER = "X-Graphsim-Control-Key"


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status=status,
                    content_type="application/json; charset=utf-8")  # fmt: skip


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _qr_code(code: QrCode | None) -> dict[str, Any] | None:
    if code is None:
        return None
    return {
        "id": code.id,
        "startDateTime": _iso(code.start_date_time),
        "expireDateTime": _iso(code.expire_date_time),
        "createdDateTime": _iso(code.created_date_time),
        "lastUsedDateTime": _iso(code.last_used_date_time),
    }


def auth_method_state(sim: Simulator, key: str) -> dict[str, Any] | None:
    """Everything the simulated cloud knows about a user's methods, secrets included."""
    tenant = sim.tenant
    with tenant.lock:
        user = tenant.user_by_id_or_upn(key)
        if user is None:
            return None
        qr = tenant.qr_methods.get(user.id)
        prefs = tenant.sign_in_preferences.get(user.id)
        return {
            "userId": user.id,
            "userPrincipalName": user.user_principal_name,
            "qrCodePinMethod": None if qr is None else {
                "id": qr.id,
                "createdDateTime": _iso(qr.created_date_time),
                "standardQRCode": _qr_code(qr.standard),
                "temporaryQRCode": _qr_code(qr.temporary),
                "pin": {
                    "id": qr.pin.id,
                    "code": qr.pin.code,
                    "forceChangePinNextSignIn": qr.pin.force_change_pin_next_sign_in,
                    "createdDateTime": _iso(qr.pin.created_date_time),
                    "updatedDateTime": _iso(qr.pin.updated_date_time),
                },
            },
            "phoneMethods": [
                {"id": m.id, "phoneType": m.phone_type, "phoneNumber": m.phone_number,
                 "smsSignInState": m.sms_sign_in_state}
                for m in tenant.phone_methods.get(user.id, {}).values()
            ],
            "signInPreferences": None if prefs is None else {
                "isSystemPreferredAuthenticationMethodEnabled":
                    prefs.is_system_preferred_authentication_method_enabled,
                "userPreferredMethodForSecondaryAuthentication":
                    prefs.user_preferred_method_for_secondary_authentication,
            },
            "otherMethods": list(tenant.other_methods.get(user.id, [])),
            "qrMethodCreations": sim.stats.qr_method_creations.get(user.id, 0),
        }  # fmt: skip


def handle(sim: Simulator, request: Request) -> Response:
    parts = request.path.strip("/").split("/")[1:]
    route = "/".join(parts)
    method = request.method
    if route == "healthz" and method == "GET":
        return Response("ok\n", content_type="text/plain; charset=utf-8")
    if sim.control_key is not None:
        given = request.headers.get(CONTROL_KEY_HEADER, "")
        if not secrets.compare_digest(given, sim.control_key):
            return _json({"error": "control key required"}, 401)
    try:
        payload = request.get_json(silent=False) if request.get_data() else {}
    except Exception:  # werkzeug raises BadRequest for malformed JSON
        return _json({"error": "invalid JSON"}, 400)
    if route == "config" and method == "GET":
        return _json(sim.config.as_dict())
    if route == "config" and method == "PATCH":
        try:
            sim.config.update(payload or {})
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)
        return _json(sim.config.as_dict())
    if route == "stats" and method == "GET":
        return _json(sim.stats.snapshot())
    if route == "reset" and method == "POST":
        tenant = None
        if (payload or {}).get("tenant") == "large":
            from graphsim.tenantgen import large_tenant

            tenant = large_tenant(int(payload.get("users", 10_000)))
        sim.reset(tenant)
        return _json({"tenantId": sim.tenant.id, "users": len(sim.tenant.users)})
    if route == "clock" and method == "GET":
        return _json({"now": sim.now().isoformat(),
                      "offsetSeconds": sim.clock_offset.total_seconds()})  # fmt: skip
    if route == "clock" and method == "POST":
        seconds = (payload or {}).get("shiftSeconds")
        if not isinstance(seconds, int | float) or isinstance(seconds, bool):
            return _json({"error": "shiftSeconds (number) is required"}, 400)
        sim.shift_clock(seconds)
        return _json({"now": sim.now().isoformat(),
                      "offsetSeconds": sim.clock_offset.total_seconds()})  # fmt: skip
    if route == "storm" and method == "POST":
        seconds = (payload or {}).get("seconds")
        if not isinstance(seconds, int | float) or isinstance(seconds, bool):
            return _json({"error": "seconds (number) is required"}, 400)
        sim.faults.start_storm(seconds)
        return _json({"stormRemainingSeconds": sim.faults.storm_remaining_s()})
    if len(parts) == 3 and parts[0] == "users" and parts[2] == "authMethods" and method == "GET":
        state = auth_method_state(sim, parts[1])
        return _json(state) if state is not None else _json({"error": "no such user"}, 404)
    if len(parts) == 3 and parts[0] == "apps" and parts[2] == "certificates" and method == "POST":
        app = sim.tenant.apps.get(parts[1])
        pem = (payload or {}).get("certificatePem")
        if app is None or not isinstance(pem, str):
            return _json({"error": "unknown app or missing certificatePem"}, 400)
        register_certificate(app, pem)
        return _json({"clientId": app.client_id, "x5t": app.certificate_thumbprint_sha1})
    return _json({"error": "not found"}, 404)
