"""The directory cache: administrative units, their user members and scoped admin roles.

`directory_sync` mirrors Entra into the cache with the app identity; it is incremental (only rows
that changed are written) and idempotent (a second run with nothing changed in Entra writes
nothing). `manager_scope_refresh` re-reads one manager's scoped roles with their own delegated token
at sign-in, so a role granted or revoked in Entra counts from the next sign-in. Roles held through
a role-assignable group count for each member of the group (docs/graph-contract.md §4.4).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from provisioning.graph import GraphClient, GraphError, GraphForbidden, operations
from provisioning.graph import models as graph_models
from provisioning.graph.models import User
from provisioning.models import (
    AdministrativeUnit,
    AUMembership,
    DirectorySync,
    DirectoryUser,
    ScopedRoleAssignment,
)
from provisioning.privileged import group_member_ids, privileged_accounts_refresh
from provisioning.roles import MANAGER_ROLE_TEMPLATES

logger = logging.getLogger(__name__)

GROUP_TYPE = "#microsoft.graph.group"

# DirectoryUser fields copied from Graph, in one place so "changed?" and "write" agree.
USER_FIELDS = (
    "user_principal_name",
    "display_name",
    "employee_id",
    "job_title",
    "department",
    "mail",
    "mobile_phone",
    "usage_location",
    "country",
    "account_enabled",
    "user_type",
)


def _user_values(user: graph_models.User) -> dict:
    return {
        "user_principal_name": user.user_principal_name or "",
        "display_name": user.display_name or "",
        "employee_id": user.employee_id or "",
        "job_title": user.job_title or "",
        "department": user.department or "",
        "mail": user.mail or "",
        "mobile_phone": user.mobile_phone or "",
        "usage_location": (user.usage_location or "")[:2],
        "country": user.country or "",
        "account_enabled": bool(user.account_enabled) if user.account_enabled is not None else True,
        "user_type": user.user_type or "Member",
    }


class RoleTemplateResolver:
    """Maps directoryRole object ids to role template ids, asking Graph once per role."""

    def __init__(self, client: GraphClient) -> None:
        self.client = client
        self._templates: dict[str, str] = {}

    def template_of(self, role_id: str) -> str:
        key = role_id.lower()
        if key not in self._templates:
            role = operations.directory_role_get(self.client, role_id)
            self._templates[key] = (role.role_template_id or "").lower()
        return self._templates[key]


# Sent after every directory sync: apps above provisioning (badges' kiosks) re-check what depends
# on who manages which store, without provisioning importing them.
directory_synced = Signal()


# Members are read 999 a page, the most Graph gives (docs/graph-contract.md §4.1, §4.3), and
# written MEMBER_BATCH at a time, so a sync holds at most one page of users and one store's member
# ids in memory, however large the tenant (docs/architecture.md §11).
MEMBER_PAGE = 999
MEMBER_BATCH = 999

# progress(units_done, units_total, members_read): called after each store.
SyncProgress = Callable[[int, int, int], None]


def directory_sync(*, client: GraphClient, progress: SyncProgress | None = None) -> Counter[str]:
    """Mirror every AU, its user members and its scoped roles; remove what Entra no longer has.

    `progress`, if given, is told after each store how many stores are done and how many members
    were read so far (the `sync_directory` command prints it).
    """
    roles = RoleTemplateResolver(client)
    summary: Counter[str] = Counter()
    seen_units: set[str] = set()
    # The AU rows themselves are small (2,000 stores are ~1 MB); their members are streamed.
    units = list(operations.administrative_unit_list(client))
    # Role holders and IT admins first: the scoped roles below expand group principals with them,
    # and bulk jobs refuse to write to them (provisioning/privileged.py).
    privileged_accounts_refresh(client=client, unit_ids=[unit.id for unit in units])
    for done, unit in enumerate(units, start=1):
        seen_units.add(unit.id)
        summary += administrative_unit_sync(client=client, unit=unit, roles=roles)
        if progress is not None:
            progress(done, len(units), summary["members_read"])
    summary.pop("members_read", None)  # progress only, not a change
    departed = AdministrativeUnit.objects.exclude(id__in=seen_units)
    summary["units_removed"] += departed.count()
    departed.delete()  # cascades to memberships and scoped roles
    orphans = DirectoryUser.objects.filter(memberships__isnull=True)
    summary["users_removed"] += orphans.count()
    orphans.delete()
    summary += it_admins_sync(client=client)
    directory_synced.send(sender=directory_sync)
    return +summary  # unary + drops the zero counts


def _it_admin_ids(client: GraphClient) -> set[str]:
    """Object ids of the IT-admin group's users, nested groups included (app identity)."""
    if not settings.LANYARD_ADMIN_GROUP_ID:
        return set()
    return {
        user.id.lower()
        for user in operations.group_transitive_users(
            client, settings.LANYARD_ADMIN_GROUP_ID, select="id"
        )
    }


