"""The directory cache: administrative units, their user members and scoped admin roles.

`directory_sync` mirrors Entra into the cache with the app identity; it is incremental (only rows
that changed are written) and idempotent (a second run with nothing changed in Entra writes
nothing). The first run reads every store (a full sync) and saves Graph's delta links; later runs
follow them and read only what changed (a warm sync), falling back to a full sync when Graph no
longer has the delta state (docs/graph-contract.md §4.6, docs/architecture.md §9).
`manager_scope_refresh` re-reads one manager's scoped roles with their own delegated token at
sign-in, so a role granted or revoked in Entra counts from the next sign-in. Roles held through a
role-assignable group count for each member of the group (docs/graph-contract.md §4.4).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from provisioning.graph import GraphClient, GraphError, GraphForbidden, GraphNotFound, operations
from provisioning.graph import models as graph_models
from provisioning.graph.models import RoleAssignment, User
from provisioning.models import (
    AdministrativeUnit,
    AUMembership,
    DirectorySync,
    DirectorySyncState,
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


# notice(line): a line for the person running the sync (the command prints it).
SyncNotice = Callable[[str], None]

USERS_COLLECTION = "users"
UNITS_COLLECTION = "administrativeUnits"
USER_TYPE = "#microsoft.graph.user"
# Graph's answers to a delta link it can no longer serve (docs/graph-contract.md §4.6): 410 Gone
# (with a Location to start over), or a 4xx with one of these codes. Either means a full sync.
DELTA_GONE_CODES = frozenset({"syncstatenotfound", "resyncrequired", "syncstateinvalid"})


def _delta_state_gone(exc: GraphError) -> bool:
    return exc.status == 410 or (
        exc.status is not None
        and 400 <= exc.status < 500
        and (exc.code or "").lower() in DELTA_GONE_CODES
    )


def directory_sync(
    *,
    client: GraphClient,
    progress: SyncProgress | None = None,
    notice: SyncNotice | None = None,
    full: bool = False,
) -> Counter[str]:
    """Mirror every AU, its user members and its scoped roles; remove what Entra no longer has.

    With saved delta links (docs/graph-contract.md §4.6) only what Graph's delta rounds report
    is read and written (a warm sync); without them, with `full`, or when Graph says the delta
    state is gone, every store is read (a full sync) and new links are saved. `progress` is told
    after each store of a full sync; `notice` gets a line per delta page and says which kind of
    sync ran.
    """
    return directory_sync_run(client=client, progress=progress, notice=notice, full=full)[0]


def directory_sync_run(
    *,
    client: GraphClient,
    progress: SyncProgress | None = None,
    notice: SyncNotice | None = None,
    full: bool = False,
) -> tuple[Counter[str], str]:
    """directory_sync, and which kind ran: "delta", "full" or "resync" (full after Graph refused
    a saved delta link)."""
    say = notice or (lambda _line: None)
    links = dict(DirectorySyncState.objects.values_list("collection", "delta_link"))
    mode = "full"
    summary: Counter[str] | None = None
    if links and not full and not _links_on_this_graph(links, client):
        # Saved for another Graph endpoint (GRAPH_ENDPOINT or the cloud changed): the client never
        # sends its token elsewhere, and that endpoint's state says nothing about this one.
        logger.warning("Directory sync: the saved delta links are for another Graph endpoint")
        say("The saved delta links are for another Graph endpoint: running a full sync, then "
            "saving new delta links.")  # fmt: skip
        mode = "resync"
    elif not full and USERS_COLLECTION in links and UNITS_COLLECTION in links:
        say("Warm sync: following the saved delta links (only what changed in Entra).")
        try:
            summary = _delta_sync(client=client, links=links, say=say)
            mode = "delta"
        except GraphError as exc:
            if not _delta_state_gone(exc):
                raise
            logger.warning("Directory sync: Graph refused the saved delta link (%s)", exc)
            say(
                f"Graph no longer has this sync's delta state (HTTP {exc.status} "
                f"{exc.code or ''}): running a full sync, then saving new delta links."
            )
            mode = "resync"
    if summary is None:
        if mode == "full":
            why = "asked for" if full else "no saved delta links yet"
            say(f"Full sync: reading every store ({why}).")
        summary = _full_sync_with_links(client=client, progress=progress)
    summary += it_admins_sync(client=client)
    directory_synced.send(sender=directory_sync)
    return +summary, mode  # unary + drops the zero counts


def _links_on_this_graph(links: dict[str, str], client: GraphClient) -> bool:
    """Whether every saved delta link points at the Graph endpoint `client` talks to."""
    endpoint = urlsplit(client.config.graph_endpoint)
    here = (endpoint.scheme, endpoint.netloc.lower())
    return all(
        (urlsplit(link).scheme, urlsplit(link).netloc.lower()) == here for link in links.values()
    )


def _links_store(links: dict[str, str]) -> None:
    now = timezone.now()
    with transaction.atomic():
        for collection, link in links.items():
            DirectorySyncState.objects.update_or_create(
                collection=collection, defaults={"delta_link": link, "updated_at": now}
            )


def _full_sync_with_links(*, client: GraphClient, progress: SyncProgress | None) -> Counter[str]:
    """A full sync bracketed by "sync from now" delta links (`$deltatoken=latest`, docs/
    graph-contract.md §4.6): the links are taken *before* the stores are read, so a change made
    while they are read is reported (again) by the next warm sync instead of being lost; they are
    saved only after everything is written."""
    DirectorySyncState.objects.all().delete()  # a sync stopped half-way starts over in full
    links = {
        USERS_COLLECTION: operations.delta_latest_link(
            client, operations.user_delta_request(latest=True)
        ),
        UNITS_COLLECTION: operations.delta_latest_link(
            client, operations.administrative_unit_delta_request(latest=True)
        ),
    }
    summary = _full_sync(client=client, progress=progress)
    _links_store(links)
    return summary


def _full_sync(*, client: GraphClient, progress: SyncProgress | None) -> Counter[str]:
    """Read every store's row, members and scoped roles (docs/architecture.md §9)."""
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
    summary += _orphans_remove()
    return summary


