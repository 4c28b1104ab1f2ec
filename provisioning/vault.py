"""The vault: where PINs and QR payloads live between Graph's response and a person
(docs/architecture.md §5).

A secret is encrypted with VAULT_KEYS, bound to its kind and owner (the worker it belongs to), and
expires. A PIN is revealed once to the person who created or reset it, and destroyed in the same
transaction; a QR payload is kept until its badge is printed or it expires (7 days by default).
The plaintext never reaches a log, an exception message, a task argument or a plaintext column:
callers get it back only from `secret_reveal_once` / `secret_read`, and this module logs ids only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from provisioning import crypto
from provisioning.models import VaultSecret

logger = logging.getLogger(__name__)


class SecretUnavailable(Exception):
    """The secret is gone (revealed, printed, expired or destroyed) or is not the caller's."""


def _default_ttl(kind: str) -> timedelta:
    if kind == VaultSecret.Kind.QR_PAYLOAD:
        return timedelta(days=settings.VAULT_QR_PAYLOAD_DAYS)
    return timedelta(hours=settings.VAULT_PIN_HOURS)


def secret_store(
    *,
    kind: str,
    owner_id: str,
    value: str,
    created_by: AbstractUser | None,
    ttl: timedelta | None = None,
) -> VaultSecret:
    """Encrypt `value` for `owner_id` (an Entra user id); the row never holds it in clear."""
    # The kind and owner travel inside the ciphertext, so a row whose columns were swapped for
    # another worker's cannot be opened as that worker's secret.
    sealed = json.dumps({"kind": kind, "owner": owner_id.lower(), "value": value}).encode()
    return VaultSecret.objects.create(
        kind=kind,
        owner_id=owner_id.lower(),
        created_by=created_by,
        ciphertext=crypto.encrypt(sealed),
        expires_at=timezone.now() + (ttl or _default_ttl(kind)),
    )


def _open(secret: VaultSecret) -> str:
    try:
        sealed = json.loads(crypto.decrypt(secret.ciphertext))
    except (crypto.InvalidToken, ValueError) as exc:
        raise SecretUnavailable("This secret can no longer be opened.") from exc
    if sealed.get("kind") != secret.kind or sealed.get("owner") != secret.owner_id:
        raise SecretUnavailable("This secret does not belong here.")
    return sealed["value"]


def _usable(secret: VaultSecret | None, *, kind: str, owner_id: str) -> VaultSecret:
    if (
        secret is None
        or secret.kind != kind
        or secret.owner_id != owner_id.lower()
        or secret.destroyed_at is not None
        or secret.expires_at <= timezone.now()
    ):
        raise SecretUnavailable("This secret is no longer available.")
    return secret


def secret_reveal_once(*, secret_id: int, kind: str, owner_id: str, requester: AbstractUser) -> str:
    """The plaintext, for the person who created the secret, exactly once; then it is destroyed."""
    with transaction.atomic():
        secret = _usable(
            VaultSecret.objects.select_for_update().filter(id=secret_id).first(),
            kind=kind,
            owner_id=owner_id,
        )
        if secret.created_by_id != requester.pk:
            raise SecretUnavailable("Only the person who set this secret can see it.")
        value = _open(secret)
        _destroy(secret, reason="revealed")
    logger.info("Vault secret %s revealed and destroyed", secret_id)
    return value


def secret_take(*, secret_id: int, kind: str, owner_id: str, reason: str) -> str:
    """The plaintext, exactly once, destroyed in the same transaction (a printed PIN slip).

    Unlike `secret_reveal_once` this does not check who created the secret: the caller has
    decided who may take it (badges/pin_slips.py: the creator or an IT admin).
    """
    with transaction.atomic():
        secret = _usable(
            VaultSecret.objects.select_for_update().filter(id=secret_id).first(),
            kind=kind,
            owner_id=owner_id,
        )
        value = _open(secret)
        _destroy(secret, reason=reason)
    logger.info("Vault secret %s taken and destroyed (%s)", secret_id, reason)
    return value