def it_admins_sync(*, client: GraphClient) -> Counter[str]:
    """Set `is_it_admin` of everyone who signed in to what LANYARD_ADMIN_GROUP_ID says now.

    Someone removed from the group loses the admin pages at this sync even if their session
    lives on (docs/architecture.md §5 "Sign-in").
    """
    admin_ids = _it_admin_ids(client)
    users = get_user_model().objects.exclude(entra_object_id__isnull=True)
    now = timezone.now()
    summary: Counter[str] = Counter()
    summary["it_admins_removed"] = (
        users.filter(is_it_admin=True)
        .exclude(entra_object_id__in=admin_ids)
        .update(is_it_admin=False, roles_refreshed_at=now)
    )
    summary["it_admins_added"] = users.filter(
        is_it_admin=False, entra_object_id__in=admin_ids
    ).update(is_it_admin=True, roles_refreshed_at=now)
    return summary


def user_it_admin_refresh(*, user: AbstractUser, client: GraphClient) -> bool:
    """Re-read whether `user` is still in the IT-admin group (app identity); store and return it."""
    is_admin = (user.entra_object_id or "").lower() in _it_admin_ids(client)
    now = timezone.now()
    get_user_model().objects.filter(pk=user.pk).update(is_it_admin=is_admin, roles_refreshed_at=now)
    user.is_it_admin = is_admin
    user.roles_refreshed_at = now
    return is_admin


def administrative_unit_sync(
    *,
    client: GraphClient,
    unit: graph_models.AdministrativeUnit,
    roles: RoleTemplateResolver | None = None,
) -> Counter[str]:
    """Bring one AU's row, members and scoped roles in line with Entra.

    An AU whose members Entra will not list to Lanyard (hidden membership without
    Member.Read.Hidden) keeps its cached members as last read and is marked
    `members_unreadable_since`; its row and scoped roles are still synced, so the sync carries on.
    """
    roles = roles or RoleTemplateResolver(client)
    now = timezone.now()
    summary: Counter[str] = Counter()
    assignments = [
        (membership, roles.template_of(membership.role_id))
        for membership in operations.administrative_unit_scoped_role_members(client, unit.id)
    ]
    # Users are written as their pages arrive, outside the AU's transaction, so no transaction
    # stays open across Graph requests.
    member_ids, unreadable = _members_stream(client, unit, summary, now=now)

    with transaction.atomic():
        row, created = AdministrativeUnit.objects.get_or_create(
            id=unit.id,
            defaults={
                "display_name": unit.display_name or "",
                "description": unit.description or "",
                "synced_at": now,
            },
        )
        if created:
            summary["units_created"] += 1
        elif (row.display_name, row.description) != (
            unit.display_name or "",
            unit.description or "",
        ):
            row.display_name = unit.display_name or ""
            row.description = unit.description or ""
            row.synced_at = now
            row.save(update_fields=["display_name", "description", "synced_at"])
            summary["units_updated"] += 1

        summary += _members_readability_record(row, unreadable, now=now)
        if member_ids is not None:
            summary += _memberships_replace(row, member_ids, now=now)
        summary += _scoped_roles_replace(row, assignments, now=now)
    return +summary


