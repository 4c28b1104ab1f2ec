"""Reading an uploaded CSV into rows of text, with file-level checks in plain words
(docs/architecture.md §7).

Accepted: UTF-8 with or without BOM, UTF-16 (LE/BE, with BOM, as Excel's "Unicode text" writes it),
comma or semicolon as the delimiter (Excel in many European locales writes semicolons), header
names case- and space-insensitive, a few aliases (ALIASES, shown on the upload page and in the
templates), lines whose first cell starts with "#" ignored (the templates explain themselves in
such lines). Anything else is a FileProblem whose message says what to fix.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from django.conf import settings

# Canonical column names per kind; header cells are matched after lower-casing and removing
# spaces, dashes and underscores.
QR_COLUMNS = ("userPrincipalName", "startDateTime", "expireDateTime", "pin")
QR_REQUIRED = ("userPrincipalName",)
PHONE_COLUMNS = ("UPN", "Mobile", "AlternateMobile", "OfficePhone", "ForcedUpdate", "ForcedRemoval")
PHONE_REQUIRED = ("UPN",)
COLUMNS = {"qr": QR_COLUMNS, "phone": PHONE_COLUMNS}
REQUIRED = {"qr": QR_REQUIRED, "phone": PHONE_REQUIRED}
# A few spellings people use for the same column (after the same lower-casing); a column whose
# name matches nothing is ignored. Documented on the upload page and in the templates.
ALIASES = {"upn": "userPrincipalName", "user": "userPrincipalName", "userprincipalname": "UPN"}

TEMPLATES = {
    "qr": (
        "userPrincipalName,startDateTime,expireDateTime,pin\r\n"
        "ana.silva@contoso.com,,,\r\n"
        "ben.okafor@contoso.com,2026-12-01,2027-11-30,\r\n"
    ),
    "phone": (
        "UPN,Mobile,AlternateMobile,OfficePhone,ForcedUpdate,ForcedRemoval\r\n"
        "ana.silva@contoso.com,+1 206 555 0100,,,False,False\r\n"
        "ben.okafor@contoso.com,07700 900123,,,True,False\r\n"
    ),
}


def column_names(kind: str) -> list[tuple[str, list[str]]]:
    """Each column of `kind` with the other header names taken for it (for the page and
    templates)."""
    return [
        (name, [alias for alias, target in ALIASES.items() if target == name])
        for name in COLUMNS[kind]
    ]


def csv_template(kind: str) -> str:
    """The downloadable template of `kind`: the header and two example rows (TEMPLATES), then
    comment lines saying how the file is read (after the rows, so the header stays line 1)."""
    columns = "; ".join(
        name + (f" (also: {' or '.join(aliases)})" if aliases else "")
        for name, aliases in column_names(kind)
    )
    lines = [
        "# Lanyard bulk import. Lines starting with # are ignored; delete them or keep them.",
        "# Header names are case-insensitive (spaces/dashes/underscores ignored). Columns: "
        + columns
        + ". Other columns are ignored.",
    ]
    if kind == "qr":
        lines.append(
            "# startDateTime/expireDateTime: YYYY-MM-DD (midnight) or ISO 8601 like "
            "2031-01-06T08:00+01:00. Without an offset they are read in "
            f"{settings.TIME_ZONE} (the portal's time zone). Empty pin = a generated PIN."
        )
    else:
        lines.append(
            "# Numbers: with their country code (+49 30 1234567 or 0049 30 1234567) or in the "
            "national form of the user's country (usageLocation) with its national prefix "
            "(030 1234567 in Germany). A number that could be read only by guessing is refused."
        )
    return TEMPLATES[kind] + "\r\n".join(lines) + "\r\n"


def _is_comment(cells: list[str]) -> bool:
    return bool(cells) and cells[0].lstrip().startswith("#")


class FileProblem(ValueError):
    """The file as a whole cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class CsvRow:
    line: int  # physical line number in the file (header = 1)
    values: dict[str, str]  # canonical column → stripped text ("" when empty or absent)


