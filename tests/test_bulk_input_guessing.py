"""Bulk input never guesses a credential (issue 10, finding 14; docs/architecture.md §7): a phone
number that parses only by guessing is refused with the reason, a date-time without an offset is
read in TIME_ZONE, and the accepted header names are documented on the page and in the templates."""

from __future__ import annotations

import re

import pytest

from provisioning.bulk import csvfile, preview
from provisioning.models import BulkJob
from provisioning.phone_numbers import PhoneNumberInvalid, phone_number_normalise
from tests.fixtures_bulk import fresh_workers
from tests.fixtures_portal import sign_in


def _preview(data: bytes, kind: str) -> BulkJob:
    rows = csvfile.read_rows(data, kind=kind)
    key = "userPrincipalName" if kind == "qr" else "UPN"
    inputs = [preview.RowInput(r.line, r.values[key], r.values) for r in rows]
    return preview.bulk_job_preview(
        kind=kind, source="csv", source_label="t.csv", inputs=inputs, created_by=None
    )


def test_a_us_number_that_lost_its_plus_one_is_not_written_as_german(bulk_graph):
    """The attack: `2065550191` for a worker in Germany became `+49 2065550191`."""
    worker = fresh_workers(bulk_graph, 1)[0]
    worker.usage_location = "DE"
    upn = worker.user_principal_name
    data = f"UPN,Mobile\r\n{upn},2065550191\r\n".encode()
    row = _preview(data, "phone").rows.get()
    assert row.action == "invalid"
    assert "national prefix “0” of Germany" in row.reason
    assert "+49" not in str(row.params)


@pytest.mark.parametrize(
    ("raw", "region", "why"),
    [
        ("2065550191", "DE", "national prefix"),
        ("612345678", "FR", "national prefix"),
        ("7911 123456", "GB", "national prefix"),
        ("4930 1234567", "DE", "has no “+”"),
    ],
)
def test_numbers_read_only_by_guessing_are_refused(raw, region, why):
    with pytest.raises(PhoneNumberInvalid, match=re.escape(why)):
        phone_number_normalise(raw, region=region)


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("02065 550191", "DE", "+49 2065550191"),
        ("+1 206 555 0191", "DE", "+1 2065550191"),
        ("001 206 555 0191", "DE", "+1 2065550191"),
        ("(206) 555-0191", "US", "+1 2065550191"),
        ("1 206 555 0191", "US", "+1 2065550191"),
        ("02 1234 5678", "IT", "+39 0212345678"),
    ],
)
def test_national_forms_with_their_prefix_and_international_forms_are_read(raw, region, expected):
    assert phone_number_normalise(raw, region=region) == expected


def test_a_time_without_an_offset_is_read_in_the_portals_time_zone(bulk_graph, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    upn = fresh_workers(bulk_graph, 1)[0].user_principal_name
    data = f"user,startDateTime,expireDateTime\r\n{upn},2031-01-06 08:00,2031-01-20\r\n".encode()
    row = _preview(data, "qr").rows.get()  # `user` is an alias of userPrincipalName
    assert row.action == "create", row.reason
    assert row.params["start"] == "2031-01-06T07:00:00Z"  # 08:00 in Berlin, not 08:00 UTC
    assert row.params["expire"] == "2031-01-19T23:00:00Z"  # midnight in Berlin


@pytest.mark.parametrize("kind", ["qr", "phone"])
def test_the_templates_say_how_they_are_read_and_still_parse(kind, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    text = csvfile.csv_template(kind)
    assert len(csvfile.read_rows(text.encode(), kind=kind)) == 2
    if kind == "qr":
        assert "Europe/Berlin" in text and "userPrincipalName (also: upn or user)" in text
    else:
        assert "national prefix" in text and "UPN (also: userprincipalname)" in text


def test_the_upload_page_documents_aliases_and_time_zone(client, charlie, bulk_graph, directory,
                                                         settings):  # fmt: skip
    settings.TIME_ZONE = "Europe/Berlin"
    sign_in(client, charlie)
    page = client.get("/admin/").content.decode()
    assert "<code>user</code>" in page and "Europe/Berlin" in page
    template = client.get("/admin/bulk/template/qr.csv").content.decode()
    assert "Europe/Berlin" in template