def _members_stream(
    client: GraphClient, unit: graph_models.AdministrativeUnit, summary: Counter[str], *, now
) -> tuple[set[str] | None, str]:
    """Upsert the AU's user members page by page; return their ids, or (None, why) when Entra
    refuses Lanyard the list. Only the ids are kept: user rows are written MEMBER_BATCH at a time.
    """
    member_ids: set[str] = set()
    batch: list[graph_models.User] = []
    try:
        for user in _members_read(client, unit):
            batch.append(user)
            member_ids.add(user.id)
            if len(batch) >= MEMBER_BATCH:
                summary += _users_upsert(batch, now=now)
                batch = []
    except _MembersRefused as refused:
        return None, refused.reason
    summary += _users_upsert(batch, now=now)
    summary["members_read"] += len(member_ids)
    return member_ids, ""


class _MembersRefused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _members_read(client: GraphClient, unit: graph_models.AdministrativeUnit) -> Iterator[User]:
    """The AU's user members, 999 a page; raises _MembersRefused when Entra refuses the list.

    Listing a hidden-membership AU needs Member.Read.Hidden (docs/graph-contract.md §4.3), an
    optional grant. The pages name the permission but not the answer without it: a 403 on any AU is
    taken as "not readable"; for an AU that reports `visibility: HiddenMembership` so is any other
    permanent refusal (a 400 or 404), whichever code a real tenant returns. A 401, throttling and
    server errors still fail the sync, as they would for every store. Graph refuses on the first
    page, before any member is written.
    """
    try:
        yield from operations.administrative_unit_users(client, unit.id, top=MEMBER_PAGE)
    except GraphError as exc:
        refused = isinstance(exc, GraphForbidden) or (
            unit.membership_hidden and exc.permanent and exc.status not in (401, 429)
        )
        if not refused:
            raise
        hidden = " (hidden membership)" if unit.membership_hidden else ""
        logger.warning(
            "Directory sync: skipped the members of store %s (%s)%s: Entra refused the list "
            "(HTTP %s %s). Grant Lanyard's app the Member.Read.Hidden permission to read them.",
            unit.display_name,
            unit.id,
            hidden,
            exc.status,
            exc.code or "",
        )
        raise _MembersRefused(f"HTTP {exc.status} {exc.code or ''}{hidden}".strip()) from exc


def administrative_unit_list_unreadable() -> list[AdministrativeUnit]:
    """Stores whose member list Entra currently refuses Lanyard (hidden membership), by name."""
    return list(AdministrativeUnit.objects.filter(members_unreadable_since__isnull=False))


def _members_readability_record(unit: AdministrativeUnit, unreadable: str, *, now) -> Counter[str]:
    """Mark or clear `members_unreadable_since`; counts only changes (a second run is quiet)."""
    if unreadable and unit.members_unreadable_since is None:
        unit.members_unreadable_since = now
        unit.members_unreadable_reason = unreadable[:300]
        unit.save(update_fields=["members_unreadable_since", "members_unreadable_reason"])
        return Counter(units_members_hidden=1)
    if not unreadable and unit.members_unreadable_since is not None:
        unit.members_unreadable_since = None
        unit.members_unreadable_reason = ""
        unit.save(update_fields=["members_unreadable_since", "members_unreadable_reason"])
        return Counter(units_members_readable_again=1)
    return Counter()


