"""Badge and page geometry as pure data: every position in PDF points (1/72 in), origin at the
bottom-left corner, y growing upwards. No reportlab here; `badges.render` draws what this module
places, and `tests/test_badge_layouts.py` checks it without drawing anything.

The QR code size (Microsoft asks for 2 in × 2 in printed codes, docs/architecture.md §8):

* On every layout the QR **box** — the symbol plus its 4-module quiet zone — is at least 2 in on
  each side. Microsoft's guidance ("a printer to print 2" x 2" QR codes"; the downloaded image
  "has the smallest optimal print size") is about the printed image, and that image carries its
  own light border, so this is the reading that always holds.
* On the sheet and label layouts there is room for the stricter reading too: the dark symbol
  alone (quiet zone excluded) is at least 2 in for every symbol the encoder may produce
  (`badges.qr.MIN_VERSION` keeps the symbol from having so few modules that the quiet zone
  would eat more than the spare room).
* A CR80 card is only 54 mm (2.126 in) tall, and a 2 in symbol plus its quiet zone needs
  ~58 mm at the versions real payloads use, so on `cr80` the box (quiet zone included) is
  52 mm = 2.047 in, leaving a 1 mm margin to the card edge, and the symbol itself is ~1.8 in
  (0.8 mm modules at version 10). We shrink nothing else: cutting the quiet zone instead would
  put dark modules at the card edge, where a thumb, a lanyard clip or a dark holder makes the
  code unreadable, and a reader needs the quiet zone far more than the last 0.2 in.
"""

from __future__ import annotations

from dataclasses import dataclass

POINTS_PER_INCH = 72.0
POINTS_PER_MM = 72.0 / 25.4

QUIET_ZONE_MODULES = 4
# Office laser and inkjet printers leave about 1/6 in unprinted at each paper edge; sheet
# content and cut marks stay inside that.
PRINTER_MARGIN = 4.2 * POINTS_PER_MM

CR80 = "cr80"
SHEET_A4 = "sheet-a4"
SHEET_LETTER = "sheet-letter"
LABEL_4X3 = "label-4x3"
LAYOUT_NAMES = (CR80, SHEET_A4, SHEET_LETTER, LABEL_4X3)

# Roles of text on a badge; `badges.render` decides the words, this module where they go.
NAME = "name"
EMPLOYEE_ID = "employee_id"
STORE = "store"
VALID_UNTIL = "valid_until"
INSTRUCTION = "instruction"
TEMPORARY = "temporary"  # the TEMPORARY banner (temporary badges only)
EXPIRY_LABEL = "expiry_label"  # "Expires" above the large time (temporary badges only)
EXPIRY = "expiry"  # the expiry time in large type (temporary badges only)


def mm(value: float) -> float:
    return value * POINTS_PER_MM


def inches(value: float) -> float:
    return value * POINTS_PER_INCH


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float

    @property
    def right(self) -> float:
        return self.x + self.width

    @property
    def top(self) -> float:
        return self.y + self.height

    def contains(self, other: Rect, tolerance: float = 1e-6) -> bool:
        return (
            other.x >= self.x - tolerance
            and other.y >= self.y - tolerance
            and other.right <= self.right + tolerance
            and other.top <= self.top + tolerance
        )

    def overlaps(self, other: Rect) -> bool:
        """True when the interiors intersect (touching edges do not count)."""
        return (
            self.x < other.right
            and other.x < self.right
            and self.y < other.top
            and other.y < self.top
        )

    def inset(self, d: float) -> Rect:
        return Rect(self.x + d, self.y + d, self.width - 2 * d, self.height - 2 * d)

    def moved(self, dx: float, dy: float) -> Rect:
        return Rect(self.x + dx, self.y + dy, self.width, self.height)


@dataclass(frozen=True)
class TextSlot:
    """A box for one piece of text. The renderer shrinks the type from `size` towards
    `min_size` and wraps onto up to `max_lines` lines until the text fits the box."""

    role: str
    rect: Rect
    size: float
    min_size: float
    max_lines: int = 1
    bold: bool = False
    reverse: bool = False  # white type on a black band (the TEMPORARY banner)


@dataclass(frozen=True)
class BadgeGeometry:
    """One badge in its own coordinates: (0, 0) is the badge's bottom-left corner."""

    width: float
    height: float
    qr: Rect  # symbol plus quiet zone; the renderer fills it with modules edge to edge
    slots: tuple[TextSlot, ...]
    temporary: bool
    # True where the dark symbol itself (quiet zone excluded) is at least 2 in for every
    # version from badges.qr.MIN_VERSION up; False on cr80 (see the module docstring).
    symbol_meets_2in: bool

    @property
    def bounds(self) -> Rect:
        return Rect(0.0, 0.0, self.width, self.height)

    def slot(self, role: str) -> TextSlot | None:
        for slot in self.slots:
            if slot.role == role:
                return slot
        return None


@dataclass(frozen=True)
class CutMark:
    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def bounds(self) -> Rect:
        return Rect(
            min(self.x1, self.x2),
            min(self.y1, self.y2),
            abs(self.x2 - self.x1),
            abs(self.y2 - self.y1),
        )


