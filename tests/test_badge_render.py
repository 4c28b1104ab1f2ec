"""Real PDFs: rasterised with PDFium (pypdfium2), every QR code read back with zxing-cpp and
compared byte for byte with its payload; fonts (pypdf) and text checked in the PDF itself."""

from __future__ import annotations

import base64
import hashlib
import io
import re
import struct
import unicodedata
from collections import Counter
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
import zxingcpp
from pypdf import PdfReader
from reportlab.pdfbase.ttfonts import TTFontFile

from badges import layouts, render
from badges.render import BadgeData, PinSlipData, render_badges, render_pin_slips
from tests.fixtures_badges import pdf_fonts, pdf_text, pdf_words, rasterise

# Names in eight scripts, with the hard cases: combining-heavy Latin, Vietnamese stacked
# diacritics, Arabic joining and the lam-alef/Allah ligatures, Hebrew (RTL), CJK without spaces.
NAMES = [
    "Zoë Ångström-Løvaas",
    "Nguyễn Thị Minh Khai",
    "Дмитрий Соколов",
    "Αλέξανδρος Παπαδόπουλος",
    "王小明",
    "山田 太郎",
    "김민준",
    "محمد عبد الله",
    "שרה כהן",
]
PIN = "80264913"
PARIS = ZoneInfo("Europe/Paris")


def payload(i: int) -> bytes:
    """The shape graphsim returns: prefix | UPN | qrCodeId | 43-character secret. One has raw
    non-ASCII bytes in its opaque part, to prove byte-mode round trips."""
    secret = base64.urlsafe_b64encode(hashlib.sha256(f"badge-{i}".encode()).digest()).rstrip(b"=")
    if i == 3:
        secret += "é\x00".encode()
    return (
        f"ms-qrpin:v1|worker{i:05d}@contoso.onmicrosoft.com|"
        f"1a253da5-1c1c-2d2d-3e3e-{i:012x}|".encode()
        + secret
    )


def make_badges() -> list[BadgeData]:
    return [
        BadgeData(
            display_name=name,
            employee_id=f"E{10_000 + i}",
            store_name="Store 042 – Paris Rivoli",
            valid_until=(
                datetime(2026, 11, 23, 18, 30, tzinfo=PARIS)
                if i % 4 == 2
                else datetime(2027, 11, 23, 18, 30, tzinfo=PARIS)
            ),
            payload=payload(i),
            temporary=i % 4 == 2,
        )
        for i, name in enumerate(NAMES)
    ]


BADGES = make_badges()


@pytest.fixture(scope="module")
def pdfs() -> dict[str, bytes]:
    return {name: render_badges(BADGES, name) for name in layouts.LAYOUT_NAMES}


def payloads_per_page(layout: str) -> list[list[bytes]]:
    per_page = layouts.page_layout(layout).per_page
    return [
        [badge.payload for badge in BADGES[i : i + per_page]]
        for i in range(0, len(BADGES), per_page)
    ]


@pytest.mark.parametrize(
    ("layout", "dpi"),
    [
        (layouts.CR80, 300),
        (layouts.CR80, 150),  # the smallest code, at a low-end scanner's resolution
        (layouts.SHEET_A4, 300),
        (layouts.SHEET_LETTER, 300),
        (layouts.LABEL_4X3, 300),
    ],
)
def test_it_prints_codes_a_real_reader_decodes_to_the_exact_payload(pdfs, layout, dpi):
    pages = rasterise(pdfs[layout], dpi)
    expected = payloads_per_page(layout)
    assert len(pages) == len(expected)

    for page, wanted in zip(pages, expected, strict=True):
        found = zxingcpp.read_barcodes(page, formats=zxingcpp.BarcodeFormat.QRCode)
        assert Counter(result.bytes for result in found) == Counter(wanted)
        assert {result.ec_level for result in found} == {"Q"}


