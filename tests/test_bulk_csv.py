"""File-level checks of an upload: encodings, delimiters, columns, limits, empty or binary."""

from __future__ import annotations

import pytest

from provisioning.bulk.csvfile import TEMPLATES, FileProblem, read_rows
from tests.fixtures_bulk import DATA

UPNS = 10  # rows in qr_mixed.csv and its re-encodings


@pytest.mark.parametrize(
    "name", ["qr_mixed.csv", "qr_bom.csv", "qr_utf16.csv", "qr_semicolon.csv", "qr_utf16_comma.csv"]
)
def test_it_reads_every_accepted_encoding_and_delimiter(name):
    rows = read_rows((DATA / name).read_bytes(), kind="qr")
    assert len(rows) == UPNS
    assert rows[0].line == 2
    assert rows[0].values["userPrincipalName"].startswith("mohammed.haddad4@")
    assert rows[2].values["pin"] == "48271593"
    assert rows[1].values["startDateTime"] == "2026-12-01"


def test_header_names_are_case_and_space_insensitive():
    rows = read_rows(b"User Principal Name ; PIN\r\na@b.com;12345679\r\n", kind="qr")
    assert rows[0].values == {"userPrincipalName": "a@b.com", "startDateTime": "",
                              "expireDateTime": "", "pin": "12345679"}  # fmt: skip


def test_the_phone_script_columns_are_accepted_unchanged():
    rows = read_rows((DATA / "phone_ps1.csv").read_bytes(), kind="phone")
    assert len(rows) == 7
    assert rows[1].values["AlternateMobile"] == "+44 7911 123457"
    assert rows[3].values["ForcedUpdate"] == "True"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("empty.csv", "empty"),
        ("header_only.csv", "no rows"),
        ("binary.xlsx", "not a text file"),
        ("latin1.csv", "not UTF-8"),
        ("qr_missing_column.csv", "no userPrincipalName column"),
    ],
)
def test_unusable_files_are_refused_with_a_clear_message(name, message):
    with pytest.raises(FileProblem, match=message):
        read_rows((DATA / name).read_bytes(), kind="qr")


def test_a_nul_byte_in_a_utf8_file_is_refused_as_binary():
    with pytest.raises(FileProblem, match="not a text file"):
        read_rows(b"upn,pin\r\na@b.c\x00,1\r\n", kind="qr")


def test_size_and_row_limits(settings):
    settings.BULK_MAX_ROWS = 3
    with pytest.raises(FileProblem, match="more than 3 rows"):
        read_rows(b"upn\n" + b"a@b.c\n" * 4, kind="qr")
    settings.BULK_MAX_UPLOAD_BYTES = 1024
    with pytest.raises(FileProblem, match="limit is 1 KB"):
        read_rows(b"upn\n" + b"a@b.c\n" * 400, kind="qr")


def test_broken_quoting_is_reported_with_its_line():
    with pytest.raises(FileProblem, match="Line"):
        read_rows(b'upn,pin\r\n"a@b.c"x,1\r\n', kind="qr")


@pytest.mark.parametrize("kind", ["qr", "phone"])
def test_the_templates_are_valid_files(kind):
    assert len(read_rows(TEMPLATES[kind].encode(), kind=kind)) == 2