def _key(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def decode(data: bytes) -> str:
    """The file's text, or FileProblem for empty, binary or undecodable content."""
    max_bytes = settings.BULK_MAX_UPLOAD_BYTES
    if len(data) > max_bytes:
        raise FileProblem(
            f"The file is {len(data) // 1024:,} KB; the limit is {max_bytes // 1024:,} KB. "
            "Split it into smaller files."
        )
    if not data.strip(b"\x00\t\r\n \xef\xbb\xbf\xff\xfe"):
        raise FileProblem("The file is empty.")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return _checked(data.decode("utf-16"))
        except UnicodeDecodeError as exc:
            raise FileProblem("The file says it is UTF-16 but is not readable as such.") from exc
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    elif b"\x00" in data[:4096]:
        # UTF-16 without a BOM: a zero byte in every ASCII character, all on the same side.
        head = data[:4096]
        for encoding, side in (("utf-16-le", 1), ("utf-16-be", 0)):
            zeros = head[side::2].count(0)
            if zeros < len(head) // 4:
                continue
            try:
                return _checked(data.decode(encoding))
            except UnicodeDecodeError:
                continue
        raise FileProblem(
            "This is not a text file (it looks binary: an Excel workbook or an image?). "
            "Save it from Excel as “CSV UTF-8 (comma delimited)”."
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileProblem(
            "The file is not UTF-8 or UTF-16 text. Save it from Excel as "
            "“CSV UTF-8 (comma delimited)” and upload it again."
        ) from exc
    return _checked(text)


def _checked(text: str) -> str:
    if any(not (c.isprintable() or c in "\r\n\t\ufeff") for c in text[:4096]):
        raise FileProblem(
            "This is not a text file (it holds control characters: an Excel workbook or an "
            "image?). Save it from Excel as “CSV UTF-8 (comma delimited)”."
        )
    return text.lstrip("\ufeff")


def _delimiter(header_line: str) -> str:
    # The header decides: its names contain neither character.
    commas, semicolons = header_line.count(","), header_line.count(";")
    if semicolons > commas:
        return ";"
    if "\t" in header_line and not commas:
        return "\t"
    return ","


def read_rows(data: bytes, *, kind: str) -> list[CsvRow]:
    """Parse an uploaded file of `kind` ("qr" or "phone") into rows; FileProblem if unusable."""
    if kind not in COLUMNS:
        raise FileProblem(f"Unknown kind of file {kind!r}: use qr or phone.")
    text = decode(data)
    lines = text.splitlines()
    first = next((line for line in lines if line.strip() and not _is_comment([line])), "")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(first), strict=True)
    known = {_key(name): name for name in COLUMNS[kind]}
    header: list[str | None] | None = None
    rows: list[CsvRow] = []
    try:
        for cells in reader:
            line = reader.line_num
            if _is_comment(cells):
                continue
            if header is None:
                if not any(cell.strip() for cell in cells):
                    continue
                header = []
                for cell in cells:
                    key = _key(cell)
                    canonical = known.get(key)
                    if canonical is None and key in ALIASES:
                        alias = ALIASES[key]
                        canonical = alias if alias in COLUMNS[kind] else None
                    header.append(canonical)
                missing = [name for name in REQUIRED[kind] if name not in header]
                if missing:
                    expected = ",".join(COLUMNS[kind])
                    raise FileProblem(
                        f"The file has no {' / '.join(missing)} column. The first line must name "
                        f"the columns: {expected} (download the template)."
                    )
                continue
            if not any(cell.strip() for cell in cells):
                continue
            values = dict.fromkeys(COLUMNS[kind], "")
            for name, cell in zip(header, cells, strict=False):
                if name is not None:
                    values[name] = cell.strip()
            rows.append(CsvRow(line=line, values=values))
            if len(rows) > settings.BULK_MAX_ROWS:
                raise FileProblem(
                    f"The file has more than {settings.BULK_MAX_ROWS:,} rows. "
                    "Split it into smaller files."
                )
    except csv.Error as exc:
        raise FileProblem(f"Line {reader.line_num} is not valid CSV ({exc}).") from exc
    if header is None:
        raise FileProblem("The file is empty.")
    if not rows:
        raise FileProblem("The file has a header but no rows.")
    return rows