def _orphans_remove() -> Counter[str]:
    """Users in no store any more are dropped from the cache."""
    orphans = DirectoryUser.objects.filter(memberships__isnull=True)
    removed = orphans.count()
    if removed:
        orphans.delete()
    return Counter(users_removed=removed)


# -- the warm sync: Graph's delta rounds (docs/graph-contract.md §4.6) ------------------------


def _delta_sync(*, client: GraphClient, links: dict[str, str], say: SyncNotice) -> Counter[str]:
    """Apply what the users and stores delta rounds report, then the scoped roles (which have no
    delta: one listing of the stores' role assignments, docs/graph-contract.md §4.6).

    Each page is written as it arrives, so memory holds one page; the new delta links are saved
    only at the end, after every change is written. A sync stopped half-way therefore starts again
    from the previous links, and the changes it replays are written as no-ops (writes compare
    first), which is also how Graph's documented replays are absorbed.
    """
    now = timezone.now()
    summary: Counter[str] = Counter()
    new_links = {
        USERS_COLLECTION: _users_delta_apply(client, links[USERS_COLLECTION], summary, say, now),
    }
    units_link, rereads = _units_delta_apply(client, links[UNITS_COLLECTION], summary, say, now)
    new_links[UNITS_COLLECTION] = units_link
    # Stores Entra hid from the last read are asked again, as a full sync would (with their
    # current visibility, which decides how a refusal is read, §4.3).
    for row in AdministrativeUnit.objects.filter(members_unreadable_since__isnull=False):
        if row.id not in rereads:
            try:
                rereads[row.id] = operations.administrative_unit_get(client, row.id)
            except GraphNotFound:
                continue  # deleted since the stores round: the next round reports it
    unit_ids = set(AdministrativeUnit.objects.values_list("id", flat=True)) | set(rereads)
    found = privileged_accounts_refresh(client=client, unit_ids=sorted(unit_ids))
    roles = RoleTemplateResolver(client)
    for unit in rereads.values():
        # A new store, or one whose membership is hidden: read in full (its members, its roles,
        # and whether Entra lets Lanyard list them, as administrative_unit_sync always does).
        summary += administrative_unit_sync(client=client, unit=unit, roles=roles)
    summary.pop("members_read", None)
    summary += _scoped_roles_apply(found.assignments, found.group_members, now=now)
    summary += _orphans_remove()
    _links_store(new_links)
    return summary


