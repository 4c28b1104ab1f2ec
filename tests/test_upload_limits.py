"""Upload bodies are capped before Django reads them, and download names are quoted by Django's
helper (issue 10, finding 13; docs/architecture.md §7)."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.files.uploadhandler import StopUpload

from portal.http import CappedUploadHandler, download
from provisioning.models import BulkJob
from tests.fixtures_portal import sign_in


@pytest.fixture
def charlie_client(client, charlie, bulk_graph, directory):
    sign_in(client, charlie)
    return client


def test_an_oversized_upload_is_refused_from_its_headers(charlie_client, settings):
    """The attack: a body far over the cap, which Django used to spool in full first."""
    settings.BULK_MAX_UPLOAD_BYTES = 1024
    big = b"upn\r\n" + b"a@b.c\r\n" * 20_000  # about 140 KB
    response = charlie_client.post(
        "/admin/bulk/new", {"kind": "qr", "file": SimpleUploadedFile("big.csv", big)}
    )
    assert response.status_code == 413
    assert "larger than the limit of 1 KB" in response.content.decode()
    assert not BulkJob.objects.exists()


def test_the_handler_stops_reading_past_the_cap():
    handler = CappedUploadHandler(100)
    assert handler.receive_data_chunk(b"x" * 60, 0) == b"x" * 60
    with pytest.raises(StopUpload):
        handler.receive_data_chunk(b"x" * 60, 60)
    assert handler.exceeded


def test_an_upload_under_the_cap_still_works_and_csrf_is_still_checked(
    charlie_client, client, settings
):
    from django.test import Client

    data = b"upn\r\nnobody@example.com\r\n"
    response = charlie_client.post(
        "/admin/bulk/new", {"kind": "qr", "file": SimpleUploadedFile("w.csv", data)}
    )
    assert response.status_code == 302
    strict = Client(enforce_csrf_checks=True)
    strict.cookies = charlie_client.cookies
    refused = strict.post(
        "/admin/bulk/new", {"kind": "qr", "file": SimpleUploadedFile("w.csv", data)}
    )
    assert refused.status_code == 403


@pytest.mark.parametrize(
    ("name", "header"),
    [
        (
            'badge-E1"; filename="evil.html.pdf',
            'attachment; filename="badge-E1\\"; filename=\\"evil.html.pdf"',
        ),
        ("badge-Zoë.pdf", "attachment; filename*=utf-8''badge-Zo%C3%AB.pdf"),
    ],
)
def test_download_names_are_quoted_by_djangos_helper(name, header):
    response = download(b"%PDF", content_type="application/pdf", filename=name)
    assert response["Content-Disposition"] == header
