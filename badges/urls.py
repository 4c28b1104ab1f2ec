"""Badge sheets, PIN slips, print queues and kiosks."""

from __future__ import annotations

app_name = "badges"

urlpatterns: list = []