@dataclass(frozen=True)
class PageLayout:
    name: str
    page_width: float
    page_height: float
    cells: tuple[Rect, ...]  # where badges go, in the order they are filled
    cut_marks: tuple[CutMark, ...]
    printable: Rect  # where the device can print; every cell and mark lies inside it
    description: str

    @property
    def per_page(self) -> int:
        return len(self.cells)

    @property
    def badge_width(self) -> float:
        return self.cells[0].width

    @property
    def badge_height(self) -> float:
        return self.cells[0].height

    def pages_needed(self, count: int) -> int:
        return -(-count // self.per_page)


def qr_symbol_size(box: float, modules: int) -> float:
    """Printed size of the dark symbol (quiet zone excluded) when a symbol of `modules`
    modules a side, plus its quiet zone, fills a box of `box` points."""
    return box * modules / (modules + 2 * QUIET_ZONE_MODULES)


# --- badge geometry -------------------------------------------------------------------------

CR80_WIDTH = mm(85.6)
CR80_HEIGHT = mm(54.0)
CR80_EDGE = mm(1.0)  # card printers print edge to edge, but keep the quiet zone off the edge
CR80_QR = CR80_HEIGHT - 2 * CR80_EDGE  # 52 mm

LABEL_WIDTH = inches(4)
LABEL_HEIGHT = inches(3)
# A sheet badge is as tall as a 4 × 3 in badge-holder insert but 95 mm wide, so that two
# columns leave side margins a desktop printer can print cut marks in (2 × 4 in would leave
# 3.4 mm on A4). It still slides into a 4 × 3 in holder.
SHEET_BADGE_WIDTH = mm(95.0)
SHEET_BADGE_HEIGHT = inches(3)
# Box of 61.5 mm: a version-6 symbol (41 modules, the smallest badges.qr makes) is then
# 61.5 × 41/49 = 51.5 mm ≥ 50.8 mm; bigger versions only grow the symbol's share of the box.
BIG_QR = mm(61.5)
BIG_QR_EDGE = mm(2.0)
GAP = mm(1.5)


def _stack(
    x: float, top: float, width: float, items: list[tuple[str, float, float, float, int, bool]]
) -> tuple[list[TextSlot], float]:
    """Slots stacked downwards from `top`: (role, height, size, min_size, lines, bold)."""
    slots = []
    for role, height, size, min_size, lines, bold in items:
        top -= height
        slots.append(TextSlot(role, Rect(x, top, width, height), size, min_size, lines, bold))
    return slots, top


def _cr80(temporary: bool) -> BadgeGeometry:
    qr = Rect(CR80_EDGE, CR80_EDGE, CR80_QR, CR80_QR)
    x = qr.right + GAP
    width = CR80_WIDTH - mm(2.5) - x
    top = CR80_HEIGHT - mm(2.5)
    bottom = mm(2.5)
    instruction = TextSlot(INSTRUCTION, Rect(x, bottom, width, 20.0), 6.0, 4.5, 3)
    if temporary:
        slots, _ = _stack(
            x,
            top,
            width,
            [
                (TEMPORARY, 15.0, 11.0, 7.0, 1, True),
                (EXPIRY_LABEL, 10.0, 7.0, 5.0, 1, False),
                (EXPIRY, 20.0, 18.0, 10.0, 1, True),
                (VALID_UNTIL, 9.0, 6.5, 4.5, 1, False),
                (NAME, 24.0, 9.0, 5.5, 2, True),
                (STORE, 9.0, 6.5, 4.5, 1, False),
                (EMPLOYEE_ID, 9.0, 6.5, 4.5, 1, False),
            ],
        )
        slots[0] = TextSlot(TEMPORARY, slots[0].rect, 11.0, 7.0, 1, True, reverse=True)
    else:
        slots, _ = _stack(
            x,
            top,
            width,
            [
                (NAME, 40.0, 11.0, 6.0, 3, True),
                (STORE, 20.0, 8.0, 5.5, 2, False),
                (EMPLOYEE_ID, 11.0, 8.0, 5.5, 1, False),
                (VALID_UNTIL, 20.0, 7.5, 5.5, 2, False),
            ],
        )
    slots.append(instruction)
    return BadgeGeometry(CR80_WIDTH, CR80_HEIGHT, qr, tuple(slots), temporary, False)


def _big(width: float, height: float, temporary: bool) -> BadgeGeometry:
    """Sheet and label badges: the name across the top, the QR code bottom-left, the rest in
    a column to its right."""
    qr = Rect(BIG_QR_EDGE, BIG_QR_EDGE, BIG_QR, BIG_QR)
    margin = mm(2.5)
    name = TextSlot(
        NAME,
        Rect(margin, qr.top + GAP, width - 2 * margin, height - margin - qr.top - GAP),
        18.0,
        7.0,
        2,
        True,
    )
    x = qr.right + GAP
    col_width = width - margin - x
    top = qr.top
    instruction = TextSlot(INSTRUCTION, Rect(x, margin, col_width, 34.0), 7.5, 5.0, 4)
    if temporary:
        slots, _ = _stack(
            x,
            top,
            col_width,
            [
                (TEMPORARY, 20.0, 14.0, 8.0, 1, True),
                (EXPIRY_LABEL, 12.0, 8.5, 6.0, 1, False),
                (EXPIRY, 30.0, 28.0, 14.0, 1, True),
                (VALID_UNTIL, 12.0, 8.0, 5.5, 1, False),
                (STORE, 22.0, 8.5, 5.5, 2, False),
                (EMPLOYEE_ID, 12.0, 8.5, 5.5, 1, False),
            ],
        )
        slots[0] = TextSlot(TEMPORARY, slots[0].rect, 14.0, 8.0, 1, True, reverse=True)
    else:
        slots, _ = _stack(
            x,
            top,
            col_width,
            [
                (STORE, 34.0, 11.0, 6.0, 3, True),
                (EMPLOYEE_ID, 16.0, 10.0, 6.0, 1, False),
                (VALID_UNTIL, 30.0, 9.0, 6.0, 2, False),
            ],
        )
    return BadgeGeometry(width, height, qr, (name, *slots, instruction), temporary, True)


def badge_geometry(layout: str, *, temporary: bool = False) -> BadgeGeometry:
    """Where the QR code and each piece of text go on one badge of `layout`."""
    if layout == CR80:
        return _cr80(temporary)
    if layout == LABEL_4X3:
        return _big(LABEL_WIDTH, LABEL_HEIGHT, temporary)
    if layout in (SHEET_A4, SHEET_LETTER):
        return _big(SHEET_BADGE_WIDTH, SHEET_BADGE_HEIGHT, temporary)
    raise ValueError(f"unknown badge layout {layout!r}; choose one of {', '.join(LAYOUT_NAMES)}")


# --- pages ----------------------------------------------------------------------------------

A4 = (mm(210.0), mm(297.0))
LETTER = (inches(8.5), inches(11.0))
CUT_MARK_OFFSET = mm(1.5)  # gap between the grid and a mark, so a mark never prints on a badge
CUT_MARK_LENGTH = mm(4.0)


def _sheet(name: str, page: tuple[float, float], description: str) -> PageLayout:
    cols, rows = 2, 3
    page_width, page_height = page
    grid_width = cols * SHEET_BADGE_WIDTH
    grid_height = rows * SHEET_BADGE_HEIGHT
    x0 = (page_width - grid_width) / 2
    y0 = (page_height - grid_height) / 2
    # Badges abut, so one cut separates two of them; filled left to right, top to bottom.
    cells = tuple(
        Rect(
            x0 + col * SHEET_BADGE_WIDTH,
            y0 + (rows - 1 - row) * SHEET_BADGE_HEIGHT,
            SHEET_BADGE_WIDTH,
            SHEET_BADGE_HEIGHT,
        )
        for row in range(rows)
        for col in range(cols)
    )
    # Marks sit outside the grid on the extension of every cut line, so after the first cuts
    # each strip still carries the marks for the next ones.
    marks = []
    near, far = CUT_MARK_OFFSET, CUT_MARK_OFFSET + CUT_MARK_LENGTH
    for col in range(cols + 1):
        x = x0 + col * SHEET_BADGE_WIDTH
        marks.append(CutMark(x, y0 - far, x, y0 - near))
        marks.append(CutMark(x, y0 + grid_height + near, x, y0 + grid_height + far))
    for row in range(rows + 1):
        y = y0 + row * SHEET_BADGE_HEIGHT
        marks.append(CutMark(x0 - far, y, x0 - near, y))
        marks.append(CutMark(x0 + grid_width + near, y, x0 + grid_width + far, y))
    printable = Rect(0.0, 0.0, page_width, page_height).inset(PRINTER_MARGIN)
    return PageLayout(name, page_width, page_height, cells, tuple(marks), printable, description)


def page_layout(layout: str) -> PageLayout:
    """The page of `layout`: its size, where each badge goes and the cut marks."""
    if layout == CR80:
        card = Rect(0.0, 0.0, CR80_WIDTH, CR80_HEIGHT)
        return PageLayout(
            CR80,
            CR80_WIDTH,
            CR80_HEIGHT,
            (card,),
            (),
            card,
            "CR80 card (85.6 × 54 mm), one per page, for card printers",
        )
    if layout == LABEL_4X3:
        label = Rect(0.0, 0.0, LABEL_WIDTH, LABEL_HEIGHT)
        return PageLayout(
            LABEL_4X3,
            LABEL_WIDTH,
            LABEL_HEIGHT,
            (label,),
            (),
            label,
            "4 × 3 in thermal label, one per page",
        )
    if layout == SHEET_A4:
        return _sheet(SHEET_A4, A4, "A4 sheet, 6 badges (95 × 76.2 mm) with cut marks")
    if layout == SHEET_LETTER:
        return _sheet(
            SHEET_LETTER, LETTER, "US Letter sheet, 6 badges (95 × 76.2 mm) with cut marks"
        )
    raise ValueError(f"unknown badge layout {layout!r}; choose one of {', '.join(LAYOUT_NAMES)}")
