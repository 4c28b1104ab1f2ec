"""The tenant's QR code + PIN policy (PIN length, standard lifetime, targets), read and cached.

When the policy cannot be read (the grant `Policy.ReadWrite.AuthenticationMethod` is missing: 403;
Graph fails: 5xx; …) Lanyard does NOT fall back to the defaults (PIN length 8, 365 days): that
would let a custom PIN shorter than the tenant's minimum through, or give a bulk job a lifetime the
tenant does not use. `qr_policy_current` then answers a policy whose values are None, and
`qr_policy_unreadable` says so; every place that needs a value refuses what it cannot check
(docs/architecture.md §6, docs/graph-contract.md §2):
- a custom PIN (create, manager form or bulk row) is refused; a PIN Entra generates is allowed;
- a PIN reset sends a generated PIN of the maximum length, which satisfies any policy;
- a bulk QR row without expireDateTime is refused (its lifetime would be a guess).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from django.contrib.auth.models import AbstractUser
from django.core.cache import cache

from provisioning import audit
from provisioning.graph import GraphError, GraphNotFound, get_app_client, operations
from provisioning.graph.models import QrPolicy

logger = logging.getLogger(__name__)

POLICY_CACHE_KEY = "lanyard:qr-policy"
POLICY_CACHE_SECONDS = 300
# An unreadable policy is remembered briefly, so that a page full of forms does not ask Graph
# again and again, and a fixed grant shows within a minute.
UNREADABLE_CACHE_SECONDS = 60

POLICY_UNREADABLE = (
    "Lanyard could not read the tenant's QR code + PIN policy, so the minimum PIN length and the "
    "standard QR lifetime are unknown. Custom PINs are refused until it can be read (generated "
    "PINs still work). Check that the app has Policy.ReadWrite.AuthenticationMethod (README)."
)


def qr_policy_current() -> QrPolicy:
    """The tenant's QR policy, cached for a few minutes; values None when it cannot be read.

    Read with the app identity: a manager's delegated token has no policy permission.
    """
    cached = cache.get(POLICY_CACHE_KEY)
    if cached is not None:
        return QrPolicy(**cached)
    try:
        policy = operations.qr_policy_get(get_app_client())
    except GraphError as exc:
        logger.warning("QR policy unreadable; custom PINs are refused until it is: %s", exc)
        policy = QrPolicy(state=None, standard_qr_code_lifetime_in_days=None, pin_length=None)
        seconds = UNREADABLE_CACHE_SECONDS
    else:
        seconds = POLICY_CACHE_SECONDS
    cache.set(
        POLICY_CACHE_KEY,
        {
            "state": policy.state,
            "standard_qr_code_lifetime_in_days": policy.standard_qr_code_lifetime_in_days,
            "pin_length": policy.pin_length,
            "include_targets": policy.include_targets,
            "exclude_targets": policy.exclude_targets,
        },
        seconds,
    )
    return policy


def qr_policy_unreadable(policy: QrPolicy) -> bool:
    """Was the policy unreadable (so its PIN length and lifetime are unknown)?"""
    return policy.state is None


# -- the IT admin's policy page (docs/graph-contract.md §2) -------------------------------------

# The ranges Graph accepts (docs/graph-contract.md §2); checked here so a refused change never
# reaches Graph.
PIN_LENGTH_MIN, PIN_LENGTH_MAX = 8, 20
LIFETIME_DAYS_MIN, LIFETIME_DAYS_MAX = 1, 395
STATES = ("enabled", "disabled")
# Graph's include target for everyone; the page shows and accepts it by this name.
ALL_USERS_ID = "all_users"
ALL_USERS_NAME = "All users"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


@dataclass(frozen=True)
class PolicyTarget:
    """One include or exclude target with the name the page shows."""

    target_type: str  # "group" or "user"
    id: str
    name: str
    is_registration_required: bool = False


class PolicyChangeRefused(Exception):
    """The change breaks a rule Graph enforces, or names a group that does not exist; `errors`
    maps a field name to what is wrong with it. Nothing was sent to Graph."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


def qr_policy_fresh() -> QrPolicy:
    """The policy as Graph has it now (the cache is refreshed): the policy page shows this."""
    qr_policy_forget()
    return qr_policy_current()


def qr_policy_forget() -> None:
    """Drop the cached policy, so the next reader asks Graph (after a change)."""
    cache.delete(POLICY_CACHE_KEY)


def qr_policy_targets(*, targets: list[dict]) -> list[PolicyTarget]:
    """`targets` with display names, each group read once with the app identity
    (`GroupMember.Read.All`, docs/graph-contract.md §11.1 #9); a group Lanyard cannot read is
    shown by its id."""
    client = get_app_client()
    named = []
    for target in targets:
        target_id = target.get("id", "")
        kind = target.get("targetType", "group")
        name = target_id
        if target_id == ALL_USERS_ID:
            name = ALL_USERS_NAME
        elif kind == "group":
            try:
                name = operations.group_get(client, target_id).display_name or target_id
            except GraphError:
                name = target_id
        named.append(
            PolicyTarget(kind, target_id, name, bool(target.get("isRegistrationRequired", False)))
        )
    return named


