"""Delta queries: `GET /users/delta` and `GET /directory/administrativeUnits/delta` (v1.0 and
beta; `/administrativeUnits/delta` too), docs/graph-contract.md §4.6.

What Graph documents, and graphsim serves:
- A round is one or more GETs: the first page of a round is the initial request (no token), a
  saved `@odata.deltaLink` (`$deltatoken`), or `$deltatoken=latest` ("sync from now": only a
  deltaLink, no objects). Pages after the first follow `@odata.nextLink` (`$skiptoken`); the last
  page carries the next `@odata.deltaLink`. Query options are given on the first request only and
  travel inside the tokens.
- The initial round returns every object; an AU carries its members as `members@delta`
  (`@odata.type` and `id`). A later round returns only the objects that changed since the token:
  a changed user with its selected properties (only the changed ones with `Prefer:
  return=minimal`), a changed AU with its properties and only the members added, or removed with
  `"@removed": {"reason": "deleted"}`; a deleted object as its id with `"@removed": {"reason":
  "changed"}` (soft-deleted, restorable). With `$select`, a user whose changed properties are not
  selected is not returned; AU members are tracked when `$select` names `members` or there is no
  `$select`.
- `$filter=id eq '…' or id eq '…'` scopes a round to some objects; `$top`, `$orderby`, `$expand`,
  `$search` and `$count` are refused with 400.
- An expired or unknown state token is refused with `syncStateNotFound`: 410 Gone with a
  `Location` header holding the initial query (the overview's "synchronization reset"), or
  the status `SimConfig.delta_expired_status` names.

How graphsim knows what changed: tests and the control API change the tenant's dataclasses
directly, so the `DeltaTracker` keeps a compact copy of what delta reports (per user the tracked
property values, per AU its properties and member ids) and, when a round starts, compares the
tenant with it and appends what differs to a change log. The copy is proportional to the tenant (28
MB at 100,000 users in 2,000 stores; a scan takes about a second); the log is bounded (`LOG_LIMIT`
entries): a token older than the oldest entry kept is answered as expired, as Graph does for a
token it can no longer serve.

DOC-GAP (docs/graph-contract.md §4.6): the AU page does not say whether `members@delta` lists
the members of a hidden-membership AU to a caller without Member.Read.Hidden; graphsim leaves the
annotation out for such a caller, as the members list refuses them (§4.3).
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import secrets
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from graphsim.directory import AU_PROPERTIES, HIDDEN_MEMBERSHIP, USER_DEFAULT, USER_PROPERTIES
from graphsim.errors import GraphError
from graphsim.http import Router, SimRequest, SimResponse, json_response
from graphsim.model import Tenant
from graphsim.odata import bad_query, context_url, unsupported

USERS = "users"
UNITS = "administrativeUnits"
LOG_LIMIT = 200_000  # change-log entries kept; older state tokens are expired
USER_FILTER_LIMIT = 50  # [G1] api/user-delta.md: "There is a limit of 50 filtered objects."

_TRACKED_USER = tuple(
    name for name in USER_PROPERTIES if name not in ("id", "createdDateTime", "deletedDateTime")
)
_TRACKED_UNIT = ("displayName", "description", "visibility")
_UNIT_SELECTABLE = frozenset(AU_PROPERTIES) | {"members"}
_UNSUPPORTED_OPTIONS = ("$top", "$orderby", "$expand", "$search", "$count", "$skip")
_ID_CLAUSE = re.compile(r"^\s*id\s+eq\s+'([^']+)'\s*$", re.IGNORECASE)

USER_TYPE = "#microsoft.graph.user"
GROUP_TYPE = "#microsoft.graph.group"


class ChangeLog:
    """Numbered changes, at most `limit`; `floor` is the newest sequence number dropped."""

    def __init__(self, limit: int) -> None:
        self.entries: deque[tuple[int, str, str, Any]] = deque()
        self.limit = limit
        self.seq = 0
        self.floor = 0

    def append(self, kind: str, object_id: str, detail: Any) -> None:
        self.seq += 1
        self.entries.append((self.seq, kind, object_id, detail))
        while len(self.entries) > self.limit:
            self.floor = self.entries.popleft()[0]

    def between(self, since: int, until: int) -> list[tuple[int, str, str, Any]]:
        """Entries with since < seq <= until, oldest first (rounds are short: read from the end)."""
        found = []
        for entry in reversed(self.entries):
            if entry[0] <= since:
                break
            if entry[0] <= until:
                found.append(entry)
        found.reverse()
        return found


def _user_values(user: Any) -> tuple:
    return tuple(USER_PROPERTIES[name](user) for name in _TRACKED_USER)


def _unit_members(tenant: Tenant, unit: Any) -> dict[str, str]:
    """member id → @odata.type of the AU's members that exist (users and groups)."""
    members = {}
    for member_id in unit.member_ids:
        if member_id in tenant.users:
            members[member_id] = USER_TYPE
        elif member_id in tenant.groups:
            members[member_id] = GROUP_TYPE
    return members


