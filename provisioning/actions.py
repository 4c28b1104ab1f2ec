"""Manager actions on one worker, requested: an Operation row, then a task that carries it out.

Each service validates what it can locally (PIN rules, lifetimes, phone rules Graph would refuse —
provisioning/rules.py), writes the Operation, and enqueues `provisioning.operation_run` on commit;
the task carries the action out (provisioning/operation_handlers.py). Also here: what a manager
does with an action's results (reveal the new PIN once, confirm it was handed over, the QR payload
for the preview and the badge).

Secrets: a custom PIN typed by the manager goes into the vault at once and travels to the task as a
vault id; the PIN and QR payload Graph returns go into the vault (provisioning/qr.py). Neither
reaches the Operation row, a task argument, the audit log or a log line.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import transaction
from django.utils import timezone

from provisioning import audit, vault
from provisioning.models import (
    AdministrativeUnit,
    DirectoryUser,
    Operation,
    VaultSecret,
    WorkerMethodState,
)
from provisioning.qr_policy import POLICY_UNREADABLE, qr_policy_current, qr_policy_unreadable
from provisioning.rules import (
    DEFAULT_METHOD_PHONE,
    PHONE_LABELS,
    PIN_MIN_LENGTH,
    STANDARD_MAX_DAYS,
    TEMPORARY_MAX_HOURS,
    TEMPORARY_MIN_HOURS,
    pin_problem,
)


class ActionRefused(ValueError):
    """The action cannot be requested; the message says why in plain words."""


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
        if qr_policy_unreadable(policy):
            # The tenant's minimum PIN length is unknown: a custom PIN cannot be checked.
            raise ActionRefused(POLICY_UNREADABLE)
        problem = pin_problem(custom_pin, min_length=policy.pin_length or PIN_MIN_LENGTH)
        if problem:
            raise ActionRefused(problem)
    return operation_request(
        kind=Operation.Kind.QR_CREATE,
        worker=worker,
        unit=unit,
        requested_by=requested_by,
        params={
            "start": start.isoformat(),
            "expire": expire.isoformat(),
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
        params={"expire": expire.isoformat()},
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
        params={"start": start.isoformat(), "expire": expire.isoformat()},
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
        params={"start": start.isoformat(), "expire": (start + timedelta(hours=hours)).isoformat()},
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
    if phone_type not in PHONE_LABELS:
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
    if phone_type not in PHONE_LABELS:
        raise ActionRefused("Unknown phone type.")
    state = _state(worker)
    if phone_type == "mobile" and state and state.alternate_mobile_phone:
        raise ActionRefused(
            "The mobile number cannot be removed while there is an alternate mobile number: "
            "remove the alternate first, or change the mobile number instead."
        )
    if state and DEFAULT_METHOD_PHONE.get(state.default_method) == phone_type:
        raise ActionRefused(
            f"The {PHONE_LABELS[phone_type]} number is {worker.display_name}'s default sign-in "
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
    """The QR payload of the code this action created (for the preview and the badge), for its
    requester (the caller's selector checks that) within QR_PAYLOAD_VIEW_MINUTES of the action
    (docs/architecture.md §5, "QR payloads")."""
    if not operation.payload_secret_id:
        raise vault.SecretUnavailable("This action created no QR code.")
    window = timedelta(minutes=settings.QR_PAYLOAD_VIEW_MINUTES)
    if operation.created_at + window <= timezone.now():
        raise vault.SecretUnavailable("The QR code can no longer be shown.")
    value = vault.secret_read(
        secret_id=operation.payload_secret_id,
        kind=VaultSecret.Kind.QR_PAYLOAD,
        owner_id=operation.worker_id,
    )
    return value.encode("utf-8", errors="surrogateescape")


def _state(worker: DirectoryUser) -> WorkerMethodState | None:
    return WorkerMethodState.objects.filter(user_id=worker.id).first()
