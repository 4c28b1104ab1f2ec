"""PINs, phone numbers and uploads never appear in an error report's POST data (issue 10,
finding 7): the views that take them are marked with sensitive_post_parameters."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile
from django.views.debug import get_default_exception_reporter_filter

from tests.fixtures_manager import add_qr
from tests.fixtures_portal import sign_in


def _reported(response) -> dict:
    return get_default_exception_reporter_filter().get_post_parameters(response.wsgi_request)


def test_a_custom_pin_is_hidden_from_error_reports(alice_client, alice_worker, run_tasks):
    """The attack: an exception while adding a QR code mails the manager's PIN to the admins."""
    response = add_qr(alice_client, alice_worker, run_tasks, pin="48159263")
    assert "48159263" not in repr(_reported(response))


def test_a_phone_number_is_hidden_from_error_reports(alice_client, alice_worker, run_tasks):
    with run_tasks():
        response = alice_client.post(
            alice_worker.url("phones/mobile"), {"mobile-number": "+44 7911 123456"},
            HTTP_HX_REQUEST="true",
        )  # fmt: skip
    assert "7911" not in repr(_reported(response))


def test_an_upload_is_hidden_from_error_reports(client, charlie, bulk_graph, directory):
    sign_in(client, charlie)
    data = b"upn,pin\r\nnobody@example.com,48159263\r\n"
    response = client.post(
        "/admin/bulk/new", {"kind": "qr", "file": SimpleUploadedFile("w.csv", data)}
    )
    assert response.wsgi_request.sensitive_post_parameters == "__ALL__"
