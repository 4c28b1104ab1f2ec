"""The local directory cache: stores (AUs), their workers and scoped admin roles.

The cache mirrors what Lanyard needs from Entra so pages list workers and check a manager's scope
without a Graph round trip; `sync_directory` keeps it current.
"""

from __future__ import annotations

from django.db import models


class AdministrativeUnit(models.Model):
    """An Entra administrative unit; in Lanyard's words, a store."""

    id = models.CharField(primary_key=True, max_length=36)  # Entra object id
    display_name = models.CharField(max_length=256)
    description = models.TextField(blank=True)
    synced_at = models.DateTimeField()
    # Set while Entra refuses Lanyard the AU's member list, typically an AU with hidden membership
    # read without Member.Read.Hidden (docs/graph-contract.md §4.3): the sync skips its members
    # (the cached list stays as last read) and the admin pages name the store.
    members_unreadable_since = models.DateTimeField(null=True, blank=True)
    members_unreadable_reason = models.CharField(max_length=300, blank=True)
    # When a refresh of this store's QR/phone columns was queued and has not finished: at most one
    # is pending per store (provisioning/worker_state.py `worker_states_refresh_claim` and
    # `worker_states_refresh_claim_due`).
    states_refresh_queued_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["display_name"]

    def __str__(self) -> str:
        return self.display_name

    @property
    def members_unreadable(self) -> bool:
        return self.members_unreadable_since is not None


class DirectoryUser(models.Model):
    """A user as last read from Entra: the fields the portal shows and checks."""

    id = models.CharField(primary_key=True, max_length=36)  # Entra object id
    user_principal_name = models.CharField(max_length=320, db_index=True)
    display_name = models.CharField(max_length=256, db_index=True)
    employee_id = models.CharField(max_length=64, blank=True, db_index=True)
    job_title = models.CharField(max_length=256, blank=True)
    department = models.CharField(max_length=256, blank=True)
    mail = models.CharField(max_length=320, blank=True)
    mobile_phone = models.CharField(max_length=64, blank=True)  # the profile field, as typed
    usage_location = models.CharField(max_length=2, blank=True)
    country = models.CharField(max_length=128, blank=True)
    account_enabled = models.BooleanField(default=True)
    user_type = models.CharField(max_length=16, default="Member")
    synced_at = models.DateTimeField()

    class Meta:
        ordering = ["display_name"]

    def __str__(self) -> str:
        return f"{self.display_name} <{self.user_principal_name}>"


class AUMembership(models.Model):
    administrative_unit = models.ForeignKey(
        AdministrativeUnit, on_delete=models.CASCADE, related_name="memberships"
    )
    user = models.ForeignKey(DirectoryUser, on_delete=models.CASCADE, related_name="memberships")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["administrative_unit", "user"], name="unique_au_membership"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.administrative_unit_id}"


class ScopedRoleAssignment(models.Model):
    """Someone holds a directory role scoped to one administrative unit (Graph scopedRoleMembers).

    Only the role *template* id is meaningful across tenants; the directoryRole object id that Graph
    returns as `roleId` is resolved to it during sync (docs/graph-contract.md §4.4, gotcha 12).
    """

    id = models.CharField(primary_key=True, max_length=200)  # Graph's opaque membership id
    administrative_unit = models.ForeignKey(
        AdministrativeUnit, on_delete=models.CASCADE, related_name="scoped_roles"
    )
    principal_id = models.CharField(max_length=36, db_index=True)
    principal_upn = models.CharField(max_length=320, blank=True)
    principal_display_name = models.CharField(max_length=256, blank=True)
    role_template_id = models.CharField(max_length=36)
    synced_at = models.DateTimeField()

    def __str__(self) -> str:
        return (
            f"{self.principal_upn} holds {self.role_template_id} on {self.administrative_unit_id}"
        )


class DirectorySync(models.Model):
    """One run of sync_directory, with what it changed."""

    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=16, default="running")  # running|succeeded|failed
    # "full" (every store read) or "delta" (only what Graph's delta rounds reported);
    # docs/architecture.md §9.
    mode = models.CharField(max_length=16, blank=True)
    summary = models.JSONField(default=dict)
    error = models.TextField(blank=True)

    class Meta:
        get_latest_by = "started_at"

    def __str__(self) -> str:
        return f"Directory sync {self.started_at:%Y-%m-%d %H:%M} ({self.outcome})"


class DirectorySyncState(models.Model):
    """The saved `@odata.deltaLink` of one delta-tracked collection (docs/graph-contract.md
    §4.6): where the next warm sync starts. Replaced only after the round that produced it has
    been written, so a sync stopped half-way starts again from the previous link.
    """

    collection = models.CharField(primary_key=True, max_length=40)  # "users", "administrativeUnits"
    delta_link = models.TextField()
    updated_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.collection} delta link of {self.updated_at:%Y-%m-%d %H:%M}"


class DirectoryRoleHolder(models.Model):
    """Someone holds an active directory role, directly or through a role-assignable group
    (recorded by `sync_directory` and refreshed by bulk jobs; docs/architecture.md §5).

    Bulk jobs never write to these people: the app identity is not limited by Entra's roles, so
    Lanyard must keep it away from administrators.
    """

    user_id = models.CharField(max_length=36, db_index=True)
    role_definition_id = models.CharField(max_length=36)  # the template id for built-in roles
    directory_scope_id = models.CharField(max_length=300)  # "/" or "/administrativeUnits/{id}"
    via_group_id = models.CharField(max_length=36, blank=True)
    via_group_name = models.CharField(max_length=256, blank=True)

    def __str__(self) -> str:
        return f"{self.user_id} holds {self.role_definition_id} at {self.directory_scope_id}"


class AdminGroupMember(models.Model):
    """A member (nested groups included) of the IT admin group `LANYARD_ADMIN_GROUP_ID`."""

    user_id = models.CharField(primary_key=True, max_length=36)

    def __str__(self) -> str:
        return self.user_id


class PrivilegedAccountsSnapshot(models.Model):
    """When role holders and IT admins were last read from Entra, and what the IT admin group is.

    One row (pk 1). `admin_group_role_assignable` False means anyone allowed to manage groups could
    make themselves an IT admin (docs/architecture.md §5); None: not known yet.
    """

    refreshed_at = models.DateTimeField()
    admin_group_id = models.CharField(max_length=36, blank=True)
    admin_group_name = models.CharField(max_length=256, blank=True)
    admin_group_role_assignable = models.BooleanField(null=True)

    def __str__(self) -> str:
        return f"Privileged accounts as of {self.refreshed_at:%Y-%m-%d %H:%M}"
