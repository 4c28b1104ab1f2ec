"""portal/http.py: the throttles shared by the views (PIN reveals, kiosk pairing)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from portal.http import Throttle

# Throttle counters live in the shared cache: a database table unless the broker is Redis.
pytestmark = pytest.mark.django_db

BURST = Throttle("test-burst", limit=3, window_seconds=60)


def test_a_throttle_counts_within_its_window_then_forgets():
    start = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False) as traveller:
        BURST.reset("someone")
        for _ in range(3):
            assert not BURST.exceeded("someone")
            BURST.count("someone")
        assert BURST.exceeded("someone")
        assert not BURST.exceeded("someone-else")
        traveller.shift(timedelta(seconds=61))
        assert not BURST.exceeded("someone")


def test_a_burst_across_a_minute_boundary_is_not_split_in_two():
    # The window starts at the first event, not on the clock's minute: 3 events just before
    # 12:01 still count just after it.
    just_before = datetime(2026, 11, 30, 12, 0, 59, 500000, tzinfo=UTC)
    with time_machine.travel(just_before, tick=False) as traveller:
        BURST.reset("someone")
        for _ in range(3):
            BURST.count("someone")
        traveller.shift(timedelta(seconds=1))
        assert BURST.exceeded("someone")
