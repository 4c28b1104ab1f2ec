"""The store and worker pages lead to the badge features: print selection and forgotten badge."""

from __future__ import annotations

import pytest
from django.urls import reverse

from provisioning.models import AdministrativeUnit, AUMembership

pytestmark = pytest.mark.django_db


def alices_store_and_worker(alice):
    store = AdministrativeUnit.objects.filter(scoped_roles__principal_id=alice.user_id).first()
    worker_id = AUMembership.objects.filter(administrative_unit=store).values_list(
        "user_id", flat=True
    )[0]
    return store, worker_id


def test_the_store_page_links_to_badge_printing(alice_client, alice):
    store, _ = alices_store_and_worker(alice)
    page = alice_client.get(reverse("manager:store-detail", args=[store.id])).content.decode()
    assert reverse("badges:sheet-list", args=[store.id]) in page


def test_the_worker_page_sends_a_forgotten_badge_to_the_kiosk(alice_client, alice, portal_graph):
    store = AdministrativeUnit.objects.filter(scoped_roles__principal_id=alice.user_id).first()
    members = AUMembership.objects.filter(administrative_unit=store).values_list(
        "user_id", flat=True
    )
    worker_id = next(  # a worker with a QR method and no temporary code
        user_id
        for user_id in members
        if user_id in portal_graph.tenant.qr_methods
        and portal_graph.tenant.qr_methods[user_id].temporary is None
    )
    alice_client.post(reverse("manager:worker-refresh", args=[store.id, worker_id]))
    url = reverse("manager:worker-detail", args=[store.id, worker_id])
    page = alice_client.get(url).content.decode()
    assert reverse("badges:forgotten-badge", args=[store.id, worker_id]) in page
    assert 'name="hours"' in page