def test_it_prints_the_qr_code_at_least_two_inches_wide_on_paper(pdfs):
    dpi = 300
    page = rasterise(pdfs[layouts.SHEET_A4], dpi)[0]
    found = zxingcpp.read_barcodes(page, formats=zxingcpp.BarcodeFormat.QRCode)

    for result in found:
        corners = result.position
        width = abs(corners.top_right.x - corners.top_left.x)
        # zxing reports the corners of the dark symbol, quiet zone excluded.
        assert width / dpi >= 1.98


def code_to_glyph(program: bytes) -> list[int]:
    """The format-6 (first code 0) cmap reportlab writes into every subset it embeds."""
    num_tables = struct.unpack_from(">H", program, 4)[0]
    for i in range(num_tables):
        tag, _checksum, offset, _length = struct.unpack_from(">4sIII", program, 12 + 16 * i)
        if tag == b"cmap":
            subtable = offset + struct.unpack_from(">I", program, offset + 8)[0]
            fmt, _len, _lang, first, count = struct.unpack_from(">5H", program, subtable)
            assert (fmt, first) == (6, 0)
            return list(struct.unpack_from(f">{count}H", program, subtable + 10))
    raise AssertionError("embedded font has no cmap")


def embedded_coverage(pdf: bytes) -> set[str]:
    """Characters the PDF's embedded fonts can draw with a real outline: the ToUnicode map
    of each font, joined with the glyphs of its embedded TrueType program."""
    drawable = set()
    reader = PdfReader(io.BytesIO(pdf))
    for page in reader.pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            assert font["/Subtype"] == "/TrueType"
            program = font["/FontDescriptor"]["/FontFile2"].get_data()
            face = TTFontFile(io.BytesIO(program), validate=0)
            cmap = font["/ToUnicode"].get_data().decode("latin-1")
            for code, uni in re.findall(r"<([0-9A-F]{2})> <([0-9A-F]{4,8})>", cmap):
                glyphs = code_to_glyph(program)
                code = int(code, 16)
                glyph = glyphs[code] if code < len(glyphs) else 0
                has_outline = (
                    0 < glyph < len(face.glyphPos) - 1
                    and face.glyphPos[glyph + 1] > face.glyphPos[glyph]
                )
                if has_outline:
                    drawable.add(chr(int(uni, 16)))
    return drawable


@pytest.mark.parametrize("layout", layouts.LAYOUT_NAMES)
def test_it_embeds_glyphs_for_every_character_of_every_name(pdfs, layout):
    drawable = embedded_coverage(pdfs[layout])

    for name in NAMES:
        # What is drawn: Arabic letters in their joined (presentation) forms.
        shown = {ch for ch in render._visual(name) if not ch.isspace()}
        missing = shown - drawable
        assert not missing, f"{name!r}: no glyph for {[unicodedata.name(ch) for ch in missing]}"


@pytest.mark.parametrize("layout", layouts.LAYOUT_NAMES)
def test_it_embeds_only_its_own_subset_fonts(pdfs, layout):
    fonts = pdf_fonts(pdfs[layout])

    assert len(fonts) >= 5  # Latin regular + bold, CJK, Hangul, Arabic, Hebrew
    for font in fonts:
        assert re.fullmatch(r"[A-Z]{6}\+Lanyard[A-Za-z]+-(Regular|Bold)", font.name), font
        assert (font.embedded, font.subset, font.to_unicode) == (True, True, True), font


def test_it_writes_names_a_pdf_reader_can_extract(pdfs):
    text = pdf_text(pdfs[layouts.LABEL_4X3])

    for name in NAMES:
        if not render._is_rtl(name):
            assert name in text


@pytest.mark.parametrize("layout", layouts.LAYOUT_NAMES)
def test_it_never_puts_a_pin_on_a_badge(pdfs, layout):
    text = pdf_text(pdfs[layout])

    assert "pin" not in {field.lower() for field in BadgeData.__dataclass_fields__}
    assert PIN not in text.replace(" ", "")
    for badge in BADGES:
        assert badge.employee_id in text  # the text layer is there, so the check means something


