"""CSV files Lanyard hands out (bulk results, the audit log): every cell quoted and neutralised
against formula injection (docs/architecture.md §5, OWASP "CSV Injection")."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable

# A spreadsheet runs a cell as a formula when it starts with one of these (OWASP, CSV Injection);
# it may also split a cell at any of CELL_SEPARATORS (`;` in many European Excel locales) and read
# each piece as a cell of its own, with leading spaces and quotes dropped.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
CELL_SEPARATORS = re.compile(r"[,;\t\r\n]")


def neutralise(value: object) -> str:
    """A CSV cell that a spreadsheet will not run as a formula (docs/architecture.md §5)."""
    text = "" if value is None else str(value)
    pieces = [text, *CELL_SEPARATORS.split(text)]
    if text.startswith(FORMULA_PREFIXES) or any(
        piece.lstrip(" \t\r\n\"'").startswith(FORMULA_PREFIXES) for piece in pieces
    ):
        return "'" + text
    return text


def csv_neutralised(header: Iterable[str], rows: Iterable[Iterable[object]]) -> bytes:
    """A CSV file, UTF-8 with BOM for Excel, every cell quoted (so a `;` or `,` inside a value
    never splits it, whichever separator the reader's locale uses) and neutralised."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_ALL)
    writer.writerow(header)
    for row in rows:
        writer.writerow(neutralise(value) for value in row)
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")
