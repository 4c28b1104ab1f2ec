"""The IT admin group must be role-assignable, or anyone allowed to manage groups could make
themselves an IT admin (issue 10 finding 1; docs/architecture.md §5)."""

from __future__ import annotations

import pytest

from graphsim.demo import DEMO_ADMIN_GROUP_ID
from portal.checks import check_admin_group_role_assignable
from provisioning.directory import directory_sync
from provisioning.graph import get_app_client
from provisioning.models import AdminGroupMember, PrivilegedAccountsSnapshot
from tests.fixtures_portal import sign_in

pytestmark = pytest.mark.django_db


def test_a_role_assignable_admin_group_raises_no_warning(client, charlie, directory):
    snapshot = PrivilegedAccountsSnapshot.objects.get()
    assert snapshot.admin_group_role_assignable is True
    assert AdminGroupMember.objects.filter(user_id=charlie.user_id).exists()
    assert check_admin_group_role_assignable(None, databases=["default"]) == []
    sign_in(client, charlie)
    assert "admin-group-warning" not in client.get("/admin/").content.decode()


def test_an_ordinary_admin_group_is_reported_on_the_admin_pages_and_by_the_check(
    client, charlie, directory
):
    directory.tenant.groups[DEMO_ADMIN_GROUP_ID].is_assignable_to_role = False
    directory_sync(client=get_app_client())
    (warning,) = check_admin_group_role_assignable(None, databases=["default"])
    assert warning.id == "lanyard.W030"
    assert "not role-assignable" in warning.msg
    # Without --database the check stays silent (it reads the database).
    assert check_admin_group_role_assignable(None) == []
    sign_in(client, charlie)
    page = client.get("/admin/").content.decode()
    assert "admin-group-warning" in page and "not role-assignable" in page


def test_no_sync_yet_says_nothing(db):
    assert check_admin_group_role_assignable(None, databases=["default"]) == []
