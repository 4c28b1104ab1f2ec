"""Badge sheets, PIN slips, print queues and kiosks (mounted at /badges/).

Two areas: the manager's pages (normal sign-in, store scope), and /badges/kiosk/, which a kiosk
reaches with its device credential cookie only — never with a user's session.
"""

from __future__ import annotations

from django.urls import path

from portal import badge_views, kiosk_views

app_name = "badges"

STORE = "stores/<str:au_id>/"
SHEET = STORE + "sheets/<int:job_id>/"

urlpatterns = [
    # A manager's badge sheets and PIN slips for one store.
    path(STORE + "sheets/", badge_views.sheet_list, name="sheet-list"),
    path(STORE + "sheets/new", badge_views.sheet_create, name="sheet-create"),
    path(SHEET, badge_views.sheet_detail, name="sheet-detail"),
    path(SHEET + "sheet.pdf", badge_views.sheet_pdf, name="sheet-pdf"),
    path(SHEET + "printed", badge_views.sheet_printed, name="sheet-printed"),
    path(SHEET + "cancel", badge_views.sheet_cancel, name="sheet-cancel"),
    path(STORE + "pin-slips", badge_views.pin_slips, name="pin-slips"),
    path(
        STORE + "workers/<str:user_id>/forgotten",
        badge_views.forgotten_badge,
        name="forgotten-badge",
    ),
    # Kiosk registration and status (managers and IT admins).
    path("kiosks/", badge_views.kiosk_list, name="kiosk-list"),
    path("kiosks/new", badge_views.kiosk_register, name="kiosk-register"),
    path("kiosks/<int:kiosk_id>/revoke", badge_views.kiosk_revoke, name="kiosk-revoke"),
    path("kiosks/<int:kiosk_id>/confirm", badge_views.kiosk_confirm, name="kiosk-confirm"),
    # The kiosk itself (device credential only).
    path("kiosk/pair", kiosk_views.kiosk_pair, name="kiosk-pair"),
    path("kiosk/", kiosk_views.kiosk_home, name="kiosk-home"),
    path("kiosk/sheets/<int:job_id>.pdf", kiosk_views.kiosk_sheet_pdf, name="kiosk-sheet-pdf"),
    path(
        "kiosk/sheets/<int:job_id>/printed",
        kiosk_views.kiosk_sheet_printed,
        name="kiosk-sheet-printed",
    ),
]
