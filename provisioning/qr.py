"""QR code + PIN credentials: issue them through Graph and put their secrets in the vault.

Graph returns a QR payload and a PIN only in the response that created them (docs/graph-contract.md
§1.1, gotcha 1). So the rule of docs/architecture.md §6 — a lost response must never orphan a
credential — works like this: whenever Lanyard cannot be sure it holds the secrets of a method it
meant to create, it
*re-issues* them: delete and re-create the standard QR code (the PIN stays valid meanwhile) and
reset the PIN. Every step of a re-issue is safe to repeat, so a re-issue interrupted at any point is
finished by running it again, and the worker always ends with exactly one method, a badge someone
can print and a PIN someone can hand over.

Manager actions (one worker) and bulk jobs (many) both go through these functions.
"""

from __future__ import annotations

import base64
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from django.contrib.auth.models import AbstractUser

from provisioning import vault
from provisioning.graph import GraphClient, GraphNotFound, GraphRequest, operations
from provisioning.graph.models import QrCode, QrMethod, QrPin
from provisioning.models import VaultSecret
from provisioning.qr_policy import qr_policy_current
from provisioning.rules import PIN_MAX_LENGTH, pin_generate

logger = logging.getLogger(__name__)

STANDARD = "standardQRCode"
TEMPORARY = "temporaryQRCode"


class Issue(StrEnum):
    """Why Lanyard holds new secrets for a worker (kept in results as `issued`)."""

    CREATED = "created"  # the method's first create
    RECOVERED = "recovered"  # re-issued because the create's response was lost: new code and PIN
    REPLACED = "replaced"  # a lost badge: a new standard code; the PIN did not change


@dataclass(frozen=True)
class IssuedCredentials:
    """What Lanyard now holds for a worker: vault ids, never the secrets themselves."""

    user_id: str
    payload_secret_id: int | None  # the QR payload (for badges), if a code was created
    pin_secret_id: int | None  # the PIN (shown once), if a PIN was set or reset
    expires_at: datetime | None
    issue: Issue = Issue.CREATED


def payload_from_code(code: QrCode | None) -> str | None:
    """The QR payload (decoded `image.rawContent`) of a code fresh from a create, else None."""
    if code is None or code.image is None or code.image.secret_raw_content is None:
        return None
    raw = base64.b64decode(code.image.secret_raw_content.reveal())
    # The payload is text (`ms-qrpin:v1|UPN|id|…`); keep any odd bytes intact for the badge.
    return raw.decode("utf-8", errors="surrogateescape")


def _store(
    *, user_id: str, code: QrCode | None, pin: QrPin | None, created_by: AbstractUser | None
) -> tuple[int | None, int | None]:
    payload = payload_from_code(code)
    payload_id = pin_id = None
    if payload is not None:
        payload_id = vault.secret_store(
            kind=VaultSecret.Kind.QR_PAYLOAD, owner_id=user_id, value=payload, created_by=created_by
        ).pk
    if pin is not None and pin.secret_code is not None:
        pin_id = vault.secret_store(
            kind=VaultSecret.Kind.PIN,
            owner_id=user_id,
            value=pin.secret_code.reveal(),
            created_by=created_by,
        ).pk
    return payload_id, pin_id


def qr_method_create(
    *,
    client: GraphClient,
    user_id: str,
    start: datetime,
    expire: datetime,
    pin: str | None,
    created_by: AbstractUser | None,
) -> IssuedCredentials:
    """Create the worker's method and vault its payload and PIN.

    Raises GraphConflict when the worker already has an active method: the caller decides whether
    that method is its own earlier attempt (then `qr_credentials_reissue`) or someone else's.
    """
    method: QrMethod = operations.qr_method_create(
        client, user_id, start=start, expire=expire, pin=pin
    )
    payload_id, pin_id = _store(
        user_id=user_id, code=method.standard_qr_code, pin=method.pin, created_by=created_by
    )
    return IssuedCredentials(
        user_id=user_id,
        payload_secret_id=payload_id,
        pin_secret_id=pin_id,
        expires_at=method.standard_qr_code.expire_date_time if method.standard_qr_code else expire,
    )


def qr_credentials_reissue(
    *,
    client: GraphClient,
    user_id: str,
    start: datetime,
    expire: datetime,
    created_by: AbstractUser | None,
    reset_pin: bool = True,
) -> IssuedCredentials:
    """Replace the standard QR code and (by default) reset the PIN; every step may be repeated.

    Used after a lost create response (`Issue.RECOVERED`: new code and PIN), and for a lost badge
    (reset_pin=False, `Issue.REPLACED`: the PIN stays).
    """
    # Already gone is fine: an earlier attempt deleted it, or it expired and was removed.
    with contextlib.suppress(GraphNotFound):
        operations.qr_code_delete(client, user_id, STANDARD)
    code = operations.qr_code_set(client, user_id, STANDARD, start=start, expire=expire)
    pin = qr_pin_reset(client=client, user_id=user_id) if reset_pin else None
    payload_id, pin_id = _store(user_id=user_id, code=code, pin=pin, created_by=created_by)
    logger.info("Re-issued QR credentials for user %s", user_id)
    return IssuedCredentials(
        user_id=user_id,
        payload_secret_id=payload_id,
        pin_secret_id=pin_id,
        expires_at=code.expire_date_time or expire,
        issue=Issue.RECOVERED if reset_pin else Issue.REPLACED,
    )


def qr_pin_reset(*, client: GraphClient, user_id: str) -> QrPin:
    """Reset the worker's PIN with a compliant PIN generated here (docs/graph-contract.md §1.7).

    The documented request carries a `code`: Lanyard generates one with `secrets` that is at least
    the policy's `pinLength` (20 digits, the maximum, when the policy cannot be read, so that it
    satisfies any policy). Graph's pages describe the reset as generating the PIN, so the caller
    must keep the PIN the ANSWER carries (returned here), not the one sent. Neither is logged.
    """
    return operations.qr_pin_reset(client, user_id, pin=_compliant_pin())


def qr_pin_reset_request(*, user_id: str) -> GraphRequest:
    """The request of `qr_pin_reset`, for a $batch of re-issues (bulk/qr_rows.py)."""
    return operations.qr_pin_reset_request(user_id, pin=_compliant_pin())


def _compliant_pin() -> str:
    policy = qr_policy_current()
    min_length = policy.pin_length if policy.pin_length else PIN_MAX_LENGTH
    return pin_generate(min_length=min_length)


def qr_method_present(*, client: GraphClient, user_id: str) -> bool:
    """Does the worker have a QR method in Entra right now? (The re-check before a retry.)"""
    return operations.qr_method_get(client, user_id) is not None
