"""QR payload → module matrix (with the `qrcode` library) → one vector path per code.

The payload is the decoded `image.rawContent` (`ms-qrpin:v1|UPN|qrCodeId|secret`), a credential:
nothing here logs it or puts it in an exception message.

Choices:

* **Error correction Q** (25 % of codewords recoverable). Badges are worn on lanyards,
  scratched, bent and laminated (glare), so we spend density on robustness. The symbol's printed
  size is fixed by the layout (≥ 2 in), so a higher level only makes modules smaller: graphsim's
  ~130-byte payloads give version 9–10 (53–57 modules) at Q — 0.8 mm modules on the 52 mm CR80
  box, 0.95 mm on sheets — well above what a phone camera resolves at scanning distance.
  M (15 %) would give version 8 and 26 % fewer modules; H (30 %) needs version 11, 15 % more
  modules (and PDF bytes: the one-badge-per-page layouts would pass the 3 MB budget for
  1,000) for 5 % more recovery. Longer payloads step down to M, then L, before a module would
  shrink below `MIN_MODULE_MM`.
* **Minimum version 6** (41 modules), so that the quiet zone's share of the box is bounded and
  the sheet layouts can guarantee a ≥ 2 in dark symbol (see `badges.layouts`). Real payloads
  need version 9+ anyway.
* **Mask choice without the slow path.** `qrcode` picks the mask by building the symbol eight
  times and scoring each with `util.lost_point` in pure Python (~15 ms a code, 15 s for 1,000
  badges, far over the 2 s budget). We let `qrcode` build it once (mask 0) and derive the other
  seven by XOR-ing row bitmasks, scoring them with the same penalty rules on integers and
  strings. The result is identical to `qrcode.QRCode.make()` — tests compare the matrices — at
  about a tenth of the cost.
* **One path per code.** Dark modules are merged into rectangles (horizontal runs, stacked
  when the run below has the same span) and written as one `re … f` path in module units under
  a single transform, so a code costs a few hundred short operators, not thousands of shapes.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import qrcode
from qrcode import base, constants, util

QUIET_ZONE_MODULES = 4
MIN_VERSION = 6
MIN_MODULE_MM = 0.5
ERROR_CORRECTION_ORDER = (
    ("Q", constants.ERROR_CORRECT_Q),
    ("M", constants.ERROR_CORRECT_M),
    ("L", constants.ERROR_CORRECT_L),
)


class PayloadTooLong(ValueError):
    """The payload cannot be printed legibly in the space the layout gives the QR code."""


@dataclass(frozen=True)
class QrSymbol:
    """A QR symbol without its quiet zone: `rows[r]` has bit `c` set when module (r, c) is
    dark; row 0 is the top row."""

    size: int  # modules a side
    version: int
    error_correction: str  # "L", "M", "Q" or "H"
    mask: int
    rows: tuple[int, ...]

    def is_dark(self, row: int, col: int) -> bool:
        return bool(self.rows[row] >> col & 1)

    def matrix(self) -> list[list[bool]]:
        return [[bool(r >> c & 1) for c in range(self.size)] for r in self.rows]


def _rows_from_matrix(modules: list[list[bool | None]]) -> list[int]:
    out = []
    for row in modules:
        value = 0
        for c, dark in enumerate(row):
            if dark:
                value |= 1 << c
        out.append(value)
    return out


def _big(rows: list[int] | tuple[int, ...], n: int) -> int:
    """Rows as one integer: module (r, c) is bit r*n + c."""
    value = 0
    for r in range(len(rows) - 1, -1, -1):
        value = value << n | rows[r]
    return value


def _mask_where(n: int, keep: Callable[[int, int], bool]) -> int:
    return _big([sum(1 << c for c in range(n) if keep(r, c)) for r in range(n)], n)


@dataclass(frozen=True)
class _Template:
    """Per-version facts, taken from qrcode's own pattern and placement code. Matrices are
    single integers (module (r, c) is bit r*n + c), so the eight mask candidates are scored with
    a few dozen whole-matrix integer operations instead of Python loops over modules."""

    size: int
    fixed_dark: int  # dark modules of finder, alignment and timing patterns
    masks: tuple[int, ...]  # masks[k]: data modules that mask k inverts
    # The stream index of every module, from (n-1, n-1) down to (0, 0) (index `data_bits` — a
    # "0" — for modules that are not data), so the data matrix is one join and one int().
    picker: Callable[[str], tuple[str, ...]]
    data_bits: int
    # Where a run of 5 / a 2x2 block / an 11-module pattern starting at a bit stays inside the
    # symbol, horizontally (h) and vertically (v).
    run_h: int
    run_v: int
    not_first_col: int
    not_first_row: int
    block: int
    finder_h: int
    finder_v: int


@cache
def _template(version: int) -> _Template:
    n = version * 4 + 17
    symbol = qrcode.QRCode(version=version, border=0)
    symbol.modules_count = n
    symbol.modules = [[None] * n for _ in range(n)]
    symbol.setup_position_probe_pattern(0, 0)
    symbol.setup_position_probe_pattern(n - 7, 0)
    symbol.setup_position_probe_pattern(0, n - 7)
    symbol.setup_position_adjust_pattern()
    symbol.setup_timing_pattern()
    fixed_dark = _big(_rows_from_matrix(symbol.modules), n)
    symbol.setup_type_info(True, 0)
    if version >= 7:
        symbol.setup_type_number(True)
    # The module order of qrcode's map_data: two-column strips from the right, zigzagging
    # up and down, skipping the vertical timing column.
    order: dict[tuple[int, int], int] = {}
    row, step = n - 1, -1
    for col in range(n - 1, 0, -2):
        if col <= 6:
            col -= 1
        while True:
            for c in (col, col - 1):
                if symbol.modules[row][c] is None:
                    order[row, c] = len(order)
            row += step
            if row < 0 or row >= n:
                row -= step
                step = -step
                break
    blank = len(order)
    picker = operator.itemgetter(
        *(order.get((r, c), blank) for r in range(n - 1, -1, -1) for c in range(n - 1, -1, -1))
    )
    masks = []
    for k in range(8):
        inverts = util.mask_func(k)
        masks.append(_mask_where(n, lambda r, c, f=inverts: (r, c) in order and f(r, c)))
    return _Template(
        size=n,
        fixed_dark=fixed_dark,
        masks=tuple(masks),
        picker=picker,
        data_bits=blank,
        run_h=_mask_where(n, lambda r, c: c <= n - 5),
        run_v=_mask_where(n, lambda r, c: r <= n - 5),
        not_first_col=_mask_where(n, lambda r, c: c > 0),
        not_first_row=_mask_where(n, lambda r, c: r > 0),
        block=_mask_where(n, lambda r, c: r <= n - 2 and c <= n - 2),
        finder_h=_mask_where(n, lambda r, c: c <= n - 11),
        finder_v=_mask_where(n, lambda r, c: r <= n - 11),
    )


@cache
def _info_bits(version: int, error_correction: int, mask: int) -> tuple[int, ...]:
    """Dark format- and version-information modules of a finished symbol."""
    n = version * 4 + 17
    symbol = qrcode.QRCode(version=version, error_correction=error_correction, border=0)
    symbol.modules_count = n
    symbol.modules = [[None] * n for _ in range(n)]
    symbol.setup_type_info(False, mask)
    if version >= 7:
        symbol.setup_type_number(False)
    return tuple(_rows_from_matrix(symbol.modules))


@cache
def _rs_table(ec_count: int) -> tuple[int, ...]:
    """table[f]: the generator polynomial (without its leading 1) times f, as an integer of
    `ec_count` bytes — one XOR per data byte in the remainder division below."""
    generator = [1]
    for i in range(ec_count):
        # multiply by (x + a^i)
        nxt = [0] * (len(generator) + 1)
        for j, coef in enumerate(generator):
            nxt[j] ^= coef
            if coef:
                nxt[j + 1] ^= base.EXP_TABLE[(base.LOG_TABLE[coef] + i) % 255]
        generator = nxt
    table = [0]
    for f in range(1, 256):
        log_f = base.LOG_TABLE[f]
        value = 0
        for coef in generator[1:]:
            value = value << 8 | (
                base.EXP_TABLE[(base.LOG_TABLE[coef] + log_f) % 255] if coef else 0
            )
        table.append(value)
    return tuple(table)


def _ec_bytes(data: bytes, ec_count: int) -> bytes:
    table = _rs_table(ec_count)
    shift = 8 * (ec_count - 1)
    full = (1 << 8 * ec_count) - 1
    remainder = 0
    for byte in data:
        remainder = ((remainder << 8) & full) ^ table[byte ^ (remainder >> shift)]
    return remainder.to_bytes(ec_count, "big")


@cache
def _capacity(version: int, level: int) -> int:
    return sum(block.data_count for block in base.rs_blocks(version, level))


def _codewords(payload: bytes, version: int, level: int) -> bytes:
    """Data and error-correction codewords, interleaved as qrcode's create_data does."""
    capacity = _capacity(version, level)
    length_bits = util.length_in_bits(util.MODE_8BIT_BYTE, version)
    bits = 4 + length_bits + 8 * len(payload)
    value = (util.MODE_8BIT_BYTE << length_bits | len(payload)) << 8 * len(payload)
    value |= int.from_bytes(payload, "big")
    terminator = min(capacity * 8 - bits, 4)
    bits += terminator
    value <<= terminator
    pad = -bits % 8
    value <<= pad
    data = value.to_bytes((bits + pad) // 8, "big")
    fill = capacity - len(data)
    data += bytes((util.PAD0, util.PAD1)) * (fill // 2) + bytes((util.PAD0,)) * (fill % 2)
    blocks, ecs, offset = [], [], 0
    for block in base.rs_blocks(version, level):
        chunk = data[offset : offset + block.data_count]
        offset += block.data_count
        blocks.append(chunk)
        ecs.append(_ec_bytes(chunk, block.total_count - block.data_count))
    out = bytearray()
    for group in (blocks, ecs):
        for i in range(max(map(len, group))):
            out.extend(chunk[i] for chunk in group if i < len(chunk))
    return bytes(out)


_FINDER_LIKE = ("10111010000", "00001011101")


def _penalty(m: int, t: _Template) -> int:
    """`qrcode.util.lost_point` of the matrix `m` (same rules, same result): runs of five or
    more same-coloured modules, 2x2 blocks, finder-like 1:1:3:1:1 patterns, dark share."""
    n = t.size
    everything = (1 << n * n) - 1
    light = ~m & everything
    same_h = ~(m ^ (m >> 1))  # bit p: module p equals the one to its right
    same_v = ~(m ^ (m >> n))  # bit p: module p equals the one below it
    points = 0
    for same, step, valid, not_first in (
        (same_h, 1, t.run_h, t.not_first_col),
        (same_v, n, t.run_v, t.not_first_row),
    ):
        # bit p: modules p .. p+4 (along the line) all the same colour
        run5 = same & (same >> step) & (same >> 2 * step) & (same >> 3 * step) & valid
        # a run of L >= 5 modules sets L-4 bits of run5, one of them its start; it costs L-2
        starts = run5 & ~((run5 << step) & not_first)
        points += run5.bit_count() + 2 * starts.bit_count()
    points += 3 * (same_h & (same_h >> n) & same_v & t.block).bit_count()
    for step, valid in ((1, t.finder_h), (n, t.finder_v)):
        for pattern in _FINDER_LIKE:
            hits = valid
            for i, bit in enumerate(pattern):
                hits &= (m if bit == "1" else light) >> (i * step)
            points += 40 * hits.bit_count()
    percent = float(m.bit_count()) / (n**2)
    points += int(abs(percent * 100 - 50) / 5) * 10
    return points


def _version_for(payload: bytes, level: int) -> int | None:
    for version in range(MIN_VERSION, 41):
        length_bits = util.length_in_bits(util.MODE_8BIT_BYTE, version)
        if 4 + length_bits + 8 * len(payload) <= _capacity(version, level) * 8:
            return version
    return None


def encode(payload: bytes, *, max_modules: int | None = None) -> QrSymbol:
    """The QR symbol for `payload` (one byte-mode segment), at the most robust error-correction
    level whose symbol, quiet zone included, has at most `max_modules` modules a side.

    The symbol is the one `qrcode.QRCode(version=MIN_VERSION, error_correction=...)` makes for
    the same segment, mask included; see the module docstring for why we assemble it here."""
    for name, level in ERROR_CORRECTION_ORDER:
        version = _version_for(payload, level)
        if version is None:
            continue
        if max_modules is not None and version * 4 + 17 + 2 * QUIET_ZONE_MODULES > max_modules:
            continue
        return _assemble(payload, version, name, level)
    raise PayloadTooLong(f"a {len(payload)}-byte QR payload is too long to print on this badge")


def _assemble(payload: bytes, version: int, name: str, level: int) -> QrSymbol:
    t = _template(version)
    n = t.size
    codewords = _codewords(payload, version, level)
    stream = format(int.from_bytes(codewords, "big"), f"0{8 * len(codewords)}b")
    stream = stream.ljust(t.data_bits + 1, "0")  # remainder bits and the "not data" 0
    data = int("".join(t.picker(stream)), 2)
    best_mask, best_points, best = 0, -1, 0
    for k in range(8):
        # qrcode scores candidates with every format/version module light ("test" mode).
        candidate = (data ^ t.masks[k]) | t.fixed_dark
        points = _penalty(candidate, t)
        if best_points < 0 or points < best_points:
            best_mask, best_points, best = k, points, candidate
    best |= _big(_info_bits(version, level, best_mask), n)
    row_mask = (1 << n) - 1
    return QrSymbol(n, version, name, best_mask, tuple(best >> r * n & row_mask for r in range(n)))


def rectangles(symbol: QrSymbol) -> list[tuple[int, int, int, int]]:
    """Dark modules as (col, row, width, height) rectangles, row 0 at the top: each horizontal
    run, extended downwards while the next row has a run with exactly the same span."""
    rects: list[list[int]] = []
    above: dict[tuple[int, int], list[int]] = {}
    for r, bits in enumerate(symbol.rows):
        here = {}
        while bits:
            low = bits & -bits  # first module of a run
            past = (bits + low) & ~bits  # first light module after it
            key = (low, past)
            rect = above.get(key)
            if rect is None:
                rect = [low, r, past, 0]
                rects.append(rect)
            rect[3] += 1
            here[key] = rect
            bits &= bits + low  # clear the run
        above = here
    out = []
    for low, r, past, h in rects:
        c = low.bit_length() - 1
        out.append((c, r, past.bit_length() - 1 - c, h))
    return out


def _num(value: float) -> str:
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def pdf_operators(symbol: QrSymbol, x: float, y: float, box: float) -> str:
    """PDF content-stream operators that fill the dark modules of `symbol`, with its quiet zone,
    into the square box whose bottom-left corner is (x, y) and side `box` points.

    The transform maps module units (origin at the symbol's top-left, y downwards) to points, so
    each rectangle is four small integers."""
    module = box / (symbol.size + 2 * QUIET_ZONE_MODULES)
    left = x + QUIET_ZONE_MODULES * module
    top = y + box - QUIET_ZONE_MODULES * module
    body = " re ".join(f"{c} {r} {w} {h}" for c, r, w, h in rectangles(symbol))
    return f"q 0 g {_num(module)} 0 0 {_num(-module)} {_num(left)} {_num(top)} cm {body} re f Q"
