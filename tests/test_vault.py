"""The vault: encrypted, owner-bound, expiring; a PIN is shown once, then gone."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.utils import timezone

from portal.models import User
from provisioning import vault
from provisioning.models import VaultSecret

pytestmark = pytest.mark.django_db

WORKER = "0f8fad5b-d9cb-469f-a165-70867728950e"
PIN = "48207315"


@pytest.fixture
def manager() -> User:
    return User.objects.create(username="manager", entra_object_id="m-1")


def store_pin(manager: User) -> VaultSecret:
    return vault.secret_store(kind="pin", owner_id=WORKER, value=PIN, created_by=manager)


def test_the_pin_is_not_in_the_row_in_clear(manager):
    secret = store_pin(manager)
    row = VaultSecret.objects.get(pk=secret.pk)
    assert PIN.encode() not in bytes(row.ciphertext)
    assert PIN not in str(row) and PIN not in repr(row)


def test_a_pin_is_revealed_once_to_its_creator_then_destroyed(manager):
    secret = store_pin(manager)
    shown = vault.secret_reveal_once(
        secret_id=secret.pk, kind="pin", owner_id=WORKER, requester=manager
    )
    assert shown == PIN
    row = VaultSecret.objects.get(pk=secret.pk)
    assert row.destroyed_at is not None and bytes(row.ciphertext) == b""
    with pytest.raises(vault.SecretUnavailable):
        vault.secret_reveal_once(
            secret_id=secret.pk, kind="pin", owner_id=WORKER, requester=manager
        )


def test_nobody_else_can_reveal_a_pin(manager):
    secret = store_pin(manager)
    other = User.objects.create(username="other", entra_object_id="m-2")
    with pytest.raises(vault.SecretUnavailable):
        vault.secret_reveal_once(secret_id=secret.pk, kind="pin", owner_id=WORKER, requester=other)
    assert VaultSecret.objects.get(pk=secret.pk).destroyed_at is None


def test_a_secret_is_bound_to_its_owner_and_kind(manager):
    secret = store_pin(manager)
    with pytest.raises(vault.SecretUnavailable):
        vault.secret_read(secret_id=secret.pk, kind="pin", owner_id="someone-else")
    with pytest.raises(vault.SecretUnavailable):
        vault.secret_read(secret_id=secret.pk, kind="qr_payload", owner_id=WORKER)
    # Swapping the row's columns does not make it another worker's secret.
    VaultSecret.objects.filter(pk=secret.pk).update(owner_id="someone-else")
    with pytest.raises(vault.SecretUnavailable):
        vault.secret_read(secret_id=secret.pk, kind="pin", owner_id="someone-else")


def test_expired_secrets_are_unusable_and_purged(manager):
    secret = vault.secret_store(
        kind="qr_payload", owner_id=WORKER, value="ms-qrpin:v1|x", created_by=manager
    )
    with time_machine.travel(timezone.now() + timedelta(days=8)):
        with pytest.raises(vault.SecretUnavailable):
            vault.secret_read(secret_id=secret.pk, kind="qr_payload", owner_id=WORKER)
        assert vault.secrets_purge_expired() == 1
    row = VaultSecret.objects.get(pk=secret.pk)
    assert row.destroyed_reason == "expired" and bytes(row.ciphertext) == b""


def test_keys_rotate_without_losing_secrets(manager, settings):
    secret = store_pin(manager)
    old = settings.VAULT_KEYS
    new_key = Fernet.generate_key().decode()
    settings.VAULT_KEYS = [new_key, *old]
    call_command("rotate_vault_keys")
    settings.VAULT_KEYS = [new_key]  # the old key is retired
    assert vault.secret_read(secret_id=secret.pk, kind="pin", owner_id=WORKER) == PIN


def test_key_rotation_is_resumable_and_survives_an_unreadable_row(manager, settings):
    """Issue 10, finding 13: a rotation interrupted halfway (here: a row no key opens) keeps the
    batches it finished, goes on past the bad row, and a second run only finishes the rest."""
    from io import StringIO

    from django.core.management.base import CommandError

    secrets = [store_pin(manager) for _ in range(5)]
    broken = secrets[2]
    VaultSecret.objects.filter(pk=broken.pk).update(
        ciphertext=Fernet(Fernet.generate_key()).encrypt(b"a key nobody has")
    )
    old = settings.VAULT_KEYS
    new_key = Fernet.generate_key().decode()
    settings.VAULT_KEYS = [new_key, *old]
    out = StringIO()
    with pytest.raises(CommandError, match="1 row"):
        call_command("rotate_vault_keys", stdout=out)
    assert "Re-encrypted 4 vault secrets" in out.getvalue()

    again = StringIO()
    with pytest.raises(CommandError):
        call_command("rotate_vault_keys", stdout=again)
    assert "Re-encrypted 0 vault secrets" in again.getvalue()  # nothing done twice
    assert "4 already under the newest key" in again.getvalue()

    settings.VAULT_KEYS = [new_key]  # the old key is retired
    for secret in secrets:
        if secret.pk != broken.pk:
            assert vault.secret_read(secret_id=secret.pk, kind="pin", owner_id=WORKER) == PIN


def test_key_rotation_works_in_batches(manager, settings):
    secrets = [store_pin(manager) for _ in range(5)]
    new_key = Fernet.generate_key().decode()
    settings.VAULT_KEYS = [new_key, *settings.VAULT_KEYS]
    count = vault.rows_rotate(VaultSecret.objects.all(), batch_size=2)
    assert (count.rotated, count.current, count.unreadable) == (5, 0, 0)
    settings.VAULT_KEYS = [new_key]
    assert all(
        vault.secret_read(secret_id=s.pk, kind="pin", owner_id=WORKER) == PIN for s in secrets
    )
