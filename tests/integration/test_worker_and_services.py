"""Real services: PostgreSQL, Redis and a Celery worker process doing Graph work via graphsim."""

from __future__ import annotations

import pytest

from provisioning.models import AdministrativeUnit, DirectorySync, DirectoryUser
from provisioning.tasks import sync_directory
from tests.integration.conftest import wait_for


def test_a_real_worker_syncs_the_directory_through_redis_and_postgres(start_worker, portal_graph):
    start_worker()
    sync_directory.delay()
    wait_for(
        lambda: DirectorySync.objects.filter(outcome="succeeded").exists(),
        timeout=60,
        message="The worker did not finish sync_directory within 60 s",
    )
    assert AdministrativeUnit.objects.count() == len(portal_graph.tenant.administrative_units)
    assert DirectoryUser.objects.count() > 150


@pytest.mark.django_db
def test_healthz_reports_postgres_and_redis(services_configured, client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"database": "ok", "broker": "ok"}
