"""The IT admin's pages: bulk jobs, QR policy, MFA coverage, audit log."""

from __future__ import annotations

app_name = "itadmin"

urlpatterns: list = []