def _resolve_group(client, name: str, *, allow_all_users: bool) -> tuple[str | None, str]:
    """(group id, "") or (None, the problem)."""
    if name.casefold() in (ALL_USERS_NAME.casefold(), ALL_USERS_ID):
        if allow_all_users:
            return ALL_USERS_ID, ""
        return None, "All users cannot be excluded; turn the method off instead."
    if _GUID.match(name):
        try:
            return operations.group_get(client, name).id, ""
        except GraphNotFound:
            return None, f"No group has the id {name}."
    found = operations.group_find_by_name(client, name)
    if not found:
        similar = [g.display_name for g in operations.group_search_by_prefix(client, name[:3])]
        hint = f" Groups starting like it: {', '.join(similar)}." if similar else ""
        return None, f"No group is named “{name}”.{hint}"
    if len(found) > 1:
        ids = ", ".join(group.id for group in found)
        # (an id is accepted wherever a name is)
        return None, f"{len(found)} groups are named “{name}”; enter the one you mean by id: {ids}."
    return found[0].id, ""


def _in_range(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _describe(targets: list[dict]) -> str:
    return "[" + ", ".join(t.get("id", "") for t in targets) + "]"


def qr_policy_change(
    *,
    actor: AbstractUser,
    state: str,
    pin_length: object,
    lifetime_days: object,
    include_groups: list[str],
    exclude_groups: list[str],
) -> QrPolicy:
    """Change the tenant's QR code + PIN policy with the app identity
    (`Policy.ReadWrite.AuthenticationMethod`, docs/graph-contract.md §2) and audit it.

    Values are checked as Graph checks them (state, PIN length 8–20, lifetime 1–395 days) and group
    names are resolved to ids first; any problem raises PolicyChangeRefused and nothing is sent.
    User targets and each kept target's `isRegistrationRequired` are carried over unchanged. The
    cached policy is dropped after the change. Raises GraphError when Graph refuses or fails
    (audited as failed). Returns the policy as read back from Graph.
    """
    errors: dict[str, str] = {}
    if state not in STATES:
        errors["state"] = "Choose enabled or disabled."
    if not _in_range(pin_length, PIN_LENGTH_MIN, PIN_LENGTH_MAX):
        errors["pin_length"] = (
            f"The PIN length must be a whole number from {PIN_LENGTH_MIN} to {PIN_LENGTH_MAX}."
        )
    if not _in_range(lifetime_days, LIFETIME_DAYS_MIN, LIFETIME_DAYS_MAX):
        errors["lifetime_days"] = (
            f"The standard lifetime must be a whole number of days from {LIFETIME_DAYS_MIN} "
            f"to {LIFETIME_DAYS_MAX}."
        )
    before = qr_policy_fresh()
    if qr_policy_unreadable(before):
        raise PolicyChangeRefused({"__all__": POLICY_UNREADABLE})
    client = get_app_client()
    resolved: dict[str, list[str]] = {}
    for field, names, allow_all in (
        ("include_groups", include_groups, True),
        ("exclude_groups", exclude_groups, False),
    ):
        ids: list[str] = []
        problems = []
        for name in dict.fromkeys(n.strip() for n in names if n.strip()):
            group_id, problem = _resolve_group(client, name, allow_all_users=allow_all)
            if group_id is None:
                problems.append(problem)
            elif group_id not in ids:
                ids.append(group_id)
        if problems:
            errors[field] = " ".join(problems)
        resolved[field] = ids
    if errors:
        raise PolicyChangeRefused(errors)

    kept_include = {t["id"]: t for t in before.include_targets}
    include = [t for t in before.include_targets if t.get("targetType") == "user"]
    include += [
        {
            "targetType": "group",
            "id": gid,
            "isRegistrationRequired": bool(
                kept_include.get(gid, {}).get("isRegistrationRequired", False)
            ),
        }
        for gid in resolved["include_groups"]
    ]
    exclude = [t for t in before.exclude_targets if t.get("targetType") == "user"]
    exclude += [{"targetType": "group", "id": gid} for gid in resolved["exclude_groups"]]

    changes: dict[str, object] = {}
    described = []
    for graph_name, old, new in (
        ("state", before.state, state),
        ("pinLength", before.pin_length, pin_length),
        ("standardQRCodeLifetimeInDays", before.standard_qr_code_lifetime_in_days, lifetime_days),
    ):
        if old != new:
            changes[graph_name] = new
            described.append(f"{graph_name}: {old} → {new}")
    for graph_name, old_targets, new_targets in (
        ("includeTargets", before.include_targets, include),
        ("excludeTargets", before.exclude_targets, exclude),
    ):
        if [(t.get("targetType"), t.get("id")) for t in old_targets] != [
            (t["targetType"], t["id"]) for t in new_targets
        ]:
            changes[graph_name] = new_targets
            described.append(f"{graph_name}: {_describe(old_targets)} → {_describe(new_targets)}")
    if not changes:
        return before
    detail = "; ".join(described)
    try:
        response = operations.qr_policy_update(client, **changes)
    except GraphError as exc:
        audit.record(actor=actor, action="qr_policy_update", outcome="failed",
                     target_label="QR code + PIN policy", graph_request_id=exc.request_id or "",
                     detail=f"{detail} — refused: {exc}")  # fmt: skip
        raise
    finally:
        qr_policy_forget()
    audit.record(actor=actor, action="qr_policy_update", outcome="succeeded",
                 target_label="QR code + PIN policy", graph_request_id=response.request_id or "",
                 detail=detail)  # fmt: skip
    logger.info("QR policy changed by %s: %s", actor, detail)
    return qr_policy_current()
