"""Who bulk jobs must never write to: directory role holders and IT admins
(docs/architecture.md §5).

Bulk jobs act with the app identity, which Entra does not limit by role or store: with it a QR code
+ PIN could be given to a Global Administrator. So Lanyard writes only to frontline workers —
members of a synced store who hold no directory role (tenant-wide or AU-scoped, directly or
through a role-assignable group, PIM activations included) and are not IT admins.

`privileged_accounts_refresh` reads, with the app identity:
- the active role assignments, tenant-wide (`directoryScopeId '/'`) and over every
  administrative unit (`'/administrativeUnits/{id}'`), 15 scopes to a `directoryScopeId in (…)`
  filter and 20 such reads to a `$batch`, with their principal
  expanded to tell users from groups ([G1] api/rbacapplication-list-roleassignments.md,
  `RoleManagement.Read.Directory`; docs/graph-contract.md §4.4) — eligible PIM assignments are
  not listed until activated;
- the (transitive) user members of every group that holds a role ([G1]
  api/group-list-transitivemembers.md, `GroupMember.Read.All`);
- the IT admin group `LANYARD_ADMIN_GROUP_ID` (whether it is role-assignable) and its members.
`sync_directory` runs it every hour and the bulk preview again when the record is older than
`PREVIEW_MAX_AGE_SECONDS`; `bulk_targets_recheck` asks Entra again just before each bulk write,
so a role gained after a preview stops the write.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from provisioning.graph import (
    GraphClient,
    GraphNotFound,
    get_app_client,
    operations,
)
from provisioning.graph.models import RoleAssignment
from provisioning.models import (
    AdminGroupMember,
    AUMembership,
    DirectoryRoleHolder,
    PrivilegedAccountsSnapshot,
)
from provisioning.roles import role_name

logger = logging.getLogger(__name__)

GROUP_TYPE = "#microsoft.graph.group"
# How old the record may be when a bulk preview relies on it (sync_directory refreshes it hourly;
# the engine re-checks every row with Entra before writing anyway).
PREVIEW_MAX_AGE_SECONDS = 600


@dataclass
class PrivilegedAccounts:
    """What `privileged_accounts_read` found in Entra."""

    assignments: list[RoleAssignment] = field(default_factory=list)
    group_members: dict[str, list[str]] = field(default_factory=dict)  # group id → user ids
    admin_members: set[str] = field(default_factory=set)
    admin_group_name: str = ""
    admin_group_role_assignable: bool | None = None


def privileged_accounts_read(
    *, client: GraphClient, unit_ids: Iterable[str] | None = None
) -> PrivilegedAccounts:
    """Read role assignments, the members of role-holding groups and the IT admins from Entra."""
    found = PrivilegedAccounts()
    if unit_ids is None:
        unit_ids = [unit.id for unit in operations.administrative_unit_list(client)]
    scopes = ["/", *(f"/administrativeUnits/{unit_id}" for unit_id in unit_ids)]
    # 15 scopes a filter, 20 filters a $batch: 2,000 stores cost 7 requests, not 2,001.
    found.assignments.extend(operations.role_assignments_for_scopes(client, scopes))
    for assignment in found.assignments:
        group_id = assignment.principal_id
        if assignment.principal_type == GROUP_TYPE and group_id not in found.group_members:
            found.group_members[group_id] = [
                user.id.lower() for user in operations.group_transitive_users(client, group_id)
            ]
    admin_group_id = settings.LANYARD_ADMIN_GROUP_ID
    if admin_group_id:
        try:
            group = operations.group_get(client, admin_group_id)
        except GraphNotFound:
            logger.warning("The IT admin group %s does not exist in Entra ID", admin_group_id)
        else:
            found.admin_group_name = group.display_name or ""
            found.admin_group_role_assignable = group.is_assignable_to_role
            found.admin_members = {
                user.id.lower() for user in operations.group_transitive_users(client, group.id)
            }
    return found


def privileged_accounts_store(found: PrivilegedAccounts) -> dict[str, int]:
    """Replace the recorded role holders and IT admins with what was read."""
    holders: list[DirectoryRoleHolder] = []
    for assignment in found.assignments:
        values = {
            "role_definition_id": assignment.role_definition_id,
            "directory_scope_id": assignment.directory_scope_id,
        }
        if assignment.principal_type == GROUP_TYPE:
            for user_id in found.group_members.get(assignment.principal_id, []):
                holders.append(
                    DirectoryRoleHolder(
                        user_id=user_id,
                        via_group_id=assignment.principal_id,
                        via_group_name=(
                            assignment.principal_display_name or assignment.principal_id
                        )[:256],
                        **values,
                    )
                )
        else:
            holders.append(DirectoryRoleHolder(user_id=assignment.principal_id, **values))
    with transaction.atomic():
        # One refresh at a time: the snapshot row is the lock (parallel bulk tasks may refresh).
        PrivilegedAccountsSnapshot.objects.select_for_update().filter(pk=1).first()
        _holders_replace(holders)
        admins_now = set(AdminGroupMember.objects.values_list("user_id", flat=True))
        AdminGroupMember.objects.exclude(user_id__in=found.admin_members).delete()
        AdminGroupMember.objects.bulk_create(
            [AdminGroupMember(user_id=u) for u in sorted(found.admin_members - admins_now)],
            batch_size=500,
        )
        PrivilegedAccountsSnapshot.objects.update_or_create(
            pk=1,
            defaults={
                "refreshed_at": timezone.now(),
                "admin_group_id": settings.LANYARD_ADMIN_GROUP_ID or "",
                "admin_group_name": found.admin_group_name[:256],
                "admin_group_role_assignable": found.admin_group_role_assignable,
            },
        )
    return {
        "role_holders": len({h.user_id for h in holders}),
        "it_admins": len(found.admin_members),
    }


_HOLDER_FIELDS = ("user_id", "role_definition_id", "directory_scope_id", "via_group_id",
                  "via_group_name")  # fmt: skip


def _holders_replace(holders: list[DirectoryRoleHolder]) -> None:
    """Make the recorded holders equal `holders`, writing only the rows that differ (an hourly
    sync of an unchanged tenant writes nothing here)."""
    wanted = {tuple(getattr(h, name) for name in _HOLDER_FIELDS): h for h in holders}
    stale = []
    for row_id, *values in DirectoryRoleHolder.objects.values_list("id", *_HOLDER_FIELDS):
        if wanted.pop(tuple(values), None) is None:
            stale.append(row_id)  # no longer held, or a duplicate
    DirectoryRoleHolder.objects.filter(id__in=stale).delete()
    DirectoryRoleHolder.objects.bulk_create(list(wanted.values()), batch_size=500)


def privileged_accounts_refresh(
    *, client: GraphClient, unit_ids: Iterable[str] | None = None
) -> PrivilegedAccounts:
    """Read and record role holders and IT admins (sync_directory, and stale bulk checks)."""
    found = privileged_accounts_read(client=client, unit_ids=unit_ids)
    privileged_accounts_store(found)
    return found


def privileged_accounts_stale(*, max_age_seconds: float = PREVIEW_MAX_AGE_SECONDS) -> bool:
    """Is the record missing or older than `max_age_seconds`?"""
    snapshot = PrivilegedAccountsSnapshot.objects.filter(pk=1).first()
    return snapshot is None or snapshot.refreshed_at < timezone.now() - timedelta(
        seconds=max_age_seconds
    )


def privileged_accounts_ensure_fresh(
    *, client: GraphClient | None = None, max_age_seconds: float = PREVIEW_MAX_AGE_SECONDS
) -> None:
    """Refresh the record when it is missing or older than `max_age_seconds`."""
    if privileged_accounts_stale(max_age_seconds=max_age_seconds):
        privileged_accounts_refresh(client=client or get_app_client())


def group_member_ids(group_id: str) -> list[str]:
    """Recorded members of a role-holding group (empty when `group_id` is not such a group)."""
    return sorted(
        set(
            DirectoryRoleHolder.objects.filter(via_group_id=group_id.lower()).values_list(
                "user_id", flat=True
            )
        )
    )


def role_assignable_group_member_ids(user_ids: Iterable[str]) -> dict[str, str]:
    """user id → name of a recorded role-holding (role-assignable) group the user belongs to."""
    rows = DirectoryRoleHolder.objects.filter(user_id__in=[u.lower() for u in user_ids]).exclude(
        via_group_id=""
    )
    return {row.user_id: row.via_group_name or row.via_group_id for row in rows}


def _scope_text(scope: str) -> str:
    if scope == "/":
        return "tenant-wide"
    if scope.lower().startswith("/administrativeunits/"):
        from provisioning.models import AdministrativeUnit

        unit_id = scope.rsplit("/", 1)[-1]
        unit = AdministrativeUnit.objects.filter(id=unit_id).first()
        return f"over {unit.display_name if unit else 'administrative unit ' + unit_id}"
    return f"over {scope}"


def bulk_target_refusals(user_ids: Iterable[str]) -> dict[str, str]:
    """user id → why a bulk job must not write to that user; absent = a frontline worker.

    A frontline worker is a member of a synced store, holds no directory role and is not an IT
    admin. Relies on the recorded state: call `privileged_accounts_ensure_fresh` first.
    """
    wanted = {u.lower(): u for u in user_ids if u}
    if not wanted:
        return {}
    refusals: dict[str, str] = {}
    in_store = {
        u.lower()
        for u in AUMembership.objects.filter(user_id__in=list(wanted.values())).values_list(
            "user_id", flat=True
        )
    }
    for key, user_id in wanted.items():
        if key not in in_store:
            refusals[user_id] = (
                "Not a member of any store Lanyard manages: bulk jobs write only to frontline "
                "workers."
            )
    admins = set(
        AdminGroupMember.objects.filter(user_id__in=list(wanted)).values_list("user_id", flat=True)
    )
    for key in admins:
        refusals[wanted[key]] = (
            "Member of the IT admin group: bulk jobs never write to administrators."
        )
    for holder in DirectoryRoleHolder.objects.filter(user_id__in=list(wanted)).order_by(
        "directory_scope_id", "role_definition_id"
    ):
        how = f" through the group {holder.via_group_name}" if holder.via_group_id else ""
        refusals[wanted[holder.user_id]] = (
            f"Holds the directory role {role_name(holder.role_definition_id)} "
            f"({_scope_text(holder.directory_scope_id)}{how}): bulk jobs never write to "
            "administrators."
        )
    return refusals


IN_LIMIT = 15  # values per `principalId in (…)` filter (docs/graph-contract.md §4.4)


def bulk_targets_recheck(*, client: GraphClient, user_ids: list[str]) -> dict[str, str | None]:
    """Ask Entra again, just before a bulk write, whether each user is still a frontline worker.

    user id → refusal reason, "" for a frontline worker, or None when Graph could not answer (the
    caller retries later). One $batch of reads per chunk: the active role assignments of the users
    (`principalId in (…)`), and the members of the IT admin group and of every group recorded as
    holding a role (roles reach the members of role-assignable groups). The recorded store
    membership and role holders (`bulk_target_refusals`) count as well. A group that gained a role
    after the last refresh of the record is seen at the next refresh (sync, or a preview).
    """
    result: dict[str, str | None] = dict.fromkeys(user_ids, "")
    for user_id, reason in bulk_target_refusals(user_ids).items():
        result[user_id] = reason
    keys = {u.lower(): u for u in user_ids}
    chunks = [list(keys)[start : start + IN_LIMIT] for start in range(0, len(keys), IN_LIMIT)]
    groups = dict(
        DirectoryRoleHolder.objects.exclude(via_group_id="")
        .values_list("via_group_id", "via_group_name")
        .distinct()
    )
    admin_group = (settings.LANYARD_ADMIN_GROUP_ID or "").lower()
    if admin_group:
        groups[admin_group] = "the IT admin group"
    group_ids = sorted(groups)
    requests_ = [operations.role_assignments_list_request(ids) for ids in chunks]
    requests_ += [operations.group_transitive_user_ids_request(g) for g in group_ids]
    answers = client.batch(requests_)
    for ids, item in zip(chunks, answers[: len(chunks)], strict=True):
        if not item.ok or not isinstance(item.body, dict):
            for key in ids:
                result[keys[key]] = None
            continue
        for value in item.body.get("value") or []:
            assignment = RoleAssignment.from_graph(value)
            user_id = keys.get(assignment.principal_id)
            if user_id is not None and result[user_id] is not None:
                result[user_id] = (
                    f"Holds the directory role {role_name(assignment.role_definition_id)} "
                    f"({_scope_text(assignment.directory_scope_id)}): bulk jobs never write to "
                    "administrators."
                )
    for group_id, item in zip(group_ids, answers[len(chunks) :], strict=True):
        if item.ok and isinstance(item.body, dict) and not item.body.get("@odata.nextLink"):
            members = {(v.get("id") or "").lower() for v in item.body.get("value") or []}
        elif item.ok:  # more than one page: read them all
            members = {u.id.lower() for u in operations.group_transitive_users(client, group_id)}
        elif item.status == 404:  # the group is gone: nobody holds a role or is an admin by it
            members = set()
        else:
            for user_id in user_ids:
                result[user_id] = None
            continue
        for key in members & set(keys):
            user_id = keys[key]
            if result[user_id] is None:
                continue
            if group_id == admin_group:
                result[user_id] = (
                    "Member of the IT admin group: bulk jobs never write to administrators."
                )
            else:
                result[user_id] = (
                    f"Member of the role-assignable group {groups[group_id]}, which holds a "
                    "directory role: bulk jobs never write to administrators."
                )
    return result


def admin_group_warning() -> str:
    """What the admin pages and `manage.py check` say when the IT admin group is not
    role-assignable ("" when it is, or when no sync has read it yet).

    Members of a role-assignable group can be changed only by Privileged Role Administrators (or
    the group's owners); any other group can be changed by Groups, User or Intune administrators —
    who could then make themselves IT admins of Lanyard and run bulk jobs
    ([E] …/role-based-access-control/groups-concept.md).
    """
    snapshot = PrivilegedAccountsSnapshot.objects.filter(pk=1).first()
    if snapshot is None or snapshot.admin_group_role_assignable is not False:
        return ""
    name = snapshot.admin_group_name or snapshot.admin_group_id
    return (
        f"The IT admin group {name} (LANYARD_ADMIN_GROUP_ID) is not role-assignable: anyone "
        "allowed to manage groups in Entra could add themselves and run bulk jobs. Create a "
        "group with “Microsoft Entra roles can be assigned to the group” set to Yes, move the IT "
        "admins there and point LANYARD_ADMIN_GROUP_ID at it."
    )
