"""Draw badges and PIN slips as PDF with reportlab, from plain data.

Callers (the kiosk print queue, `badge_sheet`) pass `BadgeData` / `PinSlipData` and get PDF
bytes back; geometry comes from `badges.layouts`, QR symbols from `badges.qr`.

Secrets: `BadgeData.payload` (the decoded `image.rawContent`) and `PinSlipData.pin` are
credentials. Their dataclass fields are excluded from `repr()`, nothing here logs them, and a
badge never carries a PIN: badges and PIN slips are separate documents.

Text in any script: each character is drawn with the first font of a fallback chain that has
it (Latin/Greek/Cyrillic → Arabic → Hebrew → CJK → Hangul; see badges/fonts/README.md).
reportlab maps characters to glyphs one to one and does not shape, so right-to-left text is
prepared before drawing: Arabic letters are replaced by their contextual presentation forms
(`arabic-reshaper`) and the line is put in visual order with the Unicode bidi algorithm
(`python-bidi`). reportlab 5.1 can shape through uharfbuzz, but its RTL support needs `rlbidi`
and it adds private-use code points to fonts for ligatures, which breaks text extraction; for
names the presentation-form route is simpler and exact for Arabic, Persian and Urdu letters.
"""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from reportlab import rl_config
from reportlab.lib.colors import black, white
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from badges import layouts, qr
from badges.layouts import BadgeGeometry, Rect, TextSlot

FONT_DIR = Path(__file__).resolve().parent / "fonts"
# (reportlab name, file, draw with a thin stroke to fake a bold weight)
_REGULAR_CHAIN = (
    ("LanyardSans", "LanyardSans-Regular.ttf"),
    ("LanyardSansArabic", "LanyardSansArabic-Regular.ttf"),
    ("LanyardSansHebrew", "LanyardSansHebrew-Regular.ttf"),
    ("LanyardCJK", "LanyardCJK-Regular.ttf"),
    ("LanyardHangul", "LanyardHangul-Regular.ttf"),
)
_BOLD_CHAIN = (
    ("LanyardSans-Bold", "LanyardSans-Bold.ttf"),
    ("LanyardSansArabic-Bold", "LanyardSansArabic-Bold.ttf"),
    ("LanyardSansHebrew-Bold", "LanyardSansHebrew-Bold.ttf"),
    ("LanyardCJK", "LanyardCJK-Regular.ttf"),  # one weight: drawn with a stroke when bold
    ("LanyardHangul", "LanyardHangul-Regular.ttf"),
)
_SINGLE_WEIGHT = {"LanyardCJK", "LanyardHangul"}
FAKE_BOLD_STROKE = 0.05  # of the font size

DEFAULT_INSTRUCTION = "Sign in: tap “Sign in with QR code”, scan this code, enter your PIN."
PIN_SLIP_NOTE = "Change this PIN at your first sign-in."
LEADING = 1.18  # line height as a multiple of the font size
ASCENT = 0.93  # first baseline below the top of a slot, as a multiple of the font size


@dataclass(frozen=True)
class BadgeData:
    """What one badge shows. `payload` is the QR code's decoded `image.rawContent` — a
    credential, kept out of repr() and logs. `valid_until` must be timezone-aware; it is shown
    in its own time zone, so pass it converted to the store's zone."""

    display_name: str
    employee_id: str
    store_name: str
    valid_until: datetime
    payload: bytes = field(repr=False)
    temporary: bool = False
    instruction: str = DEFAULT_INSTRUCTION

    def __post_init__(self) -> None:
        if self.valid_until.tzinfo is None or self.valid_until.utcoffset() is None:
            raise ValueError("BadgeData.valid_until must be timezone-aware")
        if not self.payload:
            raise ValueError("BadgeData.payload is empty")


@dataclass(frozen=True)
class PinSlipData:
    """One worker's PIN slip. `pin` is a credential, kept out of repr() and logs."""

    display_name: str
    store_name: str
    pin: str = field(repr=False)
    employee_id: str = ""


# --- fonts ----------------------------------------------------------------------------------

_registered = False
_cmaps: dict[str, dict[int, int]] = {}
_font_for_char: dict[tuple[bool, str], str | None] = {}


def register_fonts() -> None:
    """Register the vendored fonts with reportlab, once per process (~0.1 s, mostly the CJK
    font's tables, so it happens at the first render rather than at import)."""
    global _registered
    if _registered:
        return
    for name, filename in (*_REGULAR_CHAIN, *_BOLD_CHAIN):
        if name not in _cmaps:
            font = TTFont(name, str(FONT_DIR / filename))
            pdfmetrics.registerFont(font)
            _cmaps[name] = font.face.charToGlyph
    _registered = True


