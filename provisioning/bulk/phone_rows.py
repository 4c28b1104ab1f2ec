"""Bulk phone rows: declarative ("mobile = X"), so a retry re-reads the phone methods and computes
the remaining changes again (step 3 of the protocol in provisioning/bulk/engine.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from provisioning.bulk.leases import (
    Row,
    outcome_reason,
    row_finish,
    row_requeue,
    rows_mark_write_intent,
)
from provisioning.graph import GraphClient, GraphError, GraphRequest, operations
from provisioning.graph.models import PhoneMethod
from provisioning.models import BulkJob
from provisioning.phone_numbers import PhoneNumberInvalid, phone_number_normalise
from provisioning.rules import DEFAULT_METHOD_PHONE, PHONE_LABELS


@dataclass
class PhonePlan:
    """What one phone row changes: the writes in order, notes for its outcome, or a problem."""

    ops: list[tuple[str, str, str]] = field(default_factory=list)  # (verb, phone type, number)
    notes: list[str] = field(default_factory=list)
    problem: str = ""
    deletes: list[str] = field(default_factory=list)


def _same(have: str, want: str, region: str) -> bool:
    try:
        return phone_number_normalise(have, region=region) == want
    except PhoneNumberInvalid:
        return have.replace(" ", "") == want.replace(" ", "")


def phone_plan(params: dict[str, Any], current: dict[str, PhoneMethod]) -> PhonePlan:
    """What to change for one row, from Graph's current phones (docs/architecture.md §7
    semantics)."""
    plan = PhonePlan()
    numbers: dict[str, str] = params.get("numbers") or {}
    forced_update = bool(params.get("forced_update"))
    forced_removal = bool(params.get("forced_removal"))
    region = params.get("region") or settings.LANYARD_DEFAULT_REGION
    writes: list[tuple[str, str, str]] = []
    for phone_type in PHONE_LABELS:
        want = numbers.get(phone_type)
        have = current.get(phone_type)
        label = PHONE_LABELS[phone_type]
        if want:
            if have is None:
                writes.append(("create", phone_type, want))
                plan.notes.append(f"{label} added")
            elif _same(have.phone_number or "", want, region):
                plan.notes.append(f"{label} already {want}")
            elif forced_update:
                writes.append(("update", phone_type, want))
                plan.notes.append(f"{label} updated")
            else:
                plan.notes.append(f"{label} kept (has a number; ForcedUpdate is false)")
        elif forced_removal and have is not None:
            plan.deletes.append(phone_type)
            plan.notes.append(f"{label} removed")
    mobile_after = "mobile" not in plan.deletes and ("mobile" in numbers or "mobile" in current)
    alternate_after = "alternateMobile" not in plan.deletes and (
        "alternateMobile" in numbers or "alternateMobile" in current
    )
    if alternate_after and not mobile_after:
        plan.problem = (
            "An alternate mobile needs a mobile number: add a Mobile, or remove the alternate too."
        )
        return plan
    # Deletes last, the alternate before the mobile (Entra refuses the other order).
    deletes = sorted(plan.deletes, key=lambda t: {"alternateMobile": 0, "office": 1}.get(t, 2))
    plan.ops = writes + [("delete", t, "") for t in deletes]
    return plan


def _phone_request(user_id: str, op: tuple[str, str, str]) -> GraphRequest:
    verb, phone_type, number = op
    if verb == "create":
        return operations.phone_method_create_request(user_id, phone_type, number)
    if verb == "update":
        return operations.phone_method_update_request(user_id, phone_type, number)
    return operations.phone_method_delete_request(user_id, phone_type)


def _explain_phone(op: tuple[str, str, str], exc: GraphError) -> str:
    verb, phone_type, _ = op
    label = PHONE_LABELS[phone_type]
    if exc.status == 400 and verb == "delete":
        return (
            f"Entra refused to remove the {label}: a number that is the default sign-in method "
            f"cannot be removed, nor a mobile while an alternate exists. {outcome_reason(exc)}"
        )
    if exc.status == 400:
        return f"Entra refused the {label} number. {outcome_reason(exc)}"
    if exc.status == 404:
        return f"The user no longer exists in Entra ID. {outcome_reason(exc)}"
    return outcome_reason(exc)


def phone_chunk(job: BulkJob, rows: list[Row], token: str, client: GraphClient) -> None:
    """Work a chunk of claimed phone rows: read, plan, write through $batch, record."""
    lists = client.batch([operations.phone_method_list_request(r.user_id) for r in rows])
    plans: dict[int, PhonePlan] = {}
    states: dict[int, str] = {}
    live: list[Row] = []
    for row, item in zip(rows, lists, strict=True):
        if not item.ok:
            if item.error is not None and item.error.permanent:
                row_finish(row, token, Row.Status.FAILED, outcome_reason(item.error))
            else:
                row_requeue(row, token, f"Could not read the phone methods: {item.error}",
                            retry_after=getattr(item.error, "retry_after", None))  # fmt: skip
            continue
        current = {}
        for value in (item.body or {}).get("value") or []:
            method = PhoneMethod.from_graph(value)
            if method.phone_type:
                current[method.phone_type] = method
        if "mobile" in current:
            states[row.pk] = current["mobile"].sms_sign_in_state or ""
        plan = phone_plan(row.params, current)
        if plan.problem:
            row_finish(row, token, Row.Status.FAILED, plan.problem)
            continue
        plans[row.pk] = plan
        live.append(row)

    # The default MFA method cannot be removed (signInPreferences, beta).
    deleting = [r for r in live if plans[r.pk].deletes]
    if deleting:
        prefs = client.batch(
            [operations.sign_in_preferences_get_request(r.user_id) for r in deleting]
        )
        for row, item in zip(deleting, prefs, strict=True):
            default = (item.body or {}).get("userPreferredMethodForSecondaryAuthentication") if (
                item.ok and isinstance(item.body, dict)) else None  # fmt: skip
            phone_type = DEFAULT_METHOD_PHONE.get(default or "")
            if phone_type and phone_type in plans[row.pk].deletes:
                row_finish(
                    row, token, Row.Status.FAILED,
                    f"The {PHONE_LABELS[phone_type]} number is the worker's default sign-in "
                    "method and cannot be removed; change the default method first.",
                )  # fmt: skip
                live.remove(row)

    live = rows_mark_write_intent([r for r in live if plans[r.pk].ops], token) + [
        r for r in live if not plans[r.pk].ops
    ]
    failed: set[int] = set()
    step = 0
    while True:
        batch_rows = [r for r in live if r.pk not in failed and step < len(plans[r.pk].ops)]
        if not batch_rows:
            break
        ops = [plans[r.pk].ops[step] for r in batch_rows]
        results = client.batch(
            [_phone_request(r.user_id, op) for r, op in zip(batch_rows, ops, strict=True)]
        )
        for row, op, item in zip(batch_rows, ops, results, strict=True):
            if item.ok:
                if op[0] == "create" and op[1] == "mobile" and isinstance(item.body, dict):
                    states[row.pk] = item.body.get("smsSignInState") or states.get(row.pk, "")
                continue
            failed.add(row.pk)
            if item.error is not None and item.error.permanent:
                row_finish(row, token, Row.Status.FAILED, _explain_phone(op, item.error),
                           graph_request_id=item.request_id or "")  # fmt: skip
            else:
                why = str(item.error) if item.error else "no answer from Microsoft Graph."
                row_requeue(row, token, why, retry_after=getattr(item.error, "retry_after", None))
        step += 1
    for row in live:
        if row.pk in failed:
            continue
        plan = plans[row.pk]
        result = {"changes": plan.notes, "sms_sign_in_state": states.get(row.pk, "")}
        changed = bool(plan.ops) or row.write_sent_at is not None and row.attempts > 1
        sms = f" SMS sign-in: {states[row.pk]}." if states.get(row.pk) else ""
        text = "; ".join(plan.notes)
        outcome = text[:1].upper() + text[1:] + "." + sms
        status = Row.Status.SUCCEEDED if changed else Row.Status.SKIPPED
        row_finish(row, token, status, outcome if changed else f"Nothing changed: {outcome}",
                   result=result)  # fmt: skip