def _users_upsert(users: Iterable[graph_models.User], *, now) -> Counter[str]:
    summary: Counter[str] = Counter()
    wanted = {user.id: _user_values(user) for user in users}
    existing = {
        row["id"]: row
        for row in DirectoryUser.objects.filter(id__in=list(wanted)).values("id", *USER_FIELDS)
    }
    to_create, to_update = [], []
    for user_id, values in wanted.items():
        current = existing.get(user_id)
        if current is None:
            to_create.append(DirectoryUser(id=user_id, synced_at=now, **values))
        elif any(current[name] != values[name] for name in USER_FIELDS):
            to_update.append(DirectoryUser(id=user_id, synced_at=now, **values))
    DirectoryUser.objects.bulk_create(to_create, batch_size=500)
    DirectoryUser.objects.bulk_update(to_update, [*USER_FIELDS, "synced_at"], batch_size=500)
    summary["users_created"] += len(to_create)
    summary["users_updated"] += len(to_update)
    return summary


def _memberships_replace(unit: AdministrativeUnit, user_ids: set[str], *, now) -> Counter[str]:
    current = set(
        AUMembership.objects.filter(administrative_unit=unit).values_list("user_id", flat=True)
    )
    added, removed = user_ids - current, current - user_ids
    AUMembership.objects.bulk_create(
        [AUMembership(administrative_unit=unit, user_id=user_id) for user_id in added],
        batch_size=500,
    )
    AUMembership.objects.filter(administrative_unit=unit, user_id__in=removed).delete()
    return Counter(members_added=len(added), members_removed=len(removed))


def scoped_role_key(unit_id: str, template: str, user_id: str) -> str:
    """A ScopedRoleAssignment's id: one row per user holding a role over a store, however it is
    held (directly or through a group) and whichever API reported it (scopedRoleMembers in the
    sync, roleAssignments at sign-in), so the two refreshes agree on the rows."""
    return f"{unit_id}/{template}/{user_id}".lower()


def _role_holders(
    membership: graph_models.ScopedRoleMembership,
) -> list[tuple[str, str, str]]:
    """(user id, UPN, display name) of everyone holding the membership's role: its principal, or
    each member of the role-assignable group it names (recorded by privileged_accounts_refresh)."""
    principal = (membership.member_id or "").lower()
    members = group_member_ids(principal)
    if not members:
        return [
            (principal, membership.member_user_principal_name or "",
             membership.member_display_name or "")
        ]  # fmt: skip
    names = {
        user.id.lower(): (user.user_principal_name, user.display_name)
        for user in DirectoryUser.objects.filter(id__in=members)
    }
    return [(user_id, *names.get(user_id, ("", ""))) for user_id in members]


def _scoped_roles_replace(
    unit: AdministrativeUnit,
    assignments: list[tuple[graph_models.ScopedRoleMembership, str]],
    *,
    now,
) -> Counter[str]:
    summary: Counter[str] = Counter()
    seen = set()
    for membership, template in assignments:
        for user_id, upn, display_name in _role_holders(membership):
            key = scoped_role_key(unit.id, template, user_id)
            if key in seen:
                continue
            seen.add(key)
            summary += _scoped_role_upsert(
                key,
                {
                    "administrative_unit": unit,
                    "principal_id": user_id,
                    "principal_upn": upn,
                    "principal_display_name": display_name,
                    "role_template_id": template,
                },
                now=now,
            )
    stale = ScopedRoleAssignment.objects.filter(administrative_unit=unit).exclude(id__in=seen)
    summary["roles_removed"] += stale.count()
    stale.delete()
    return summary


def _scoped_role_upsert(key: str, values: dict, *, now) -> Counter[str]:
    summary: Counter[str] = Counter()
    row = ScopedRoleAssignment.objects.filter(id=key).first()
    if row is None:
        ScopedRoleAssignment.objects.create(id=key, synced_at=now, **values)
        summary["roles_created"] += 1
    elif any(getattr(row, name) != value for name, value in values.items()):
        for name, value in values.items():
            setattr(row, name, value)
        row.synced_at = now
        row.save()
        summary["roles_updated"] += 1
    return summary