def secret_read(*, secret_id: int, kind: str, owner_id: str) -> str:
    """The plaintext, leaving it in the vault (QR payloads, until their badge is printed)."""
    secret = _usable(VaultSecret.objects.filter(id=secret_id).first(), kind=kind, owner_id=owner_id)
    return _open(secret)


def secrets_read(*, kind: str, owners: Mapping[int, str]) -> dict[int, str]:
    """The plaintexts of several secrets (vault row id -> the owner each must belong to), left
    in the vault, in one query (a badge sheet). A secret that is gone or not that owner's is
    missing from the result, as `secret_read` would raise SecretUnavailable for it."""
    values: dict[int, str] = {}
    for secret in VaultSecret.objects.filter(id__in=list(owners)):
        try:
            values[secret.pk] = _open(_usable(secret, kind=kind, owner_id=owners[secret.pk]))
        except SecretUnavailable:
            continue
    return values


def secrets_destroy(*, secret_ids: Iterable[int], reason: str) -> int:
    """Destroy these secrets (those not destroyed yet) in one statement; returns how many."""
    return VaultSecret.objects.filter(id__in=list(secret_ids), destroyed_at__isnull=True).update(
        ciphertext=b"", destroyed_at=timezone.now(), destroyed_reason=reason
    )


def secret_destroy(*, secret_id: int, reason: str) -> None:
    with transaction.atomic():
        secret = VaultSecret.objects.select_for_update().filter(id=secret_id).first()
        if secret is not None and secret.destroyed_at is None:
            _destroy(secret, reason=reason)


def _destroy(secret: VaultSecret, *, reason: str) -> None:
    secret.ciphertext = b""
    secret.destroyed_at = timezone.now()
    secret.destroyed_reason = reason
    secret.save(update_fields=["ciphertext", "destroyed_at", "destroyed_reason"])


def secrets_purge_expired() -> int:
    """Destroy every secret past its expiry; returns how many (a scheduled task runs this)."""
    count = VaultSecret.objects.filter(
        destroyed_at__isnull=True, expires_at__lte=timezone.now()
    ).update(ciphertext=b"", destroyed_at=timezone.now(), destroyed_reason="expired")
    if count:
        logger.info("Vault: destroyed %d expired secrets", count)
    return count


@dataclass
class RotationCount:
    """What a rotation pass did: rows re-encrypted, rows already under the newest key, and rows
    no configured key opens (left as they are; they cannot be read anyway)."""

    rotated: int = 0
    current: int = 0
    unreadable: int = 0


ROTATION_BATCH_ROWS = 500


def rows_rotate(queryset: QuerySet, *, batch_size: int = ROTATION_BATCH_ROWS) -> RotationCount:
    """Re-encrypt the `ciphertext` of every row of `queryset` with the newest VAULT_KEYS key.

    Transactional and resumable: rows are locked and rewritten a batch at a time, each batch in
    its own transaction, and rows the newest key already opens are skipped — a pass that stopped
    halfway (a crash, a deploy) is finished by running it again, and never leaves a row half
    written.
    """
    count = RotationCount()
    last_pk = None
    while True:
        with transaction.atomic():
            batch = queryset.select_for_update().order_by("pk")
            if last_pk is not None:
                batch = batch.filter(pk__gt=last_pk)
            rows = list(batch[:batch_size])
            if not rows:
                return count
            for row in rows:
                if not bytes(row.ciphertext) or crypto.is_current(row.ciphertext):
                    count.current += 1
                    continue
                try:
                    row.ciphertext = crypto.rotate(row.ciphertext)
                except crypto.InvalidToken:
                    count.unreadable += 1
                    continue
                row.save(update_fields=["ciphertext"])
                count.rotated += 1
            last_pk = rows[-1].pk


def secrets_rotate() -> RotationCount:
    """Re-encrypt every live secret with the newest VAULT_KEYS key (before dropping an old key);
    see rows_rotate."""
    return rows_rotate(VaultSecret.objects.filter(destroyed_at__isnull=True))
