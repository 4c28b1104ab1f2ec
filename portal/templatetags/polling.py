"""How often htmx fragments poll (docs/architecture.md §11.1).

A manager's action usually finishes within a second or two of the click, so its status fragment
polls every 150 ms while the action is young and backs off to once a second: the result shows
as soon as it is there, and a slow action costs no more polls than before. Each poll renders the
fragment again with its next delay (`hx-trigger="load delay:…"`), so the schedule follows the
action's age, read from the row already loaded (no extra query), and needs no script.
"""

from __future__ import annotations

from datetime import datetime

from django import template
from django.conf import settings
from django.utils import timezone

register = template.Library()

# (age of the action below which, delay between polls), in seconds; then once a second.
OPERATION_POLL_SCHEDULE = ((3.0, 0.15), (8.0, 0.3), (20.0, 0.6))
OPERATION_POLL_SLOWEST = 1.0


def operation_poll_seconds(created_at: datetime) -> float:
    """The delay before the next poll of an action created at `created_at`."""
    if settings.OPERATION_POLL_FIXED:
        return OPERATION_POLL_SLOWEST
    age = (timezone.now() - created_at).total_seconds()
    for below, delay in OPERATION_POLL_SCHEDULE:
        if age < below:
            return delay
    return OPERATION_POLL_SLOWEST


@register.filter
def poll_trigger(created_at: datetime) -> str:
    """The hx-trigger of an unfinished action's status fragment: `load delay:150ms`."""
    return f"load delay:{round(operation_poll_seconds(created_at) * 1000)}ms"


@register.simple_tag
def kiosk_poll_trigger() -> str:
    """The hx-trigger of a kiosk's print queue: `every 1s` (settings.KIOSK_POLL_SECONDS)."""
    return f"every {settings.KIOSK_POLL_SECONDS}s"