def _users_delta_apply(
    client: GraphClient, link: str, summary: Counter[str], say: SyncNotice, now
) -> str:
    """Changed and deleted users, page by page; only users already cached (members of a store)
    are written — a user who joins a store is read when the stores round reports it."""
    next_link = ""
    for number, page in enumerate(operations.delta_pages(client, link), start=1):
        items = page.get("value") or []
        removed = [item["id"] for item in items if "@removed" in item]
        changed = [item for item in items if "@removed" not in item]
        if removed:
            gone = DirectoryUser.objects.filter(id__in=removed)
            summary["users_removed"] += gone.count()
            gone.delete()  # cascades to their memberships
        cached = set(
            DirectoryUser.objects.filter(id__in=[item["id"] for item in changed]).values_list(
                "id", flat=True
            )
        )
        summary += _users_upsert(
            [User.from_graph(item) for item in changed if item["id"] in cached], now=now
        )
        next_link = page.get("@odata.deltaLink") or next_link
        say(f"users delta: page {number}, {len(items)} changed users")
    return _delta_link_required(next_link)


def _delta_link_required(link: str) -> str:
    if not link:
        raise GraphError("Microsoft Graph ended a delta round without a deltaLink", status=200)
    return link


def _units_delta_apply(
    client: GraphClient, link: str, summary: Counter[str], say: SyncNotice, now
) -> tuple[str, dict[str, graph_models.AdministrativeUnit]]:
    """Stores added, renamed, removed, and their members added or removed, page by page.

    Returns the next deltaLink and the stores to read in full: new ones, and those whose
    membership is hidden (whether Lanyard may list them is decided as in a full sync, §4.3).
    """
    next_link = ""
    rereads: dict[str, graph_models.AdministrativeUnit] = {}
    for number, page in enumerate(operations.delta_pages(client, link), start=1):
        items = page.get("value") or []
        rows = AdministrativeUnit.objects.in_bulk([item["id"] for item in items])
        adds: list[tuple[str, str]] = []
        removes: list[tuple[str, str]] = []
        for item in items:
            unit_id = item["id"]
            if "@removed" in item:
                rereads.pop(unit_id, None)
                if unit_id in rows:
                    rows.pop(unit_id).delete()  # cascades to memberships and scoped roles
                    summary["units_removed"] += 1
                continue
            unit = graph_models.AdministrativeUnit.from_graph(item)
            row = rows.get(unit_id)
            if row is None or unit.membership_hidden or row.members_unreadable_since:
                rereads[unit_id] = unit
                continue
            summary += _unit_row_update(row, unit, now=now)
            for member in item.get("members@delta") or []:
                if member.get("@odata.type", USER_TYPE) != USER_TYPE:
                    continue  # groups in a store are not workers (the full sync casts to users)
                (removes if "@removed" in member else adds).append((unit_id, member["id"]))
        summary += _memberships_apply(client, adds=adds, removes=removes, now=now)
        next_link = page.get("@odata.deltaLink") or next_link
        say(f"stores delta: page {number}, {len(items)} changed stores")
    return _delta_link_required(next_link), rereads


def _unit_row_update(
    row: AdministrativeUnit, unit: graph_models.AdministrativeUnit, *, now
) -> Counter[str]:
    values = (unit.display_name or "", unit.description or "")
    if (row.display_name, row.description) == values:
        return Counter()
    row.display_name, row.description = values
    row.synced_at = now
    row.save(update_fields=["display_name", "description", "synced_at"])
    return Counter(units_updated=1)


def _memberships_apply(
    client: GraphClient, *, adds: list[tuple[str, str]], removes: list[tuple[str, str]], now
) -> Counter[str]:
    """Write one page's membership changes; users not cached yet are read first (20 a $batch)."""
    summary: Counter[str] = Counter()
    for unit_id, user_ids in _by_unit(removes).items():
        deleted, _ = AUMembership.objects.filter(
            administrative_unit_id=unit_id, user_id__in=user_ids
        ).delete()
        summary["members_removed"] += deleted
    if not adds:
        return summary
    wanted = {user_id for _, user_id in adds}
    cached = set(DirectoryUser.objects.filter(id__in=wanted).values_list("id", flat=True))
    fetched = _users_read(client, sorted(wanted - cached))
    summary += _users_upsert(fetched, now=now)
    known = cached | {user.id for user in fetched}
    for unit_id, user_ids in _by_unit(adds).items():
        present = set(
            AUMembership.objects.filter(
                administrative_unit_id=unit_id, user_id__in=user_ids
            ).values_list("user_id", flat=True)
        )
        new = [user_id for user_id in user_ids if user_id in known and user_id not in present]
        AUMembership.objects.bulk_create(
            [AUMembership(administrative_unit_id=unit_id, user_id=user_id) for user_id in new],
            batch_size=500,
        )
        summary["members_added"] += len(new)
    return summary