@pytest.mark.parametrize("layout", layouts.LAYOUT_NAMES)
def test_it_marks_temporary_badges_with_the_expiry_time_in_large_type(pdfs, layout):
    temporary = [badge for badge in BADGES if badge.temporary]
    heights = {}
    for word in pdf_words(pdfs[layout]):
        heights.setdefault(word.text, []).append(word.height)

    assert len(heights["TEMPORARY"]) == len(temporary)
    assert len(heights["18:30"]) == len(temporary)
    body = max(heights["Employee"])
    assert min(heights["18:30"]) >= 2 * body
    assert "2026-11-23" in "".join(heights)
    # Standard badges say until when they are valid, without TEMPORARY.
    assert len(heights["Valid"]) == len(BADGES) - len(temporary)


def test_it_writes_one_pin_slip_per_worker():
    slips = [
        PinSlipData(display_name=name, store_name="Store 042", pin=f"{PIN}{i}", employee_id=f"E{i}")
        for i, name in enumerate(NAMES[:4])
    ]

    pdf = render_pin_slips(slips)

    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == len(slips)
    for page, slip in zip(reader.pages, slips, strict=True):
        text = page.extract_text()
        assert slip.pin in text.replace(" ", "")
        assert "Change this PIN at your first sign-in." in text
        assert "Store 042" in text
        others = [other.pin for other in slips if other is not slip]
        assert not any(pin in text.replace(" ", "") for pin in others)
    assert NAMES[0] in pdf_text(pdf)


def test_it_prints_pin_slips_on_letter_too():
    pdf = render_pin_slips([PinSlipData("Ana", "Store 1", PIN)], page="letter")

    page = PdfReader(io.BytesIO(pdf)).pages[0]
    assert (float(page.mediabox.width), float(page.mediabox.height)) == (612.0, 792.0)


def test_it_keeps_secrets_out_of_repr():
    badge = BADGES[0]
    slip = PinSlipData("Ana", "Store 1", PIN)

    assert badge.payload.decode(errors="replace") not in repr(badge)
    assert "ms-qrpin" not in repr(badge)
    assert PIN not in repr(slip)


def test_it_refuses_a_naive_expiry():
    with pytest.raises(ValueError, match="timezone-aware"):
        BadgeData("Ana", "1", "Store", datetime(2027, 1, 1), payload(0))  # noqa: DTZ001


def test_it_shows_the_expiry_in_the_zone_it_was_given():
    badge = BadgeData(
        "Ana", "1", "Store", datetime(2026, 11, 23, 17, 30, tzinfo=UTC), payload(0), temporary=True
    )

    texts = render.badge_texts(badge)

    assert texts[layouts.EXPIRY] == "17:30"
    assert texts[layouts.VALID_UNTIL] == "2026-11-23 UTC"


def test_it_reports_characters_no_vendored_font_has():
    assert all(not render.missing_glyphs(name) for name in NAMES)
    assert render.missing_glyphs("नमस्ते")  # Devanagari: not vendored (needs shaping)


def test_it_shrinks_and_wraps_long_names_to_fit():
    name = "Maximilian Alexander Konstantin von Müller-Lüdenscheidt-Hohenberg"
    slot = layouts.badge_geometry(layouts.CR80).slot(layouts.NAME)

    size, lines = render._fit(name, slot)

    assert slot.min_size <= size < slot.size
    assert 1 < len(lines) <= slot.max_lines
    assert all(line.width <= slot.rect.width + 0.01 for line in lines)
    assert len(lines) * size * render.LEADING <= slot.rect.height + 0.01


@pytest.mark.parametrize("layout", layouts.LAYOUT_NAMES)
def test_it_never_lets_text_run_out_of_its_slot(layout):
    texts = [*NAMES, "Maximilian von Müller-Lüdenscheidt", "Dreiundzwanzigstebuchstabe" * 3]
    for temporary in (False, True):
        for slot in layouts.badge_geometry(layout, temporary=temporary).slots:
            for text in texts:
                size, lines = render._fit(text, slot)
                assert size >= slot.min_size - 0.01
                assert len(lines) <= slot.max_lines
                assert all(line.width <= slot.rect.width + 0.01 for line in lines), (slot, text)
