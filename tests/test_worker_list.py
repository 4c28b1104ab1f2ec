"""The worker list of a store: search, paging, QR status and phone columns, constant queries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from provisioning.models import (
    AdministrativeUnit,
    AUMembership,
    DirectoryUser,
    WorkerMethodState,
)

HTMX = {"HTTP_HX_REQUEST": "true"}


def _seed(store_id: str, count: int) -> list[DirectoryUser]:
    now = timezone.now()
    users = DirectoryUser.objects.bulk_create(
        DirectoryUser(
            id=f"00000000-0000-4000-8000-{i:012d}",
            user_principal_name=f"seed.worker{i}@example.test",
            display_name=f"Seed Worker {i:04d}",
            employee_id=f"E{i:05d}",
            job_title="Cashier",
            synced_at=now,
        )
        for i in range(count)
    )
    unit = AdministrativeUnit.objects.get(id=store_id)
    AUMembership.objects.bulk_create(
        AUMembership(administrative_unit=unit, user=user) for user in users
    )
    states = []
    for i, user in enumerate(users):
        kind = i % 6
        states.append(
            WorkerMethodState(
                user=user,
                has_qr_method=kind != 0,
                standard_start=now - timedelta(days=10),
                standard_expires={
                    1: now + timedelta(days=200),
                    2: now + timedelta(days=12),
                    3: now - timedelta(days=1),
                    4: now + timedelta(days=100),
                    5: now + timedelta(days=300),
                }.get(kind),  # fmt: skip
                standard_last_used=None if kind == 5 else now - timedelta(days=1),
                temporary_start=now - timedelta(hours=1) if kind == 4 else None,
                temporary_expires=now + timedelta(hours=3) if kind == 4 else None,
                mobile_phone="+44 XXXXXXXX56" if kind in (1, 2) else "",
                refreshed_at=now,
            )
        )
    WorkerMethodState.objects.bulk_create(states)
    return users


def test_columns_and_qr_statuses(alice_client, alice_store):
    _seed(alice_store, 12)
    page = alice_client.get(f"/stores/{alice_store}/", {"q": "Seed Worker"}).content.decode()
    for text in ("No QR code", "Active until", "Expires in 1", "Expired", "Temporary, active until",
                 "never used", "+44 XXXXXXXX56", "E00001", "Cashier"):  # fmt: skip
        assert text in page, text


@pytest.mark.parametrize("query", ["Worker 0042", "seed.worker42@", "E00042"])
def test_search_by_name_upn_or_employee_id(alice_client, alice_store, query):
    _seed(alice_store, 60)
    page = alice_client.get(f"/stores/{alice_store}/", {"q": query}, **HTMX).content.decode()
    assert "Seed Worker 0042" in page
    assert "Seed Worker 0043" not in page
    assert "<html" not in page


def test_paging_and_constant_queries(
    alice_client, alice_store, django_assert_max_num_queries, django_assert_num_queries
):
    _seed(alice_store, 240)
    url = f"/stores/{alice_store}/"
    alice_client.get(url)  # warm the session
    with django_assert_num_queries(5) as first:
        page1 = alice_client.get(url, {"q": "Seed", "page": 1}).content.decode()
    with django_assert_num_queries(len(first.captured_queries)):
        page3 = alice_client.get(url, {"q": "Seed", "page": 3}).content.decode()
    assert "Seed Worker 0000" in page1 and "Seed Worker 0050" not in page1
    assert "Seed Worker 0100" in page3 and "page 3 of 5" in page3
    assert 'rel="next"' in page3 and 'rel="prev"' in page3


def test_another_store_is_404_and_signed_out_is_redirected(client, alice_client, bob_store):
    assert alice_client.get(f"/stores/{bob_store}/").status_code == 404
