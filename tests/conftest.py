"""Shared fixtures; graphsim (a real simulator over HTTPS) comes from tests/fixtures_graphsim.py."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from pathlib import Path

import pytest

# Every tests/fixtures_*.py is a plugin: graphsim, the portal's personas, and each area's own.
pytest_plugins = sorted(
    f"tests.{path.stem}" for path in Path(__file__).parent.glob("fixtures_*.py")
)


def cache_clear() -> None:
    """Empty the caches (throttle counters, the QR policy) between tests.

    Outside demo-with-Redis the "shared" cache is a database table (settings.CACHES): a test
    without database access cannot reach it, and cannot have written to it either.
    """
    from django.core.cache import caches

    for alias in ("default", "shared"):
        with contextlib.suppress(RuntimeError):  # pytest-django: this test may not use the db
            caches[alias].clear()


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _check_address(sock: socket.socket, address) -> None:
    if sock.family == getattr(socket, "AF_UNIX", None):
        return
    host = address[0] if isinstance(address, tuple) else address
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        if host == "localhost":
            return
    raise RuntimeError(f"Tests may not reach the network (tried to connect to {host!r})")


@pytest.fixture(autouse=True)
def _msal_http_cache_clear() -> None:
    """MSAL replays a token endpoint's error answer for a while (its throttling cache): one
    test's refused request must not answer the next test's identical one."""
    from provisioning.graph.tokens import http_cache_clear

    http_cache_clear()


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection beyond loopback fails: tests talk to graphsim and local services only."""

    def guarded_connect(sock, address):
        _check_address(sock, address)
        return _real_connect(sock, address)

    def guarded_connect_ex(sock, address):
        _check_address(sock, address)
        return _real_connect_ex(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
