"""Configuration: defaults boot the demo; every misconfiguration is a named system check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.checks import Tags, run_checks
from django.test import override_settings

ROOT = Path(__file__).resolve().parent.parent


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ENTRA_", "GRAPH_", "LANYARD_", "DATABASE_URL", "CELERY_"))
        and key
        not in {
            "SECRET_KEY",
            "VAULT_KEYS",
            "DEBUG",
            "HTTPS",
            "ALLOWED_HOSTS",
            "DJANGO_SETTINGS_MODULE",
        }
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def production_env(tmp_path: Path) -> dict[str, str]:
    return {
        "ENTRA_TENANT_ID": "11111111-2222-3333-4444-555555555555",
        "ENTRA_CLIENT_ID": "66666666-7777-8888-9999-000000000000",
        "ENTRA_CLIENT_SECRET": "a-client-secret",
        "LANYARD_ADMIN_GROUP_ID": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        "SECRET_KEY": Fernet.generate_key().decode() * 2,
        "VAULT_KEYS": Fernet.generate_key().decode(),
        "ALLOWED_HOSTS": "lanyard.example.com",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "LANYARD_VAR_DIR": str(tmp_path / "var"),
    }


def error_ids(**overrides) -> set[str]:
    with override_settings(**overrides):
        return {message.id for message in run_checks(tags=[Tags.security])}


DEMO = {"LANYARD_DEMO": "true"}


def test_it_boots_the_demo_with_no_configuration(tmp_path):
    result = manage("check", env={**DEMO, "LANYARD_VAR_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_the_demo_talks_to_graphsim_on_graphsim_port(tmp_path):
    show = (
        "from django.conf import settings; "
        "print(settings.ENTRA_AUTHORITY_HOST, settings.GRAPH_ENDPOINT)"
    )
    env = {**DEMO, "LANYARD_VAR_DIR": str(tmp_path), "GRAPHSIM_PORT": "8543"}
    result = manage("shell", "-c", show, env=env)
    assert result.returncode == 0, result.stderr
    last_line = result.stdout.strip().splitlines()[-1]
    assert last_line.split() == ["https://127.0.0.1:8543", "https://127.0.0.1:8543"]


def test_it_passes_check_deploy_with_a_production_environment(tmp_path):
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_it_names_a_boolean_that_is_neither_true_nor_false(tmp_path):
    result = manage("check", env={**DEMO, "DEBUG": "maybe", "LANYARD_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "lanyard.E001" in result.stderr
    assert "DEBUG" in result.stderr and "neither true nor false" in result.stderr


def test_it_names_a_number_that_is_not_a_number(tmp_path):
    env = {**DEMO, "GRAPH_WRITES_PER_SECOND": "fast", "LANYARD_VAR_DIR": str(tmp_path)}
    result = manage("check", env=env)
    assert result.returncode != 0
    assert "GRAPH_WRITES_PER_SECOND" in result.stderr


def test_it_requires_production_secrets(tmp_path):
    env = production_env(tmp_path)
    del env["SECRET_KEY"], env["VAULT_KEYS"], env["ENTRA_CLIENT_SECRET"]
    result = manage("check", env=env)
    assert result.returncode != 0
    for check_id in ("lanyard.E002", "lanyard.E003", "lanyard.E005"):
        assert check_id in result.stderr
    assert "Traceback" not in result.stderr


def test_it_warns_check_deploy_about_demo_mode(tmp_path):
    result = manage("check", "--deploy", env={**DEMO, "LANYARD_VAR_DIR": str(tmp_path)})
    assert "lanyard.W001" in result.stdout + result.stderr


def test_it_rejects_an_invalid_vault_key():
    assert "lanyard.E003" in error_ids(VAULT_KEYS=["not-a-fernet-key"])


def test_it_accepts_rotated_vault_keys():
    keys = [Fernet.generate_key().decode(), Fernet.generate_key().decode()]
    assert "lanyard.E003" not in error_ids(VAULT_KEYS=keys)


def test_it_rejects_a_graph_endpoint_that_is_not_https():
    assert "lanyard.E007" in error_ids(GRAPH_ENDPOINT="http://graph.example.com")
    assert "lanyard.E007" in error_ids(ENTRA_AUTHORITY_HOST="https://login.example.com/tenant")


@pytest.mark.parametrize(
    ("content", "problem"),
    [(None, "cannot read"), (b"not a pem", "no unencrypted PEM private key")],
)
def test_it_explains_an_unusable_client_certificate(tmp_path, content, problem):
    path = tmp_path / "client.pem"
    if content is not None:
        path.write_bytes(content)
    with override_settings(DEMO_MODE=False, ENTRA_CLIENT_CERTIFICATE=str(path)):
        messages = [m for m in run_checks(tags=[Tags.security]) if m.id == "lanyard.E006"]
    assert messages and problem in messages[0].msg


def test_it_requires_the_admin_group_in_production():
    with override_settings(DEMO_MODE=False, LANYARD_ADMIN_GROUP_ID=""):
        assert "lanyard.E008" in {m.id for m in run_checks(tags=[Tags.security])}


def test_the_wsgi_app_refuses_to_start_misconfigured(tmp_path):
    env = production_env(tmp_path)
    del env["SECRET_KEY"]
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ENTRA_", "SECRET_KEY", "LANYARD_", "DJANGO_SETTINGS_MODULE"))
    }
    result = subprocess.run(
        [sys.executable, "-c", "import portal.wsgi"],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "will not start" in result.stderr and "lanyard.E002" in result.stderr


# -- the production guard (issue 10, finding 7) ---------------------------------------------


@pytest.mark.parametrize(
    ("change", "check_id"),
    [
        ({"ENTRA_TENANT_ID": None}, "lanyard.E009"),  # no longer means "demo"
        ({"DEBUG": "true"}, "lanyard.E010"),
        (
            {"SECRET_KEY": "demo-only-insecure-secret-key-set-SECRET_KEY-in-production"},
            "lanyard.E011",
        ),  # fmt: skip
        ({"VAULT_KEYS": "ZGVtby1vbmx5LXZhdWx0LWtleS1ub3QtZm9yLXByb2Q="}, "lanyard.E012"),
        ({"HTTPS": "false"}, "lanyard.E013"),
    ],
)
def test_production_refuses_to_start_with_demo_settings(tmp_path, change, check_id):
    """The attack: a production portal started with a demo's unsafe settings."""
    env = production_env(tmp_path)
    for name, value in change.items():
        if value is None:
            del env[name]
        else:
            env[name] = value
    result = manage("migrate", "--check", env=env)
    assert result.returncode != 0
    assert check_id in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_https_off_is_allowed_only_explicitly(tmp_path):
    env = {**production_env(tmp_path), "HTTPS": "false", "HTTPS_ALLOW_OFF": "true"}
    result = manage("check", env=env)
    assert result.returncode == 0, result.stderr