def _font_for(char: str, bold: bool) -> str | None:
    key = (bold, char)
    try:
        return _font_for_char[key]
    except KeyError:
        pass
    found = None
    code = ord(char)
    for name, _ in _BOLD_CHAIN if bold else _REGULAR_CHAIN:
        if code in _cmaps[name]:
            found = name
            break
    _font_for_char[key] = found
    return found


def missing_glyphs(text: str) -> set[str]:
    """Characters of `text` (after Arabic shaping) that no vendored font can draw."""
    register_fonts()
    return {
        ch
        for ch in _visual(text)
        if not ch.isspace() and _font_for(ch, False) is None and unicodedata.category(ch) != "Cf"
    }


_ARABIC = re.compile("[\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff]")
_reshaper = None


def _is_rtl(text: str) -> bool:
    return any(unicodedata.bidirectional(ch) in ("R", "AL") for ch in text)


def _visual(text: str) -> str:
    """The characters to draw, left to right."""
    global _reshaper
    if not _is_rtl(text):
        return text
    if _ARABIC.search(text):
        if _reshaper is None:
            import arabic_reshaper

            _reshaper = arabic_reshaper.ArabicReshaper()
        text = _reshaper.reshape(text)
    from bidi import get_display

    return get_display(text)


@dataclass(frozen=True)
class _Run:
    font: str
    text: str
    fake_bold: bool


def _runs(text: str, bold: bool) -> list[_Run]:
    """Split visual-order text into runs of one font each."""
    runs: list[_Run] = []
    primary = _BOLD_CHAIN[0][0] if bold else _REGULAR_CHAIN[0][0]
    current, start = None, 0
    for i, ch in enumerate(text):
        # Spaces stay with the current run (every vendored font has one); a character no font
        # has goes with it too and shows as that font's empty box (see missing_glyphs()).
        font = _font_for(ch, bold)
        if font is None or (ch == " " and current is not None):
            font = current or primary
        if font != current:
            if current is not None and i > start:
                runs.append(_Run(current, text[start:i], bold and current in _SINGLE_WEIGHT))
            current, start = font, i
    if current is not None and start < len(text):
        runs.append(_Run(current, text[start:], bold and current in _SINGLE_WEIGHT))
    return runs


def _width(runs: list[_Run], size: float) -> float:
    return sum(pdfmetrics.stringWidth(run.text, run.font, size) for run in runs)


# --- text fitting ---------------------------------------------------------------------------

_CJK_CHAR = re.compile("[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")


def _tokens(text: str) -> list[tuple[str, bool]]:
    """Break opportunities: (token, preceded by a space). Lines may also break after a hyphen,
    and between any two CJK or Hangul characters."""
    out: list[tuple[str, bool]] = []
    cjk = _CJK_CHAR.pattern
    for word in text.split():
        first = True
        for piece in re.findall(f"{cjk}|[^-{cjk[1:-1]}]+-?|-", word):
            out.append((piece, first))
            first = False
    return out


@dataclass(frozen=True)
class _Line:
    runs: list[_Run]
    width: float
    rtl: bool


def _line(text: str, bold: bool, size: float) -> _Line:
    runs = _runs(_visual(text), bold)
    return _Line(runs, _width(runs, size), _is_rtl(text))


def _wrap(text: str, bold: bool, size: float, max_width: float) -> list[str]:
    lines: list[str] = []
    current = ""
    for token, spaced in _tokens(text):
        candidate = f"{current} {token}" if current and spaced else current + token
        if not current or _line(candidate, bold, size).width <= max_width:
            current = candidate
            continue
        lines.append(current)
        current = token
    if current:
        lines.append(current)
    return lines


def _ellipsize(text: str, bold: bool, size: float, max_width: float) -> str:
    while text and _line(text + "…", bold, size).width > max_width:
        text = text[:-1].rstrip()
    return text + "…"


_fit_cache: dict[tuple[str, TextSlot], tuple[float, list[_Line]]] = {}


