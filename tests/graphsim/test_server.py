"""graphsim as its own process (`python -m graphsim serve`) and its control API."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import msal
import pytest
import requests

from graphsim import demo
from graphsim.testing import running_graphsim

ROOT = Path(__file__).resolve().parents[2]


def control(graphsim, method, path, **kwargs):
    return graphsim.session().request(method, f"{graphsim.base_url}/_graphsim/{path}", **kwargs)


# -- control API (in process) ----------------------------------------------------------------


def test_healthz(graphsim):
    assert control(graphsim, "GET", "healthz").text == "ok\n"
    assert requests.get(f"{graphsim.browser_url}/_graphsim/healthz", timeout=5).status_code == 200


def test_config_can_be_read_and_patched(graphsim):
    assert control(graphsim, "GET", "config").json()["write_budget_per_s"] == 20
    r = control(graphsim, "PATCH", "config", json={"latency_max_ms": 5, "max_page_size": 10})
    assert r.status_code == 200
    assert graphsim.sim.config.max_page_size == 10
    assert control(graphsim, "PATCH", "config", json={"nope": 1}).status_code == 400
    assert control(graphsim, "PATCH", "config", json={"max_page_size": "ten"}).status_code == 400


def test_the_doc_gap_switches_are_set_through_the_control_api(graphsim):
    switches = {
        "undocumented_conflict_status": 400,
        "pin_reset_requires_code": True,
        "pin_reset_uses_code": True,
    }
    defaults = control(graphsim, "GET", "config").json()
    assert {k: defaults[k] for k in switches} == {
        "undocumented_conflict_status": 409,
        "pin_reset_requires_code": False,
        "pin_reset_uses_code": False,
    }
    assert control(graphsim, "PATCH", "config", json=switches).status_code == 200
    assert graphsim.sim.config.undocumented_conflict_status == 400
    assert graphsim.sim.config.pin_reset_requires_code is True
    bad = control(graphsim, "PATCH", "config", json={"undocumented_conflict_status": 418})
    assert bad.status_code == 400


def test_stats_clock_storm_and_reset(graphsim):
    session = graphsim.session(graphsim.issue_app_token())
    session.get(graphsim.graph_url("/users?$top=1"))
    assert control(graphsim, "GET", "stats").json()["requests"] == {"GET 200": 1}
    shifted = control(graphsim, "POST", "clock", json={"shiftSeconds": 86400}).json()
    assert shifted["offsetSeconds"] == 86400
    # The simulated clock rules token lifetimes too: yesterday's token has expired.
    assert session.get(graphsim.graph_url("/users?$top=1")).status_code == 401
    session = graphsim.session(graphsim.issue_app_token())
    assert control(graphsim, "POST", "storm", json={"seconds": 5}).status_code == 200
    r = session.get(graphsim.graph_url("/users?$top=1"))
    assert r.status_code == 429, r.text
    worker = next(iter(graphsim.tenant.qr_methods))
    del graphsim.tenant.users[worker]
    assert control(graphsim, "POST", "reset").status_code == 200
    assert worker in graphsim.tenant.users
    assert graphsim.sim.clock_offset.total_seconds() == 0
    session = graphsim.session(graphsim.issue_app_token())
    assert session.get(graphsim.graph_url("/users?$top=1")).status_code == 200


def test_auth_method_state_includes_secrets(graphsim):
    worker = next(iter(graphsim.tenant.qr_methods))
    state = control(graphsim, "GET", f"users/{worker}/authMethods").json()
    assert state["qrCodePinMethod"]["pin"]["code"] == graphsim.tenant.qr_methods[worker].pin.code
    assert state["qrMethodCreations"] == 0
    assert control(graphsim, "GET", "users/nobody/authMethods").status_code == 404


def test_control_key_protects_the_api(graphsim_tls):
    with running_graphsim(tls_dir=graphsim_tls.directory, browser=False,
                          control_key="s3cret") as gs:  # fmt: skip
        assert control(gs, "GET", "healthz").status_code == 200
        assert control(gs, "GET", "config").status_code == 401
        ok = control(gs, "GET", "config", headers={"X-Graphsim-Control-Key": "s3cret"})
        assert ok.status_code == 200


# -- the CLI ---------------------------------------------------------------------------------


def start(tmp_path, *extra):
    command = [sys.executable, "-m", "graphsim", "serve", "--port", "0", "--browser-port", "0",
               "--tls-dir", str(tmp_path / "tls"), "--state", str(tmp_path / "state.json"),
               *extra]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    found = re.match(r"graphsim: (https://\S+) authority (\S+) browser (\S+) ca-bundle (\S+)", line)
    assert found, line
    return process, found.group(1), found.group(2), found.group(3), found.group(4)


def stop(process):
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "stopped" in out


def test_cli_serves_persists_and_restarts(tmp_path, monkeypatch):
    process, base, authority, browser, bundle = start(tmp_path)
    try:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", bundle)
        assert requests.get(f"{base}/_graphsim/healthz", timeout=5).status_code == 200
        assert requests.get(f"{browser}/_graphsim/healthz", timeout=5).status_code == 200
        app = msal.ConfidentialClientApplication(
            demo.DEMO_CLIENT_ID, client_credential=demo.DEMO_CLIENT_SECRET,
            authority=authority, instance_discovery=False,
        )  # fmt: skip
        token = app.acquire_token_for_client(["https://graph.microsoft.com/.default"])
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        users = requests.get(f"{base}/v1.0/users?$select=id&$top=999", headers=headers).json()
        state = json.loads((tmp_path / "state.json").read_text())
        target = next(u["id"] for u in users["value"]
                      if u["id"] not in state["tenant"]["phone_methods"])  # fmt: skip
        r = requests.post(
            f"{base}/v1.0/users/{target}/authentication/phoneMethods",
            json={"phoneNumber": "+31 612345678", "phoneType": "mobile"},
            headers=headers,
            timeout=5,
        )
        assert r.status_code == 201, r.text
        deadline = time.monotonic() + 5
        while (
            target
            not in json.loads((tmp_path / "state.json").read_text())["tenant"]["phone_methods"]
        ):
            assert time.monotonic() < deadline, "state was not saved"
            time.sleep(0.1)
    finally:
        stop(process)

    process, base, *_ = start(tmp_path)
    try:
        # Same signing key and same state after a restart: the old token still works.
        r = requests.get(f"{base}/v1.0/users/{target}/authentication/phoneMethods",
                         headers=headers, timeout=5)  # fmt: skip
        assert r.status_code == 200
        assert r.json()["value"][0]["phoneNumber"] == "+31 612345678"
    finally:
        stop(process)


def test_cli_registers_the_portals_redirect_uris_also_in_a_saved_state(tmp_path, monkeypatch):
    def authorize_status(authority, redirect_uri):
        app = msal.ConfidentialClientApplication(
            demo.DEMO_CLIENT_ID, client_credential=demo.DEMO_CLIENT_SECRET,
            authority=authority, instance_discovery=False,
        )  # fmt: skip
        flow = app.initiate_auth_code_flow(["User.Read"], redirect_uri=redirect_uri)
        response = requests.get(flow["auth_uri"], timeout=10)
        return response.status_code, "AADSTS50011" in response.text

    on_8765 = "http://127.0.0.1:8765/auth/callback"
    on_8766 = "http://127.0.0.1:8766/auth/callback"
    process, _, authority, _, bundle = start(tmp_path, "--redirect-uri", on_8765)
    try:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", bundle)
        assert authorize_status(authority, on_8765) == (200, False)
        assert authorize_status(authority, on_8766) == (400, True)
    finally:
        stop(process)

    # Restarted on its saved state for a portal on another port.
    process, _, authority, _, _ = start(tmp_path, "--redirect-uri", on_8766)
    try:
        assert authorize_status(authority, on_8766) == (200, False)
    finally:
        stop(process)


def test_cli_refuses_open_control_api_off_loopback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "graphsim", "serve", "--host", "0.0.0.0", "--tls-dir",
         str(tmp_path / "tls"), "--state", ""],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
        timeout=30,
    )  # fmt: skip
    assert result.returncode == 2
    assert "control-key" in result.stderr


@pytest.mark.parametrize("bad", ["--latency-ms=250-80", "--tenant=huge"])
def test_cli_rejects_bad_options(tmp_path, bad):
    result = subprocess.run(
        [sys.executable, "-m", "graphsim", "serve", bad, "--tls-dir", str(tmp_path)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
        timeout=30,
    )  # fmt: skip
    assert result.returncode == 2
