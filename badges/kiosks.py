"""Store kiosks: pairing, device credentials, revocation and the kiosk's print queue
(docs/architecture.md §1 "Kiosk", §5).

A manager starts a pairing, the kiosk's browser exchanges the short code for a device
credential — a value signed with `django.core.signing` whose salt carries the kiosk's id and
credential version, around a random token whose hash the kiosk row keeps. Revoking bumps the
version and forgets the hash, so every credential issued before stops working at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.crypto import salted_hmac

from badges.models import Kiosk, KioskPairing, PrintJob
from badges.print_jobs import BadgeError, print_job_items_resolve
from badges.selectors import print_job_list_for_kiosk
from provisioning import audit
from provisioning.models import AdministrativeUnit
from provisioning.selectors import administrative_unit_list_for_manager

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractUser

PAIRING_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: typed by hand
PAIRING_CODE_LENGTH = 8
KIOSK_SIGNING_SALT = "lanyard.badges.kiosk"
LAST_SEEN_RESOLUTION = timedelta(seconds=60)


class PairingFailed(BadgeError):
    """The pairing code is wrong, used or expired (one message for all three)."""


def _normalise_code(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def _code_hash(code: str) -> str:
    return salted_hmac(
        "lanyard.badges.kiosk-pairing", _normalise_code(code), algorithm="sha256"
    ).hexdigest()


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def kiosk_pairing_start(
    *, name: str, stores: Sequence[AdministrativeUnit], created_by: AbstractUser
) -> tuple[KioskPairing, str]:
    """A pairing code (shown once to the manager) for a new kiosk of `stores`.

    The caller has checked that `created_by` may register kiosks for these stores.
    """
    if not stores:
        raise BadgeError("Choose at least one store.")
    raw = "".join(secrets.choice(PAIRING_ALPHABET) for _ in range(PAIRING_CODE_LENGTH))
    code = f"{raw[:4]}-{raw[4:]}"
    with transaction.atomic():
        pairing = KioskPairing.objects.create(
            code_hash=_code_hash(code),
            name=name.strip(),
            created_by=created_by,
            expires_at=timezone.now() + timedelta(minutes=settings.KIOSK_PAIRING_MINUTES),
        )
        pairing.stores.set(stores)
        for store in stores:
            audit.record(
                actor=created_by,
                action="kiosk-pairing-started",
                outcome="succeeded",
                administrative_unit_id=store.id,
                target_label=f"kiosk {pairing.name}",
            )
    return pairing, code


def _credential_salt(kiosk: Kiosk) -> str:
    return f"{KIOSK_SIGNING_SALT}:{kiosk.pk}:{kiosk.credential_version}"


def _issue_credential(kiosk: Kiosk) -> str:
    token = secrets.token_urlsafe(32)
    kiosk.credential_version += 1
    kiosk.credential_hash = _token_hash(token)
    kiosk.save(update_fields=["credential_version", "credential_hash"])
    signed = signing.dumps({"k": kiosk.pk, "t": token}, salt=_credential_salt(kiosk))
    return f"{kiosk.pk}.{signed}"


def kiosk_pair(*, code: str) -> tuple[Kiosk, str]:
    """Exchange a pairing code for a new kiosk and its device credential (the cookie value).

    A code works once and only until it expires; every failure is the same PairingFailed.
    """
    with transaction.atomic():
        pairing = (
            KioskPairing.objects.select_for_update()
            .filter(code_hash=_code_hash(code), used_at__isnull=True)
            .filter(expires_at__gt=timezone.now())
            .first()
        )
        if pairing is None:
            raise PairingFailed("This pairing code is wrong, used or expired. Ask for a new one.")
        kiosk = Kiosk.objects.create(
            name=pairing.name, created_by=pairing.created_by, vouched_by=pairing.created_by
        )
        kiosk.stores.set(pairing.stores.all())
        pairing.used_at = timezone.now()
        pairing.kiosk = kiosk
        pairing.save(update_fields=["used_at", "kiosk"])
        credential = _issue_credential(kiosk)
        for store in kiosk.stores.all():
            audit.record(
                actor=None,
                actor_label=f"kiosk {kiosk.name}",
                action="kiosk-paired",
                outcome="succeeded",
                administrative_unit_id=store.id,
                target_label=f"kiosk {kiosk.name}",
                detail=f"Paired with a code from {pairing.created_by or 'a deleted user'}",
            )
    return kiosk, credential


def kiosk_authenticate(*, credential: str) -> Kiosk | None:
    """The active kiosk this device credential belongs to, or None (forged, old, revoked)."""
    kiosk_id, _, signed = (credential or "").partition(".")
    if not kiosk_id.isdigit() or not signed:
        return None
    kiosk = (
        Kiosk.objects.filter(pk=int(kiosk_id), revoked_at__isnull=True)
        .select_related("vouched_by")
        .first()
    )
    if kiosk is None or not kiosk.credential_hash:
        return None
    try:
        data = signing.loads(
            signed,
            salt=_credential_salt(kiosk),
            max_age=timedelta(days=settings.KIOSK_CREDENTIAL_DAYS),
        )
    except signing.BadSignature:
        return None
    if not isinstance(data, dict):
        return None
    token = data.get("t")
    if (
        data.get("k") != kiosk.pk
        or not isinstance(token, str)
        or not hmac.compare_digest(_token_hash(token), kiosk.credential_hash)
    ):
        return None
    now = timezone.now()
    if kiosk.last_seen_at is None or kiosk.last_seen_at < now - LAST_SEEN_RESOLUTION:
        Kiosk.objects.filter(pk=kiosk.pk).update(last_seen_at=now)
        kiosk.last_seen_at = now
    kiosk_standing_check(kiosk=kiosk)
    return kiosk


def _vouch_holds(kiosk: Kiosk) -> bool:
    """Whoever answers for the kiosk is an IT admin or manages every one of its stores."""
    voucher = kiosk.vouched_by
    if voucher is None or not voucher.is_active:
        return False
    if voucher.is_it_admin:
        return True
    managed = administrative_unit_list_for_manager(user=voucher).values("id")
    return not kiosk.stores.exclude(id__in=managed).exists()


def kiosk_standing_check(*, kiosk: Kiosk) -> bool:
    """Whether the kiosk may print; suspends it when its voucher lost (some of) its stores.

    Runs on every kiosk request and after each directory sync. A suspended kiosk stays so until
    `kiosk_confirm`, even if its voucher gets the stores back: someone must look at it again.
    """
    if kiosk.suspended_at is not None:
        return False
    if _vouch_holds(kiosk):
        return True
    now = timezone.now()
    with transaction.atomic():
        if not Kiosk.objects.filter(pk=kiosk.pk, suspended_at__isnull=True).update(
            suspended_at=now
        ):
            kiosk.refresh_from_db(fields=["suspended_at"])
            return False
        kiosk.suspended_at = now
        for store in kiosk.stores.all():
            audit.record(
                actor=None,
                actor_label="Lanyard",
                action="kiosk-suspended",
                outcome="succeeded",
                administrative_unit_id=store.id,
                target_label=f"kiosk {kiosk.name}",
                detail=f"{kiosk.vouched_by or 'Its registrar'} no longer manages all its stores",
            )
    return False


def kiosks_standing_check() -> int:
    """kiosk_standing_check for every active kiosk (after a directory sync); how many are
    suspended now."""
    suspended = 0
    active = Kiosk.objects.filter(revoked_at__isnull=True, suspended_at__isnull=True)
    for kiosk in active.select_related("vouched_by"):
        suspended += not kiosk_standing_check(kiosk=kiosk)
    return suspended


def kiosks_standing_check_on_sync(sender, **kwargs) -> None:
    """Receiver of provisioning's `directory_synced`."""
    kiosks_standing_check()


