"""Encryption at rest with VAULT_KEYS (comma-separated Fernet keys, newest first).

MultiFernet encrypts with the first key and decrypts with any, so keys rotate by putting a new key
first and, once `rotate` has re-encrypted old rows, dropping the old one.
"""

from __future__ import annotations

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

__all__ = ["InvalidToken", "decrypt", "encrypt", "is_current", "rotate"]


@cache
def _cipher(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in keys])


def cipher() -> MultiFernet:
    return _cipher(tuple(settings.VAULT_KEYS))


def encrypt(plaintext: bytes) -> bytes:
    return cipher().encrypt(plaintext)


def decrypt(ciphertext: bytes) -> bytes:
    """Plaintext, or InvalidToken if no configured key opens it (tampered, or key retired)."""
    return cipher().decrypt(bytes(ciphertext))


def is_current(ciphertext: bytes) -> bool:
    """True when the newest key alone opens `ciphertext` (nothing left to rotate)."""
    try:
        _cipher(tuple(settings.VAULT_KEYS[:1])).decrypt(bytes(ciphertext))
    except InvalidToken:
        return False
    return True


def rotate(ciphertext: bytes) -> bytes:
    """The same plaintext encrypted with the newest key."""
    return cipher().rotate(bytes(ciphertext))
