"""Manager actions on one worker: request them (an Operation row + a task) and carry them out.

`operation_request` is what a view calls: it validates what it can locally (PIN rules, lifetimes,
phone rules Graph would refuse), writes the Operation, and enqueues `provisioning.operation_run`
on commit. `operation_execute` is what the task calls, with the manager's delegated Graph client:
one function per kind, each safe to run again after a transient failure — on a retry it first
re-reads Graph's state (DESIGN.md §6), so a lost response never orphans a credential.

Secrets: a custom PIN typed by the manager goes into the vault at once and travels to the task as a
vault id; the PIN and QR payload Graph returns go into the vault (provisioning/qr.py). Neither
reaches the Operation row, a task argument, the audit log or a log line.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractUser
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from provisioning import audit, qr, vault
from provisioning.graph import (
    GraphClient,
    GraphConflict,
    GraphError,
    GraphNotFound,
    get_app_client,
    operations,
)
from provisioning.graph.models import QrPolicy
from provisioning.models import (
    AdministrativeUnit,
    DirectoryUser,
    Operation,
    VaultSecret,
    WorkerMethodState,
)

logger = logging.getLogger(__name__)

PIN_MIN_LENGTH = 8
PIN_MAX_LENGTH = 20
STANDARD_MAX_DAYS = 395
TEMPORARY_MIN_HOURS = 1
TEMPORARY_MAX_HOURS = 12
PHONE_TYPES = {"mobile": "mobile", "alternateMobile": "alternate mobile", "office": "office"}
# Which phone a default MFA method uses (signInPreferences, CONTRACT.md §3.1).
DEFAULT_METHOD_PHONE = {
    "sms": "mobile",
    "voiceMobile": "mobile",
    "voiceAlternateMobile": "alternateMobile",
    "voiceOffice": "office",
}
POLICY_CACHE_KEY = "lanyard:qr-policy"
POLICY_CACHE_SECONDS = 300


class ActionRefused(ValueError):
    """The action cannot be requested; the message says why in plain words."""


# -- rules checked before anything is sent (the same ones Graph enforces) --------------------


def pin_problem(pin: str, *, min_length: int) -> str | None:
    """Why `pin` breaks the QR PIN rules (CONTRACT.md §1.2), or None."""
    if not re.fullmatch(r"[0-9]+", pin or ""):
        return "The PIN may contain only the digits 0–9."
    low = max(PIN_MIN_LENGTH, min_length)
    if not low <= len(pin) <= PIN_MAX_LENGTH:
        return f"The PIN must be {low} to {PIN_MAX_LENGTH} digits long."
    if "0123456789" in pin or "9876543210" in pin:
        return "The PIN must not contain 0123456789 or 9876543210."
    for start in range(len(pin) - 5):
        window = pin[start : start + 6]
        if window[:2] * 3 == window or window[:3] * 2 == window:
            return "The PIN must not repeat a group of 2 or 3 digits (like 121212 or 123123)."
    return None


def qr_policy_current() -> QrPolicy:
    """The tenant's QR policy (PIN length, standard lifetime), cached for a few minutes.

    Read with the app identity: a manager's delegated token has no Policy.Read.All.
    """
    cached = cache.get(POLICY_CACHE_KEY)
    if cached is not None:
        return QrPolicy(**cached)
    try:
        policy = operations.qr_policy_get(get_app_client())
    except GraphError as exc:
        logger.warning("QR policy unreadable, using defaults: %s", exc)
        return QrPolicy(state=None, standard_qr_code_lifetime_in_days=365, pin_length=8)
    cache.set(
        POLICY_CACHE_KEY,
        {
            "state": policy.state,
            "standard_qr_code_lifetime_in_days": policy.standard_qr_code_lifetime_in_days,
            "pin_length": policy.pin_length,
        },
        POLICY_CACHE_SECONDS,
    )
    return policy


def _iso(value: datetime) -> str:
    return value.isoformat()


def _dt(value: str | None) -> datetime | None:
    return parse_datetime(value) if value else None


# -- requesting an action ------------------------------------------------------------------


def operation_request(
    *,
    kind: str,
    worker: DirectoryUser,
    unit: AdministrativeUnit,
    requested_by: AbstractUser,
    params: dict[str, Any] | None = None,
    custom_pin: str | None = None,
) -> Operation:
    """Record the action and run it in a worker once the transaction commits."""
    from provisioning.tasks.actions import operation_run

    with transaction.atomic():
        input_secret_id = None
        if custom_pin is not None:
            input_secret_id = vault.secret_store(
                kind=VaultSecret.Kind.PIN,
                owner_id=worker.id,
                value=custom_pin,
                created_by=requested_by,
                ttl=timedelta(hours=1),
            ).pk
        operation = Operation.objects.create(
            kind=kind,
            worker_id=worker.id,
            worker_label=worker.display_name,
            administrative_unit=unit,
            requested_by=requested_by,
            params=params or {},
            input_secret_id=input_secret_id,
        )
        audit.record(
            actor=requested_by,
            action=kind,
            outcome="pending",
            target_user_id=worker.id,
            target_label=worker.user_principal_name,
            administrative_unit_id=unit.id,
            detail=f"Requested: {operation.get_kind_display()}",
        )
        transaction.on_commit(lambda: operation_run.delay(operation.id))
    return operation


def qr_method_add(
    *,
    worker: DirectoryUser,
    unit: AdministrativeUnit,
    requested_by: AbstractUser,
    start: datetime,
    expire: datetime,
    custom_pin: str | None,
) -> Operation:
    policy = qr_policy_current()
    if expire <= start:
        raise ActionRefused("The expiry must be after the activation date.")
    if expire - start > timedelta(days=STANDARD_MAX_DAYS):
        raise ActionRefused(f"A QR code can be valid for at most {STANDARD_MAX_DAYS} days.")
    if custom_pin is not None:
        problem = pin_problem(custom_pin, min_length=policy.pin_length or PIN_MIN_LENGTH)
        if problem:
            raise ActionRefused(problem)
    return operation_request(
        kind=Operation.Kind.QR_CREATE,
        worker=worker,
        unit=unit,
        requested_by=requested_by,
        params={
            "start": _iso(start),
            "expire": _iso(expire),
            "pin": "custom" if custom_pin is not None else "generated",
        },
        custom_pin=custom_pin,
    )


def qr_expiry_set(
    *, worker: DirectoryUser, unit: AdministrativeUnit, requested_by: AbstractUser, expire: datetime
) -> Operation:
    state = _state(worker)
    if state is None or not state.has_qr_method or state.standard_expires is None:
        raise ActionRefused(f"{worker.display_name} has no standard QR code to change.")
    start = state.standard_start or timezone.now()
    if expire <= max(start, timezone.now()):
        raise ActionRefused("The new expiry must be in the future and after the activation date.")
    if expire - start > timedelta(days=STANDARD_MAX_DAYS):
        latest = timezone.localtime(start + timedelta(days=STANDARD_MAX_DAYS))
        raise ActionRefused(
            f"A QR code can be valid for at most {STANDARD_MAX_DAYS} days after it was activated "
            f"(for this code: {latest:%d %b %Y}). Replace it to get a new one."
        )
    return operation_request(
        kind=Operation.Kind.QR_EXPIRY_SET,
        worker=worker,
        unit=unit,
        requested_by=requested_by,
        params={"expire": _iso(expire)},
    )


def qr_replace(
    *, worker: DirectoryUser, unit: AdministrativeUnit, requested_by: AbstractUser, expire: datetime
) -> Operation:
    """Lost badge: delete + create the standard code; the PIN stays."""
    state = _state(worker)
    if state is None or not state.has_qr_method:
        raise ActionRefused(f"{worker.display_name} has no QR code + PIN method to replace.")
    start = timezone.now()
    if expire <= start or expire - start > timedelta(days=STANDARD_MAX_DAYS):
        raise ActionRefused(f"The expiry must be within the next {STANDARD_MAX_DAYS} days.")
    return operation_request(
        kind=Operation.Kind.QR_REPLACE,
        worker=worker,
        unit=unit,
        requested_by=requested_by,
        params={"start": _iso(start), "expire": _iso(expire)},
    )


def qr_temporary_add(
    *,
    worker: DirectoryUser,
    unit: AdministrativeUnit,
    requested_by: AbstractUser,
    start: datetime,
    hours: int,
) -> Operation:
    state = _state(worker)
    if state is None or not state.has_qr_method:
        raise ActionRefused(
            f"{worker.display_name} needs a QR code + PIN method before a temporary QR code."
        )
    if not TEMPORARY_MIN_HOURS <= hours <= TEMPORARY_MAX_HOURS:
        raise ActionRefused("A temporary QR code lasts 1 to 12 hours.")
    if state.temporary_expires and state.temporary_expires > timezone.now():
        raise ActionRefused("There is already a temporary QR code: delete it first.")
    return operation_request(
        kind=Operation.Kind.QR_TEMPORARY_CREATE,
        worker=worker,
        unit=unit,
        requested_by=requested_by,
        params={"start": _iso(start), "expire": _iso(start + timedelta(hours=hours))},
    )


def qr_simple(
    *, kind: str, worker: DirectoryUser, unit: AdministrativeUnit, requested_by: AbstractUser
) -> Operation:
    """Delete the temporary code, reset the PIN, or delete the method."""
    state = _state(worker)
    if state is None or not state.has_qr_method:
        raise ActionRefused(f"{worker.display_name} has no QR code + PIN method.")
    if kind == Operation.Kind.QR_TEMPORARY_DELETE and not state.temporary_expires:
        raise ActionRefused(f"{worker.display_name} has no temporary QR code.")
    return operation_request(kind=kind, worker=worker, unit=unit, requested_by=requested_by)


def phone_set(
    *,
    worker: DirectoryUser,
    unit: AdministrativeUnit,
    requested_by: AbstractUser,
    phone_type: str,
    number: str,
) -> Operation:
    """Add or change one phone; `number` is already normalised (`+CC NUMBER[xEXT]`)."""
    if phone_type not in PHONE_TYPES:
        raise ActionRefused("Unknown phone type.")
    state = _state(worker)
    if phone_type == "alternateMobile" and not (state and state.mobile_phone):
        raise ActionRefused(
            "An alternate mobile number needs a mobile number first: add the mobile number."
        )
    return operation_request(
        kind=Operation.Kind.PHONE_SET,
        worker=worker,
        unit=unit,
        requested_by=requested_by,
        params={"phone_type": phone_type, "number": number},
    )


def phone_remove(
    *, worker: DirectoryUser, unit: AdministrativeUnit, requested_by: AbstractUser, phone_type: str
) -> Operation:
    if phone_type not in PHONE_TYPES:
        raise ActionRefused("Unknown phone type.")
    state = _state(worker)
    if phone_type == "mobile" and state and state.alternate_mobile_phone:
        raise ActionRefused(
            "The mobile number cannot be removed while there is an alternate mobile number: "
            "remove the alternate first, or change the mobile number instead."
        )
    if state and DEFAULT_METHOD_PHONE.get(state.default_method) == phone_type:
        raise ActionRefused(
            f"The {PHONE_TYPES[phone_type]} number is {worker.display_name}'s default sign-in "
            "method, so Entra will not remove it. The worker (or an admin) must choose another "
            "default method first."
        )
    return operation_request(
        kind=Operation.Kind.PHONE_DELETE,
        worker=worker,
        unit=unit,
        requested_by=requested_by,
        params={"phone_type": phone_type},
    )


def operation_resume(*, operation: Operation, requested_by: AbstractUser) -> bool:
    """Run again an action that stopped because the manager had to sign in again."""
    from provisioning.tasks.actions import operation_run

    updated = Operation.objects.filter(
        pk=operation.pk, requested_by=requested_by, status=Operation.Status.NEEDS_SIGN_IN
    ).update(status=Operation.Status.PENDING, error="", graph_request_id="")
    if updated:
        transaction.on_commit(lambda: operation_run.delay(operation.pk))
    return bool(updated)


def pin_reveal(*, operation: Operation, requester: AbstractUser) -> str:
    """The new PIN, exactly once, for the manager who requested the action."""
    with transaction.atomic():
        locked = Operation.objects.select_for_update().get(pk=operation.pk)
        if not locked.pin_secret_id or locked.pin_revealed_at is not None:
            raise vault.SecretUnavailable("This PIN has already been shown.")
        pin = vault.secret_reveal_once(
            secret_id=locked.pin_secret_id,
            kind=VaultSecret.Kind.PIN,
            owner_id=locked.worker_id,
            requester=requester,
        )
        locked.pin_revealed_at = timezone.now()
        locked.save(update_fields=["pin_revealed_at"])
        audit.record(
            actor=requester,
            action="pin-revealed",
            outcome="succeeded",
            target_user_id=locked.worker_id,
            target_label=locked.worker_label,
            administrative_unit_id=locked.administrative_unit_id,
            detail="The new PIN was shown once to the manager.",
        )
    return pin


def pin_handed_over(*, operation: Operation, requester: AbstractUser) -> None:
    """The manager confirms the PIN reached the worker: any unrevealed copy is destroyed too."""
    with transaction.atomic():
        locked = Operation.objects.select_for_update().get(pk=operation.pk)
        if locked.pin_secret_id:
            vault.secret_destroy(secret_id=locked.pin_secret_id, reason="handed-over")
        if locked.pin_revealed_at is None:
            locked.pin_revealed_at = timezone.now()
        locked.pin_handed_over_at = timezone.now()
        locked.save(update_fields=["pin_revealed_at", "pin_handed_over_at"])
        audit.record(
            actor=requester,
            action="pin-handed-over",
            outcome="succeeded",
            target_user_id=locked.worker_id,
            target_label=locked.worker_label,
            administrative_unit_id=locked.administrative_unit_id,
            detail="The manager confirmed the PIN was handed over.",
        )


def qr_payload_for_operation(*, operation: Operation) -> bytes:
    """The QR payload of the code this action created (for the preview and the badge)."""
    if not operation.payload_secret_id:
        raise vault.SecretUnavailable("This action created no QR code.")
    value = vault.secret_read(
        secret_id=operation.payload_secret_id,
        kind=VaultSecret.Kind.QR_PAYLOAD,
        owner_id=operation.worker_id,
    )
    return value.encode("utf-8", errors="surrogateescape")


def _state(worker: DirectoryUser) -> WorkerMethodState | None:
    return WorkerMethodState.objects.filter(user_id=worker.id).first()


# -- carrying an action out (called by the task) ------------------------------------------


def operation_execute(*, operation: Operation, client: GraphClient, retrying: bool) -> dict:
    """Do the action in Graph; returns non-secret results. Raises GraphError on failure.

    `retrying` is True when an earlier attempt failed transiently: each kind then re-reads Graph's
    state before writing again, so the action is done once (DESIGN.md §6).
    """
    handler = _HANDLERS[operation.kind]
    return handler(operation, client, retrying)


def _created_by(operation: Operation) -> AbstractUser:
    return operation.requested_by


def _record_credentials(operation: Operation, issued: qr.IssuedCredentials) -> dict:
    # Drop secrets an earlier attempt may have left for this action: only the newest are valid.
    for old in (operation.payload_secret_id, operation.pin_secret_id):
        if old and old not in (issued.payload_secret_id, issued.pin_secret_id):
            vault.secret_destroy(secret_id=old, reason="superseded")
    operation.payload_secret_id = issued.payload_secret_id or operation.payload_secret_id
    operation.pin_secret_id = issued.pin_secret_id or operation.pin_secret_id
    operation.save(update_fields=["payload_secret_id", "pin_secret_id"])
    return {
        "expires_at": issued.expires_at.isoformat() if issued.expires_at else None,
        "reissued": issued.reissued,
    }


def _qr_create(operation: Operation, client: GraphClient, retrying: bool) -> dict:
    start = _dt(operation.params["start"])
    expire = _dt(operation.params["expire"])
    pin = None
    if operation.input_secret_id:
        try:
            pin = vault.secret_read(
                secret_id=operation.input_secret_id,
                kind=VaultSecret.Kind.PIN,
                owner_id=operation.worker_id,
            )
        except vault.SecretUnavailable:
            pin = None  # expired while queued: Entra generates one instead
    if (
        retrying
        and operation.payload_secret_id is None
        and qr.qr_method_present(client=client, user_id=operation.worker_id)
    ):
        # An earlier attempt's create may have succeeded with its response lost: the method
        # exists but its secrets are nowhere. Re-issue them (new QR code, new PIN).
        issued = qr.qr_credentials_reissue(
            client=client,
            user_id=operation.worker_id,
            start=start,
            expire=expire,
            created_by=_created_by(operation),
        )
    else:
        issued = qr.qr_method_create(
            client=client,
            user_id=operation.worker_id,
            start=start,
            expire=expire,
            pin=pin,
            created_by=_created_by(operation),
        )
    if operation.input_secret_id:
        vault.secret_destroy(secret_id=operation.input_secret_id, reason="used")
    return _record_credentials(operation, issued)


def _qr_expiry_set(operation: Operation, client: GraphClient, retrying: bool) -> dict:
    expire = _dt(operation.params["expire"])
    code = operations.qr_code_set(client, operation.worker_id, qr.STANDARD, expire=expire)
    return {"expires_at": (code.expire_date_time or expire).isoformat()}


def _qr_replace(operation: Operation, client: GraphClient, retrying: bool) -> dict:
    issued = qr.qr_credentials_reissue(
        client=client,
        user_id=operation.worker_id,
        start=_dt(operation.params["start"]),
        expire=_dt(operation.params["expire"]),
        created_by=_created_by(operation),
        reset_pin=False,
    )
    return _record_credentials(operation, issued)


def _qr_temporary_create(operation: Operation, client: GraphClient, retrying: bool) -> dict:
    start = _dt(operation.params["start"])
    expire = _dt(operation.params["expire"])
    if retrying and operation.payload_secret_id is None:
        existing = operations.qr_code_get(client, operation.worker_id, qr.TEMPORARY)
        if existing is not None and existing.start_date_time == start:
            # Our own earlier create whose response was lost: its payload is gone, make a new one.
            operations.qr_code_delete(client, operation.worker_id, qr.TEMPORARY)
    code = operations.qr_code_set(
        client, operation.worker_id, qr.TEMPORARY, start=start, expire=expire
    )
    payload = qr.payload_from_code(code)
    payload_id = None
    if payload is not None:
        payload_id = vault.secret_store(
            kind=VaultSecret.Kind.QR_PAYLOAD,
            owner_id=operation.worker_id,
            value=payload,
            created_by=_created_by(operation),
        ).pk
    operation.payload_secret_id = payload_id
    operation.save(update_fields=["payload_secret_id"])
    return {"expires_at": (code.expire_date_time or expire).isoformat(), "temporary": True}


def _ignore_not_found(call, *args) -> bool:
    """Run a delete; a 404 means it is already gone (an earlier attempt, or someone else)."""
    try:
        call(*args)
    except GraphNotFound:
        return False
    return True


def _qr_temporary_delete(operation: Operation, client: GraphClient, retrying: bool) -> dict:
    deleted = _ignore_not_found(
        operations.qr_code_delete, client, operation.worker_id, qr.TEMPORARY
    )
    return {"already_gone": not deleted}


def _qr_pin_reset(operation: Operation, client: GraphClient, retrying: bool) -> dict:
    # A repeated reset simply issues another PIN; only the newest one is kept.
    pin = operations.qr_pin_reset(client, operation.worker_id)
    secret = vault.secret_store(
        kind=VaultSecret.Kind.PIN,
        owner_id=operation.worker_id,
        value=pin.secret_code.reveal(),
        created_by=_created_by(operation),
    )
    if operation.pin_secret_id:
        vault.secret_destroy(secret_id=operation.pin_secret_id, reason="superseded")
    operation.pin_secret_id = secret.pk
    operation.save(update_fields=["pin_secret_id"])
    return {}


def _qr_method_delete(operation: Operation, client: GraphClient, retrying: bool) -> dict:
    deleted = _ignore_not_found(operations.qr_method_delete, client, operation.worker_id)
    return {"already_gone": not deleted}


def _phone_set(operation: Operation, client: GraphClient, retrying: bool) -> dict:
    phone_type = operation.params["phone_type"]
    number = operation.params["number"]
    # Create or update depends on what Graph has now (also makes a retry safe).
    existing = {p.phone_type for p in operations.phone_method_list(client, operation.worker_id)}
    if phone_type in existing:
        operations.phone_method_update(client, operation.worker_id, phone_type, number)
        return {"changed": "updated"}
    operations.phone_method_create(client, operation.worker_id, phone_type, number)
    return {"changed": "added"}


def _phone_delete(operation: Operation, client: GraphClient, retrying: bool) -> dict:
    deleted = _ignore_not_found(
        operations.phone_method_delete, client, operation.worker_id, operation.params["phone_type"]
    )
    return {"already_gone": not deleted}


_HANDLERS = {
    Operation.Kind.QR_CREATE: _qr_create,
    Operation.Kind.QR_EXPIRY_SET: _qr_expiry_set,
    Operation.Kind.QR_REPLACE: _qr_replace,
    Operation.Kind.QR_TEMPORARY_CREATE: _qr_temporary_create,
    Operation.Kind.QR_TEMPORARY_DELETE: _qr_temporary_delete,
    Operation.Kind.QR_PIN_RESET: _qr_pin_reset,
    Operation.Kind.QR_METHOD_DELETE: _qr_method_delete,
    Operation.Kind.PHONE_SET: _phone_set,
    Operation.Kind.PHONE_DELETE: _phone_delete,
}


def explain_error(operation: Operation, exc: GraphError) -> str:
    """Graph's error in plain words for this action, always with the request-id."""
    who = operation.worker_label or "The worker"
    kind = operation.kind
    reason = ""
    if isinstance(exc, GraphConflict) and kind == Operation.Kind.QR_CREATE:
        reason = (
            f"{who} already has a QR code + PIN method. Delete it first, or replace a lost QR "
            "code instead."
        )
    elif exc.status == 400 and kind == Operation.Kind.PHONE_DELETE:
        reason = (
            "Entra refused to remove this number. A number that is the worker's default sign-in "
            "method cannot be removed, and a mobile number cannot be removed while an alternate "
            "mobile exists."
        )
    elif exc.status == 400 and kind == Operation.Kind.PHONE_SET:
        reason = (
            "Entra refused this number. An alternate mobile needs a mobile number first, and the "
            "number must be a valid phone number."
        )
    elif exc.status == 400 and kind == Operation.Kind.QR_TEMPORARY_CREATE:
        reason = (
            "Entra refused the temporary QR code: there may already be one (delete it first), or "
            "the worker is not enabled for QR code sign-in by the tenant's policy."
        )
    elif exc.status == 400 and kind == Operation.Kind.QR_CREATE:
        reason = (
            "Entra refused the QR code + PIN method: the PIN may break the tenant's PIN rules, or "
            "the worker is not enabled for QR code sign-in (policy or licence)."
        )
    elif exc.status == 403:
        reason = (
            "Entra says you may not do this for this worker. Your Authentication Administrator "
            "role for this store may have been removed."
        )
    elif isinstance(exc, GraphNotFound):
        reason = f"Entra no longer has what this action needs for {who} (it may have been removed)."
    return f"{reason} {exc}".strip() if reason else str(exc)