def _kiosk_audit(*, kiosk: Kiosk, actor: AbstractUser, action: str) -> None:
    """One audit event per store the kiosk serves: each store's activity shows it."""
    for store in kiosk.stores.all():
        audit.record(
            actor=actor,
            action=action,
            outcome="succeeded",
            administrative_unit_id=store.id,
            target_label=f"kiosk {kiosk.name}",
        )


def kiosk_confirm(*, kiosk: Kiosk, actor: AbstractUser) -> bool:
    """`actor` — a manager of every store of the kiosk, or an IT admin (the caller checked) —
    answers for the kiosk from now on; a suspended kiosk prints again."""
    with transaction.atomic():
        updated = Kiosk.objects.filter(pk=kiosk.pk, revoked_at__isnull=True).update(
            vouched_by=actor, suspended_at=None
        )
        if not updated:
            return False
        kiosk.refresh_from_db()
        _kiosk_audit(kiosk=kiosk, actor=actor, action="kiosk-confirmed")
    return True


def kiosk_revoke(*, kiosk: Kiosk, actor: AbstractUser) -> bool:
    """Revoke the kiosk: its credential stops working at its next request."""
    with transaction.atomic():
        updated = Kiosk.objects.filter(pk=kiosk.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now(),
            revoked_by=actor,
            credential_hash="",
            credential_version=F("credential_version") + 1,
        )
        if not updated:
            return False
        kiosk.refresh_from_db()
        _kiosk_audit(kiosk=kiosk, actor=actor, action="kiosk-revoked")
    return True


def kiosk_queue(*, kiosk: Kiosk) -> list[PrintJob]:
    """The kiosk's print queue: open sheets of its own stores, waiting badges resolved."""
    jobs = list(print_job_list_for_kiosk(kiosk=kiosk))
    if any(not item.is_ready for job in jobs for item in job.items.all()):
        print_job_items_resolve(jobs=jobs)
        jobs = list(print_job_list_for_kiosk(kiosk=kiosk))
    return jobs
