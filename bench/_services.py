"""What the service-backed benchmarks share: their own PostgreSQL database and Redis db, and
starting and stopping real `celery -A portal worker` processes. Skipped by `make bench` (its name
starts with "_"); the scripts import it from their own directory."""

from __future__ import annotations

import os
import signal
import subprocess


def database_create(database_url: str) -> None:
    """Create the benchmark's PostgreSQL database if it is missing."""
    import psycopg

    name = database_url.rsplit("/", 1)[1]
    admin = database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def services_prepare(database_url: str, broker_url: str) -> None:
    """Create the benchmark's database if missing and empty its Redis db (broker and limiter)."""
    import redis

    database_create(database_url)
    redis.Redis.from_url(broker_url).flushdb()


def django_setup(
    *,
    graphsim_url: str,
    ca_bundle: str,
    var_dir: str,
    database_url: str,
    broker_url: str,
    **settings: str,
) -> None:
    """Configure this process as the portal in demo mode against graphsim, with the benchmark's
    database and Redis (broker and rate limiters), plus `settings` (environment variables), and
    migrate. Without a real tenant's id, as the workers get it (`child_env`)."""
    os.environ.update(
        DJANGO_SETTINGS_MODULE="portal.settings",
        LANYARD_DEMO="true",
        DATABASE_URL=database_url,
        CELERY_BROKER_URL=broker_url,
        GRAPH_RATE_LIMITER_URL=broker_url,
        ENTRA_AUTHORITY_HOST=graphsim_url,
        GRAPH_ENDPOINT=graphsim_url,
        REQUESTS_CA_BUNDLE=ca_bundle,
        LANYARD_VAR_DIR=var_dir,
        LOG_LEVEL="WARNING",
        **settings,
    )
    os.environ.pop("ENTRA_TENANT_ID", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def child_env() -> dict[str, str]:
    """The environment for a worker or command: ours, without a real tenant's id, unbuffered."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENTRA_TENANT")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def workers_stop(workers: list[subprocess.Popen]) -> None:
    """SIGTERM every worker's process group (a warm shutdown), SIGKILL what is left after 30 s."""
    for worker in workers:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
