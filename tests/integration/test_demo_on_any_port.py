"""`make run`'s script on ports other than the defaults: a store manager signs in on graphsim's
page and reaches their store in Chromium.

The real `scripts/run-demo` runs in a copy of the repository (its own `var/`), with PORT=8765 and
graphsim on two free ports rather than 8443/8444, so it neither disturbs nor depends on a demo
already running on this machine. Every process it starts is stopped afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
PORT = 8765
START_SECONDS = 240  # migrate + collectstatic + sync_directory + three processes, on a busy machine

# What the demo must not inherit from the integration suite's environment: it runs in demo mode
# with its own SQLite database, file broker and graphsim.
INHERITED_PREFIXES = ("ENTRA_", "GRAPH_", "LANYARD_", "PYTEST_", "DJANGO_", "GRAPHSIM_")
INHERITED_NAMES = {"DATABASE_URL", "CELERY_BROKER_URL", "REQUESTS_CA_BUNDLE", "SECRET_KEY",
                   "VAULT_KEYS", "DEBUG", "HTTPS", "ALLOWED_HOSTS", "PORT"}  # fmt: skip

# Stands in for `make` in the copy: run-demo's `make venv` must not install anything into the
# environment this test runs in (the copy's .venv is that environment, already installed).
MAKE_SHIM = """#!/bin/sh
if [ "$*" = "-s --no-print-directory venv" ]; then exit 0; fi
echo "test make shim: unexpected 'make $*'" >&2
exit 2
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@dataclass
class Demo:
    url: str
    graphsim_browser_url: str
    process: subprocess.Popen
    log_path: Path

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2, allow_redirects=False).status_code < 500
    except requests.RequestException:
        return False


def wait_until_running(demo: Demo) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if demo.process.poll() is not None:
            pytest.fail(f"run-demo exited ({demo.process.returncode}):\n{demo.log[-6000:]}")
        if "Lanyard is running" in demo.log and answers(f"{demo.url}/healthz"):
            return
        time.sleep(0.5)
    pytest.fail(f"run-demo did not answer within {START_SECONDS} s:\n{demo.log[-6000:]}")


def stop(demo: Demo, ports: list[int]) -> None:
    """SIGTERM to run-demo (it stops its children), then SIGKILL to whatever is left."""
    if demo.process.poll() is None:
        demo.process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            demo.process.wait(timeout=60)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(demo.process.pid, signal.SIGKILL)  # its process group: worker pool, server...
    demo.process.wait(timeout=30)
    deadline = time.monotonic() + 30
    while not all(port_is_free(port) for port in ports):
        assert time.monotonic() < deadline, f"ports still in use after stopping: {ports}"
        time.sleep(0.2)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    checkout = tmp_path / "lanyard"
    shutil.copytree(
        ROOT,
        checkout,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "var", ".env", "__pycache__", ".pytest_cache", ".ruff_cache",
            "tests", "bench", "docs",
        ),
    )  # fmt: skip
    (checkout / ".venv").symlink_to(Path(sys.prefix))
    shim_dir = tmp_path / "bin"
    shim_dir.mkdir()
    (shim_dir / "make").write_text(MAKE_SHIM)
    (shim_dir / "make").chmod(0o755)

    graphsim_port, graphsim_browser_port = free_port(), free_port()
    ports = [PORT, graphsim_port, graphsim_browser_port]
    if not port_is_free(PORT):
        pytest.fail(f"port {PORT} is in use; this test needs it for the demo's web server")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(INHERITED_PREFIXES) and key not in INHERITED_NAMES
    }
    env.update(
        PORT=str(PORT),
        GRAPHSIM_PORT=str(graphsim_port),
        GRAPHSIM_BROWSER_PORT=str(graphsim_browser_port),
        PATH=f"{shim_dir}{os.pathsep}{env.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
    )
    log_path = tmp_path / "run-demo.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["bash", "scripts/run-demo"],
            cwd=checkout,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    running = Demo(
        url=f"http://127.0.0.1:{PORT}",
        graphsim_browser_url=f"http://127.0.0.1:{graphsim_browser_port}",
        process=process,
        log_path=log_path,
    )
    try:
        wait_until_running(running)
        yield running
    finally:
        stop(running, ports)


def test_a_manager_signs_in_on_a_demo_served_on_other_ports(demo: Demo, browser) -> None:
    page = browser.new_page(viewport={"width": 1024, "height": 768})
    page.goto(demo.url + "/")
    page.get_by_role("link", name="Sign in with Microsoft Entra").click()
    page.wait_for_url(f"{demo.graphsim_browser_url}/**")
    assert "AADSTS50011" not in page.content()
    page.get_by_role("button", name="Marie Dupont").click()
    page.wait_for_url(demo.url + "/")
    page.get_by_role("heading", name="Your stores").wait_for()
    store = page.locator("ul.store-list a").first
    name = store.inner_text().strip()
    store.click()
    page.get_by_role("heading", name=name).wait_for()
    assert page.locator("table.workers tbody tr").count() > 10