class DeltaTracker:
    """The last-seen copy of what delta reports, and the log of what changed since."""

    def __init__(self, limit: int = LOG_LIMIT) -> None:
        self.id = secrets.token_hex(4)
        self.log = ChangeLog(limit)
        self.users: dict[str, tuple] | None = None
        self.units: dict[str, tuple[tuple, dict[str, str]]] | None = None

    def scan(self, tenant: Tenant, kind: str) -> None:
        """Log what changed in `kind` since the last scan (the first scan only copies)."""
        if kind == USERS:
            self._scan_users(tenant)
        else:
            self._scan_units(tenant)

    def _scan_users(self, tenant: Tenant) -> None:
        seen = {user_id: _user_values(user) for user_id, user in tenant.users.items()}
        if self.users is not None:
            for user_id, values in seen.items():
                old = self.users.get(user_id)
                if old is None:
                    self.log.append(USERS, user_id, "added")
                elif old != values:
                    changed = frozenset(
                        name
                        for name, before, after in zip(_TRACKED_USER, old, values, strict=True)
                        if before != after
                    )
                    self.log.append(USERS, user_id, changed)
            for user_id in self.users.keys() - seen.keys():
                self.log.append(USERS, user_id, "removed")
        self.users = seen

    def _scan_units(self, tenant: Tenant) -> None:
        seen = {
            unit_id: (tuple(AU_PROPERTIES[name](unit) for name in _TRACKED_UNIT),
                      _unit_members(tenant, unit))
            for unit_id, unit in tenant.administrative_units.items()
        }  # fmt: skip
        if self.units is not None:
            for unit_id, (values, members) in seen.items():
                old = self.units.get(unit_id)
                if old is None:
                    self.log.append(UNITS, unit_id, "added")
                    continue
                old_values, old_members = old
                if old_values != values:
                    changed = frozenset(
                        name
                        for name, before, after in zip(_TRACKED_UNIT, old_values, values,
                                                       strict=True)
                        if before != after
                    )  # fmt: skip
                    self.log.append(UNITS, unit_id, changed)
                for member_id in members.keys() - old_members.keys():
                    self.log.append(UNITS, unit_id, ("+", member_id, members[member_id]))
                for member_id in old_members.keys() - members.keys():
                    self.log.append(UNITS, unit_id, ("-", member_id, old_members[member_id]))
            for unit_id in self.units.keys() - seen.keys():
                self.log.append(UNITS, unit_id, "removed")
        self.units = seen


def tracker_of(tenant: Tenant) -> DeltaTracker:
    if tenant.delta_tracker is None:
        tenant.delta_tracker = DeltaTracker()
    return tenant.delta_tracker


# -- state tokens ----------------------------------------------------------------------------


