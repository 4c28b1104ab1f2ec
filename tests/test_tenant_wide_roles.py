"""An authentication admin role held tenant-wide (not scoped to an AU) covers every store in
Entra, so its holder manages every synced store in Lanyard (issue 8, papercut)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from graphsim.model import (
    AUTHENTICATION_POLICY_ADMINISTRATOR,
    PRIVILEGED_AUTHENTICATION_ADMINISTRATOR,
)
from provisioning.models import AdministrativeUnit, Operation, ScopedRoleAssignment
from tests.fixtures_portal import _persona, sign_in

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def _plain_worker_id(graphsim) -> str:
    """An enabled member with no role at all."""
    people = graphsim.people
    return next(
        user.id
        for user in graphsim.tenant.users.values()
        if user.account_enabled
        and user.user_type == "Member"
        and user.id not in people.managers
        and user.id != people.it_admin
    )


def _grant_tenant_wide(graphsim, user_id: str, template: str) -> None:
    graphsim.tenant.directory_role_by_template(template).member_ids.append(user_id)


def test_the_it_admin_with_a_tenant_wide_role_manages_every_store(client, charlie, directory):
    # The demo IT admin holds Authentication Administrator tenant-wide and no scoped role.
    assert not ScopedRoleAssignment.objects.filter(principal_id=charlie.user_id).exists()
    user = sign_in(client, charlie)
    assert user.manages_all_stores

    page = client.get("/stores/").content.decode()
    assert "No store is assigned to you" not in page
    for store in AdministrativeUnit.objects.all():
        assert store.display_name in page
    home = client.get("/").content.decode()
    assert "No store is assigned to you" not in home


def test_a_tenant_wide_privileged_authentication_administrator_acts_in_any_store(
    client, directory, alice_worker, run_tasks
):
    worker_id = _plain_worker_id(directory)
    _grant_tenant_wide(directory, worker_id, PRIVILEGED_AUTHENTICATION_ADMINISTRATOR)
    sign_in(client, _persona(directory, worker_id))

    assert client.get(f"/stores/{alice_worker.au_id}/").status_code == 200
    assert client.get(alice_worker.url()).status_code == 200
    # The task checks the scope again before writing to Entra, and Entra agrees.
    expiry = (timezone.localdate() + timedelta(days=30)).isoformat()
    with run_tasks():
        client.post(
            alice_worker.url("qr/"),
            {"add-activation": "now", "add-expiry": expiry, "add-pin_mode": "generated"},
            **HTMX,
        )
    operation = Operation.objects.get(worker_id=alice_worker.user_id)
    assert operation.status == "succeeded", operation.error
    assert alice_worker.user_id in directory.tenant.qr_methods


def test_other_tenant_wide_roles_do_not_make_a_manager(client, directory):
    worker_id = _plain_worker_id(directory)
    _grant_tenant_wide(directory, worker_id, AUTHENTICATION_POLICY_ADMINISTRATOR)
    user = sign_in(client, _persona(directory, worker_id))
    assert not user.manages_all_stores
    assert client.get("/").status_code == 403


def test_a_removed_tenant_wide_role_counts_from_the_next_sign_in(client, directory, bob_store):
    worker_id = _plain_worker_id(directory)
    _grant_tenant_wide(directory, worker_id, PRIVILEGED_AUTHENTICATION_ADMINISTRATOR)
    persona = _persona(directory, worker_id)
    sign_in(client, persona)
    assert client.get(f"/stores/{bob_store}/").status_code == 200

    role = directory.tenant.directory_role_by_template(PRIVILEGED_AUTHENTICATION_ADMINISTRATOR)
    role.member_ids.remove(worker_id)
    client.post("/auth/sign-out")
    user = sign_in(client, persona)
    assert not user.manages_all_stores
    assert client.get(f"/stores/{bob_store}/").status_code == 404