def _fit(text: str, slot: TextSlot) -> tuple[float, list[_Line]]:
    """The largest size from slot.size down to slot.min_size at which `text` fits the slot's
    width in at most slot.max_lines lines and its height; at the minimum size a text that is
    still too long is cut with an ellipsis (the QR code, not the text, identifies the worker)."""
    key = (text, slot)
    cached = _fit_cache.get(key)
    if cached is not None:
        return cached
    width, height = slot.rect.width, slot.rect.height
    text = " ".join(text.split())
    result = None
    # One line: the width scales with the size, so solve for it directly.
    at_one = _line(text, slot.bold, 1.0).width
    single = min(slot.size, width / at_one if at_one else slot.size, height / LEADING)
    if single < slot.size - 0.01 and slot.max_lines > 1:
        # Wrapping may allow bigger type than squeezing everything onto one line.
        size = min(slot.size, height / (2 * LEADING))
        while size > max(single, slot.min_size - 0.01):
            lines = _wrap(text, slot.bold, size, width)
            fitted = [_line(line, slot.bold, size) for line in lines]
            if (
                len(lines) <= slot.max_lines
                and len(lines) * size * LEADING <= height + 0.01
                and all(line.width <= width + 0.01 for line in fitted)
            ):
                result = (size, fitted)
                break
            size -= 0.5
    if result is None and single >= slot.min_size:
        result = (single, [_line(text, slot.bold, single)])
    if result is None:
        size = slot.min_size
        lines = _wrap(text, slot.bold, size, width)
        fits = max(1, min(slot.max_lines, int(height / (size * LEADING) + 0.01)))
        kept = lines[:fits]
        if len(lines) > fits:
            kept[-1] = _ellipsize(kept[-1], slot.bold, size, width)
        kept = [
            line
            if _line(line, slot.bold, size).width <= width
            else _ellipsize(line, slot.bold, size, width)
            for line in kept
        ]
        result = (size, [_line(line, slot.bold, size) for line in kept])
    if len(_fit_cache) > 4096:
        _fit_cache.clear()
    _fit_cache[key] = result
    return result


def _draw_text(canvas: Canvas, text: str, slot: TextSlot, dx: float, dy: float) -> None:
    if not text.strip():
        return
    size, lines = _fit(text, slot)
    rect = slot.rect.moved(dx, dy)
    colour = black
    if slot.reverse:
        canvas.setFillColor(black)
        canvas.rect(rect.x, rect.y, rect.width, rect.height, stroke=0, fill=1)
        colour = white
    block = len(lines) * size * LEADING
    # Top-aligned, except the banner, which is centred in its band.
    top = rect.top - (rect.height - block) / 2 if slot.reverse else rect.top
    baseline = top - ASCENT * size - (LEADING - 1) * size / 2
    # One text object per slot; the fill colour is only touched for the white-on-black banner
    # (black is the page default), which keeps a thousand badges' content streams small.
    text_object = canvas.beginText()
    if slot.reverse:
        text_object.setFillColor(colour)
    for line in lines:
        if slot.reverse:
            x = rect.x + (rect.width - line.width) / 2
        elif line.rtl:
            x = rect.right - line.width
        else:
            x = rect.x
        text_object.setTextOrigin(x, baseline)
        for run in line.runs:
            text_object.setFont(run.font, size)
            if run.fake_bold:
                text_object.setTextRenderMode(2)
                canvas.setStrokeColor(colour)
                canvas.setLineWidth(size * FAKE_BOLD_STROKE)
            text_object.textOut(run.text)
            if run.fake_bold:
                text_object.setTextRenderMode(0)
        baseline -= size * LEADING
    canvas.drawText(text_object)
    if slot.reverse:
        canvas.setFillColor(black)


# --- badges ---------------------------------------------------------------------------------


def badge_texts(badge: BadgeData) -> dict[str, str]:
    """The words for each text role of a badge (no PIN, ever)."""
    until = badge.valid_until
    texts = {
        layouts.NAME: badge.display_name,
        layouts.EMPLOYEE_ID: f"Employee ID {badge.employee_id}" if badge.employee_id else "",
        layouts.STORE: badge.store_name,
        layouts.INSTRUCTION: badge.instruction,
    }
    if badge.temporary:
        texts[layouts.TEMPORARY] = "TEMPORARY"
        texts[layouts.EXPIRY_LABEL] = "Expires"
        texts[layouts.EXPIRY] = f"{until:%H:%M}"
        texts[layouts.VALID_UNTIL] = f"{until:%Y-%m-%d} {until.tzname() or ''}".strip()
    else:
        texts[layouts.VALID_UNTIL] = f"Valid until {until:%Y-%m-%d}"
    return texts


def _draw_badge(canvas: Canvas, badge: BadgeData, geometry: BadgeGeometry, cell: Rect) -> None:
    box = geometry.qr.moved(cell.x, cell.y)
    # The most robust error-correction level whose modules stay at least MIN_MODULE_MM wide.
    max_modules = int(box.width / layouts.mm(qr.MIN_MODULE_MM))
    symbol = qr.encode(badge.payload, max_modules=max_modules)
    canvas.addLiteral(qr.pdf_operators(symbol, box.x, box.y, box.width))
    texts = badge_texts(badge)
    for slot in geometry.slots:
        _draw_text(canvas, texts.get(slot.role, ""), slot, cell.x, cell.y)


