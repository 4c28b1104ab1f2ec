"""Provisioning models, one module per domain; everything is importable from here."""

from provisioning.models.audit import AuditEvent
from provisioning.models.directory import (
    AdministrativeUnit,
    AUMembership,
    DirectorySync,
    DirectoryUser,
    ScopedRoleAssignment,
)
from provisioning.models.vault import VaultSecret

__all__ = [
    "AUMembership",
    "AdministrativeUnit",
    "AuditEvent",
    "DirectorySync",
    "DirectoryUser",
    "ScopedRoleAssignment",
    "VaultSecret",
]
