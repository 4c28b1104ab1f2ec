"""A browser test leaves no database connection behind: the test database can be dropped at the
end of the session (no "test_lanyard is being accessed by other users")."""

from __future__ import annotations

from django.db import connection, connections

from portal.models import User
from tests.integration.conftest import chromium, wait_for


def test_it_closes_the_connections_opened_while_the_browser_ran(
    services_configured, monkeypatch, transactional_db
):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "1")
    with chromium():
        assert User.objects.count() == 0
        opened = connections["default"]
        assert opened.connection is not None
        backend_pid = opened.connection.info.backend_pid

    assert opened.connection is None

    # PostgreSQL agrees: that session ends (its backend exits just after the client closes).
    def session_gone() -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [backend_pid])
            return cursor.fetchone()[0] == 0

    wait_for(session_gone, timeout=10, message=f"backend {backend_pid} is still connected")
