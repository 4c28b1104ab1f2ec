"""The results CSV cannot carry a formula into a spreadsheet (issue 10, finding 8;
docs/architecture.md §5): every cell quoted, neutralised per OWASP's CSV-injection guidance."""

from __future__ import annotations

import csv
import io

import pytest

from provisioning import csv_cells
from provisioning.bulk import csvfile, jobs, preview
from tests.fixtures_bulk import qr_csv

ATTACKS = [
    "x;=cmd|' /C calc'!A0",
    "x,=cmd|' /C calc'!A0",
    " =1+1",
    '"=HYPERLINK("http://evil")',
    "'@SUM(1)",
    "\t=1",
    "ok;  +1",
]


@pytest.mark.parametrize("text", ATTACKS)
def test_neutralise_catches_formulas_anywhere_a_spreadsheet_starts_a_cell(text):
    assert csv_cells.neutralise(text).startswith("'")


@pytest.mark.parametrize("text", ["alice@contoso.com", "Anne-Marie Smith", "12", "", "a; b"])
def test_neutralise_leaves_plain_values(text):
    assert csv_cells.neutralise(text) == text


def test_results_csv_quotes_every_cell_and_no_locale_reads_a_formula(bulk_graph):
    """The attack: a UPN cell `x;=cmd|…` opened in a `;`-separated Excel locale."""
    # The preview keeps unknown UPNs as refused rows; the attack text comes back in the CSV.
    upload = qr_csv(
        [], extra=[f'"{attack.replace(chr(34), chr(34) * 2)}",,,' for attack in ATTACKS]
    )

    rows = csvfile.read_rows(upload, kind="qr")
    inputs = [preview.RowInput(r.line, r.values["userPrincipalName"], r.values) for r in rows]
    job = preview.bulk_job_preview(
        kind="qr", source="csv", source_label="t.csv", inputs=inputs, created_by=None
    )
    text = jobs.bulk_job_results_csv(job=job).decode("utf-8-sig")
    assert job.rows.count() == len(ATTACKS)
    for line in text.splitlines():
        assert line.startswith('"') and line.endswith('"')  # QUOTE_ALL
    for delimiter in (",", ";", "\t"):
        for line in text.splitlines()[1:]:
            for cell in _split_outside_quotes(line, delimiter):
                inner = cell.removeprefix('"')
                formula = inner.lstrip(' "').startswith(csv_cells.FORMULA_PREFIXES)
                assert inner.startswith("'") or not formula, (delimiter, cell)
    for row in list(csv.reader(io.StringIO(text)))[1:]:
        assert row[1].startswith("'"), row


def _split_outside_quotes(line: str, delimiter: str) -> list[str]:
    """Cells as a spreadsheet set to `delimiter` splits a line: never inside double quotes."""
    cells, current, quoted = [], "", False
    for char in line:
        if char == '"':
            quoted = not quoted
        if char == delimiter and not quoted:
            cells.append(current)
            current = ""
        else:
            current += char
    return [*cells, current]
