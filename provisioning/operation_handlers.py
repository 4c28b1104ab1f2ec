"""Carrying out a manager action in Graph: `operation_execute` and one handler per kind.

The manager-action task (`provisioning.operation_run`, provisioning/tasks/actions.py) calls
`operation_execute` with the manager's delegated Graph client. Every handler is safe to run again
after a transient failure: on a retry it first re-reads Graph's state (docs/architecture.md §6), so
a lost response never orphans a credential.

Secrets: the PIN and QR payload Graph returns go into the vault (provisioning/qr.py); only vault ids
reach the Operation row. `explain_error` turns Graph's error into plain words for the manager.
"""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import AbstractUser

from provisioning import qr, vault
from provisioning.graph import (
    GraphClient,
    GraphError,
    GraphNotFound,
    is_undocumented_refusal,
    operations,
)
from provisioning.graph.models import parse_datetime
from provisioning.models import Operation, VaultSecret
from provisioning.privileged import role_assignable_group_member_ids


def operation_execute(*, operation: Operation, client: GraphClient, retrying: bool) -> dict:
    """Do the action in Graph; returns non-secret results. Raises GraphError on failure.

    `retrying` is True when an earlier attempt failed transiently: each kind then re-reads Graph's
    state before writing again, so the action is done once (docs/architecture.md §6).
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
        "issued": issued.issue.value,
    }


def _qr_create(operation: Operation, client: GraphClient, retrying: bool) -> dict:
    start = parse_datetime(operation.params["start"])
    expire = parse_datetime(operation.params["expire"])
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
        try:
            issued = qr.qr_method_create(
                client=client,
                user_id=operation.worker_id,
                start=start,
                expire=expire,
                pin=pin,
                created_by=_created_by(operation),
            )
        except GraphError as exc:
            if not is_undocumented_refusal(exc):
                raise
            issued = _qr_create_refused(operation, client, retrying, exc, start, expire)
    if operation.input_secret_id:
        vault.secret_destroy(secret_id=operation.input_secret_id, reason="used")
    return _record_credentials(operation, issued)


class RefusedByState(GraphError):
    """Graph refused a write with an undocumented status; a re-read of Graph found the cause.

    Carries Graph's status and request-id, and `reason`, what the re-read showed, in plain words.
    """

    def __init__(self, refused: GraphError, reason: str) -> None:
        self.reason = reason
        super().__init__(
            refused.summary,
            status=refused.status,
            code=refused.code,
            inner_code=refused.inner_code,
            request_id=refused.request_id,
            client_request_id=refused.client_request_id,
            detail=refused.detail,
            permanent=True,
        )


def _qr_create_refused(
    operation: Operation,
    client: GraphClient,
    retrying: bool,
    refused: GraphError,
    start: datetime,
    expire: datetime,
) -> qr.IssuedCredentials:
    """A create Graph refused with 400, 409 or another undocumented 4xx: decide from the method.

    Graph documents no status for "already has a method", "invalid PIN" or "not targeted by the
    policy" (docs/graph-contract.md §1.3), so the method is read again:
    - none: the create itself was refused (PIN rules, policy, licence) → the original error;
    - one with this action's dates while retrying without secrets: our own earlier create whose
      answer was lost → re-issued;
    - any other: the worker already has a method → refused, saying so.
    """
    method = operations.qr_method_get(client, operation.worker_id)
    if method is None:
        raise refused
    code = method.standard_qr_code
    ours = (
        retrying
        and operation.payload_secret_id is None
        and code is not None
        and code.start_date_time == start
        and code.expire_date_time == expire
    )
    if ours:
        return qr.qr_credentials_reissue(
            client=client,
            user_id=operation.worker_id,
            start=start,
            expire=expire,
            created_by=_created_by(operation),
        )
    who = operation.worker_label or "The worker"
    raise RefusedByState(
        refused,
        f"{who} already has a QR code + PIN method. Delete it first, or replace a lost QR code "
        "instead.",
    )


def _qr_expiry_set(operation: Operation, client: GraphClient, retrying: bool) -> dict:
    expire = parse_datetime(operation.params["expire"])
    code = operations.qr_code_set(client, operation.worker_id, qr.STANDARD, expire=expire)
    return {"expires_at": (code.expire_date_time or expire).isoformat()}


def _qr_replace(operation: Operation, client: GraphClient, retrying: bool) -> dict:
    issued = qr.qr_credentials_reissue(
        client=client,
        user_id=operation.worker_id,
        start=parse_datetime(operation.params["start"]),
        expire=parse_datetime(operation.params["expire"]),
        created_by=_created_by(operation),
        reset_pin=False,
    )
    return _record_credentials(operation, issued)


def _qr_temporary_create(operation: Operation, client: GraphClient, retrying: bool) -> dict:
    start = parse_datetime(operation.params["start"])
    expire = parse_datetime(operation.params["expire"])
    if retrying and operation.payload_secret_id is None:
        existing = operations.qr_code_get(client, operation.worker_id, qr.TEMPORARY)
        if existing is not None and existing.start_date_time == start:
            # Our own earlier create whose response was lost: its payload is gone, make a new one.
            operations.qr_code_delete(client, operation.worker_id, qr.TEMPORARY)
    try:
        code = operations.qr_code_set(
            client, operation.worker_id, qr.TEMPORARY, start=start, expire=expire
        )
    except GraphError as exc:
        if not is_undocumented_refusal(exc):
            raise
        # Undocumented status (400 or 409, docs/graph-contract.md §1.6): read the temporary code
        # to tell "one already exists" from a refusal of this create (policy, licence).
        if operations.qr_code_get(client, operation.worker_id, qr.TEMPORARY) is not None:
            who = operation.worker_label or "The worker"
            raise RefusedByState(
                exc,
                f"{who} already has a temporary QR code. Delete it first to create a new one.",
            ) from exc
        raise
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
    pin = qr.qr_pin_reset(client=client, user_id=operation.worker_id)
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
    if isinstance(exc, RefusedByState):
        reason = exc.reason
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
    elif is_undocumented_refusal(exc) and kind == Operation.Kind.QR_TEMPORARY_CREATE:
        reason = (
            "Entra refused the temporary QR code: the worker may not be enabled for QR code "
            "sign-in by the tenant's policy (or licence)."
        )
    elif is_undocumented_refusal(exc) and kind == Operation.Kind.QR_PIN_RESET:
        reason = (
            "Entra refused the new PIN: the worker may not be enabled for QR code sign-in by the "
            "tenant's policy (or licence)."
        )
    elif is_undocumented_refusal(exc) and kind == Operation.Kind.QR_CREATE:
        reason = (
            "Entra refused the QR code + PIN method: the PIN may break the tenant's PIN rules, or "
            "the worker is not enabled for QR code sign-in (policy or licence)."
        )
    elif exc.status == 403:
        groups = role_assignable_group_member_ids([operation.worker_id])
        if groups:
            reason = (
                f"Entra refused: {who} is a member of the role-assignable group "
                f"{next(iter(groups.values()))}, and only a Privileged Authentication "
                "Administrator (or a Global Administrator) may change the sign-in methods of such "
                "members. Ask one to do it."
            )
        else:
            reason = (
                "Entra says you may not do this for this worker. Your Authentication "
                "Administrator role for this store may have been removed, or the worker may be a "
                "member of a role-assignable group (a group that can hold Entra roles), whose "
                "members only a Privileged Authentication Administrator may change."
            )
    elif isinstance(exc, GraphNotFound):
        reason = f"Entra no longer has what this action needs for {who} (it may have been removed)."
    return f"{reason} {exc}".strip() if reason else str(exc)
