"""Row checks and the preview (dry run): a BulkJob in status "draft" with every row's plan.

Nothing is written to Entra here. A preview is bound to what the IT admin saw: `preview_hash` is
a SHA-256 over the previewed rows (line, UPN, user id, plan, non-secret inputs, vault id of a custom
PIN) and the policy values used (PIN length, standard lifetime, default region); `job_confirm`
(jobs.py) recomputes it and refuses a confirmation whose hash differs, or whose policy changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import transaction
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from provisioning import vault
from provisioning.graph import (
    BatchResult,
    GraphClient,
    GraphError,
    GraphNotFound,
    GraphRequest,
    get_app_client,
    operations,
)
from provisioning.graph.client import BATCH_LIMIT
from provisioning.graph.models import USER_SELECT, QrPolicy, format_datetime
from provisioning.graph.models import User as GraphUser
from provisioning.models import BulkJob, BulkJobRow, DirectoryUser, VaultSecret, WorkerMethodState
from provisioning.phone_numbers import PhoneNumberInvalid, phone_number_normalise, phone_region_for
from provisioning.privileged import bulk_target_refusals, privileged_accounts_ensure_fresh
from provisioning.qr_policy import qr_policy_current, qr_policy_unreadable
from provisioning.rules import PHONE_LABELS, PIN_MIN_LENGTH, STANDARD_MAX_DAYS, pin_problem

logger = logging.getLogger(__name__)

# CSV column → phone type.
PHONE_COLUMNS = (
    ("Mobile", "mobile"),
    ("AlternateMobile", "alternateMobile"),
    ("OfficePhone", "office"),
)
UPN_SHAPE = re.compile(r"[^\s@]+@[^\s@]+\.[^\s@]+")
_TRUE = {"true", "yes", "y", "1", "x", "$true"}
_FALSE = {"false", "no", "n", "0", "", "$false"}
# How many unknown users a progress report stands for: five $batch reads of 20.
LOOKUP_PROGRESS_STEP = 100

# progress(users looked up so far, users to look up): optional, for a preview run as a task.
Progress = Callable[[int, int], None]


class PreviewSuperseded(Exception):
    """The job given to bulk_job_preview is no longer previewing (discarded, or another run of
    its task filled it first): nothing was written."""


@dataclass(frozen=True)
class RowInput:
    """One row before checks: from a CSV (values by canonical column) or from a group/store."""

    line: int
    upn: str
    values: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Person:
    """What the checks need to know about a user."""

    id: str
    upn: str
    display_name: str
    account_enabled: bool
    user_type: str
    usage_location: str = ""
    country: str = ""

    @classmethod
    def from_directory(cls, user: DirectoryUser) -> Person:
        return cls(
            user.id,
            user.user_principal_name,
            user.display_name,
            user.account_enabled,
            user.user_type or "Member",
            user.usage_location,
            user.country,
        )

    @classmethod
    def from_graph(cls, user: GraphUser) -> Person:
        return cls(
            user.id,
            user.user_principal_name or "",
            user.display_name or "",
            user.account_enabled is not False,
            user.user_type or "Member",
            user.usage_location or "",
            user.country or "",
        )


@dataclass
class Plan:
    line: int
    upn: str
    person: Person | None
    action: str
    reason: str = ""
    warning: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    pin: str | None = field(default=None, repr=False)  # a custom PIN, until it is vaulted


@dataclass(frozen=True)
class Policy:
    """The policy values a preview used. pin_length and lifetime_days are None when the tenant's
    QR policy could not be read: rows that need them are refused, never guessed (qr_policy.py)."""

    pin_length: int | None
    lifetime_days: int | None
    region: str

    def as_dict(self) -> dict[str, Any]:
        return {"pin_length": self.pin_length, "lifetime_days": self.lifetime_days,
                "region": self.region}  # fmt: skip


def current_policy(policy: QrPolicy | None = None) -> Policy:
    """The tenant's QR policy values the checks use (cached a few minutes by qr_policy.py), from
    `policy` when the caller has read it already."""
    policy = policy or qr_policy_current()
    if qr_policy_unreadable(policy):
        return Policy(pin_length=None, lifetime_days=None, region=settings.LANYARD_DEFAULT_REGION)
    return Policy(
        pin_length=policy.pin_length or PIN_MIN_LENGTH,
        lifetime_days=policy.standard_qr_code_lifetime_in_days or 365,
        region=settings.LANYARD_DEFAULT_REGION,
    )


# -- users ----------------------------------------------------------------------------------


# $batch reads of unknown UPNs in flight at once. Reads are charged to the client's read budget
# per request, whichever thread sends it, and a few concurrent requests are well inside Graph's
# per-app request limits (docs/graph-contract.md §7.3).
LOOKUP_CONCURRENCY = 4


def people_lookup(
    upns: Iterable[str], *, client: GraphClient | None = None, progress: Progress | None = None
) -> dict[str, Person]:
    """UPN (lower-case) → Person: the directory cache first, then Graph ($batch reads, a few
    batches at once). A UPN Graph does not know is left out; any other error raises.

    `progress(done, total)`, if given, is called after the cache and after every
    LOOKUP_PROGRESS_STEP users read from Graph (the upload page's progress bar)."""
    # Only things shaped like a UPN are looked up; the rest is reported "no such user".
    wanted = {u.strip().lower() for u in upns if UPN_SHAPE.fullmatch((u or "").strip())}
    found: dict[str, Person] = {}
    cached = DirectoryUser.objects.annotate(upn_lower=Lower("user_principal_name")).filter(
        upn_lower__in=wanted
    )
    for user in cached:
        found[user.user_principal_name.lower()] = Person.from_directory(user)
    missing = sorted(wanted - found.keys())
    if progress:
        progress(len(wanted) - len(missing), len(wanted))
    if missing:
        client = client or get_app_client()
        # UPNs with reserved characters (a guest's "#EXT#") are read one by one: $batch item
        # URLs are not reliably percent-decoded (graphsim does not decode them).
        for upn in [u for u in missing if quote(u, safe="@") != u]:
            missing.remove(upn)
            try:
                found[upn] = Person.from_graph(operations.user_get(client, upn))
            except GraphError as exc:
                if not exc.permanent:
                    raise
                logger.info("User lookup refused for a bulk row: %s", exc)
        known = len(wanted) - len(missing)

        def report(read: int) -> None:
            if progress:
                progress(known + read, len(wanted))

        found.update(_people_batch_read(missing, client=client, report=report))
    return found


def _people_batch_read(
    upns: list[str], *, client: GraphClient, report: Callable[[int], None]
) -> dict[str, Person]:
    """Read users by UPN through $batch, LOOKUP_CONCURRENCY batches in flight (one thread each,
    the same client: its session, token and limiters are shared by threads); `report(n)` after
    every LOOKUP_PROGRESS_STEP users read, and at the end."""
    groups = [upns[start : start + BATCH_LIMIT] for start in range(0, len(upns), BATCH_LIMIT)]

    def read(group: list[str]) -> list[BatchResult]:
        requests_ = [
            GraphRequest(
                "GET", operations.url(f"/users/{quote(upn, safe='@')}", select=USER_SELECT)
            )
            for upn in group
        ]
        return client.batch(requests_)

    found: dict[str, Person] = {}
    if len(groups) <= 1:
        answers = map(read, groups)
    else:
        pool = ThreadPoolExecutor(max_workers=LOOKUP_CONCURRENCY, thread_name_prefix="lookup")
        answers = pool.map(read, groups)
    done = reported = 0
    try:
        for group, results in zip(groups, answers, strict=True):
            for upn, result in zip(group, results, strict=True):
                if result.ok and isinstance(result.body, dict) and result.body.get("id"):
                    found[upn] = Person.from_graph(GraphUser.from_graph(result.body))
                elif result.error is not None and not result.error.permanent:
                    # Not "no such user": Graph could not answer. Say so rather than guess.
                    raise result.error
            done += len(group)
            if done - reported >= LOOKUP_PROGRESS_STEP or done == len(upns):
                report(done)
                reported = done
    finally:
        if len(groups) > 1:
            pool.shutdown(wait=True, cancel_futures=True)
    return found


# -- value parsing --------------------------------------------------------------------------


def parse_when(text: str) -> datetime:
    """ISO 8601 date-time or YYYY-MM-DD (midnight), in UTC; ValueError with a plain message.

    A date, or a date-time without an offset, is read in the portal's TIME_ZONE (as the upload
    page and the templates say), never silently as UTC (docs/architecture.md §7)."""
    text = text.strip()
    local = timezone.get_default_timezone()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=local).astimezone(UTC)
        value = parse_datetime(text.replace(" ", "T", 1))
    except ValueError:
        value = None
    if value is None:
        raise ValueError(f"“{text}” is not a date (use YYYY-MM-DD or ISO 8601).")
    if value.tzinfo is None:
        value = value.replace(tzinfo=local)
    return value.astimezone(UTC).replace(microsecond=0)


