"""The store manager's pages: workers, their QR code + PIN and phone methods, activity."""

from __future__ import annotations

app_name = "manager"

urlpatterns: list = []