def test_demo_mode_and_a_tenant_are_exclusive(tmp_path):
    env = {**production_env(tmp_path), **DEMO}
    result = manage("check", env=env)
    assert result.returncode != 0 and "LANYARD_DEMO" in result.stderr


def test_error_reports_hide_connection_urls_and_secrets():
    from django.views.debug import get_default_exception_reporter_filter

    with override_settings(
        DATABASE_URL="postgres://lanyard:hunter2@db/lanyard",
        CELERY_BROKER_URL="redis://:hunter2@redis:6379/0",
        GRAPH_RATE_LIMITER_URL="redis://:hunter2@redis:6379/0",
    ):
        shown = get_default_exception_reporter_filter().get_safe_settings()
    text = repr(shown)
    assert "hunter2" not in text
    for name in ("DATABASE_URL", "DATABASES", "CELERY_BROKER_URL", "VAULT_KEYS", "SECRET_KEY"):
        assert name in shown
    assert shown["DEBUG"] is False  # ordinary settings stay readable


def test_a_bulk_lease_shorter_than_three_heartbeats_is_refused():
    assert "lanyard.E030" in error_ids(BULK_LEASE_SECONDS=5, BULK_HEARTBEAT_SECONDS=2)
    assert "lanyard.E030" not in error_ids(BULK_LEASE_SECONDS=6, BULK_HEARTBEAT_SECONDS=2)
