"""Provisioning models, one module per domain; everything is importable from here."""

from provisioning.models.audit import AuditEvent
from provisioning.models.bulk import BulkJob, BulkJobRow
from provisioning.models.directory import (
    AdministrativeUnit,
    AUMembership,
    DirectorySync,
    DirectoryUser,
    ScopedRoleAssignment,
)
from provisioning.models.operations import Operation, WorkerMethodState
from provisioning.models.token_cache import TokenCache
from provisioning.models.vault import VaultSecret

__all__ = [
    "AUMembership",
    "AdministrativeUnit",
    "AuditEvent",
    "BulkJob",
    "BulkJobRow",
    "DirectorySync",
    "DirectoryUser",
    "Operation",
    "ScopedRoleAssignment",
    "TokenCache",
    "VaultSecret",
    "WorkerMethodState",
]
