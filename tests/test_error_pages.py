"""Errors reach people as plain pages, never as a stack trace."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import path

from portal.urls import urlpatterns as portal_urlpatterns


def boom(request):
    raise RuntimeError("secret internals 48207315")


urlpatterns = [*portal_urlpatterns, path("boom", boom)]


@pytest.mark.django_db
def test_a_missing_page_is_a_plain_404(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert "This page does not exist" in response.content.decode()


@pytest.mark.django_db
@pytest.mark.urls("tests.test_error_pages")
def test_a_crash_is_a_plain_500_without_details():
    client = Client(raise_request_exception=False)
    response = client.get("/boom")
    page = response.content.decode()
    assert response.status_code == 500
    assert "Something went wrong" in page
    assert "48207315" not in page and "Traceback" not in page