def _by_unit(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for unit_id, user_id in pairs:
        if user_id not in grouped.setdefault(unit_id, []):
            grouped[unit_id].append(user_id)
    return grouped


def _users_read(client: GraphClient, user_ids: list[str]) -> list[User]:
    """Users by id through $batch (20 a request; docs/graph-contract.md §6); a user deleted
    meanwhile (404) is left out."""
    users = []
    for result in client.batch([operations.user_get_request(user_id) for user_id in user_ids]):
        if result.ok:
            users.append(User.from_graph(result.body))
        elif result.status != 404:
            raise result.error or GraphError("Microsoft Graph did not answer a user read",
                                             status=result.status)  # fmt: skip
    return users


def _scoped_roles_apply(
    assignments: Iterable[RoleAssignment], group_members: dict[str, list[str]], *, now
) -> Counter[str]:
    """Bring ScopedRoleAssignment in line with the stores' active role assignments, writing only
    the rows that differ. Rows are keyed as the full sync keys them (`scoped_role_key`), so both
    agree; a role held through a group counts for each member of the group, as in
    `_role_holders`."""
    unit_ids = set(AdministrativeUnit.objects.values_list("id", flat=True))
    units_by_lower = {unit_id.lower(): unit_id for unit_id in unit_ids}
    wanted: dict[str, dict] = {}
    pending_names: dict[str, list[str]] = {}
    for assignment in assignments:
        unit_id = units_by_lower.get((assignment.administrative_unit_id or "").lower())
        if unit_id is None:
            continue
        members = (
            group_members.get(assignment.principal_id)
            if assignment.principal_type == GROUP_TYPE
            else None
        )
        holders = members or [assignment.principal_id]
        for user_id in holders:
            key = scoped_role_key(unit_id, assignment.role_definition_id, user_id)
            if key in wanted:
                continue
            wanted[key] = {
                "administrative_unit_id": unit_id,
                "principal_id": user_id,
                "principal_upn": "" if members else assignment.principal_user_principal_name or "",
                "principal_display_name": ""
                if members
                else assignment.principal_display_name or "",
                "role_template_id": assignment.role_definition_id,
            }
            if members:
                pending_names.setdefault(user_id, []).append(key)
    for user in DirectoryUser.objects.filter(id__in=list(pending_names)):
        for key in pending_names[user.id]:
            wanted[key]["principal_upn"] = user.user_principal_name
            wanted[key]["principal_display_name"] = user.display_name
    summary: Counter[str] = Counter()
    existing = {row.id: row for row in ScopedRoleAssignment.objects.all()}
    fields = ["administrative_unit_id", "principal_id", "principal_upn",
              "principal_display_name", "role_template_id"]  # fmt: skip
    to_create, to_update = [], []
    for key, values in wanted.items():
        row = existing.get(key)
        if row is None:
            to_create.append(ScopedRoleAssignment(id=key, synced_at=now, **values))
        elif any(getattr(row, name) != values[name] for name in fields):
            for name in fields:
                setattr(row, name, values[name])
            row.synced_at = now
            to_update.append(row)
    stale = [key for key in existing if key not in wanted]
    ScopedRoleAssignment.objects.bulk_create(to_create, batch_size=500)
    ScopedRoleAssignment.objects.bulk_update(to_update, [*fields, "synced_at"], batch_size=500)
    ScopedRoleAssignment.objects.filter(id__in=stale).delete()
    summary["roles_created"] += len(to_create)
    summary["roles_updated"] += len(to_update)
    summary["roles_removed"] += len(stale)
    return summary


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
    *,
    client: GraphClient,
    progress: SyncProgress | None = None,
    notice: SyncNotice | None = None,
    full: bool = False,
) -> Counter[str]:
    """directory_sync, with a DirectorySync row saying when it ran and what it changed."""
    run = DirectorySync.objects.create()
    try:
        summary, mode = directory_sync_run(
            client=client, progress=progress, notice=notice, full=full
        )
    except Exception as exc:
        run.outcome, run.error, run.finished_at = "failed", str(exc)[:2000], timezone.now()
        run.save(update_fields=["outcome", "error", "finished_at"])
        raise
    run.outcome, run.summary, run.finished_at = "succeeded", dict(summary), timezone.now()
    run.mode = mode
    run.save(update_fields=["outcome", "summary", "finished_at", "mode"])
    logger.info("Directory sync: %s", dict(summary))
    return summary
