"""The integration suite: real PostgreSQL, Redis, Celery worker processes and Chromium.

`make test-integration` sets DATABASE_URL (PostgreSQL) and CELERY_BROKER_URL (Redis) for this
process; the worker processes started here get the same services, the test database pytest-django
created, and the test session's graphsim (over HTTPS, trusted through REQUESTS_CA_BUNDLE).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection, connections

from graphsim.testing import GraphsimHandle

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_PATH = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def services_configured() -> None:
    """Fail loudly (never skip) when the suite is run without its real services."""
    engine = django_settings.DATABASES["default"]["ENGINE"]
    if "postgresql" not in engine or not django_settings.CELERY_BROKER_URL.startswith("redis"):
        pytest.fail(
            "The integration suite needs DATABASE_URL (PostgreSQL) and CELERY_BROKER_URL "
            "(Redis): run it with `make test-integration`."
        )


def worker_environment(graphsim: GraphsimHandle, tmp_path: Path) -> dict[str, str]:
    """What a worker process needs to share this test's database, broker and graphsim."""
    database = connection.settings_dict
    url = (
        f"postgres://{database['USER']}@{database['HOST'] or '127.0.0.1'}:"
        f"{database['PORT'] or 5432}/{database['NAME']}"
    )
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("ENTRA_", "PYTEST_"))
    }
    env.update(
        DATABASE_URL=url,
        CELERY_BROKER_URL=django_settings.CELERY_BROKER_URL,
        GRAPH_RATE_LIMITER_URL=django_settings.CELERY_BROKER_URL,
        ENTRA_AUTHORITY_HOST=graphsim.base_url,
        GRAPH_ENDPOINT=graphsim.base_url,
        REQUESTS_CA_BUNDLE=graphsim.ca_bundle,
        LANYARD_VAR_DIR=str(tmp_path / "worker-var"),
        PYTHONUNBUFFERED="1",
    )
    return env


class WorkerProcess:
    """A real `celery -A portal worker` process, its log in a file."""

    def __init__(self, env: dict[str, str], log_path: Path, concurrency: int = 2) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "portal", "worker",
                "--loglevel=INFO", f"--concurrency={concurrency}",
                "--without-gossip", "--without-mingle",
            ],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if " ready." in self.log:
                return
            if self.process.poll() is not None:
                pytest.fail(f"The Celery worker exited at start-up:\n{self.log[-4000:]}")
            time.sleep(0.2)
        pytest.fail(f"The Celery worker was not ready within {timeout} s:\n{self.log[-4000:]}")

    def kill(self) -> None:
        """kill -9 the whole worker (main process and pool children)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


@pytest.fixture
def start_worker(
    services_configured, portal_graph: GraphsimHandle, transactional_db, tmp_path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start real worker processes against this test's database, Redis and graphsim."""
    workers: list[WorkerProcess] = []

    def start(concurrency: int = 2) -> WorkerProcess:
        worker = WorkerProcess(
            worker_environment(portal_graph, tmp_path),
            tmp_path / f"worker-{len(workers)}.log",
            concurrency=concurrency,
        )
        workers.append(worker)
        worker.wait_ready()
        return worker

    yield start
    for worker in workers:
        worker.stop()


def wait_for(condition: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(message)


@contextmanager
def chromium() -> Iterator:
    """Debian's Chromium driven by Playwright (never a downloaded browser).

    While Playwright's sync API is active, an event loop runs on this thread, and Django then keeps
    the thread's database connections apart from its usual ones (asgiref's Local turns into a
    context variable): the connections the test opens meanwhile are not the ones pytest-django
    closes before dropping the test database. Left open, they make that drop fail at the end of
    the session ("test_lanyard is being accessed by other users") and leave the database behind,
    so they are closed here, while the loop still runs and they can still be reached.
    """
    from playwright.sync_api import sync_playwright

    if not os.access(CHROMIUM_PATH, os.X_OK):
        pytest.fail(
            f"No Chromium at {CHROMIUM_PATH}: apt-get install chromium, or set CHROMIUM_PATH"
        )
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM_PATH,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            yield instance
        finally:
            instance.close()
            connections.close_all()


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """Chromium for one test (see `chromium`)."""
    # Playwright's sync API keeps an event loop on this thread; the test's own ORM calls are
    # still synchronous, so Django's async guard would refuse them.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "1")
    with chromium() as instance:
        yield instance
