"""The audit log (docs/architecture.md §5): every action, who, whom, when, outcome, Graph
request-id.

Callers pass plain-language facts only. PINs and QR payloads never reach this module: nothing
here accepts a credential, and `detail` is for outcomes and reasons ("PIN reset", "409 conflict").
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser

from provisioning.models import AuditEvent


def record(
    *,
    actor: AbstractUser | None,
    action: str,
    outcome: str,
    target_user_id: str = "",
    target_label: str = "",
    administrative_unit_id: str = "",
    graph_request_id: str = "",
    detail: str = "",
    actor_label: str = "",
) -> AuditEvent:
    return AuditEvent.objects.create(
        actor=actor,
        actor_label=actor_label or (actor.user_principal_name or actor.username if actor else ""),
        action=action,
        outcome=outcome,
        target_user_id=target_user_id,
        target_label=target_label,
        administrative_unit_id=administrative_unit_id,
        graph_request_id=graph_request_id,
        detail=detail[:2000],
    )
