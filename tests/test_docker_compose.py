"""The production deployment files: docker-compose.yml, Dockerfile and .env.example.

Docker is not available where the suite runs, so these read the files: the services
docs/architecture.md §3 names, their commands, health checks and start-up order, and the
configuration of docs/architecture.md §4.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("web", "worker", "beat")

# docs/architecture.md §4 plus the variables the settings and `make run` read.
DOCUMENTED_VARIABLES = (
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "VAULT_KEYS",
    "ENTRA_TENANT_ID",
    "ENTRA_CLIENT_ID",
    "ENTRA_CLIENT_SECRET",
    "ENTRA_CLIENT_CERTIFICATE",
    "ENTRA_AUTHORITY_HOST",
    "GRAPH_ENDPOINT",
    "GRAPH_WRITES_PER_SECOND",
    "GRAPH_RATE_LIMITER_URL",
    "LANYARD_ADMIN_GROUP_ID",
    "REQUESTS_CA_BUNDLE",
    "DEBUG",
    "PORT",
    "CSRF_TRUSTED_ORIGINS",
    "LANYARD_DEFAULT_REGION",
    "POSTGRES_PASSWORD",
    "GRAPHSIM_PORT",
    "GRAPHSIM_BROWSER_PORT",
    "LANYARD_DEMO",
    "HTTPS_ALLOW_OFF",
    "QR_PAYLOAD_VIEW_MINUTES",
)
# Packages the product image must not carry: test and lint tools, and graphsim's own dependency.
NOT_IN_THE_IMAGE = ("pytest", "pytest-django", "pytest-xdist", "playwright", "ruff", "werkzeug",
                    "import-linter", "pypdfium2", "pypdf", "responses", "time-machine")  # fmt: skip


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


def command_of(service: dict) -> str:
    command = service["command"]
    return command if isinstance(command, str) else " ".join(command)


def healthcheck_of(service: dict) -> str:
    test = service["healthcheck"]["test"]
    return test if isinstance(test, str) else " ".join(test)


def test_it_defines_the_production_services(services: dict) -> None:
    assert {"web", "worker", "beat", "redis", "postgres"} <= set(services)


def test_it_serves_the_portal_with_gunicorn_on_port_8000(services: dict) -> None:
    command = command_of(services["web"])
    assert command.startswith("gunicorn portal.wsgi")
    assert "--bind=0.0.0.0:8000" in command
    assert any(port.endswith(":8000") for port in services["web"]["ports"])


def test_it_runs_the_standard_celery_processes(services: dict) -> None:
    assert command_of(services["worker"]).startswith("celery -A portal worker")
    assert command_of(services["beat"]).startswith("celery -A portal beat")


def test_it_keeps_beat_schedule_in_a_volume(compose: dict, services: dict) -> None:
    schedule = re.search(r"--schedule[= ](\S+)", command_of(services["beat"])).group(1)
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in services["beat"]["volumes"]}
    assert str(Path(schedule).parent) in mounts
    assert mounts[str(Path(schedule).parent)] in compose["volumes"]


def test_it_migrates_once_before_the_app_starts(services: dict) -> None:
    assert command_of(services["migrate"]) == "python manage.py migrate --noinput"
    assert services["migrate"]["restart"] == "no"
    for name in APP_SERVICES:
        depends_on = services[name]["depends_on"]
        assert depends_on["migrate"] == {"condition": "service_completed_successfully"}, name


@pytest.mark.parametrize("name", [*APP_SERVICES, "migrate"])
def test_it_starts_the_app_after_healthy_postgres_and_redis(services: dict, name: str) -> None:
    depends_on = services[name]["depends_on"]
    assert depends_on["postgres"] == {"condition": "service_healthy"}
    assert depends_on["redis"] == {"condition": "service_healthy"}


@pytest.mark.parametrize("name", [*APP_SERVICES, "migrate"])
def test_it_gives_every_app_process_the_same_configuration(services: dict, name: str) -> None:
    service = services[name]
    assert service["env_file"] == ".env"
    assert service["image"] == "lanyard:latest"
    environment = service["environment"]
    assert re.fullmatch(
        r"postgres://lanyard:\$\{POSTGRES_PASSWORD:\?[^}]+\}@postgres:5432/lanyard",
        environment["DATABASE_URL"],
    )
    assert environment["CELERY_BROKER_URL"] == "redis://redis:6379/0"


def test_it_runs_redis_7_with_a_health_check(services: dict) -> None:
    redis = services["redis"]
    assert redis["image"] == "redis:7"
    assert healthcheck_of(redis) == "CMD redis-cli ping"


def test_it_runs_postgres_16_with_a_health_check_and_a_volume(
    compose: dict, services: dict
) -> None:
    postgres = services["postgres"]
    assert postgres["image"] == "postgres:16"
    assert "pg_isready -U lanyard -d lanyard" in healthcheck_of(postgres)
    assert postgres["environment"]["POSTGRES_DB"] == "lanyard"
    assert postgres["environment"]["POSTGRES_USER"] == "lanyard"
    volume, path = postgres["volumes"][0].split(":")
    assert path == "/var/lib/postgresql/data"
    assert volume in compose["volumes"]


def test_it_checks_web_health_through_healthz(services: dict) -> None:
    test = services["web"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    script = test[3]
    ast.parse(script)  # the folded YAML block must still be valid Python
    assert "http://127.0.0.1:8000/healthz" in script
    assert "'X-Forwarded-Proto': 'https'" in script


def test_it_checks_worker_health_with_a_celery_ping(services: dict) -> None:
    check = healthcheck_of(services["worker"])
    assert "celery -A portal inspect ping --destination celery@$$HOSTNAME" in check


def test_it_builds_a_non_root_image_from_the_lock_file() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.12-slim$", dockerfile, re.MULTILINE)
    assert "pip install -r requirements.lock" in dockerfile
    users = re.findall(r"^USER (\S+)$", dockerfile, re.MULTILINE)
    assert users == ["lanyard"]
    assert "portal.wsgi" in dockerfile


def test_it_keeps_secrets_and_local_state_out_of_the_image() -> None:
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    for entry in (".env", ".venv", "var", ".git"):
        assert entry in ignored


def pins(lock: str) -> dict[str, str]:
    text = (ROOT / lock).read_text(encoding="utf-8")
    return dict(re.findall(r"^([a-z0-9][a-z0-9._-]*)==(\S+)", text, re.MULTILINE))


def test_the_image_installs_only_the_runtime_lock() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "requirements-dev.lock" not in dockerfile
    runtime = pins("requirements.lock")
    assert {"django", "celery", "msal", "gunicorn", "reportlab"} <= set(runtime)
    assert not set(NOT_IN_THE_IMAGE) & set(runtime)


def test_the_dev_lock_adds_graphsim_and_the_tools_to_the_same_runtime_pins() -> None:
    runtime, dev = pins("requirements.lock"), pins("requirements-dev.lock")
    assert {name: dev.get(name) for name in runtime} == runtime
    assert set(NOT_IN_THE_IMAGE) <= set(dev)


def test_the_product_does_not_import_graphsims_dependencies() -> None:
    for app in ("portal", "provisioning", "badges"):
        for path in (ROOT / app).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [f"{node.module}.{alias.name}" for alias in node.names]
                else:
                    continue
                for name in names:
                    assert name.split(".")[0] not in {"werkzeug", "jwt"}, f"{path}: {name}"
                    if name.split(".")[0] == "graphsim":
                        assert name.startswith("graphsim.demo"), f"{path}: {name}"


def test_the_image_carries_only_graphsims_demo_constants() -> None:
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert "graphsim/*" in ignored
    assert {"!graphsim/__init__.py", "!graphsim/demo.py"} <= set(ignored)
    assert "requirements-dev.lock" in ignored


@pytest.mark.parametrize("variable", DOCUMENTED_VARIABLES)
def test_it_documents_each_variable_in_env_example(variable: str) -> None:
    lines = (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
    setting = re.compile(rf"^#? ?{variable}=")
    positions = [i for i, line in enumerate(lines) if setting.match(line)]
    assert positions, f"{variable} is missing from .env.example"
    # Each variable's first line follows a comment that explains it (not another setting).
    previous = lines[positions[0] - 1]
    assert previous.startswith("# ") and "=" not in previous.split()[1], previous


def test_it_leaves_every_variable_unset_in_env_example() -> None:
    """Copying .env.example to .env must keep the demo working: nothing is set until uncommented."""
    lines = (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
    assert [line for line in lines if line and not line.startswith("#")] == []


def test_compose_never_chooses_demo_mode() -> None:
    """Demo mode is explicit and never the production deployment's (issue 10, finding 7)."""
    assert "LANYARD_DEMO" not in (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    assert "LANYARD_DEMO" not in (ROOT / "Dockerfile").read_text(encoding="utf-8")


def test_it_reserves_worker_processes_for_managers(services: dict) -> None:
    """Managers' actions and jobs (the `manager` queue) never wait for a process that a bulk task
    holds: a worker consumes only that queue (docs/architecture.md §6)."""
    command = services["worker-manager"]["command"]
    assert command[:4] == ["celery", "-A", "portal", "worker"]
    assert command[command.index("-Q") + 1] == "manager"
    assert "manager@" in services["worker-manager"]["healthcheck"]["test"][1]