@contextmanager
def _binary_streams() -> Iterator[None]:
    """reportlab wraps compressed streams in ASCII85 by default: 25 % bigger, and encoded in
    pure Python (a third of the render time). PDFs are binary files anyway."""
    saved = rl_config.useA85
    rl_config.useA85 = 0
    try:
        yield
    finally:
        rl_config.useA85 = saved


def _new_canvas(buffer: io.BytesIO, size: tuple[float, float], title: str) -> Canvas:
    register_fonts()
    canvas = Canvas(
        buffer, pagesize=size, pageCompression=1, invariant=1, initialFontName="LanyardSans"
    )
    canvas.setTitle(title)
    canvas.setCreator("Lanyard")
    canvas.setAuthor("Lanyard")
    return canvas


def render_badges(badges: Sequence[BadgeData], layout: str) -> bytes:
    """A PDF of `badges` on `layout` (one of `badges.layouts.LAYOUT_NAMES`), in order: one per
    page on cr80 and label-4x3, six per sheet with cut marks on sheet-a4 and sheet-letter."""
    page = layouts.page_layout(layout)
    geometries = {
        False: layouts.badge_geometry(layout, temporary=False),
        True: layouts.badge_geometry(layout, temporary=True),
    }
    buffer = io.BytesIO()
    with _binary_streams():
        _draw_badges(
            _new_canvas(buffer, (page.page_width, page.page_height), "Badges"),
            badges,
            page,
            geometries,
        )
    return buffer.getvalue()


def _draw_badges(
    canvas: Canvas,
    badges: Sequence[BadgeData],
    page: layouts.PageLayout,
    geometries: dict[bool, BadgeGeometry],
) -> None:
    for start in range(0, max(len(badges), 1), page.per_page):
        chunk = badges[start : start + page.per_page]
        if not chunk:
            break
        if page.cut_marks:
            canvas.setStrokeColor(black)
            canvas.setLineWidth(0.5)
            for mark in page.cut_marks:
                canvas.line(mark.x1, mark.y1, mark.x2, mark.y2)
        for badge, cell in zip(chunk, page.cells, strict=False):
            _draw_badge(canvas, badge, geometries[badge.temporary], cell)
        canvas.showPage()
    canvas.save()


# --- PIN slips ------------------------------------------------------------------------------

PIN_SLIP_PAGES = {"a4": layouts.A4, "letter": layouts.LETTER}


def _grouped(pin: str) -> str:
    """1234 5678 9012: easier to read out and type than one long run of digits."""
    return " ".join(pin[i : i + 4] for i in range(0, len(pin), 4))


def render_pin_slips(slips: Iterable[PinSlipData], *, page: str = "a4") -> bytes:
    """A PDF with one page per worker: name, store, the PIN and "change at first sign-in". One
    slip per page so each can be folded and handed over on its own."""
    width, height = PIN_SLIP_PAGES[page]
    buffer = io.BytesIO()
    with _binary_streams():
        _draw_pin_slips(_new_canvas(buffer, (width, height), "PIN slips"), slips, width, height)
    return buffer.getvalue()


def _draw_pin_slips(
    canvas: Canvas, slips: Iterable[PinSlipData], width: float, height: float
) -> None:
    margin = layouts.mm(20)
    slip = Rect(margin, height - margin - layouts.mm(80), width - 2 * margin, layouts.mm(80))
    count = 0
    for data in slips:
        count += 1
        canvas.setStrokeColor(black)
        canvas.setLineWidth(0.75)
        canvas.setDash(4, 3)
        canvas.rect(slip.x, slip.y, slip.width, slip.height, stroke=1, fill=0)
        canvas.setDash()
        inner = slip.inset(layouts.mm(6))
        rows = [
            ("heading", "Your sign-in PIN", 11.0, False, 16.0),
            ("name", data.display_name, 16.0, True, 40.0),
            ("store", data.store_name, 11.0, False, 18.0),
            (
                "employee_id",
                f"Employee ID {data.employee_id}" if data.employee_id else "",
                10.0,
                False,
                16.0,
            ),
            ("pin", _grouped(data.pin), 28.0, True, 38.0),
            ("note", PIN_SLIP_NOTE, 11.0, True, 16.0),
            (
                "private",
                "Keep it private. Destroy this slip once you have signed in.",
                9.0,
                False,
                14.0,
            ),
        ]
        top = inner.top
        for role, text, size, bold, slot_height in rows:
            lines = 2 if role == "name" else 1
            slot = TextSlot(
                role,
                Rect(inner.x, top - slot_height, inner.width, slot_height),
                size,
                min(size, 6.0),
                lines,
                bold,
            )
            _draw_text(canvas, text, slot, 0.0, 0.0)
            top -= slot_height
        canvas.showPage()
    if count == 0:
        canvas.showPage()
    canvas.save()
