"""Provisioning models, one module per domain; everything is importable from here."""

from provisioning.models.audit import AuditEvent
from provisioning.models.bulk import BulkJob, BulkJobRow
from provisioning.models.coverage import MfaCoverageSnapshot
from provisioning.models.directory import (
    AdminGroupMember,
    AdministrativeUnit,
    AUMembership,
    DirectoryRoleHolder,
    DirectorySync,
    DirectorySyncState,
    DirectoryUser,
    PrivilegedAccountsSnapshot,
    ScopedRoleAssignment,
)
from provisioning.models.operations import Operation, WorkerMethodState
from provisioning.models.prepopulation import PrepopulationRun, PrepopulationSchedule
from provisioning.models.token_cache import TokenCache
from provisioning.models.vault import VaultSecret

__all__ = [
    "AUMembership",
    "AdminGroupMember",
    "AdministrativeUnit",
    "AuditEvent",
    "BulkJob",
    "BulkJobRow",
    "DirectoryRoleHolder",
    "DirectorySync",
    "DirectorySyncState",
    "DirectoryUser",
    "MfaCoverageSnapshot",
    "Operation",
    "PrepopulationRun",
    "PrepopulationSchedule",
    "PrivilegedAccountsSnapshot",
    "ScopedRoleAssignment",
    "TokenCache",
    "VaultSecret",
    "WorkerMethodState",
]
