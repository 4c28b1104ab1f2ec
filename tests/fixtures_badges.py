"""pytest plugin: badges and kiosks — QR payloads in the vault for the personas' workers, and
kiosk browsers (a test client holding a kiosk's device credential, paired the real way)."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest
import zxingcpp
from django.conf import settings
from django.test import Client
from django.utils import timezone
from PIL import Image
from pypdf import PdfReader

from graphsim.testing import GraphsimHandle


@dataclass
class Badged:
    """A worker of a store whose QR payload is in the vault."""

    au_id: str
    user_id: str
    display_name: str
    payload: bytes
    secret_id: int
    expires: object


def store_payload(user_id: str, *, created_by=None, payload: bytes | None = None) -> Badged:
    """Put a QR payload for `user_id` in the vault and record the code's expiry, as a QR
    create would (the payload format is Entra's: ms-qrpin:v1|UPN|…)."""
    from provisioning import vault
    from provisioning.models import AUMembership, DirectoryUser, VaultSecret, WorkerMethodState

    worker = DirectoryUser.objects.get(id=user_id)
    payload = payload or f"ms-qrpin:v1|{worker.user_principal_name}|{user_id[:8]}|0001".encode()
    secret = vault.secret_store(
        kind=VaultSecret.Kind.QR_PAYLOAD,
        owner_id=user_id,
        value=payload.decode("utf-8", errors="surrogateescape"),
        created_by=created_by,
    )
    expires = timezone.now() + timedelta(days=365)
    WorkerMethodState.objects.update_or_create(
        user_id=user_id,
        defaults={
            "has_qr_method": True,
            "standard_start": timezone.now(),
            "standard_expires": expires,
            "refreshed_at": timezone.now(),
        },
    )
    au_id = (
        AUMembership.objects.filter(user_id=user_id)
        .order_by("administrative_unit__display_name")
        .values_list("administrative_unit_id", flat=True)
        .first()
    )
    return Badged(au_id or "", user_id, worker.display_name, payload, secret.pk, expires)


def store_pin(user_id: str, *, created_by, pin: str = "73914862") -> int:
    from provisioning import vault
    from provisioning.models import VaultSecret

    return vault.secret_store(
        kind=VaultSecret.Kind.PIN, owner_id=user_id, value=pin, created_by=created_by
    ).pk


def _members(graphsim: GraphsimHandle, au_id: str, count: int) -> list[str]:
    from provisioning.models import AUMembership

    ids = AUMembership.objects.filter(administrative_unit_id=au_id).order_by("user_id")
    return list(ids.values_list("user_id", flat=True)[:count])


@pytest.fixture
def alice_badged(directory, alice_store, alice_user) -> list[Badged]:
    """Three workers of alice's first store with a QR payload in the vault, as alice's actions
    left them (a manager draws only payloads they created: docs/architecture.md §5)."""
    return [
        store_payload(uid, created_by=alice_user) for uid in _members(directory, alice_store, 3)
    ]


@pytest.fixture
def bob_badged(directory, bob_store, bob) -> list[Badged]:
    bob_user = _portal_user(bob)
    return [store_payload(uid, created_by=bob_user) for uid in _members(directory, bob_store, 2)]


def _portal_user(persona):
    from portal.models import User

    user, _ = User.objects.get_or_create(
        entra_object_id=persona.user_id.lower(),
        defaults={
            "username": persona.user_id.lower(),
            "user_principal_name": persona.upn,
            "display_name": persona.display_name,
        },
    )
    return user


@pytest.fixture
def alice_user(alice, directory):
    """alice's portal user row (as sign-in creates it), for calling services directly."""
    return _portal_user(alice)


@pytest.fixture(autouse=True)
def _kiosk_pairing_throttle_reset() -> None:
    """Wrong pairing codes are throttled per address; each test starts with a clean slate."""
    from tests.conftest import cache_clear

    cache_clear()


@pytest.fixture
def pair_kiosk(db) -> Callable[..., Client]:
    """`pair_kiosk([au_id, ...])` → a fresh browser (test client) paired as a kiosk of those
    stores through the real pairing code exchange."""
    from badges import kiosks
    from portal.models import User
    from provisioning.models import AdministrativeUnit

    def pair(au_ids: list[str], name: str = "Back office PC") -> Client:
        # An IT admin registers it: a registrar who manages none of its stores would leave the
        # kiosk suspended (badges/kiosks.py `kiosk_standing_check`).
        creator, _ = User.objects.get_or_create(
            username="kiosk-registrar", defaults={"is_it_admin": True}
        )
        stores = list(AdministrativeUnit.objects.filter(id__in=au_ids))
        _, code = kiosks.kiosk_pairing_start(name=name, stores=stores, created_by=creator)
        browser = Client()
        response = browser.post("/badges/kiosk/pair", {"code": code})
        assert response.status_code == 302, response.content.decode()
        assert settings.KIOSK_COOKIE_NAME in browser.cookies
        return browser

    return pair


@pytest.fixture
def alice_kiosk(pair_kiosk, alice_store) -> Client:
    return pair_kiosk([alice_store])


# PDFs are read with pypdfium2 (PDFium, the engine of Chromium's viewer) and pypdf, installed
# with the development dependencies: the suite needs no system package such as poppler-utils.


def rasterise(pdf: bytes, dpi: int = 300) -> list[Image.Image]:
    """Every page of the PDF as a greyscale image at `dpi`, antialiased as a printer driver or a
    scanner would see it."""
    assert pdf.startswith(b"%PDF")
    document = pdfium.PdfDocument(pdf)
    try:
        return [
            page.render(scale=dpi / 72, grayscale=True).to_pil().convert("L") for page in document
        ]
    finally:
        document.close()


def decoded_qr_codes(pdf: bytes, dpi: int = 300) -> list[bytes]:
    """Every QR code of the PDF, read by a real reader (zxing-cpp) from a 300 dpi rasterisation."""
    return [
        result.bytes
        for image in rasterise(pdf, dpi)
        for result in zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
    ]


def pdf_text(pdf: bytes) -> str:
    """The PDF's text layer, page after page, as a PDF reader extracts it."""
    document = pdfium.PdfDocument(pdf)
    try:
        return "\n".join(page.get_textpage().get_text_range() for page in document)
    finally:
        document.close()


@dataclass(frozen=True)
class Word:
    text: str
    height: float  # in points: the font's ascent to descent, so it grows with the type size


def pdf_words(pdf: bytes) -> list[Word]:
    """The words of the PDF's text layer (runs of characters between spaces and line breaks),
    each with the height of its box."""
    words: list[Word] = []
    document = pdfium.PdfDocument(pdf)
    try:
        for page in document:
            text_page = page.get_textpage()
            chars: list[str] = []
            bottom, top = float("inf"), float("-inf")
            for index in range(text_page.count_chars()):
                char = chr(pdfium_c.FPDFText_GetUnicode(text_page, index))
                if char.isspace() or not char.isprintable():
                    if chars:
                        words.append(Word("".join(chars), top - bottom))
                    chars, bottom, top = [], float("inf"), float("-inf")
                    continue
                _left, char_bottom, _right, char_top = text_page.get_charbox(index, loose=True)
                chars.append(char)
                bottom, top = min(bottom, char_bottom), max(top, char_top)
            if chars:
                words.append(Word("".join(chars), top - bottom))
    finally:
        document.close()
    return words


FONT_PROGRAMS = ("/FontFile", "/FontFile2", "/FontFile3")  # Type 1, TrueType, CFF/OpenType


@dataclass(frozen=True)
class Font:
    name: str  # the BaseFont, e.g. "ABCDEF+LanyardSans-Regular"
    embedded: bool
    subset: bool  # the name has the six-letter subset tag
    to_unicode: bool  # text in this font can be extracted


def pdf_fonts(pdf: bytes) -> list[Font]:
    """The fonts of the PDF's pages, each font object once (what `pdffonts` lists)."""
    fonts: dict[object, Font] = {}
    for page in PdfReader(io.BytesIO(pdf)).pages:
        for reference in page["/Resources"]["/Font"].values():
            font = reference.get_object()
            name = str(font["/BaseFont"]).lstrip("/")
            descriptor = font.get("/FontDescriptor")
            descriptor = descriptor.get_object() if descriptor is not None else {}
            fonts[getattr(reference, "idnum", id(font))] = Font(
                name=name,
                embedded=any(
                    key in descriptor for key in ("/FontFile", "/FontFile2", "/FontFile3")
                ),
                subset=re.match(r"[A-Z]{6}\+", name) is not None,
                to_unicode="/ToUnicode" in font,
            )
    return list(fonts.values())