def _encode(state: dict[str, Any]) -> str:
    raw = json.dumps(state, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(token: str) -> dict[str, Any] | None:
    try:
        state = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    return state if isinstance(state, dict) else None


def _initial_url(req: SimRequest, state: dict[str, Any] | None) -> str:
    """The round's initial query: where Graph's 410 `Location` sends a client to start over."""
    options = []
    if state and state.get("sel") is not None:
        options.append("$select=" + ",".join(state["sel"]))
    options.append("$deltatoken=")
    return f"{req.version_url(req.path)}?{'&'.join(options)}"


def _expired(req: SimRequest, state: dict[str, Any] | None) -> GraphError:
    status = req.config.delta_expired_status if req.config else 410
    headers = {"Location": _initial_url(req, state)} if status == 410 else {}
    return GraphError(
        status,
        "syncStateNotFound",
        "The delta token is expired or unknown and data must be synchronized again.",
        headers=headers,
    )


def _state_from(req: SimRequest, token: str, kind: str, tracker: DeltaTracker) -> dict[str, Any]:
    state = _decode(token)
    epoch = req.config.delta_epoch if req.config else 0
    max_age = req.config.delta_token_max_age_s if req.config else 7 * 24 * 3600
    if (
        state is None
        or state.get("t") != tracker.id
        or state.get("k") != kind
        or state.get("e") != epoch
        or time.time() - float(state.get("i", 0)) > max_age
        or int(state.get("s", -1)) < tracker.log.floor
    ):
        raise _expired(req, state)
    return state


def _option(req: SimRequest, name: str) -> str | None:
    for key, value in req.query.items():
        if key.lower() == name.lower():
            return value
    return None


def _id_filter(req: SimRequest, kind: str) -> list[str] | None:
    raw = _option(req, "$filter")
    if raw is None:
        return None
    ids = []
    for clause in re.split(r"\s+or\s+", raw.strip(), flags=re.IGNORECASE):
        found = _ID_CLAUSE.match(clause)
        if not found:
            raise unsupported(
                "Unsupported Query. Delta supports only $filter=id eq '{value}' [or id eq …]."
            )
        ids.append(found.group(1))
    if kind == USERS and len(ids) > USER_FILTER_LIMIT:
        raise bad_query(f"At most {USER_FILTER_LIMIT} ids may be filtered on.")
    return ids


def _select(req: SimRequest, kind: str) -> list[str] | None:
    raw = _option(req, "$select")
    if raw is None:
        return None
    known = _UNIT_SELECTABLE if kind == UNITS else frozenset(USER_PROPERTIES)
    lookup = {name.lower(): name for name in known}
    chosen = []
    for part in raw.split(","):
        name = lookup.get(part.strip().lower())
        if name is None:
            raise bad_query(f"Could not find a property named '{part.strip()}' for delta.")
        chosen.append(name)
    return chosen


# -- rendering -------------------------------------------------------------------------------


def _members_visible(req: SimRequest, unit: Any) -> bool:
    """DOC-GAP (module docstring): hidden members only with Member.Read.Hidden."""
    if (unit.visibility or "").lower() != HIDDEN_MEMBERSHIP.lower():
        return True
    granted = req.principal.roles if req.principal.kind == "app" else req.principal.scopes
    return "Member.Read.Hidden" in granted


def _render_user(user: Any, select: list[str] | None, only: Iterable[str] | None) -> dict:
    names = list(select) if select is not None else list(USER_DEFAULT)
    body: dict[str, Any] = {}
    for name in names:
        if only is not None and name not in only:
            continue
        value = USER_PROPERTIES[name](user) if name in USER_PROPERTIES else None
        if value is None and only is None:
            continue  # "a property never set is not included" ([G1] api/user-delta.md)
        body[name] = value
    body["id"] = user.id
    return body


def _render_unit(
    req: SimRequest, unit: Any, select: list[str] | None, members: list[dict] | None
) -> dict:
    names = [n for n in select if n != "members"] if select is not None else list(AU_PROPERTIES)
    body: dict[str, Any] = {name: AU_PROPERTIES[name](unit) for name in names}
    body["id"] = unit.id
    if members:
        body["members@delta"] = members
    return body


def _removed(object_id: str) -> dict:
    return {"id": object_id, "@removed": {"reason": "changed"}}


def _initial_items(
    req: SimRequest, kind: str, state: dict[str, Any], offset: int, size: int
) -> tuple[list[dict], int]:
    """One page of the initial round (every object), and how many objects the round has. Only
    the page is rendered: a 100,000-user round costs the same per page as a small one."""
    tenant = req.tenant
    wanted = state.get("f")
    select = state.get("sel")
    table = tenant.users if kind == USERS else tenant.administrative_units
    if wanted:
        objects = [table[i] for i in wanted if i in table]
        total, chosen = len(objects), objects[offset : offset + size]
    else:
        total, chosen = len(table), list(itertools.islice(table.values(), offset, offset + size))
    if kind == USERS:
        return [_render_user(u, select, None) for u in chosen], total
    tracks_members = select is None or "members" in select
    items = []
    for unit in chosen:
        members = None
        if tracks_members and _members_visible(req, unit):
            members = [
                {"@odata.type": odata_type, "id": member_id}
                for member_id, odata_type in _unit_members(tenant, unit).items()
            ]
        items.append(_render_unit(req, unit, select, members))
    return items, total


def _round_items(req: SimRequest, kind: str, state: dict[str, Any], tracker) -> list[dict]:
    """What changed in (state.s, state.u], one item per object, in order of first change."""
    changes: dict[str, dict[str, Any]] = {}
    for _seq, entry_kind, object_id, detail in tracker.log.between(state["s"], state["u"]):
        if entry_kind != kind:
            continue
        info = changes.setdefault(object_id, {"state": None, "props": set(), "members": {}})
        if detail in ("added", "removed"):
            info["state"] = detail
        elif isinstance(detail, frozenset):
            info["props"] |= detail
        else:
            sign, member_id, odata_type = detail
            info["members"][member_id] = (sign, odata_type)
    wanted = set(state["f"]) if state.get("f") else None
    select = state.get("sel")
    minimal = "return=minimal" in req.headers.get("prefer", "").replace(" ", "").lower()
    tenant = req.tenant
    items = []
    for object_id, info in changes.items():
        if wanted is not None and object_id not in wanted:
            continue
        table = tenant.users if kind == USERS else tenant.administrative_units
        current = table.get(object_id)
        if info["state"] == "removed" or current is None:
            items.append(_removed(object_id))
            continue
        if kind == USERS:
            if info["state"] == "added":
                items.append(_render_user(current, select, None))
                continue
            names = list(select) if select is not None else list(USER_DEFAULT)
            changed = info["props"] & set(names)
            if not changed:
                continue  # a change to a property not selected is not reported
            items.append(_render_user(current, select, changed if minimal else None))
            continue
        tracks_members = select is None or "members" in select
        visible = _members_visible(req, current)
        if info["state"] == "added":
            members = None
            if tracks_members and visible:
                members = [
                    {"@odata.type": odata_type, "id": member_id}
                    for member_id, odata_type in _unit_members(tenant, current).items()
                ]
            items.append(_render_unit(req, current, select, members))
            continue
        members = []
        if tracks_members and visible:
            for member_id, (sign, odata_type) in info["members"].items():
                item = {"@odata.type": odata_type, "id": member_id}
                if sign == "-":
                    item["@removed"] = {"reason": "deleted"}
                members.append(item)
        props = info["props"] & set(select if select is not None else _TRACKED_UNIT)
        if not members and not props:
            continue
        items.append(_render_unit(req, current, select, members))
    return items


# -- the handler -----------------------------------------------------------------------------


def _delta(req: SimRequest, kind: str) -> SimResponse:
    for name in _UNSUPPORTED_OPTIONS:
        if _option(req, name) is not None:
            raise bad_query(f"Query option '{name}' is not supported with delta.")
    tenant = req.tenant
    page_size = req.config.delta_page_size if req.config else 200
    epoch = req.config.delta_epoch if req.config else 0
    with tenant.lock:
        tracker = tracker_of(tenant)
        skiptoken = _option(req, "$skiptoken")
        deltatoken = _option(req, "$deltatoken")
        if skiptoken:
            state = _state_from(req, skiptoken, kind, tracker)
        else:
            # A round starts: bring the change log up to date, then fix its end.
            tracker.scan(tenant, kind)
            if deltatoken and deltatoken.lower() != "latest":
                previous = _state_from(req, deltatoken, kind, tracker)
                state = {**previous, "m": "round", "u": tracker.log.seq, "o": 0}
            else:
                state = {
                    "t": tracker.id,
                    "k": kind,
                    "e": epoch,
                    "m": "initial",
                    "s": tracker.log.seq,
                    "u": tracker.log.seq,
                    "o": 0,
                    "sel": _select(req, kind),
                    "f": _id_filter(req, kind),
                }
            state["i"] = time.time()
        latest = (deltatoken or "").lower() == "latest"
        offset = int(state.get("o", 0))
        if latest:
            page: list[dict] = []
            total = 0
        elif state["m"] == "initial":
            page, total = _initial_items(req, kind, state, offset, page_size)
        else:
            items = _round_items(req, kind, state, tracker)
            page, total = items[offset : offset + page_size], len(items)
        body: dict[str, Any] = {"@odata.context": context_url(req, kind)}
        base = req.version_url(req.path)
        if offset + page_size < total:
            following = _encode({**state, "o": offset + page_size})
            body["@odata.nextLink"] = f"{base}?$skiptoken={following}"
        else:
            link = {key: state[key] for key in ("t", "k", "e", "sel", "f")}
            link.update(s=state["u"], i=time.time())
            body["@odata.deltaLink"] = f"{base}?$deltatoken={_encode(link)}"
        body["value"] = page
    return json_response(body)


def users_delta(req: SimRequest) -> SimResponse:
    return _delta(req, USERS)


def units_delta(req: SimRequest) -> SimResponse:
    return _delta(req, UNITS)


def register(router: Router) -> None:
    """Before the directory routes, so `delta` is not taken for an object id."""
    router.add("GET", "/users/delta", users_delta)
    router.add("GET", "/directory/administrativeUnits/delta", units_delta)
    # The v1.0 page's example calls /administrativeunits/delta; beta has the alias anyway.
    router.add("GET", "/administrativeUnits/delta", units_delta)