def parse_flag(text: str, column: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{column} must be True or False, not “{text.strip()}”.")


# -- row checks -----------------------------------------------------------------------------


def _person_problem(plan: Plan, person: Person | None) -> bool:
    """Fill in the plan for a missing, guest or disabled user; True when the row stops here."""
    if not plan.upn:
        plan.action, plan.reason = BulkJobRow.Action.INVALID, "The row has no UPN."
        return True
    if person is None:
        plan.action = BulkJobRow.Action.INVALID
        plan.reason = f"No user {plan.upn} in Entra ID (check the spelling)."
        return True
    if person.user_type.lower() == "guest":
        plan.action = BulkJobRow.Action.SKIP
        plan.reason = "Guest account (B2B): Lanyard does not provision guests."
        plan.warning = "guest"
        return True
    if not person.account_enabled:
        plan.action = BulkJobRow.Action.SKIP
        plan.reason = "The account is disabled in Entra ID."
        plan.warning = "disabled"
        return True
    return False


def check_qr_row(
    row: RowInput, person: Person | None, policy: Policy, *, has_method: bool, now: datetime
) -> Plan:
    plan = Plan(row.line, row.upn, person, BulkJobRow.Action.CREATE)
    if _person_problem(plan, person):
        return plan
    values = row.values
    problems: list[str] = []
    start = expire = None
    if values.get("startDateTime"):
        try:
            start = parse_when(values["startDateTime"])
        except ValueError as exc:
            problems.append(f"startDateTime: {exc}")
    if values.get("expireDateTime"):
        try:
            expire = parse_when(values["expireDateTime"])
        except ValueError as exc:
            problems.append(f"expireDateTime: {exc}")
    if expire is not None:
        base = start or now
        if expire <= base:
            problems.append("expireDateTime must be after startDateTime (or after now).")
        elif expire - base > timedelta(days=STANDARD_MAX_DAYS):
            problems.append(f"A QR code can live at most {STANDARD_MAX_DAYS} days.")
        elif expire <= now:
            problems.append("expireDateTime is in the past.")
    if policy.lifetime_days is None:
        if expire is None:
            problems.append(
                "No expireDateTime, and the tenant's standard QR lifetime is unknown (its QR "
                "policy could not be read): give an expireDateTime."
            )
    elif (
        start is not None and expire is None and start + timedelta(days=policy.lifetime_days) <= now
    ):
        problems.append(
            f"startDateTime plus the policy's {policy.lifetime_days}-day lifetime is already "
            "in the past: give an expireDateTime."
        )
    pin = values.get("pin") or ""
    if pin and policy.pin_length is None:
        problems.append(
            "PIN: a custom PIN cannot be checked while the tenant's QR policy cannot be read (its "
            "minimum length is unknown): leave the pin empty to have one generated."
        )
    elif pin:
        problem = pin_problem(pin, min_length=policy.pin_length)
        if problem:
            problems.append(f"PIN: {problem}")
    if problems:
        plan.action, plan.reason = BulkJobRow.Action.INVALID, " ".join(problems)
        return plan
    plan.params = {
        "start": format_datetime(start) if start else "",
        "expire": format_datetime(expire) if expire else "",
        "pin": "custom" if pin else "generated",
    }
    plan.pin = pin or None
    if has_method:
        plan.action = BulkJobRow.Action.SKIP
        plan.reason = (
            "Already has a QR code + PIN method (as of the last refresh): delete it or replace "
            "its QR code from the worker's page."
        )
        return plan
    when = values.get("startDateTime") and format_datetime(start) or "now"
    until = format_datetime(expire) if expire else f"{policy.lifetime_days} days (policy)"
    plan.reason = f"Create QR code + PIN: valid from {when}, for {until}; PIN {plan.params['pin']}."
    return plan


def check_renew_row(
    row: RowInput, person: Person | None, policy: Policy, *, has_method: bool, now: datetime
) -> Plan:
    """A renewal row: replace the worker's standard QR code, valid from now for the policy's
    standard lifetime; the PIN stays (the manager's "replace lost QR code", for many workers)."""
    plan = Plan(row.line, row.upn, person, BulkJobRow.Action.UPDATE)
    if _person_problem(plan, person):
        return plan
    if policy.lifetime_days is None:
        plan.action = BulkJobRow.Action.INVALID
        plan.reason = (
            "The tenant's standard QR lifetime is unknown (its QR policy could not be read): "
            "a renewed code would have no expiry. Try again once the policy can be read."
        )
        return plan
    if not has_method:
        plan.action = BulkJobRow.Action.SKIP
        plan.reason = "No QR code + PIN method (as of the last refresh): nothing to renew."
        return plan
    days = min(policy.lifetime_days, STANDARD_MAX_DAYS)
    expire = now + timedelta(days=days)
    plan.params = {"start": format_datetime(now), "expire": format_datetime(expire),
                   "pin": "kept"}  # fmt: skip
    plan.reason = (
        f"Replace the standard QR code: valid from now for {days} days (policy), until "
        f"{format_datetime(expire)}; the PIN stays."
    )
    return plan


def check_phone_row(row: RowInput, person: Person | None, policy: Policy) -> Plan:
    plan = Plan(row.line, row.upn, person, BulkJobRow.Action.UPDATE)
    if _person_problem(plan, person):
        return plan
    assert person is not None
    values = row.values
    problems: list[str] = []
    region = phone_region_for(usage_location=person.usage_location, country=person.country)
    numbers: dict[str, str] = {}
    for column, phone_type in PHONE_COLUMNS:
        raw = values.get(column) or ""
        if raw:
            try:
                numbers[phone_type] = phone_number_normalise(raw, region=region)
            except PhoneNumberInvalid as exc:
                problems.append(f"{column}: {exc}")
    flags = {}
    for column in ("ForcedUpdate", "ForcedRemoval"):
        try:
            flags[column] = parse_flag(values.get(column) or "", column)
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        plan.action, plan.reason = BulkJobRow.Action.INVALID, " ".join(problems)
        return plan
    forced_update, forced_removal = flags["ForcedUpdate"], flags["ForcedRemoval"]
    if "alternateMobile" in numbers and "mobile" not in numbers and forced_removal:
        plan.action = BulkJobRow.Action.INVALID
        plan.reason = (
            "An alternate mobile needs a mobile number, and ForcedRemoval would remove it "
            "(the Mobile cell is empty)."
        )
        return plan
    if not numbers and not forced_removal:
        plan.action, plan.reason = (
            BulkJobRow.Action.SKIP,
            "Nothing to change: every number is empty.",
        )
        return plan
    plan.params = {
        "numbers": numbers,
        "forced_update": forced_update,
        "forced_removal": forced_removal,
        "region": region,
    }
    parts = [f"set {PHONE_LABELS[t]} {n}" for t, n in numbers.items()]
    if forced_removal:
        removed = [PHONE_LABELS[t] for _, t in PHONE_COLUMNS if t not in numbers]
        parts.append("remove " + ", ".join(removed) + " if present")
    if numbers and not forced_update:
        parts.append("existing numbers are kept (ForcedUpdate false)")
    text = "; ".join(parts)
    plan.reason = text[:1].upper() + text[1:] + "."
    if "alternateMobile" in numbers and "mobile" not in numbers:
        plan.warning = "An alternate mobile needs a mobile number; checked when the job runs."
    return plan


def _merge_duplicates(plans: list[Plan]) -> None:
    """Identical rows for one user are merged (later ones skipped); conflicting ones rejected."""
    by_user: dict[str, list[Plan]] = {}
    for plan in plans:
        if plan.person is not None and plan.action in (
            BulkJobRow.Action.CREATE,
            BulkJobRow.Action.UPDATE,
            BulkJobRow.Action.SKIP,
        ):
            by_user.setdefault(plan.person.id, []).append(plan)
    for group in by_user.values():
        if len(group) < 2:
            continue
        first = group[0]
        same = all(p.params == first.params and p.pin == first.pin for p in group[1:])
        if same:
            for plan in group[1:]:
                plan.action = BulkJobRow.Action.SKIP
                plan.reason = f"Duplicate of line {first.line} (merged)."
                plan.pin = None
        else:
            lines = ", ".join(str(p.line) for p in group)
            for plan in group:
                plan.action = BulkJobRow.Action.INVALID
                plan.reason = f"Conflicting rows for the same user (lines {lines}): fix the file."
                plan.pin = None


def _refuse_non_frontline(plans: list[Plan], refusals: dict[str, str]) -> None:
    """Rows for an administrator or a user outside the synced stores are skipped, with why."""
    for plan in plans:
        if (
            plan.person is None
            or plan.person.id not in refusals
            or plan.warning
            in (
                "guest",
                "disabled",
            )
        ):
            continue
        plan.action = BulkJobRow.Action.SKIP
        plan.reason = refusals[plan.person.id]
        plan.warning = "not a frontline worker"
        plan.params = {}
        plan.pin = None  # a custom PIN for such a row is never stored


def _policy_refusals(
    plans: list[Plan],
    *,
    client: GraphClient | None,
    policy: QrPolicy | None = None,
    members: dict[str, set[str] | None] | None = None,
) -> None:
    """Skip, with the reason, every QR row the tenant's QR policy does not target.

    Graph refuses a create for a user the policy does not enable with an undocumented status
    (docs/graph-contract.md §2); naming those rows in the preview says why, where Graph would only
    answer a generic 400. The policy targets `all_users`, groups (nested members count) or users,
    minus its exclusions. Each targeted group's transitive members are read once per preview with
    the app identity (GroupMember.Read.All), not once per user. When the policy cannot be read,
    nothing is skipped here (the unknown values are refused by check_qr_row).

    A streamed job (bulk/streaming.py) plans its rows in chunks: it passes the policy it read once
    and one `members` dict for every chunk, so each group is still read once per job.
    """
    creates = [p for p in plans if p.action == BulkJobRow.Action.CREATE and p.person is not None]
    policy = policy or qr_policy_current()
    if not creates or qr_policy_unreadable(policy):
        return
    if policy.state != "enabled":
        for plan in creates:
            _policy_skip(plan, "The QR code + PIN method is disabled in the tenant's policy.")
        return
    if members is None:
        members = {}  # group id → its users; None: could not be read

    def group_users(group_id: str) -> set[str] | None:
        if group_id not in members:
            try:
                found = operations.group_transitive_users(
                    client or get_app_client(), group_id, select="id"
                )
                members[group_id] = {user.id.lower() for user in found}
            except GraphNotFound:
                members[group_id] = set()  # a deleted group targets nobody
            except GraphError as exc:
                if not exc.permanent:
                    raise
                # Unreadable (e.g. 403): do not guess; Graph decides when the row runs.
                logger.warning("Policy group %s unreadable for the preview: %s", group_id, exc)
                members[group_id] = None
        return members[group_id]

    def targeted(target: dict[str, Any], user_id: str) -> bool | None:
        target_id = str(target.get("id", "")).lower()
        if target.get("targetType") == "user":
            return target_id == user_id
        if target_id == "all_users":
            return True
        users = group_users(target_id)
        return None if users is None else user_id in users

    for plan in creates:
        assert plan.person is not None
        user_id = plan.person.id.lower()
        excluded = [targeted(t, user_id) for t in policy.exclude_targets]
        included = [targeted(t, user_id) for t in policy.include_targets]
        if None in excluded or (None in included and True not in included):
            continue  # a group could not be read: unknown, not refused
        if any(excluded):
            _policy_skip(plan, "The tenant's QR code + PIN policy excludes this user (a group of "
                         "its exclusions).")  # fmt: skip
        elif not any(included):
            _policy_skip(plan, "The tenant's QR code + PIN policy does not target this user (not "
                         "in an included group).")  # fmt: skip


def _policy_skip(plan: Plan, reason: str) -> None:
    plan.action = BulkJobRow.Action.SKIP
    plan.reason = f"{reason} Entra would refuse the QR code + PIN; change the policy first."
    plan.warning = "not targeted by the QR policy"
    plan.pin = None


def preview_hash(*, kind: str, policy: dict[str, Any], rows: Iterable[BulkJobRow]) -> str:
    """SHA-256 of exactly what a preview showed (never a PIN: a vault id stands for it)."""
    canonical = {
        "kind": kind,
        "policy": policy,
        "rows": [
            [r.line, r.upn.lower(), r.user_id, r.action, r.params, r.input_secret_id]
            for r in sorted(rows, key=lambda r: r.line)
        ],
    }
    data = json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(data).hexdigest()


# -- the service ----------------------------------------------------------------------------


def _previewing_job_take(job: BulkJob, *, policy: Policy, source_label: str) -> BulkJob:
    """Lock a previewing job and turn it into the draft these rows go into (inside the caller's
    transaction). A second run of its task finds it a draft already, so rows are never created
    twice; rows of an earlier, interrupted run cannot exist (rows are written in one
    transaction), but any are replaced all the same."""
    taken = (
        BulkJob.objects.select_for_update()
        .filter(pk=job.pk, status=BulkJob.Status.PREVIEWING)
        .first()
    )
    if taken is None:
        raise PreviewSuperseded(f"Bulk job {job.pk} is no longer previewing.")
    taken.rows.all().delete()
    taken.status = BulkJob.Status.DRAFT
    taken.policy = policy.as_dict()
    taken.source_label = source_label[:300]
    taken.preview_done = taken.preview_total
    taken.save(update_fields=["status", "policy", "source_label", "preview_done"])
    return taken


def bulk_job_preview(
    *,
    kind: str,
    source: str,
    source_label: str,
    inputs: list[RowInput],
    created_by: AbstractUser | None,
    source_ref: str = "",
    people: dict[str, Person] | None = None,
    client: GraphClient | None = None,
    job: BulkJob | None = None,
    progress: Progress | None = None,
) -> BulkJob:
    """Check every row and store the plan as a draft job; nothing is written to Entra.

    With `job` (a job in status "previewing", made by previewing.py), that job receives the
    rows and becomes the draft, only if it is still previewing (else PreviewSuperseded, nothing
    written); `progress` reports the user lookups (people_lookup)."""
    if kind not in BulkJob.Kind.values:
        raise ValueError(f"unknown kind {kind!r}")
    if source == BulkJob.Source.RENEW and kind != BulkJob.Kind.QR:
        raise ValueError("a renewal is a QR job")
    qr_policy = qr_policy_current()  # one read for the checks and the targets
    policy = current_policy(qr_policy)
    if people is None:
        people = people_lookup([i.upn for i in inputs], client=client, progress=progress)
    # Only frontline workers: never an administrator or a user outside the synced stores
    # (docs/architecture.md §5).
    privileged_accounts_ensure_fresh(client=client)
    now = datetime.now(UTC).replace(microsecond=0)
    plans = plans_check(kind=kind, source=source, inputs=inputs, people=people, policy=policy,
                        now=now, client=client, qr_policy=qr_policy)  # fmt: skip
    with transaction.atomic():
        if job is not None:
            job = _previewing_job_take(job, policy=policy, source_label=source_label)
        job = job or BulkJob.objects.create(
            kind=kind,
            source=source,
            # A renewal (the insights page) replaces standard QR codes, as a manager's "Renew" does.
            action=BulkJob.Action.RENEW
            if source == BulkJob.Source.RENEW
            else BulkJob.Action.CREATE,
            source_ref=source_ref,
            source_label=source_label[:300],
            created_by=created_by,
            policy=policy.as_dict(),
            preview_hash="",
        )
        rows = rows_from_plans(job=job, plans=plans, created_by=created_by)
        BulkJobRow.objects.bulk_create(rows, batch_size=1000)
        job.preview_hash = preview_hash(kind=kind, policy=job.policy, rows=rows)
        job.summary = preview_counts(rows)
        job.save(update_fields=["preview_hash", "summary"])
    logger.info("Bulk job %s previewed: %s", job.pk, job.summary)
    return job


def plans_check(
    *,
    kind: str,
    source: str,
    inputs: list[RowInput],
    people: dict[str, Person],
    policy: Policy,
    now: datetime,
    client: GraphClient | None,
    qr_policy: QrPolicy | None = None,
    policy_members: dict[str, set[str] | None] | None = None,
) -> list[Plan]:
    """Every row's plan: its checks, then duplicates merged, non-frontline users and users the
    QR policy does not target skipped. Rows of one user must be checked in one call (duplicates
    are found among `inputs`). Relies on `privileged_accounts_ensure_fresh` having run."""
    refusals = bulk_target_refusals([p.id for p in people.values()])
    with_method: set[str] = set()
    if kind == BulkJob.Kind.QR:
        ids = [p.id for p in people.values()]
        with_method = set(
            WorkerMethodState.objects.filter(user_id__in=ids, has_qr_method=True).values_list(
                "user_id", flat=True
            )
        )
    plans = []
    for row in inputs:
        person = people.get(row.upn.strip().lower()) if row.upn else None
        if source == BulkJob.Source.RENEW:
            plan = check_renew_row(
                row, person, policy, has_method=bool(person and person.id in with_method), now=now
            )
        elif kind == BulkJob.Kind.QR:
            plan = check_qr_row(
                row, person, policy, has_method=bool(person and person.id in with_method), now=now
            )
        else:
            plan = check_phone_row(row, person, policy)
        plans.append(plan)
    _merge_duplicates(plans)
    _refuse_non_frontline(plans, refusals)
    if kind == BulkJob.Kind.QR:
        _policy_refusals(plans, client=client, policy=qr_policy, members=policy_members)
    return plans


def rows_from_plans(
    *, job: BulkJob, plans: list[Plan], created_by: AbstractUser | None
) -> list[BulkJobRow]:
    """The job's rows for `plans` (not saved); a custom PIN goes into the vault here, and only
    its vault id reaches the row. Call inside the transaction that saves the rows."""
    rows = []
    for plan in plans:
        secret_id = None
        if plan.pin and plan.person and plan.action == BulkJobRow.Action.CREATE:
            secret_id = vault.secret_store(
                kind=VaultSecret.Kind.PIN,
                owner_id=plan.person.id,
                value=plan.pin,
                created_by=created_by,
            ).pk
        plan.pin = None
        status = {
            BulkJobRow.Action.INVALID: BulkJobRow.Status.FAILED,
            BulkJobRow.Action.SKIP: BulkJobRow.Status.SKIPPED,
        }.get(plan.action, BulkJobRow.Status.PENDING)
        rows.append(
            BulkJobRow(
                job=job,
                line=plan.line,
                upn=plan.upn[:320],
                user_id=plan.person.id if plan.person else "",
                display_name=(plan.person.display_name if plan.person else "")[:256],
                action=plan.action,
                reason=plan.reason,
                warning=plan.warning[:300],
                params=plan.params,
                input_secret_id=secret_id,
                status=status,
                outcome=plan.reason if status != BulkJobRow.Status.PENDING else "",
            )
        )
    return rows


def preview_counts(rows: Iterable[BulkJobRow]) -> dict[str, int]:
    counts = {"rows": 0, "create": 0, "update": 0, "skip": 0, "invalid": 0}
    for row in rows:
        counts["rows"] += 1
        counts[row.action] += 1
    return counts