def manager_scope_refresh(*, user: AbstractUser, client: GraphClient) -> list[str]:
    """Re-read, with `user`'s delegated token, the stores they manage, whether they manage every
    store (a tenant-wide manager role) and whether they are an IT admin.

    Only calls the README's delegated permissions cover (docs/graph-contract.md §4.4, §11):
    `GET /me/transitiveMemberOf` (`User.Read`) for the admin group and the role-assignable groups
    the user is in, then `GET /roleManagement/directory/roleAssignments?$filter=principalId eq
    '{id}'` (`RoleManagement.Read.Directory`, [G1] api/rbacapplication-list-roleassignments.md)
    for the user and each such group. Active assignments only: a PIM-eligible role counts once
    activated. Returns the ids of AUs that were not in the cache yet: the caller syncs their
    members.
    """
    now = timezone.now()
    principal_id = (user.entra_object_id or "").lower()
    member_of = list(operations.me_transitive_member_of(client))
    is_admin = bool(settings.LANYARD_ADMIN_GROUP_ID) and any(
        item.id.lower() == settings.LANYARD_ADMIN_GROUP_ID.lower() for item in member_of
    )
    # Roles reach a user directly or through a role-assignable group (which cannot be nested).
    # When Graph does not say whether a group is role-assignable, ask about it anyway.
    principals = [principal_id] + [
        item.id.lower()
        for item in member_of
        if item.odata_type == GROUP_TYPE and item.is_assignable_to_role is not False
    ]
    managing = [
        assignment
        for principal in principals
        for assignment in operations.role_assignments_for_principal(client, principal)
        if assignment.role_definition_id in MANAGER_ROLE_TEMPLATES
    ]
    manages_all_stores = any(a.directory_scope_id == "/" for a in managing)
    scoped = {
        (a.administrative_unit_id, a.role_definition_id)
        for a in managing
        if a.administrative_unit_id
    }
    new_units = []
    for unit_id in sorted({unit_id for unit_id, _ in scoped}):
        if not AdministrativeUnit.objects.filter(id=unit_id).exists():
            unit = operations.administrative_unit_get(client, unit_id)
            AdministrativeUnit.objects.create(
                id=unit.id,
                display_name=unit.display_name or "",
                description=unit.description or "",
                synced_at=now,
            )
            new_units.append(unit.id)
    with transaction.atomic():
        seen = set()
        for unit_id, template in scoped:
            key = scoped_role_key(unit_id, template, principal_id)
            seen.add(key)
            ScopedRoleAssignment.objects.update_or_create(
                id=key,
                defaults={
                    "administrative_unit_id": unit_id,
                    "principal_id": principal_id,
                    "principal_upn": user.user_principal_name,
                    "principal_display_name": user.display_name,
                    "role_template_id": template,
                    "synced_at": now,
                },
            )
        ScopedRoleAssignment.objects.filter(principal_id=principal_id).exclude(id__in=seen).delete()
        get_user_model().objects.filter(pk=user.pk).update(
            is_it_admin=is_admin, manages_all_stores=manages_all_stores, roles_refreshed_at=now
        )
    user.is_it_admin = is_admin
    user.manages_all_stores = manages_all_stores
    user.roles_refreshed_at = now
    return new_units


def directory_sync_recorded(
    *, client: GraphClient, progress: SyncProgress | None = None
) -> Counter[str]:
    """directory_sync, with a DirectorySync row saying when it ran and what it changed."""
    run = DirectorySync.objects.create()
    try:
        summary = directory_sync(client=client, progress=progress)
    except Exception as exc:
        run.outcome, run.error, run.finished_at = "failed", str(exc)[:2000], timezone.now()
        run.save(update_fields=["outcome", "error", "finished_at"])
        raise
    run.outcome, run.summary, run.finished_at = "succeeded", dict(summary), timezone.now()
    run.save(update_fields=["outcome", "summary", "finished_at"])
    logger.info("Directory sync: %s", dict(summary))
    return summary
